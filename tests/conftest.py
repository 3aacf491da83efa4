"""Shared fixtures: keep every test's logs out of the real logs/, and stop the TensorBoards tests start."""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "stack": REPO / "Exercise1.01" / "test_stack.ipynb",
    "mnist": REPO / "Exercise1.02" / "mnist.ipynb",
    "hyperparams": REPO / "Activity1.01" / "hyperparams.ipynb",
}


def pytest_configure(config: pytest.Config) -> None:
    # Runs before collection, so nbval's kernels inherit it too: nothing a test trains lands in logs/.
    config.tflab_session_logs = tempfile.mkdtemp(prefix="tflab-test-logs-")
    os.environ["TFLAB_LOGDIR"] = config.tflab_session_logs
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TFLAB_OFFLINE", "1")  # the Keras download host is unreachable here anyway
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    # A run started in the background by a shell inherits an ignored Ctrl-C, and so would the
    # scripts that the Ctrl-C tests interrupt: give them the usual one.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The full-data acceptance test goes last, so that it can check nbval's run of mnist.ipynb instead
    of training the same notebook on the same data a second time (see `make test`)."""
    last = [item for item in items if item.name == "test_mnist_notebook_passes_97_percent_on_the_full_data"]
    items[:] = [item for item in items if item not in last] + last


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(getattr(config, "tflab_session_logs", ""), ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def stop_tensorboards_started_by_tests(tmp_path_factory):
    """TensorBoards that tests (or notebooks' %tensorboard) started on test folders are stopped at the end.

    Servers of other sessions, or a student's own, are left alone.
    """
    from tensorboard import manager

    from tflab import board

    before = {info.pid for info in manager.get_all()}
    yield
    ours = [Path(os.environ["TFLAB_LOGDIR"]).resolve(), tmp_path_factory.getbasetemp().resolve()]
    for info in manager.get_all():
        logdir = Path(info.logdir).resolve() if info.logdir else None
        if info.pid not in before and logdir and any(logdir == root or root in logdir.parents for root in ours):
            board.stop(info.pid)


@pytest.fixture
def logs(tmp_path, monkeypatch) -> Path:
    """A private logs/ folder for one test (TFLAB_LOGDIR)."""
    folder = tmp_path / "logs"
    folder.mkdir()
    monkeypatch.setenv("TFLAB_LOGDIR", str(folder))
    return folder
