"""Exercise 1.01's stack check: one PASS/FAIL row per requirement, with a fix for each failure."""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata

from packaging.version import Version

SETUP_FIX = "run `make setup` in the lab folder, then restart the kernel"


@dataclass
class Check:
    name: str
    status: str  # PASS, FAIL or INFO
    detail: str
    fix: str = ""


def _installed(dist: str) -> Version | None:
    try:
        return Version(metadata.version(dist))
    except metadata.PackageNotFoundError:
        return None


def _version_check(name: str, dist: str, minimum: str, below: str | None = None) -> Check:
    found = _installed(dist)
    if found is None:
        return Check(name, "FAIL", "not installed", SETUP_FIX)
    if found < Version(minimum) or (below and found >= Version(below)):
        wanted = f">= {minimum}" + (f", < {below}" if below else "")
        return Check(name, "FAIL", f"{found} (need {wanted})", SETUP_FIX)
    return Check(name, "PASS", str(found))


def check_python() -> Check:
    found = Version(".".join(map(str, sys.version_info[:3])))
    if found < Version("3.10"):
        return Check("Python", "FAIL", f"{found} (need >= 3.10)", "install Python 3.10+ and recreate .venv")
    return Check("Python", "PASS", str(found))


@contextlib.contextmanager
def _native_stderr_hidden():
    """Hide what C++ code writes straight to file descriptor 2 (TensorFlow's start-up notices)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_tensorflow() -> Check:
    try:
        with _native_stderr_hidden():  # the table's oneDNN row says what the notice would
            import tensorflow as tf
    except ImportError as err:
        return Check("TensorFlow", "FAIL", f"import failed: {err}", SETUP_FIX)
    found = Version(tf.__version__)
    if found < Version("2.0"):
        return Check("TensorFlow", "FAIL", f"{found} (need >= 2.0)", SETUP_FIX)
    return Check("TensorFlow", "PASS", str(found))


def check_tensorboard_binary() -> Check:
    """The executable that ``%tensorboard`` starts (found even when the venv is not activated)."""
    from .board import tensorboard_binary

    try:
        return Check("tensorboard command", "PASS", tensorboard_binary())
    except FileNotFoundError:
        return Check("tensorboard command", "FAIL", "not next to Python nor on PATH", SETUP_FIX)


def check_mnist() -> Check:
    from . import data

    try:
        path = data.data_dir() / "mnist.npz"
        data.verify_npz(path)
    except data.DatasetError as err:
        return Check("MNIST data", "FAIL", str(err), "run `python -m tflab data` (or `make setup`)")
    return Check("MNIST data", "PASS", str(path))


def check_gpu() -> Check:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return Check("GPU", "INFO", f"{len(gpus)} GPU(s): {', '.join(g.name for g in gpus)}")
    return Check("GPU", "INFO", "none found; training runs on the CPU, which is fine for this lab")


def check_onednn() -> Check:
    """Whether TensorFlow runs with the oneDNN CPU kernels that tflab turns on (see `make bench`)."""
    from . import TENSORFLOW_LOADED_FIRST

    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return Check("oneDNN CPU kernels", "INFO", "off (TF_ENABLE_ONEDNN_OPTS=0): training is about 1.5x slower")
    if TENSORFLOW_LOADED_FIRST:
        return Check("oneDNN CPU kernels", "INFO", "not set: TensorFlow was imported before tflab; import tflab first")
    return Check("oneDNN CPU kernels", "INFO", "on")


def run_checks() -> list[Check]:
    """Every check of Exercise 1.01, in the order the table shows them."""
    return [
        check_python(),
        check_tensorflow(),
        _version_check("Keras", "keras", "3.0", below="4.0"),
        _version_check("TensorBoard", "tensorboard", "2.0"),
        check_tensorboard_binary(),
        _version_check("JupyterLab", "jupyterlab", "4.0"),
        _version_check("ipywidgets", "ipywidgets", "8.0"),
        _version_check("papermill", "papermill", "2.4"),
        _version_check("nbval", "nbval", "0.10"),
        check_mnist(),
        check_onednn(),
        check_gpu(),
    ]


def format_table(checks: list[Check]) -> str:
    """One readable line per check, and a fix under each failure."""
    width = max(len(check.name) for check in checks)
    lines = []
    for check in checks:
        lines.append(f"[{check.status:^4}] {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"{'':7}{'':<{width}}  fix: {check.fix}")
    failed = sum(check.status == "FAIL" for check in checks)
    lines.append("All required checks passed." if not failed else f"{failed} required check(s) failed.")
    return "\n".join(lines)


def require(checks: list[Check]) -> None:
    """Raise when a required check failed (the notebook's last cell)."""
    failed = [check.name for check in checks if check.status == "FAIL"]
    if failed:
        raise RuntimeError(f"stack check failed for: {', '.join(failed)}; see the fixes in the table above")


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 when something required is missing."""
    from .params import LabArgumentParser

    LabArgumentParser(prog="python -m tflab stack", description=__doc__).parse_args(argv)
    checks = run_checks()
    print(format_table(checks))
    return 1 if any(check.status == "FAIL" for check in checks) else 0
