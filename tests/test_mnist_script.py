"""Tests for Exercise1.02/mnist.py: Ctrl-C and resume, refuse-or-overwrite, and two runs at once.

Each test trains a tiny run (a few thousand images) in a subprocess, as a student would from a terminal.
"""
from __future__ import annotations

import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from tflab import runs
from tflab.paths import REPO_ROOT

SCRIPT_DIR = REPO_ROOT / "Exercise1.02"
RUN = "resume-me"
ARGS = ["--epochs", "4", "--train-samples", "2000", "--batch-size", "100", "--run-name", RUN]


def script_env(logs: Path) -> dict[str, str]:
    return dict(os.environ, TFLAB_LOGDIR=str(logs), PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")


def run_script(args: list[str], logs: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "mnist.py", *args], cwd=SCRIPT_DIR, env=script_env(logs),
                          capture_output=True, text=True, timeout=timeout)


def interrupt_after_epoch(args: list[str], logs: Path, epoch: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """Start the script and press Ctrl-C (SIGINT) as soon as it prints the end of ``epoch``."""
    process = subprocess.Popen([sys.executable, "mnist.py", *args], cwd=SCRIPT_DIR, env=script_env(logs),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                     daemon=True).start()
    stdout, in_epoch, deadline = [], False, time.monotonic() + timeout
    try:
        while True:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("the script ended before it could be interrupted:\n" + "".join(stdout))
            stdout.append(line)
            in_epoch = in_epoch or line.startswith(f"Epoch {epoch}/")
            if in_epoch and "val_accuracy" in line:  # verbose=2 prints this after the epoch was saved
                process.send_signal(signal.SIGINT)
                break
        stderr = process.stderr.read()
        process.wait(timeout=60)
        while (line := lines.get(timeout=10)) is not None:
            stdout.append(line)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(stdout), stderr)


# TensorFlow's C++ start-up notices, written at import before its logging is set up
# (e.g. "I0000 00:00:… port.cc:153] oneDNN custom operations are on …").
TF_NOTICE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} \d\d:\d\d:)")


def own_lines(stderr: str) -> list[str]:
    """The script's own stderr lines: TensorFlow's start-up notices left out."""
    return [line for line in stderr.strip().splitlines() if not TF_NOTICE.match(line)]


def epoch_steps(run_dir: Path, subdir: str, tag: str = "epoch_accuracy") -> Counter:
    """How many ``tag`` values each step has, over every event file (raw: duplicates count twice)."""
    steps: Counter = Counter()
    for path in sorted((run_dir / subdir).glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            steps.update(event.step for value in event.summary.value if value.tag == tag)
    return steps


def snapshot(run_dir: Path) -> dict:
    return {"metrics": runs.read_metrics(run_dir),
            "train": epoch_steps(run_dir, "train"), "validation": epoch_steps(run_dir, "validation")}


def epoch_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("Epoch ")]


# --- Ctrl-C, resume, refuse, overwrite (one run, in order) --------------------------------------

@pytest.fixture(scope="module")
def run_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def interrupted(run_logs: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The run, stopped with Ctrl-C right after epoch 2 of 4."""
    done = interrupt_after_epoch(ARGS, run_logs, epoch=2)
    return done, snapshot(run_logs / "fit" / RUN)


@pytest.fixture(scope="module")
def resumed(interrupted, run_logs: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The same command again."""
    done = run_script(ARGS, run_logs)
    return done, snapshot(run_logs / "fit" / RUN)


def test_ctrl_c_prints_one_line_with_the_command_that_resumes(interrupted) -> None:
    done, _ = interrupted
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert own_lines(done.stderr) == [
        f"interrupted; resume from the last finished epoch with: python mnist.py {shlex.join(ARGS)}"
    ]
    assert epoch_lines(done.stdout)[:2] == ["Epoch 1/4", "Epoch 2/4"]


def test_an_interrupted_run_is_marked_and_keeps_its_finished_epochs(interrupted, run_logs: Path) -> None:
    _, state = interrupted
    assert state["metrics"]["status"] == runs.INTERRUPTED
    assert state["metrics"]["params"]["epochs"] == 4
    assert state["train"] == state["validation"] == {0: 1, 1: 1}


def test_the_same_command_resumes_at_the_next_epoch(resumed) -> None:
    done, state = resumed
    assert done.returncode == 0, done.stderr
    assert f"Resuming run {RUN}" in done.stdout
    assert epoch_lines(done.stdout) == ["Epoch 3/4", "Epoch 4/4"]
    assert done.stdout.splitlines()[-1].startswith("test accuracy: 0.")
    assert state["metrics"]["status"] == runs.COMPLETE and state["metrics"]["epochs_run"] == 4


def test_the_event_files_hold_every_epoch_exactly_once(resumed, run_logs: Path) -> None:
    _, state = resumed
    assert state["train"] == state["validation"] == {0: 1, 1: 1, 2: 1, 3: 1}
    assert len(list((run_logs / "fit" / RUN / "train").glob("events.out.tfevents.*"))) == 2  # one per session
    assert not (run_logs / "fit" / RUN / "backup").exists()  # BackupAndRestore cleans up when done


def test_a_finished_run_is_not_overwritten_by_accident(resumed, run_logs: Path) -> None:
    started = time.perf_counter()
    done = run_script(ARGS, run_logs)
    assert done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert f"run '{RUN}' already finished" in line and "--overwrite" in line and "--run-name" in line
    assert time.perf_counter() - started < 30  # refused before TensorFlow loads (seconds, not a training)
    assert snapshot(run_logs / "fit" / RUN) == resumed[1]


def test_overwrite_retrains_the_run_from_scratch(resumed, run_logs: Path) -> None:
    done = run_script([*ARGS, "--overwrite", "--epochs", "2"], run_logs)
    assert done.returncode == 0, done.stderr
    assert f"Training run {RUN}" in done.stdout and epoch_lines(done.stdout) == ["Epoch 1/2", "Epoch 2/2"]
    state = snapshot(run_logs / "fit" / RUN)
    assert state["train"] == state["validation"] == {0: 1, 1: 1}  # the old run's events are gone
    assert state["metrics"]["status"] == runs.COMPLETE and state["metrics"]["params"]["epochs"] == 2


# --- two trainings at once ----------------------------------------------------------------------

def test_two_runs_started_together_get_their_own_folders(tmp_path: Path) -> None:
    command = [sys.executable, "mnist.py", "--epochs", "1", "--train-samples", "1000"]
    processes = [subprocess.Popen(command, cwd=SCRIPT_DIR, env=script_env(tmp_path), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
        assert out.splitlines()[-1].startswith("test accuracy: ")

    folders = sorted((tmp_path / "fit").iterdir())
    assert len(folders) == 2
    assert all(folder.name.split("-")[2:5] == ["ep1", "bs256", "lr0.002"] for folder in folders)
    for folder in folders:
        metrics = runs.read_metrics(folder)
        assert metrics["status"] == runs.COMPLETE and metrics["run_name"] == folder.name
        assert 0 < metrics["test_accuracy"] <= 1
        assert epoch_steps(folder, "validation") == {0: 1}
