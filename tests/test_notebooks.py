"""The notebooks as users meet them: clean in git, consistent defaults, papermill runs, the widget panel."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import nbformat
import papermill
import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import metadata as hparams_metadata

from tflab import runs
from tflab.plots import read_scalars

from conftest import NOTEBOOKS, REPO


def execute(name: str, out_dir: Path, **parameters) -> nbformat.NotebookNode:
    """Run one lab notebook with papermill, as an instructor would."""
    path = NOTEBOOKS[name]
    return papermill.execute_notebook(
        str(path), str(out_dir / f"{name}.ipynb"), parameters=parameters,
        cwd=str(path.parent), kernel_name="python3", progress_bar=False,
    )


def load_script_defaults():
    spec = importlib.util.spec_from_file_location("mnist_script", REPO / "Exercise1.02" / "mnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hparams_events(folder: Path) -> list[str]:
    """Kinds of HParams plugin records in the event files directly inside ``folder``."""
    kinds = []
    for event_file in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(event_file)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == hparams_metadata.PLUGIN_NAME:
                    kinds.append(value.tag)
    return kinds


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean_for_git(name):
    notebook = nbformat.read(NOTEBOOKS[name], as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if "NBVAL_CHECK_OUTPUT" in cell.source:
            assert cell.outputs and cell.execution_count == 1, f"{name} cell {index}: checked cell without output"
        else:
            assert not cell.outputs, f"{name} cell {index} has outputs that nbval does not check"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"


@pytest.mark.parametrize("name", ["mnist", "hyperparams"])
def test_notebook_has_one_parameters_cell_right_after_setup(name):
    notebook = nbformat.read(NOTEBOOKS[name], as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    code_before = [c for c in notebook.cells[: tagged[0]] if c.cell_type == "code"]
    assert len(code_before) == 1, "only the Setup cell runs before the parameters"


def test_notebook_defaults_match_the_script():
    script = load_script_defaults()
    expected = {"epochs": script.EPOCHS, "batch_size": script.BATCH_SIZE, "learning_rate": script.LEARNING_RATE}
    for name in ("mnist", "hyperparams"):
        defaults = {key: notebook_defaults(name)[key] for key in expected}
        assert defaults == expected, f"{name}.ipynb parameters drifted from mnist.py"


def notebook_defaults(name: str) -> dict:
    """The values of a notebook's parameters cell, as papermill reads them."""
    return {key: eval(found["default"]) for key, found in papermill.inspect_notebook(str(NOTEBOOKS[name])).items()}


def full_data_run_by_nbval(session_logs: Path) -> Path | None:
    """The run that nbval's execution of mnist.ipynb, as shipped, made earlier in this session.

    `make test` collects the notebooks after tests/, and conftest moves the acceptance test after
    them, so the full-data training happens once. The session's TFLAB_LOGDIR is fresh and only
    nbval's kernels train into its fit/ folder with the notebook's default parameters.
    """
    fit, defaults = session_logs / "fit", notebook_defaults("mnist").items()
    found = [run for run in (fit.iterdir() if fit.is_dir() else ())
             if runs.run_status(run) == runs.COMPLETE and defaults <= runs.read_metrics(run)["params"].items()]
    return found[-1] if found else None


@pytest.mark.slow
def test_mnist_notebook_passes_97_percent_on_the_full_data(tmp_path, logs, request):
    run_dir = full_data_run_by_nbval(Path(request.config.tflab_session_logs))
    if run_dir is None:  # the notebooks were not collected: train here, as an instructor would
        executed = execute("mnist", tmp_path, run_name="acceptance")
        run_dir = logs / "fit" / "acceptance"
        assert runs.read_records(executed)["test_accuracy"] == runs.read_metrics(run_dir)["test_accuracy"]
    metrics = runs.read_metrics(run_dir)
    assert metrics["status"] == runs.COMPLETE and metrics["params"]["train_samples"] is None  # all 60,000 images
    assert metrics["test_accuracy"] >= 0.97, metrics
    for series in ("train", "validation"):
        assert len(read_scalars(run_dir / series, "epoch_accuracy")) == metrics["epochs_run"] == 5


@pytest.fixture(scope="module")
def activity_run(tmp_path_factory) -> Path:
    """One papermill run of Activity 1.01 with parameters, then a press of the panel's Train button.

    Returns its logs folder (the executed notebook is out.ipynb beside it). One run serves both
    tests: a kernel start and TensorFlow's import cost more than the small trainings.
    """
    tmp = tmp_path_factory.mktemp("activity")
    notebook = nbformat.read(NOTEBOOKS["hyperparams"], as_version=4)
    # What a student's click does: find the panel's Train button and press it.
    notebook.cells.append(nbformat.v4.new_code_cell(
        "import ipywidgets\n"
        "train_button, = [w for w in panel.children if isinstance(w, ipywidgets.Button)]\n"
        "train_button.click()\n"
    ))
    source = tmp / "hyperparams-click.ipynb"
    nbformat.write(notebook, source)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TFLAB_LOGDIR", str(tmp / "logs"))
        papermill.execute_notebook(
            str(source), str(tmp / "out.ipynb"), cwd=str(NOTEBOOKS["hyperparams"].parent),
            parameters={"learning_rate": 0.005, "epochs": 1, "train_samples": 3000, "run_name": "small"},
            kernel_name="python3", progress_bar=False,
        )
    return tmp / "logs"


@pytest.mark.slow
def test_activity_papermill_run_writes_metrics_events_and_hparams(activity_run):
    logs = activity_run
    run_dir = logs / "hparams" / "small"
    metrics = runs.read_metrics(run_dir)
    assert metrics["status"] == runs.COMPLETE
    assert metrics["params"] == {"learning_rate": 0.005, "epochs": 1, "batch_size": 256, "optimizer": "adam",
                                 "train_samples": 3000, "run_name": "small", "seed": 42}
    assert 0.5 < metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    assert metrics["epochs_run"] == 1 and metrics["wall_time_s"] > 0 and metrics["tensorflow_version"]
    executed = nbformat.read(logs.parent / "out.ipynb", as_version=4)
    assert runs.read_records(executed)["test_accuracy"] == metrics["test_accuracy"]
    assert read_scalars(run_dir / "validation", "epoch_accuracy")
    assert read_scalars(run_dir, "test_accuracy") == [(1, pytest.approx(metrics["test_accuracy"]))]
    assert hparams_metadata.EXPERIMENT_TAG in hparams_events(logs / "hparams")
    assert hparams_metadata.SESSION_START_INFO_TAG in hparams_events(run_dir)


@pytest.mark.slow
def test_pressing_train_in_the_panel_adds_a_run(activity_run):
    hparams = activity_run / "hparams"
    completed = [d.name for d in hparams.iterdir() if runs.run_status(d) == runs.COMPLETE]
    assert "small" in completed and len(completed) == 2, completed
    clicked = runs.read_metrics(hparams / next(n for n in completed if n != "small"))
    # The panel starts at the notebook's parameters.
    assert clicked["params"]["epochs"] == 1 and clicked["params"]["train_samples"] == 3000
    assert clicked["params"]["learning_rate"] == 0.005


@pytest.mark.slow
def test_activity_rejects_a_bad_parameter_before_training(tmp_path, logs):
    started = time.monotonic()
    with pytest.raises(papermill.PapermillExecutionError) as error:
        execute("hyperparams", tmp_path, learning_rate=-0.1)
    assert error.value.ename == "ValueError" and "learning_rate" in error.value.evalue
    assert time.monotonic() - started < 60  # generous: the point is that no training ran
    assert not (logs / "hparams").exists() or not any((logs / "hparams").iterdir())
