"""Real-browser fixtures: headless Debian Chromium, and TensorBoard / JupyterLab served on 127.0.0.1.

Every server is started in its own process group on a free port and stopped at teardown, also
when a test fails. Screenshots go to ``artifacts/browser/`` (git-ignored): one per page as
evidence, and a ``FAILED-…`` one whenever an expected element is missing.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"  # never let Playwright fetch a browser of its own

REPO = Path(__file__).resolve().parents[2]
BIN = Path(os.path.abspath(sys.executable)).parent  # the venv's bin/, where tensorboard and jupyter live
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}


# ---------------------------------------------------------------- processes and ports

def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lab_env(logs: Path) -> dict[str, str]:
    """This process's environment with the lab's logs redirected to ``logs``."""
    return os.environ | {"TFLAB_LOGDIR": str(logs), "TF_CPP_MIN_LOG_LEVEL": "2",
                         "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}


def start_server(command: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen:
    """Start ``command`` in a new process group, its output going to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it if it is still there after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_processes_mentioning(text: str) -> list[int]:
    """SIGKILL our processes whose command line contains ``text`` (a private tmp path): strays only."""
    killed = []
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit() or int(proc_dir.name) == os.getpid():
            continue
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc_dir.name), signal.SIGKILL)
                killed.append(int(proc_dir.name))
    return killed


def tail(log: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return log.read_text(errors="replace")[-chars:]
    return ""


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float,
                  ready: Callable[[bytes], bool] = lambda body: True) -> bytes:
    """Poll ``url`` until it answers 200 and ``ready(body)``; fail with the server's log otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with code {proc.returncode} before {url} answered:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
            if ready(body):
                return body
            last = f"answered but not ready: {body[:300]!r}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {timeout:.0f} s ({last}); server log:\n{tail(log)}")


def run_checked(command: list[str], env: dict[str, str], timeout: float, cwd: Path = REPO) -> str:
    """Run a setup command; fail the test with its output if it fails."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"setup command failed ({result.returncode}): {' '.join(command)}\n"
                    f"{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


# ---------------------------------------------------------------- TensorBoard

@contextlib.contextmanager
def tensorboard(logdir: Path, expected_runs: list[str], log: Path, timeout: float = 90.0) -> Iterator[str]:
    """Serve ``logdir`` with the venv's TensorBoard on 127.0.0.1; yield its URL once it lists ``expected_runs``."""
    port = free_port()
    proc = start_server([str(BIN / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1",
                         "--port", str(port)], lab_env(logdir.parent), log)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url + "data/runs", proc, log, timeout,
                      ready=lambda body: set(expected_runs) <= set(json.loads(body)))
        yield url
    finally:
        stop_group(proc)


# ---------------------------------------------------------------- the browser

def screenshot(page, name: str) -> Path:
    """Save a screenshot of the whole page to ``artifacts/browser/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def expect_visible(page, locator, what: str, shot: str, timeout: float = 30_000) -> None:
    """Wait for ``locator`` to be visible; otherwise screenshot the page and fail naming page and element."""
    from playwright.sync_api import expect

    try:
        expect(locator).to_be_visible(timeout=timeout)
    except AssertionError as err:
        path = screenshot(page, f"FAILED-{shot}")
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise AssertionError(f"{what} not visible; see {path.relative_to(REPO)} ({reason})") from None


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium; run `make chromium`",
                    pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    """One headless Chromium for the session (Playwright drives it; it never downloads one)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path), headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page for one test."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


# ---------------------------------------------------------------- JupyterLab

@dataclass
class Lab:
    url: str         # http://127.0.0.1:<port>/
    token: str
    logs: Path       # TFLAB_LOGDIR of the server and its kernels
    tmp: Path
    notebooks: Path  # where tests put the notebooks to open: inside the repo, git-ignored, one per session

    def notebook_url(self, path: Path, workspace: str) -> str:
        """Open ``path`` (inside the repo) in its own fresh workspace."""
        tree = path.relative_to(REPO).as_posix()
        return f"{self.url}lab/workspaces/{workspace}/tree/{tree}?reset&token={self.token}"

    def api(self, method: str, endpoint: str) -> bytes:
        request = urllib.request.Request(f"{self.url}api/{endpoint}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of this server (best effort: the server may be gone already)."""
        with contextlib.suppress(OSError, ValueError):
            for kernel in json.loads(self.api("GET", "kernels")):
                with contextlib.suppress(OSError):
                    self.api("DELETE", f"kernels/{kernel['id']}")


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def tensorboard_pids() -> set[int]:
    """Pids of the TensorBoards that have an info file (``tensorboard.manager``), alive or not."""
    from tensorboard import manager

    return {info.pid for info in manager.get_all()}


def stop_tensorboards(under: Path, known: set[int]) -> None:
    """Stop the TensorBoards serving folders inside ``under`` that are not in ``known``."""
    from tensorboard import manager

    from tflab import board

    for info in manager.get_all():
        logdir = Path(info.logdir).resolve() if info.logdir else None
        if info.pid not in known and logdir and (logdir == under or under in logdir.parents):
            board.stop(info.pid)


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory) -> Iterator[Lab]:
    """One JupyterLab server (token auth on, private config/data/runtime dirs, no news or update checks).

    Teardown shuts its kernels down, stops the server, then stops the TensorBoards that the
    notebooks' ``%tensorboard`` started from the kernels (all serve folders inside ``tmp``).
    """
    tmp = tmp_path_factory.mktemp("jupyter").resolve()
    dirs = {name: tmp / name for name in ("config", "data", "runtime", "ipython", "logs")}
    for folder in dirs.values():
        folder.mkdir()
    settings = dirs["config"] / "lab" / "user-settings" / "@jupyterlab"
    _write_json(settings / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    # Render every cell (no virtual scrolling), so outputs far down the notebook are in the DOM; start the
    # notebook's own kernel without asking (no "Select Kernel" dialog).
    _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings",
                {"windowingMode": "none", "autoStartDefaultKernel": True})
    token = secrets.token_hex(24)
    port = free_port()
    env = lab_env(dirs["logs"]) | {
        "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
        "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"]),
        "JUPYTERLAB_SETTINGS_DIR": str(dirs["config"] / "lab" / "user-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(dirs["config"] / "lab" / "workspaces"),
    }
    command = [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={REPO}", "--ServerApp.open_browser=False",
               "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    tensorboards_before = tensorboard_pids()
    log = tmp / "jupyter.log"
    proc = start_server(command, env, log)
    # A folder of its own, so that a concurrent test session cannot overwrite the open notebooks.
    notebooks = ARTIFACTS / f"notebooks-{os.getpid()}"
    notebooks.mkdir(parents=True, exist_ok=True)
    lab = Lab(url=f"http://127.0.0.1:{port}/", token=token, logs=dirs["logs"], tmp=tmp, notebooks=notebooks)
    try:
        wait_for_http(f"{lab.url}api/status?token={token}", proc, log, timeout=90)
        yield lab
    finally:
        lab.shutdown_kernels()
        stop_group(proc)
        stop_tensorboards(tmp, tensorboards_before)
        kill_processes_mentioning(str(tmp))  # a kernel that outlived its server, a TensorBoard without info file
        shutil.rmtree(notebooks, ignore_errors=True)
