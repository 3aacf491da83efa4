"""Tests for tflab.stack (Exercise 1.01's table) and for the supply chain it checks: pins, no pickles."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata

import pytest
import yaml

from tflab import stack
from tflab.paths import REPO_ROOT
from tflab.stack import Check


# --- the table ----------------------------------------------------------------------------------

def test_table_shows_one_row_per_check_and_a_fix_under_each_failure() -> None:
    table = stack.format_table([
        Check("Python", "PASS", "3.11.7"),
        Check("TensorFlow", "FAIL", "not installed", "run `make setup`"),
        Check("GPU", "INFO", "none found"),
    ])
    assert table.splitlines() == [
        "[PASS] Python      3.11.7",
        "[FAIL] TensorFlow  not installed",
        "                   fix: run `make setup`",
        "[INFO] GPU         none found",
        "1 required check(s) failed.",
    ]


def test_table_without_failures_says_all_passed() -> None:
    table = stack.format_table([Check("Python", "PASS", "3.11"), Check("GPU", "INFO", "none found")])
    assert table.endswith("All required checks passed.") and "fix:" not in table


def test_require_names_every_failed_check() -> None:
    checks = [Check("Keras", "FAIL", "2.15", "fix"), Check("GPU", "INFO", "none"), Check("nbval", "FAIL", "-", "fix")]
    with pytest.raises(RuntimeError, match=r"^stack check failed for: Keras, nbval; see the fixes"):
        stack.require(checks)


def test_require_accepts_passes_and_infos() -> None:
    stack.require([Check("Python", "PASS", "3.11"), Check("GPU", "INFO", "none found")])


# --- the checks ---------------------------------------------------------------------------------

def test_version_check_passes_an_installed_package_in_range() -> None:
    check = stack._version_check("Keras", "keras", "3.0", below="4.0")
    assert check.status == "PASS" and check.detail == metadata.version("keras")


def test_version_check_fails_a_too_old_package_with_the_wanted_range() -> None:
    check = stack._version_check("Keras", "keras", "99.0", below="100.0")
    assert check.status == "FAIL" and "(need >= 99.0, < 100.0)" in check.detail and "make setup" in check.fix


def test_version_check_fails_a_missing_package() -> None:
    check = stack._version_check("Nothing", "no-such-distribution-tflab", "1.0")
    assert (check.status, check.detail, check.fix) == ("FAIL", "not installed", stack.SETUP_FIX)


def test_mnist_check_fails_with_the_data_command_as_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TFLAB_DATA_DIR", str(tmp_path))
    check = stack.check_mnist()
    assert check.status == "FAIL" and "python -m tflab data" in check.fix


@pytest.fixture
def no_tensorflow_checks(monkeypatch):
    """Canned rows for the checks that import TensorFlow (seconds) or need the built dataset."""
    monkeypatch.setattr(stack, "check_tensorflow", lambda: Check("TensorFlow", "PASS", "2.21.0"))
    monkeypatch.setattr(stack, "check_gpu", lambda: Check("GPU", "INFO", "none found"))
    monkeypatch.setattr(stack, "check_mnist", lambda: Check("MNIST data", "PASS", "data/mnist.npz"))


def test_main_exits_0_when_everything_required_passes(no_tensorflow_checks, capsys) -> None:
    assert stack.main([]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("All required checks passed.") and "[FAIL]" not in out


def test_main_exits_1_and_prints_the_fix_when_a_check_fails(no_tensorflow_checks, monkeypatch, capsys) -> None:
    monkeypatch.setattr(stack, "check_tensorflow", lambda: Check("TensorFlow", "FAIL", "import failed", "reinstall"))
    assert stack.main([]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] TensorFlow" in out and "fix: reinstall" in out and "1 required check(s) failed." in out


def test_main_rejects_unknown_flags_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        stack.main(["--bogus"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# --- supply chain -------------------------------------------------------------------------------

REQUIREMENT = re.compile(r"^[A-Za-z0-9_.\-]+(\[[a-z,\-]+\])?(==|~=)[0-9][0-9A-Za-z.\-]*(;\s*.+)?$")


def requirement_lines() -> list[str]:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return [line.split(" #")[0].strip() for line in lines if line.strip() and not line.startswith("#")]


def test_every_requirement_is_pinned() -> None:
    lines = requirement_lines()
    assert len(lines) >= 10
    unpinned = [line for line in lines if not REQUIREMENT.match(line)]
    assert unpinned == [], f"pin these with == (or ~= for a patch range): {unpinned}"


def test_environment_yml_installs_exactly_requirements_txt() -> None:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert "-r requirements.txt" in pip
    assert all(entry.startswith(("-r ", "-e ")) for entry in pip), "add packages to requirements.txt instead"
    conda_packages = [item for item in env["dependencies"] if isinstance(item, str)]
    assert sorted(name.split("=")[0] for name in conda_packages) == ["pip", "python"]


UNSAFE_LOADS = re.compile(
    r"pickle\.(loads?|Unpickler)\b|Unpickler\(|allow_pickle\s*=\s*True|np\.load\((?![^)]*allow_pickle=False)|"
    r"(torch|joblib|dill|cloudpickle|marshal)\.loads?\(|yaml\.(load|unsafe_load)\(|shelve\.open\("
)


def test_nothing_is_unpickled_outside_the_verified_dataset_loader() -> None:
    """Only tflab/data.py's RestrictedUnpickler reads a pickle, after a sha256 check
    (tests/test_data.py::test_restricted_unpickler_refuses_os_system shows it refuses code)."""
    sources = [*REPO_ROOT.glob("tflab/*.py"), *REPO_ROOT.glob("Exercise*/*.py"), *REPO_ROOT.glob("Activity*/*.py"),
               *REPO_ROOT.glob("*/*.ipynb"), *REPO_ROOT.glob("benchmarks/*.py"), *REPO_ROOT.glob("tools/*.py")]
    assert len(sources) >= 10
    found = {
        (str(path.relative_to(REPO_ROOT)), line.strip())
        for path in sources for line in path.read_text(encoding="utf-8").splitlines() if UNSAFE_LOADS.search(line)
    }
    allowed = {
        ("tflab/data.py", "class RestrictedUnpickler(pickle.Unpickler):"),
        ("tflab/data.py", 'return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()'),
        ("tflab/data.py",
         '(x_tr, y_tr), (x_va, y_va), (x_te, y_te) = RestrictedUnpickler(handle, encoding="latin1").load()'),
    }
    assert found & allowed, "the pattern no longer matches the known loader: update this test"
    assert found - allowed == set()


@pytest.mark.parametrize("env, loaded_first, detail", [
    ("1", False, "on"),
    ("0", False, "off (TF_ENABLE_ONEDNN_OPTS=0): training is about 1.5x slower"),
    ("1", True, "not set: TensorFlow was imported before tflab; import tflab first"),
])
def test_onednn_row_says_whether_the_fast_cpu_kernels_are_on(env, loaded_first, detail, monkeypatch) -> None:
    import tflab

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", env)
    monkeypatch.setattr(tflab, "TENSORFLOW_LOADED_FIRST", loaded_first)
    check = stack.check_onednn()
    assert (check.status, check.detail) == ("INFO", detail)


def test_importing_tflab_turns_onednn_on_unless_the_user_chose() -> None:
    probe = "import os, tflab; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], tflab.TENSORFLOW_LOADED_FIRST)"
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    chosen = dict(env, TF_ENABLE_ONEDNN_OPTS="0")
    assert [subprocess.run([sys.executable, "-c", probe], env=e, capture_output=True, text=True, check=True).stdout
            for e in (env, chosen)] == ["1 False\n", "0 False\n"]
