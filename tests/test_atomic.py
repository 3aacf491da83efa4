"""Tests for tflab.atomic: a reader finds the old file or the new one, never a torn one."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tflab import atomic, runs


@pytest.fixture
def umask_022():
    """Run the test under the usual umask 022, whatever the caller's is."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_json_writes_indented_sorted_json(tmp_path: Path) -> None:
    atomic.write_json(tmp_path / "new" / "m.json", {"b": 1, "a": [1, 2]})
    text = (tmp_path / "new" / "m.json").read_text()
    assert json.loads(text) == {"a": [1, 2], "b": 1}
    assert text.startswith('{\n  "a"') and text.endswith("}\n")
    assert leftovers(tmp_path / "new") == []


def test_write_text_replaces_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    atomic.write_text(path, "old")
    atomic.write_text(path, "new")
    assert path.read_text() == "new" and leftovers(tmp_path) == []


def test_atomic_write_in_binary_mode(tmp_path: Path) -> None:
    with atomic.atomic_write(tmp_path / "blob.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"


def test_the_file_appears_only_when_the_block_ends(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    with atomic.atomic_write(path) as handle:
        handle.write("a,b\n")
        handle.flush()
        assert not path.exists()
        [temp] = leftovers(tmp_path)
        assert temp.startswith(".summary.csv.") and temp.endswith(".tmp")
    assert path.read_text() == "a,b\n"


def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    atomic.write_json(path, {"status": "running"})

    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic.atomic_write(path) as handle:
            handle.write('{"status": "comp')
            raise RuntimeError("disk on fire")

    assert json.loads(path.read_text()) == {"status": "running"}
    assert leftovers(tmp_path) == []


def test_a_failing_serialiser_keeps_the_old_metrics(tmp_path: Path) -> None:
    runs.write_metrics(tmp_path, status=runs.RUNNING, epochs=5)
    with pytest.raises(TypeError):
        runs.write_metrics(tmp_path, status=runs.COMPLETE, model=object())  # not JSON-serialisable
    assert runs.read_metrics(tmp_path) == {"status": runs.RUNNING, "epochs": 5}
    assert leftovers(tmp_path) == []


def test_files_get_normal_permissions_not_0600(tmp_path: Path, umask_022) -> None:
    atomic.write_json(tmp_path / "metrics.json", {})
    atomic.write_text(tmp_path / "summary.md", "")
    for name in ("metrics.json", "summary.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        atomic.write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


KILLED_WRITER = """
import sys
from tflab import atomic
# About 30 MB of JSON, streamed by json.dump in many small writes: long enough to be killed mid-way.
atomic.write_json(sys.argv[1], {"status": "new", "values": list(range(3_000_000))})
"""


def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    atomic.write_json(path, {"status": "old"})
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    try:
        deadline = time.monotonic() + 60
        while not any((tmp_path / name).stat().st_size > 100_000 for name in leftovers(tmp_path)):
            assert writer.poll() is None, "the writer finished before it could be killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL

    assert json.loads(path.read_text()) == {"status": "old"}
    [stray] = leftovers(tmp_path)
    assert stray.startswith(".metrics.json.")  # hidden, and not *.json: globs and readers skip it
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["metrics.json"]
    assert runs.read_metrics(tmp_path) == {"status": "old"}
    runs.write_metrics(tmp_path, status="new")  # the stray file does not block the next write
    assert runs.read_metrics(tmp_path) == {"status": "new"}
