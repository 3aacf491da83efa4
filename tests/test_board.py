"""Tests for tflab.board: TensorBoard on localhost, free ports, stale info files, list and stop.

Every test here uses a private $TMPDIR, so it sees only the TensorBoards it starts (TensorBoard
keeps its info files in $TMPDIR/.tensorboard-info) and never touches anyone else's.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from tensorboard import manager
from tensorboard import version as tb_version

from tflab import board
from tflab.paths import REPO_ROOT

LOOPBACK = {"127.0.0.1", "::1"}


# --- fixtures and helpers -----------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tmpdir")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        yield folder


@pytest.fixture(scope="module")
def lab_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's logs/ ($TFLAB_LOGDIR), shared by the TensorBoards it starts."""
    folder = tmp_path_factory.mktemp("logs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFLAB_LOGDIR", str(folder))
        yield folder


@pytest.fixture
def logs(tmp_path: Path, monkeypatch) -> Path:
    """One test's own logs/ ($TFLAB_LOGDIR), which no real TensorBoard serves."""
    folder = tmp_path / "logs"
    folder.mkdir()
    monkeypatch.setenv("TFLAB_LOGDIR", str(folder))
    return folder


@pytest.fixture
def no_binary_change(monkeypatch):
    """Restore $TENSORBOARD_BINARY after prepare() sets it."""
    monkeypatch.delenv("TENSORBOARD_BINARY", raising=False)


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 that something listens on."""
    with socket.socket() as sock:
        sock.bind((board.LOCALHOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


def info_dir() -> Path:
    return Path(manager._get_info_dir())


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def write_info(pid: int, port: int, logdir: Path, arguments: list[str] | None = None) -> Path:
    """An info file as TensorBoard itself writes it."""
    arguments = arguments or ["--logdir", str(logdir), "--host", board.LOCALHOST, "--port", str(port)]
    info = manager.TensorBoardInfo(
        version=tb_version.VERSION, start_time=int(time.time()), pid=pid, port=port, path_prefix="",
        logdir=str(logdir), db="", cache_key=manager.cache_key(os.getcwd(), arguments, {}),
    )
    path = info_dir() / f"pid-{pid}.info"
    path.write_text(manager._info_to_string(info) + "\n")
    return path


class Exec(Exception):
    """Raised instead of replacing the process with TensorBoard."""


@pytest.fixture
def no_exec(monkeypatch) -> None:
    def fake_execv(path, command):
        raise Exec(command)

    monkeypatch.setattr(board.os, "execv", fake_execv)


def served_command(argv: list[str]) -> list[str]:
    with pytest.raises(Exec) as exec_info:
        board.main(argv)
    return exec_info.value.args[0]


def wait_until_serving(process: subprocess.Popen, port: int | None = None, timeout: float = 90) -> int:
    """Wait for the TensorBoard of ``process`` to write its info file and accept connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"TensorBoard exited with {process.returncode}"
        info = next((i for i in manager.get_all() if i.pid == process.pid), None)
        if info and (port is None or info.port == port) and board.is_alive(info):
            return info.port
        time.sleep(0.2)
    raise AssertionError("TensorBoard did not start in time")


def stop_process(process: subprocess.Popen) -> None:
    """Fixture finalizer: stop a TensorBoard we started, whatever happened in the test."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    (info_dir() / f"pid-{process.pid}.info").unlink(missing_ok=True)


def listening_addresses(pid: int) -> set[str]:
    """The addresses that the process and its children (TensorBoard's data server) listen on."""
    parent = psutil.Process(pid)
    addresses = set()
    for process in [parent, *parent.children(recursive=True)]:
        for conn in process.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                addresses.add(conn.laddr.ip)
    return addresses


# --- command line and ports (no server) ---------------------------------------------------------

def test_serve_command_listens_on_localhost_only_by_default(logs: Path) -> None:
    command = board.serve_command(logs, 6006)
    assert command[0] == board.tensorboard_binary()
    assert command[1:] == ["--logdir", str(logs), "--host", "127.0.0.1", "--port", "6006"]
    assert "--bind_all" not in command


def test_serve_command_binds_all_interfaces_only_when_asked(logs: Path) -> None:
    command = board.serve_command(logs, 6006, bind_all=True)
    assert "--bind_all" in command and "--host" not in command


def test_board_serves_the_lab_logs_on_localhost(logs: Path, no_exec, capsys) -> None:
    command = served_command([])
    port = command[command.index("--port") + 1]
    assert command[1:] == ["--logdir", str(logs), "--host", "127.0.0.1", "--port", port]
    assert f"http://localhost:{port}/" in capsys.readouterr().out


def test_bind_all_prints_a_warning(logs: Path, no_exec, capsys) -> None:
    command = served_command(["--bind-all"])
    assert "--bind_all" in command
    assert capsys.readouterr().err.strip() == board.BIND_ALL_WARNING


def test_a_busy_port_is_replaced_by_a_free_one(busy_port: int) -> None:
    port = board.free_port(busy_port)
    assert port != busy_port and board.port_is_free(port)
    assert not board.port_is_free(busy_port)


def test_a_free_preferred_port_is_kept() -> None:
    with socket.socket() as sock:
        sock.bind((board.LOCALHOST, 0))
        port = sock.getsockname()[1]
    assert board.free_port(port) == port


def test_board_says_which_port_it_uses_when_the_preferred_one_is_busy(logs, busy_port, no_exec, capsys) -> None:
    command = served_command(["--port", str(busy_port)])
    port = int(command[command.index("--port") + 1])
    assert port != busy_port
    assert f"port {busy_port} is busy; using {port}" in capsys.readouterr().out.splitlines()


def test_board_refuses_a_missing_logdir(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        board.main(["--logdir", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--logdir" in err and "nope" in err


# --- info files ---------------------------------------------------------------------------------

def test_info_files_of_dead_tensorboards_are_removed(logs: Path) -> None:
    pid = dead_pid()
    path = write_info(pid, 6006, logs)
    assert pid in [info.pid for info in manager.get_all()]

    assert pid in board.clean_stale()
    assert not path.exists()


def test_a_live_process_whose_port_is_closed_is_not_a_tensorboard(logs: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind((board.LOCALHOST, 0))
        closed_port = sock.getsockname()[1]
    path = write_info(os.getpid(), closed_port, logs)  # e.g. the pid was reused by another program
    try:
        assert not board.is_alive(manager._info_from_string(path.read_text()))
        board.clean_stale()
        assert not path.exists()
    finally:
        path.unlink(missing_ok=True)


def test_prepare_ignores_a_dead_tensorboard_of_the_same_logdir(logs: Path, busy_port: int, no_binary_change) -> None:
    path = write_info(dead_pid(), busy_port, logs)  # would be reused if it were alive

    assert board.prepare(logs) == board.SCAN_FROM_DEFAULT_PORT
    assert not path.exists()
    assert os.environ["TENSORBOARD_BINARY"] == board.tensorboard_binary()


def test_lab_boards_lists_only_live_boards_under_the_lab_logs(logs: Path, busy_port: int, tmp_path: Path) -> None:
    # This process stands in for a live TensorBoard: it exists, and busy_port accepts connections.
    (logs / "fit").mkdir()
    path = write_info(os.getpid(), busy_port, logs / "fit")
    try:
        assert [info.pid for info in board.lab_boards()] == [os.getpid()]
        path.unlink()
        path = write_info(os.getpid(), busy_port, tmp_path / "elsewhere")  # someone else's logs
        assert board.lab_boards() == []
    finally:
        path.unlink(missing_ok=True)


def test_list_says_when_no_board_runs(logs: Path, capsys) -> None:
    assert board.main(["--list"]) == 0
    assert capsys.readouterr().out.strip() == "no TensorBoard of this lab is running"


def test_list_and_stop_together_are_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        board.main(["--list", "--stop"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1


# --- Jupyter ------------------------------------------------------------------------------------

def make_recipe(target: str) -> str:
    """The shell lines of one Makefile target."""
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    assert recipe, f"make {target} has no recipe"
    return "\n".join(recipe)


def test_make_lab_serves_jupyter_on_localhost_with_token_auth() -> None:
    recipe = make_recipe("lab")
    assert "jupyter lab" in recipe and "--ServerApp.ip=127.0.0.1" in recipe
    weakening = re.compile(
        r"token\s*=|password\s*=|--no-auth|--ip[= ]|ServerApp\.ip=(?!127\.0\.0\.1\b)|0\.0\.0\.0|"
        r"disable_check_xsrf|allow_origin|allow_remote_access"
    )
    assert not weakening.search(recipe), recipe


def test_make_tensorboard_serves_on_localhost() -> None:
    recipe = make_recipe("tensorboard")
    assert "-m tflab board" in recipe and "bind" not in recipe


# --- real TensorBoards --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_board(lab_logs: Path, tmp_path_factory: pytest.TempPathFactory):
    """``python -m tflab board --port P`` with P taken: (process, P, port used, its output file)."""
    out = tmp_path_factory.mktemp("board") / "stdout.txt"
    with socket.socket() as blocker:
        blocker.bind((board.LOCALHOST, 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        with open(out, "w") as handle:
            process = subprocess.Popen([sys.executable, "-m", "tflab", "board", "--port", str(busy)],
                                       stdout=handle, stderr=subprocess.DEVNULL, cwd=os.getcwd())
        try:
            port = wait_until_serving(process)
            yield process, busy, port, out
        finally:
            stop_process(process)


@pytest.mark.slow
def test_board_cli_serves_on_the_next_free_port_on_loopback_only(cli_board) -> None:
    process, busy, port, out = cli_board
    assert port != busy
    assert f"port {busy} is busy; using {port}" in out.read_text().splitlines()
    addresses = listening_addresses(process.pid)
    assert addresses and addresses <= LOOPBACK, addresses
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        assert response.status == 200


@pytest.mark.slow
def test_prepare_reuses_a_live_tensorboard_of_the_same_logdir(cli_board, lab_logs: Path, no_binary_change) -> None:
    _, _, port, _ = cli_board
    assert board.prepare(lab_logs) == port


@pytest.mark.slow
def test_list_shows_a_live_lab_tensorboard(cli_board, capsys) -> None:
    process, _, port, _ = cli_board
    assert board.main(["--list"]) == 0
    assert f"pid {process.pid}  http://localhost:{port}/" in capsys.readouterr().out


@pytest.mark.slow
def test_notebooks_starting_tensorboards_at_the_same_time_each_get_one(tmp_path: Path, no_binary_change) -> None:
    """Two kernels run their Start TensorBoard cell together: both prepare before either TensorBoard binds."""
    logdirs = [tmp_path / "first", tmp_path / "second"]
    ports = [board.prepare(logdir) for logdir in logdirs]

    def start(logdir: Path, port: int | str):  # what %tensorboard does with the cell's arguments
        return manager.start(["--logdir", str(logdir), "--host", board.LOCALHOST, "--port", str(port)])

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(start, logdirs, ports))
    try:
        assert all(isinstance(result, manager.StartLaunched) for result in results), results
        assert results[0].info.port != results[1].info.port
        assert all(board.is_alive(result.info) for result in results)
    finally:
        for result in results:
            pid = result.info.pid if hasattr(result, "info") else getattr(result, "pid", None)
            if pid:
                board.stop(pid)


@pytest.fixture
def served_board(logs: Path, request):
    """A TensorBoard on its own logs/, started like a student's terminal one, reaped as soon as it exits."""
    (logs / "fit").mkdir()
    process = subprocess.Popen(board.serve_command(logs / "fit", board.free_port(7006)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    request.addfinalizer(lambda: stop_process(process))
    threading.Thread(target=process.wait, daemon=True).start()  # no zombie for --stop to wait on
    wait_until_serving(process)
    return process


@pytest.mark.slow
def test_stop_stops_the_lab_tensorboards_and_removes_their_info_files(served_board) -> None:
    info_file = info_dir() / f"pid-{served_board.pid}.info"
    assert info_file.exists()
    listed = subprocess.run([sys.executable, "-m", "tflab", "board", "--list"], capture_output=True, text=True,
                            timeout=60)
    assert f"pid {served_board.pid}  http://localhost:" in listed.stdout

    done = subprocess.run([sys.executable, "-m", "tflab", "board", "--stop"],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert f"stopped pid {served_board.pid}" in done.stdout
    served_board.wait(timeout=10)
    assert not info_file.exists()
    assert board.lab_boards() == []
