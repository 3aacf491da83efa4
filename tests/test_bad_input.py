"""Bad input everywhere: script flags, CLI commands, environment variables, papermill parameters, sweep grids.

Each gets a one-line error that names the input, shows the bad value and says what is accepted;
command lines exit with status 2 (1 for a failed check) and leave nothing half-written behind.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tflab import params
from tflab.paths import REPO_ROOT

SCRIPT_DIR = REPO_ROOT / "Exercise1.02"
WHOLE = "a whole number >= 1"
POSITIVE = "a number > 0"
FOLDER_NAME = "folder name of letters, digits and ._+=-"
MNIST_FILES = "expected a keras mnist.npz, mnist.pkl.gz"


def write_random_npz(tmp: Path) -> None:
    np.savez(tmp / "random.npz", x=np.random.default_rng(0).random(3))


def write_corrupt_cache(tmp: Path) -> None:
    (tmp / "data").mkdir()
    (tmp / "data" / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")


def write_file_as_logdir(tmp: Path) -> None:
    (tmp / "logs-file").write_text("")


# (command, environment, exit status, what the one line must contain, set-up)
CLI_ROWS = [
    pytest.param(["mnist", "--epochs", "0"], {}, 2, ["--epochs", "'0'", WHOLE], None, id="mnist-epochs-0"),
    pytest.param(["mnist", "--epochs", "ten"], {}, 2, ["--epochs", "'ten'", WHOLE], None, id="mnist-epochs-ten"),
    pytest.param(["mnist", "--epochs", "2.5"], {}, 2, ["--epochs", "'2.5'", WHOLE], None, id="mnist-epochs-2.5"),
    pytest.param(["mnist", "--epochs"], {}, 2, ["--epochs", "expected one argument"], None, id="mnist-epochs-missing"),
    pytest.param(["mnist", "--learning-rate", "-0.1"], {}, 2, ["--learning-rate", "'-0.1'", POSITIVE], None,
                 id="mnist-lr-negative"),
    pytest.param(["mnist", "--learning-rate", "0"], {}, 2, ["--learning-rate", "'0'", POSITIVE], None, id="mnist-lr-0"),
    pytest.param(["mnist", "--learning-rate", "nan"], {}, 2, ["--learning-rate", "'nan'", POSITIVE], None,
                 id="mnist-lr-nan"),
    pytest.param(["mnist", "--learning-rate", "abc"], {}, 2, ["--learning-rate", "'abc'", POSITIVE], None,
                 id="mnist-lr-abc"),
    pytest.param(["mnist", "--batch-size", "0"], {}, 2, ["--batch-size", "'0'", WHOLE], None, id="mnist-batch-0"),
    pytest.param(["mnist", "--train-samples", "0"], {}, 2, ["--train-samples", "'0'", "<= 60000"], None,
                 id="mnist-samples-0"),
    pytest.param(["mnist", "--train-samples", "70000"], {}, 2, ["--train-samples", "'70000'", "<= 60000"], None,
                 id="mnist-samples-70000"),
    pytest.param(["mnist", "--run-name", "../evil"], {}, 2, ["--run-name", "'../evil'", FOLDER_NAME], None,
                 id="mnist-run-name-dotdot"),
    pytest.param(["mnist", "--run-name", "a/b"], {}, 2, ["--run-name", "'a/b'", FOLDER_NAME], None,
                 id="mnist-run-name-slash"),
    pytest.param(["mnist", "--seed", "-1"], {}, 2, ["--seed", "'-1'", "a whole number >= 0"], None,
                 id="mnist-seed-negative"),
    pytest.param(["mnist", "--bogus-flag"], {}, 2, ["unrecognized arguments: --bogus-flag", "--help"], None,
                 id="mnist-unknown-flag"),
    pytest.param(["mnist", "--epochs", "1"], {"TFLAB_MNIST": "/nonexistent.npz", "TFLAB_DATA_DIR": "{tmp}/empty"},
                 2, ["TFLAB_MNIST", "/nonexistent.npz", "no such file", MNIST_FILES], None,
                 id="mnist-env-mnist-missing"),
    pytest.param(["mnist", "--epochs", "1"], {"TFLAB_LOGDIR": "{tmp}/logs-file"}, 2,
                 ["TFLAB_LOGDIR", "logs-file", "writable folder"], write_file_as_logdir,
                 id="mnist-env-logdir-is-a-file"),
    pytest.param(["tflab", "board", "--port", "0"], {}, 2, ["--port", "'0'", "<= 65535"], None, id="board-port-0"),
    pytest.param(["tflab", "board", "--port", "99999"], {}, 2, ["--port", "'99999'", "<= 65535"], None,
                 id="board-port-99999"),
    pytest.param(["tflab", "board", "--logdir", "/nonexistent"], {}, 2, ["--logdir", "/nonexistent", "existing"],
                 None, id="board-logdir-missing"),
    pytest.param(["tflab", "nosuchcommand"], {}, 2, ["'nosuchcommand'", "choose one of data, stack, board"], None,
                 id="tflab-unknown-command"),
    pytest.param(["tflab", "stack", "--bogus"], {}, 2, ["unrecognized arguments: --bogus"], None,
                 id="stack-unknown-flag"),
    pytest.param(["tflab", "data"], {"TFLAB_MNIST": "/nonexistent.npz", "TFLAB_DATA_DIR": "{tmp}/data"}, 2,
                 ["TFLAB_MNIST", "/nonexistent.npz", "no such file", MNIST_FILES], None, id="data-env-mnist-missing"),
    pytest.param(["tflab", "data"], {"TFLAB_MNIST": "{tmp}/random.npz", "TFLAB_DATA_DIR": "{tmp}/data"}, 2,
                 ["TFLAB_MNIST", "random.npz", "x_train", MNIST_FILES], write_random_npz,
                 id="data-env-mnist-not-mnist"),
    # A corrupt cache under --verify is a failed check (1), not bad input; the message still names it.
    pytest.param(["tflab", "data", "--verify"], {"TFLAB_DATA_DIR": "{tmp}/data"}, 1,
                 ["mnist.npz", "unreadable", "expected an npz with keys x_train"], write_corrupt_cache,
                 id="data-verify-corrupt-cache"),
]


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    return tmp_path


def run_cli(command: list[str], env: dict[str, str], tmp: Path) -> tuple[subprocess.CompletedProcess, float]:
    kind, *args = command
    argv = [sys.executable, "mnist.py", *args] if kind == "mnist" else [sys.executable, "-m", "tflab", *args]
    environ = dict(os.environ, TFLAB_LOGDIR=str(tmp / "logs"), TFLAB_OFFLINE="1")
    environ.pop("TFLAB_MNIST", None)
    environ.update({key: value.format(tmp=tmp) for key, value in env.items()})
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=SCRIPT_DIR, env=environ, capture_output=True, text=True, timeout=120)
    return done, time.perf_counter() - started


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("command, env, status, expected, setup", CLI_ROWS)
def test_bad_command_line_input_gets_one_line_and_exit_status(command, env, status, expected, setup, sandbox) -> None:
    if setup:
        setup(sandbox)
    before = {name: files_under(sandbox / name) for name in ("logs", "data", "empty")}

    done, seconds = run_cli(command, env, sandbox)

    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), done.stderr
    for part in expected:
        assert part in lines[0]
    assert done.stdout == ""
    # Nothing half-written: no run folder, no dataset cache, no temporary files.
    assert {name: files_under(sandbox / name) for name in before} == before
    if command[0] == "mnist":
        assert seconds < 5, "a bad flag should fail before TensorFlow loads"


def test_bad_script_flags_fail_before_tensorflow_is_imported() -> None:
    rows = [param.values[0][1:] for param in CLI_ROWS if param.values[0][0] == "mnist" and not param.values[1]]
    probe = f"""
import contextlib, io, json, sys
sys.path.insert(0, {str(SCRIPT_DIR)!r})
import mnist
results = []
for argv in {rows!r}:
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            mnist.main(argv)
        except SystemExit as exit:
            results.append(exit.code)
print(json.dumps({{"codes": results, "loaded": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    assert report == {"codes": [2] * len(rows), "loaded": []}


# --- papermill-style parameters (params.validate, the notebooks' check) -------------------------

GOOD = dict(learning_rate=0.002, epochs=5, batch_size=256, train_samples=None, optimizer="adam", run_name=None, seed=42)
VALIDATE_ROWS = [
    ("learning_rate", 0, ValueError, POSITIVE),
    ("learning_rate", "-1", ValueError, POSITIVE),
    ("learning_rate", "ten", ValueError, POSITIVE),
    ("learning_rate", None, TypeError, POSITIVE),
    ("epochs", 0, ValueError, WHOLE),
    ("epochs", 2.5, ValueError, WHOLE),
    ("epochs", "5x", ValueError, WHOLE),
    ("epochs", True, TypeError, WHOLE),
    ("batch_size", 0, ValueError, WHOLE),
    ("train_samples", 70000, ValueError, "<= 60000"),
    ("optimizer", "adamw", ValueError, "one of adam, sgd, rmsprop"),
    ("run_name", "../x", ValueError, FOLDER_NAME),
    ("seed", -3, ValueError, "a whole number >= 0"),
]


@pytest.mark.parametrize("name, value, error, accepted", VALIDATE_ROWS,
                         ids=[f"{name}={value!r}" for name, value, *_ in VALIDATE_ROWS])
def test_bad_notebook_parameter_names_itself_its_value_and_what_is_accepted(name, value, error, accepted) -> None:
    with pytest.raises(error) as err:
        params.validate(**(GOOD | {name: value}))
    message = str(err.value)
    assert message == f"{name} must be {message.split(' must be ', 1)[1]}"
    assert accepted in message and message.endswith(f"got {value!r}") and "\n" not in message


@pytest.mark.parametrize("name, raw, expected", [
    ("epochs", "5", 5), ("learning_rate", "0.001", 0.001), ("batch_size", "128", 128), ("seed", "0", 0),
    ("train_samples", "None", None), ("run_name", "None", None), ("optimizer", "SGD", "sgd"),
])
def test_papermill_raw_strings_that_mean_a_good_value_are_accepted(name, raw, expected) -> None:
    assert params.validate(**(GOOD | {name: raw}))[name] == expected


NOTEBOOK = REPO_ROOT / "Activity1.01" / "hyperparams.ipynb"
PAPERMILL_ROWS = {
    "epochs-0": (["-p", "epochs", "0"], "ValueError", "epochs must be a whole number >= 1 and <= 1000, got 0"),
    "learning_rate-ten": (["-r", "learning_rate", "ten"], "ValueError",
                          "learning_rate must be a number > 0 (for example 0.001), got 'ten'"),
    "optimizer-adamw": (["-p", "optimizer", "adamw"], "ValueError",
                        "optimizer must be one of adam, sgd, rmsprop, got 'adamw'"),
}


@pytest.fixture(scope="module")
def papermill_failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict, Path, float]]:
    """Run Activity 1.01 once per bad parameter, all at once: (exit status, error output, logs, seconds)."""
    root = tmp_path_factory.mktemp("papermill")
    started, running = time.perf_counter(), {}
    for row, (args, _, _) in PAPERMILL_ROWS.items():
        (root / row / "logs").mkdir(parents=True)
        env = dict(os.environ, TFLAB_LOGDIR=str(root / row / "logs"))
        command = [str(Path(sys.executable).parent / "papermill"), str(NOTEBOOK), str(root / row / "out.ipynb"),
                   *args, "--cwd", str(NOTEBOOK.parent), "--no-progress-bar"]
        running[row] = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    for row, process in running.items():
        try:
            process.wait(timeout=300)
        finally:
            process.kill()
        executed = json.loads((root / row / "out.ipynb").read_text())
        errors = [output for cell in executed["cells"] for output in cell.get("outputs", [])
                  if output.get("output_type") == "error"]
        results[row] = (process.returncode, errors[0] if errors else {}, root / row / "logs",
                        time.perf_counter() - started)
    return results


@pytest.mark.parametrize("row", PAPERMILL_ROWS)
def test_bad_papermill_parameter_stops_the_notebook_with_a_named_error(papermill_failures, row) -> None:
    status, error, logs, _ = papermill_failures[row]
    _, ename, evalue = PAPERMILL_ROWS[row]
    assert status != 0
    assert (error.get("ename"), error.get("evalue")) == (ename, evalue)
    assert files_under(logs) == []  # no run folder, no TensorBoard, nothing trained


# --- sweep grids (only once tflab.sweep exists) -----------------------------------------------

SWEEP_ROWS = [
    (["--param", "learning_rate=abc"], ["--param learning_rate=abc", "learning_rate", "'abc'", POSITIVE]),
    (["--param", "epochs=0"], ["epochs", "'0'", WHOLE]),
    (["--param", "nosuch=1"], ["'nosuch'", "choose from learning_rate"]),
    (["--workers", "0"], ["--workers", "'0'", WHOLE]),
]


@pytest.mark.parametrize("args, expected", SWEEP_ROWS, ids=[" ".join(args) for args, _ in SWEEP_ROWS])
def test_bad_sweep_grid_gets_one_line_and_exit_2(args, expected, sandbox) -> None:
    pytest.importorskip("tflab.sweep")
    runs_before = files_under(REPO_ROOT / "runs")

    done, _ = run_cli(["tflab", "sweep", *args], {}, sandbox)

    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert all(part in line for part in expected), line
    assert files_under(sandbox / "logs") == [] and files_under(REPO_ROOT / "runs") == runs_before
