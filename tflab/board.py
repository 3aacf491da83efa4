"""TensorBoard processes: find the binary, skip dead ones, pick free ports, serve on localhost, list and stop."""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from tensorboard import manager

from . import paths
from .params import LabArgumentParser, arg_type, int_in_range

LOCALHOST = "127.0.0.1"
DEFAULT_PORT = 6006
SCAN_FROM_DEFAULT_PORT = "default"  # TensorBoard's --port value: bind 6006 or the next free port
BIND_ALL_WARNING = (
    "warning: --bind_all serves these logs to anyone who can reach this machine on the network; "
    "TensorBoard has no login."
)


def tensorboard_binary() -> str:
    """The ``tensorboard`` next to this Python (the venv's), else the one on PATH."""
    beside = Path(os.path.abspath(sys.executable)).parent / "tensorboard"
    found = str(beside) if beside.exists() else shutil.which("tensorboard")
    if not found:
        raise FileNotFoundError("tensorboard executable not found next to Python or on PATH; run `make setup`")
    return found


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int = DEFAULT_PORT, host: str = LOCALHOST) -> int:
    """``preferred`` if nothing listens there, else the next free one (or any the OS offers)."""
    for port in range(preferred, preferred + 20):
        if port_is_free(port, host):
            return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_alive(info: manager.TensorBoardInfo) -> bool:
    """True when the recorded process exists and its port accepts connections."""
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOCALHOST, info.port)) == 0


def _info_file(pid: int) -> Path:
    return Path(manager._get_info_dir()) / f"pid-{pid}.info"


def clean_stale() -> list[int]:
    """Delete info files of dead TensorBoards (the "Reusing TensorBoard … blank frame" trap)."""
    removed = []
    for info in manager.get_all():
        if not is_alive(info):
            with contextlib.suppress(FileNotFoundError):
                _info_file(info.pid).unlink()
            removed.append(info.pid)
    return removed


def prepare(logdir: str | os.PathLike) -> int | str:
    """Get ``%tensorboard`` ready in this kernel and return the ``--port`` value to pass it.

    Removes dead TensorBoards' info files and points the magic at this venv's ``tensorboard`` (so
    it works even when Jupyter was started without activating the venv). Returns the port of a live
    TensorBoard already serving ``logdir`` on that port, else ``"default"``: TensorBoard then binds
    6006 or the next free port itself. Checking a port here and binding it seconds later, once
    TensorBoard has loaded, would race with other notebooks starting a TensorBoard at the same time.
    """
    clean_stale()
    os.environ["TENSORBOARD_BINARY"] = tensorboard_binary()
    # %tensorboard names its frame from Python's `random`; after a fixed seed every notebook
    # would get the same frame id, and a second notebook's frame stays blank.
    random.seed()
    for info in manager.get_all():
        same = ["--logdir", str(logdir), "--host", LOCALHOST, "--port", str(info.port)]
        if info.cache_key == manager.cache_key(os.getcwd(), same, {}):
            return info.port
    return SCAN_FROM_DEFAULT_PORT  # the magic itself reuses a live TensorBoard started with these arguments


def lab_boards() -> list[manager.TensorBoardInfo]:
    """Live TensorBoards serving folders under this lab's ``logs/``."""
    root = paths.logs_dir()
    boards = []
    for info in manager.get_all():
        logdir = Path(info.logdir).resolve() if info.logdir else None
        if logdir and (logdir == root or root in logdir.parents) and is_alive(info):
            boards.append(info)
    return boards


def stop(pid: int, timeout: float = 5.0) -> None:
    """Stop one TensorBoard: SIGTERM, then SIGKILL after ``timeout``; remove its info file."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        _info_file(pid).unlink()


def serve_command(logdir: str | os.PathLike, port: int, bind_all: bool = False) -> list[str]:
    """The ``tensorboard`` command line: localhost only unless ``bind_all``."""
    where = ["--bind_all"] if bind_all else ["--host", LOCALHOST]
    return [tensorboard_binary(), "--logdir", str(logdir), *where, "--port", str(port)]


def main(argv: list[str] | None = None) -> int:
    """``python -m tflab board``: serve logs on localhost, or list/stop this lab's TensorBoards."""
    parser = LabArgumentParser(prog="python -m tflab board", description=main.__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list live TensorBoards serving this lab's logs")
    action.add_argument("--stop", action="store_true", help="stop them")
    parser.add_argument("--logdir", type=Path, default=None, help="folder to serve (default: logs/)")
    parser.add_argument("--port", type=arg_type(lambda v, n: int_in_range(v, n, 1, 65535), "--port"),
                        default=DEFAULT_PORT, help="preferred port; the next free one is used if taken")
    parser.add_argument("--bind-all", "--bind_all", action="store_true",
                        help="serve on every network interface (not recommended: no login)")
    args = parser.parse_args(argv)
    clean_stale()
    if args.list or args.stop:
        boards = lab_boards()
        if not boards:
            print("no TensorBoard of this lab is running")
        for info in boards:
            print(f"pid {info.pid}  http://localhost:{info.port}/  logdir {info.logdir}")
            if args.stop:
                stop(info.pid)
                print(f"stopped pid {info.pid}")
        return 0
    logdir = (args.logdir or paths.logs_dir()).resolve()
    if not logdir.is_dir():
        parser.error(f"argument --logdir: {str(logdir)!r} is not a folder; give an existing logs folder")
    port = free_port(args.port)
    if port != args.port:
        print(f"port {args.port} is busy; using {port}")
    if args.bind_all:
        print(BIND_ALL_WARNING, file=sys.stderr)
    print(f"TensorBoard: http://localhost:{port}/  (Ctrl-C stops it)", flush=True)
    command = serve_command(logdir, port, args.bind_all)
    os.execv(command[0], command)
    return 0  # not reached
