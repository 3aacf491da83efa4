"""Run folders: readable unique names, resume-or-refuse for named runs, and a status in metrics.json."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from . import atomic

METRICS_FILE = "metrics.json"
COMPLETE, RUNNING, INTERRUPTED, FAILED = "complete", "running", "interrupted", "failed"


class RunExistsError(FileExistsError):
    """A finished run already holds this name."""


def make_run_name(*, epochs: int, batch_size: int, learning_rate: float, **extra: Any) -> str:
    """Time plus the key parameters, e.g. ``20261204-153012-ep5-bs128-lr0.001``."""
    parts = [time.strftime("%Y%m%d-%H%M%S"), f"ep{epochs}", f"bs{batch_size}", f"lr{learning_rate:g}"]
    parts += [str(value) if key == "optimizer" else f"{key}{value}" for key, value in extra.items() if value is not None]
    return "-".join(str(part) for part in parts)


def read_metrics(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The run's ``metrics.json``, or ``{}`` when there is none (or it is unreadable)."""
    try:
        return json.loads((Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def run_status(run_dir: str | os.PathLike) -> str | None:
    """``complete``, ``running``, ``interrupted``, ``failed``, or ``None`` for an empty folder."""
    return read_metrics(run_dir).get("status")


def write_metrics(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the run's ``metrics.json``, atomically."""
    data = read_metrics(run_dir) | fields
    atomic.write_json(Path(run_dir) / METRICS_FILE, data)
    return data


def prepare_run_dir(
    parent: str | os.PathLike, name: str | None, *, overwrite: bool = False, **name_params: Any
) -> tuple[Path, bool]:
    """Create (or reopen) the folder for one run; return ``(run_dir, resuming)``.

    * ``name=None``: a fresh folder named by :func:`make_run_name`; two processes starting in
      the same second still get distinct folders (``mkdir`` is atomic; the loser adds ``-2``).
    * A named run that is unfinished resumes; a finished one raises :class:`RunExistsError`
      unless ``overwrite=True``, which clears it first.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    if name is None:
        base = make_run_name(**name_params)
        for attempt in range(1, 1000):
            run_dir = parent / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                run_dir.mkdir()
                return run_dir, False
            except FileExistsError:
                continue
        raise RuntimeError(f"could not find a free run folder under {parent}")
    run_dir = parent / name
    if run_dir.exists() and overwrite:
        shutil.rmtree(run_dir)
    elif run_status(run_dir) == COMPLETE:
        raise RunExistsError(
            f"run {name!r} already finished in {run_dir}; pick another run name or pass overwrite to replace it"
        )
    resuming = run_dir.is_dir() and any(run_dir.iterdir())
    run_dir.mkdir(exist_ok=True)
    return run_dir, resuming


@contextlib.contextmanager
def interrupt_between_batches() -> Iterator[Any]:
    """Hold Ctrl-C until the next batch starts; yield the Keras callback that then stops ``fit``.

    Without it, Ctrl-C can land while an epoch is being saved: after BackupAndRestore wrote its
    checkpoint but before TensorBoard logged the epoch (a missing point after resuming), or in
    the middle of the checkpoint file (a resume that cannot read it). With it, every epoch is
    saved whole or not at all. Put the callback first in ``callbacks``. A Ctrl-C that arrives
    after ``fit``, while the block evaluates and saves the results, lets the block finish.
    A second Ctrl-C interrupts at once.
    """
    import keras

    asked = threading.Event()

    def stop_if_asked(*_: Any, **__: Any) -> None:
        if asked.is_set():
            asked.clear()
            raise KeyboardInterrupt

    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=stop_if_asked, on_train_batch_begin=stop_if_asked, on_test_batch_begin=stop_if_asked
    )
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous == signal.SIG_IGN:
        yield callback  # signals reach the main thread only; an ignored Ctrl-C stays ignored
        return
    previous = signal.default_int_handler if previous is None else previous

    def on_sigint(signum: int, frame: Any) -> None:
        asked.set()
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C interrupts at once

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield callback
    finally:
        signal.signal(signal.SIGINT, previous)


RECORD_MIMETYPE = "application/vnd.tflab.record+json"


def record(**values: Any) -> None:
    """Save values in the notebook's output (scrapbook-style) so that papermill callers can read them."""
    from IPython.display import display

    display({RECORD_MIMETYPE: values}, raw=True)


def read_records(notebook: Any) -> dict[str, Any]:
    """Every value :func:`record` saved in an executed notebook (an ``nbformat`` node or a path)."""
    if not hasattr(notebook, "cells"):
        import nbformat

        notebook = nbformat.read(str(notebook), as_version=4)
    values: dict[str, Any] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            values.update(output.get("data", {}).get(RECORD_MIMETYPE, {}))
    return values
