"""Tests for tflab.runs: run names, resume-or-refuse, metrics.json, records, and Ctrl-C between batches."""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tflab import runs
from tflab.runs import RunExistsError, prepare_run_dir

NAME_PARAMS = dict(epochs=5, batch_size=128, learning_rate=0.001)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every auto name is made in the same second (the case that could clash)."""
    monkeypatch.setattr(runs.time, "strftime", lambda fmt: "20261204-153012")
    return "20261204-153012"


# --- names --------------------------------------------------------------------------------------

def test_run_name_shows_time_and_key_parameters(frozen_clock: str) -> None:
    assert runs.make_run_name(**NAME_PARAMS) == "20261204-153012-ep5-bs128-lr0.001"


def test_run_name_adds_optimizer_and_other_extras_but_skips_none(frozen_clock: str) -> None:
    name = runs.make_run_name(**NAME_PARAMS, optimizer="sgd", n=3000, seed=None)
    assert name == "20261204-153012-ep5-bs128-lr0.001-sgd-n3000"


def test_run_name_is_a_valid_folder_name_with_the_real_clock() -> None:
    name = runs.make_run_name(epochs=2, batch_size=256, learning_rate=1e-4)
    assert re.fullmatch(r"\d{8}-\d{6}-ep2-bs256-lr0\.0001", name)


# --- prepare_run_dir ----------------------------------------------------------------------------

def test_auto_named_runs_get_fresh_folders(tmp_path: Path, frozen_clock: str) -> None:
    first, resuming_first = prepare_run_dir(tmp_path / "fit", None, **NAME_PARAMS)
    second, resuming_second = prepare_run_dir(tmp_path / "fit", None, **NAME_PARAMS)
    assert first.name == f"{frozen_clock}-ep5-bs128-lr0.001" and second.name == f"{first.name}-2"
    assert first.is_dir() and second.is_dir()
    assert not resuming_first and not resuming_second


def test_a_new_named_run_starts_fresh(tmp_path: Path) -> None:
    run_dir, resuming = prepare_run_dir(tmp_path, "baseline")
    assert run_dir == tmp_path / "baseline" and run_dir.is_dir() and not resuming


def test_an_empty_named_folder_is_not_a_resume(tmp_path: Path) -> None:
    (tmp_path / "baseline").mkdir()
    assert prepare_run_dir(tmp_path, "baseline") == (tmp_path / "baseline", False)


@pytest.mark.parametrize("status", [runs.RUNNING, runs.INTERRUPTED, runs.FAILED])
def test_an_unfinished_named_run_resumes_and_keeps_its_files(tmp_path: Path, status: str) -> None:
    run_dir, _ = prepare_run_dir(tmp_path, "baseline")
    runs.write_metrics(run_dir, status=status)
    (run_dir / "backup").mkdir()

    assert prepare_run_dir(tmp_path, "baseline") == (run_dir, True)
    assert (run_dir / "backup").is_dir() and runs.run_status(run_dir) == status


def test_a_finished_named_run_is_refused(tmp_path: Path) -> None:
    run_dir, _ = prepare_run_dir(tmp_path, "baseline")
    runs.write_metrics(run_dir, status=runs.COMPLETE, test_accuracy=0.97)

    with pytest.raises(RunExistsError) as err:
        prepare_run_dir(tmp_path, "baseline")
    message = str(err.value)
    assert "'baseline'" in message and "already finished" in message and "overwrite" in message
    assert "\n" not in message
    assert isinstance(err.value, FileExistsError)
    assert runs.read_metrics(run_dir)["test_accuracy"] == 0.97  # untouched


def test_overwrite_replaces_a_finished_run(tmp_path: Path) -> None:
    run_dir, _ = prepare_run_dir(tmp_path, "baseline")
    runs.write_metrics(run_dir, status=runs.COMPLETE)
    (run_dir / "train").mkdir()

    assert prepare_run_dir(tmp_path, "baseline", overwrite=True) == (run_dir, False)
    assert list(run_dir.iterdir()) == []


def test_overwrite_of_a_missing_run_just_creates_it(tmp_path: Path) -> None:
    assert prepare_run_dir(tmp_path, "new", overwrite=True) == (tmp_path / "new", False)


def _start_runs(parent: str, barrier, results, rounds: int) -> None:
    for _ in range(rounds):
        barrier.wait()
        run_dir, _ = prepare_run_dir(parent, None, **NAME_PARAMS)
        results.put(run_dir.name)


def test_runs_started_at_the_same_instant_by_several_processes_never_share_a_folder(
    tmp_path: Path, frozen_clock: str
) -> None:
    processes, rounds = 4, 15
    context = multiprocessing.get_context("fork")  # the children inherit the frozen clock
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_start_runs, args=(str(tmp_path), barrier, results, rounds))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        names = [results.get(timeout=60) for _ in range(processes * rounds)]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)
    assert len(set(names)) == processes * rounds
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


# --- metrics.json -------------------------------------------------------------------------------

def test_write_metrics_merges_fields(tmp_path: Path) -> None:
    runs.write_metrics(tmp_path, status=runs.RUNNING, params={"epochs": 5}, run_name="r")
    merged = runs.write_metrics(tmp_path, status=runs.COMPLETE, test_accuracy=0.98)
    assert merged == {"status": "complete", "params": {"epochs": 5}, "run_name": "r", "test_accuracy": 0.98}
    assert json.loads((tmp_path / "metrics.json").read_text()) == merged


def test_read_metrics_of_a_missing_or_corrupt_file_is_empty(tmp_path: Path) -> None:
    assert runs.read_metrics(tmp_path) == {} and runs.run_status(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"status": "comp')
    assert runs.read_metrics(tmp_path) == {} and runs.run_status(tmp_path) is None


def test_a_run_with_corrupt_metrics_resumes_rather_than_being_refused(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.json").write_text("{")
    assert prepare_run_dir(tmp_path, "r") == (tmp_path / "r", True)


# --- records ------------------------------------------------------------------------------------

def _output(values: dict) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={runs.RECORD_MIMETYPE: values})


def _notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="hello\n")]),
        nbformat.v4.new_code_cell("record", outputs=[_output({"run_name": "a", "test_accuracy": 0.5})]),
        nbformat.v4.new_code_cell("record again", outputs=[_output({"test_accuracy": 0.9})]),
    ]
    return nb


def test_read_records_collects_values_and_later_ones_win() -> None:
    assert runs.read_records(_notebook()) == {"run_name": "a", "test_accuracy": 0.9}


def test_read_records_reads_a_notebook_file(tmp_path: Path) -> None:
    nbformat.write(_notebook(), tmp_path / "out.ipynb")
    assert runs.read_records(tmp_path / "out.ipynb") == {"run_name": "a", "test_accuracy": 0.9}
    assert runs.read_records(str(tmp_path / "out.ipynb"))["run_name"] == "a"


def test_read_records_of_a_notebook_without_records_is_empty() -> None:
    assert runs.read_records(nbformat.v4.new_notebook()) == {}


def test_record_displays_the_values_under_the_lab_mimetype(monkeypatch) -> None:
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *args, **kwargs: shown.append((args, kwargs)))
    runs.record(test_accuracy=0.97, run_name="r")
    assert shown == [(({runs.RECORD_MIMETYPE: {"test_accuracy": 0.97, "run_name": "r"}},), {"raw": True})]


# --- Ctrl-C between batches ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def press_ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)
    time.sleep(0.01)  # Python runs the handler between bytecodes


def test_ctrl_c_is_held_until_the_next_batch(keras) -> None:
    previous = signal.getsignal(signal.SIGINT)
    with runs.interrupt_between_batches() as callback:
        press_ctrl_c()  # held: no KeyboardInterrupt here
        with pytest.raises(KeyboardInterrupt):
            callback.on_train_batch_begin(0)
        callback.on_train_batch_begin(1)  # raised once only
    assert signal.getsignal(signal.SIGINT) is previous


@pytest.mark.parametrize("hook", ["on_epoch_begin", "on_test_batch_begin"])
def test_ctrl_c_also_stops_at_epoch_start_and_during_validation(keras, hook: str) -> None:
    with runs.interrupt_between_batches() as callback:
        press_ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            getattr(callback, hook)(0)


def test_a_second_ctrl_c_interrupts_at_once(keras) -> None:
    with runs.interrupt_between_batches():
        press_ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            press_ctrl_c()


def test_ctrl_c_after_training_lets_the_block_finish(keras) -> None:
    finished = False
    with runs.interrupt_between_batches():
        press_ctrl_c()
        finished = True
    assert finished
    with pytest.raises(KeyboardInterrupt):  # and Ctrl-C works normally again afterwards
        press_ctrl_c()


def test_an_ignored_ctrl_c_stays_ignored(keras) -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a job started in the background
    try:
        with runs.interrupt_between_batches() as callback:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            press_ctrl_c()
            callback.on_train_batch_begin(0)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_guard_changes_nothing(keras) -> None:
    seen = []

    def worker() -> None:
        with runs.interrupt_between_batches() as callback:
            callback.on_train_batch_begin(0)
            seen.append(signal.getsignal(signal.SIGINT))

    previous = signal.getsignal(signal.SIGINT)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [previous]


def _count_epoch_scalars(folder: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    steps = []
    for events in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(events)).Load():
            steps += [event.step for value in event.summary.value if value.tag == "epoch_loss"]
    return sorted(steps)


def test_ctrl_c_while_an_epoch_is_saved_neither_loses_nor_repeats_it(keras, tmp_path: Path) -> None:
    """Ctrl-C between BackupAndRestore and TensorBoard at the end of epoch 2 of 4, then resume."""
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int32")

    def fit(extra_callbacks=()):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
        with runs.interrupt_between_batches() as stop_on_ctrl_c:
            return model.fit(x, y, batch_size=16, epochs=4, validation_data=(x, y), verbose=0, callbacks=[
                stop_on_ctrl_c,
                keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
                *extra_callbacks,
                keras.callbacks.TensorBoard(str(tmp_path)),
            ])

    def ctrl_c_after_the_backup(epoch, logs):
        if epoch == 1:
            press_ctrl_c()

    with pytest.raises(KeyboardInterrupt):
        fit([keras.callbacks.LambdaCallback(on_epoch_end=ctrl_c_after_the_backup)])
    assert json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"] == 2

    history = fit()
    assert history.epoch == [2, 3]
    assert _count_epoch_scalars(tmp_path / "train") == [0, 1, 2, 3]
    assert _count_epoch_scalars(tmp_path / "validation") == [0, 1, 2, 3]
