"""Tests for tflab.sweep: grid checks, run names, resume, summaries, local and Dask sweeps."""
from __future__ import annotations

import contextlib
import csv
import io
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tflab import params, runs, sweep
from tflab.sweep import main

TINY = ["--param", "epochs=1", "--param", "train_samples=1000"]  # 1000: a size the control panel offers


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private --out and --logdir folders (neither exists yet), and TFLAB_LOGDIR pointing beside them."""
    monkeypatch.setenv("TFLAB_LOGDIR", str(tmp_path / "logs"))
    return {"out": tmp_path / "sweep", "logdir": tmp_path / "hparams"}


def failing_notebook(folder: Path) -> Path:
    """Activity 1.01, except that its parameter check fails for seed 13: a run that breaks at run time."""
    nb = nbformat.read(str(sweep.DEFAULT_NOTEBOOK), as_version=4)
    tagged = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    check = next(c for c in nb.cells[tagged + 1:] if c.cell_type == "code")
    check.source = 'assert seed != 13, "simulated failure for seed 13"\n' + check.source
    path = folder / "hyperparams_fails_for_seed_13.ipynb"
    nbformat.write(nb, str(path))
    return path


def run_main(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` in this process: its exit status and what it printed on stdout."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(argv)
    return status, printed.getvalue()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def inline_tensorboard_frames(nb) -> int:
    """How many TensorBoard frames the ``%tensorboard`` cell of an executed notebook shows (an error shows none)."""
    (cell,) = [cell for cell in nb.cells if cell.cell_type == "code" and "%tensorboard" in cell.source]
    return sum("tensorboard-frame-" in "".join(output.get("data", {}).get("text/html", ""))
               for output in cell.outputs)


def row(name: str, status: str, accuracy: float | None, **params) -> dict:
    values = {"learning_rate": 0.001, "epochs": 1, "batch_size": 256, "optimizer": "adam",
              "train_samples": None, "seed": 42} | params
    return {**values, "run_name": name, "status": status, "test_accuracy": accuracy,
            "test_loss": None if accuracy is None else 1 - accuracy, "wall_time_s": 3.2, "seconds": 20.0,
            "error": "AssertionError: boom" if status == sweep.FAILED else None, "notebook": None}


# --- bad input: one line, status 2, quickly, nothing written -------------------------------------

BAD_GRIDS = {
    "unknown name": (["--param", "lr=0.1"], "'lr'"),
    "a name the sweep sets": (["--param", "run_name=a,b"], "run_name"),
    "empty list": (["--param", "epochs="], "epochs="),
    "empty value": (["--param", "epochs=2,,5"], "epochs=2,,5"),
    "malformed value": (["--param", "epochs=ten"], "'ten'"),
    "negative learning rate": (["--param", "learning_rate=-1"], "learning_rate=-1"),
    "unknown optimizer": (["--param", "optimizer=adam,adamw"], "'adamw'"),
    "missing =": (["--param", "epochs"], "'epochs'"),
    "parameter given twice": (["--param", "epochs=2", "--param", "epochs=5"], "epochs"),
    "no grid at all": ([], "--param"),
    "bad workers": (["--param", "epochs=1", "--workers", "0"], "--workers"),
    "workers not a number": (["--param", "epochs=1", "--workers", "two"], "'two'"),
    "dask without scheduler": (["--param", "epochs=1", "--executor", "dask"], "--scheduler"),
    "scheduler without dask": (["--param", "epochs=1", "--scheduler", "tcp://127.0.0.1:8786"], "--executor dask"),
}


@pytest.mark.parametrize("argv, named", BAD_GRIDS.values(), ids=BAD_GRIDS.keys())
def test_bad_grid_exits_2_with_one_line_naming_the_input(argv, named, dirs, capsys) -> None:
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(dirs["out"]), "--logdir", str(dirs["logdir"])])
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and named in err, err
    assert elapsed < 2, f"took {elapsed:.1f} s"
    assert not dirs["out"].exists() and not dirs["logdir"].exists()


GRID_FILES = {
    "bad YAML": ("epochs: [2, 5\n", "not valid YAML at line"),
    "not a mapping": ("- 2\n- 5\n", "expected a mapping"),
    "empty list in the file": ("epochs: []\n", "epochs has no values"),
    "bad value in the file": ("learning_rate: [0.01, -1]\n", "learning_rate must be a number > 0"),
    "unknown name in the file": ("lr: 0.1\n", "unknown parameter 'lr'"),
}


@pytest.mark.parametrize("text, message", GRID_FILES.values(), ids=GRID_FILES.keys())
def test_bad_grid_file_exits_2_naming_the_file(text, message, dirs, tmp_path, capsys) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["--grid", str(grid), "--out", str(dirs["out"]), "--logdir", str(dirs["logdir"])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and str(grid) in err and message in err, err
    assert time.perf_counter() - started < 2
    assert not dirs["out"].exists()


def test_missing_grid_file_exits_2_naming_it(dirs, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--grid", str(tmp_path / "nope.yaml"), "--out", str(dirs["out"])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "nope.yaml: no such file" in err and err.count("\n") == 1
    assert not dirs["out"].exists()


def test_out_that_is_a_file_is_refused(dirs, tmp_path, capsys) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["--param", "epochs=1", "--out", str(tmp_path / "taken")])
    assert exit_info.value.code == 2 and "is a file" in capsys.readouterr().err


def test_missing_dask_says_to_install_the_cluster_extra(dirs, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(SystemExit) as exit_info:
        main(["--param", "epochs=1", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786",
              "--out", str(dirs["out"])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and ".[cluster]" in err and err.count("\n") == 1
    assert not dirs["out"].exists()


# --- the grid, the names, the threads ------------------------------------------------------------

def test_grid_file_values_are_normalised_and_param_replaces_its_entry(tmp_path) -> None:
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text("learning_rate: [0.01, 1.0e-3, 0.001]\nepochs: 2\noptimizer: [Adam, sgd]\n"
                         "train_samples: [null, 3000]\n")
    grid = sweep.parse_grid(["epochs=1,3", "seed=7"], grid_file)
    assert grid == {"learning_rate": [0.01, 0.001], "epochs": [1, 3], "optimizer": ["adam", "sgd"],
                    "train_samples": [None, 3000], "seed": [7]}


def test_example_grid_file_is_the_same_sweep_as_the_make_sweep_params() -> None:
    from_file = sweep.parse_grid([], sweep.paths.REPO_ROOT / "sweeps" / "example.yaml")
    from_params = sweep.parse_grid(["learning_rate=0.01,0.001,0.0001", "epochs=2,5"])
    assert from_file == from_params
    assert sweep.sweep_name(from_file) == sweep.sweep_name(from_params)


def test_combinations_cover_the_grid_on_top_of_the_notebook_defaults() -> None:
    defaults = sweep.notebook_defaults(sweep.DEFAULT_NOTEBOOK)
    assert defaults == {"learning_rate": 0.002, "epochs": 5, "batch_size": 256, "optimizer": "adam",
                        "train_samples": None, "seed": 42}
    combos = sweep.combinations({"learning_rate": [0.01, 0.001], "epochs": [2, 5]}, defaults)
    assert [(c["learning_rate"], c["epochs"]) for c in combos] == [(0.01, 2), (0.01, 5), (0.001, 2), (0.001, 5)]
    assert all(c["batch_size"] == 256 and c["seed"] == 42 for c in combos)


def test_run_names_are_readable_unique_and_valid_run_folders() -> None:
    combos = sweep.combinations(
        {"learning_rate": [0.1, 0.001, 1e-05, 0.0010001], "train_samples": [None, 5000], "seed": [1, 13]},
        {"epochs": 2, "batch_size": 256, "optimizer": "adam"})
    names = [sweep.run_name(c) for c in combos]
    assert names[0] == "lr0.1-ep2-bs256-adam-nall-s1"
    assert "lr1e-05-ep2-bs256-adam-n5000-s13" in names
    assert len(set(names)) == len(names)
    assert all(params.run_name(name) == name for name in names)  # a valid run folder name


def test_the_same_grid_maps_to_the_same_default_folder() -> None:
    one = sweep.sweep_name({"learning_rate": [0.01, 0.001], "epochs": [2, 5]})
    assert one == sweep.sweep_name({"epochs": [5, 2], "learning_rate": [0.001, 0.01]})
    assert one != sweep.sweep_name({"learning_rate": [0.01, 0.001], "epochs": [2, 6]})
    assert one.startswith("sweep-")


@pytest.mark.parametrize("cores, workers, threads", [(2, 1, 2), (2, 2, 1), (8, 3, 2), (16, 4, 4), (2, 5, 1)])
def test_cores_are_split_between_parallel_runs(cores, workers, threads) -> None:
    assert sweep.threads_per_run(cores, workers) == threads
    assert sweep.thread_env(threads)["TFLAB_THREADS"] == str(threads)


@pytest.mark.parametrize("cores, workers", [(1, 1), (2, 1), (4, 2), (8, 4), (64, 4)])
def test_default_workers_give_each_run_two_cores_up_to_four_runs(cores, workers) -> None:
    assert sweep.default_workers(cores) == workers


# --- summaries and resume without training -------------------------------------------------------

def test_summary_sorts_by_accuracy_with_failed_and_unrun_runs_last(tmp_path) -> None:
    rows = [row("b", sweep.FAILED, None), row("c", sweep.COMPLETE, 0.91), row("d", sweep.NOT_RUN, None),
            row("e", sweep.SKIPPED, 0.95), row("a", sweep.COMPLETE, 0.80)]
    ordered = sweep.write_summary(rows, tmp_path)
    assert [r["run_name"] for r in ordered] == ["e", "c", "a", "b", "d"]
    table = read_csv(tmp_path / "summary.csv")
    assert [r["run_name"] for r in table] == ["e", "c", "a", "b", "d"]
    assert table[0]["test_accuracy"] == "0.95" and table[3]["error"] == "AssertionError: boom"
    assert table[0]["train_samples"] == ""  # None: all the training images
    markdown = (tmp_path / "summary.md").read_text().splitlines()
    header = next(i for i, line in enumerate(markdown) if line.startswith("| # | run |"))
    assert set(markdown[header + 1].replace("|", "")) == {"-"}
    assert [line.split(" | ")[1] for line in markdown[header + 2:]] == ["e", "c", "a", "b", "d"]
    assert "| all |" in markdown[header + 2]
    assert_png(tmp_path / "summary.png")
    assert not list(tmp_path.glob(".*.tmp"))


def test_run_complete_in_logs_is_skipped_without_starting_a_kernel(dirs) -> None:
    grid = {"seed": [5], "epochs": [1], "train_samples": [1000]}
    name = sweep.run_name(sweep.combinations(grid, sweep.notebook_defaults(sweep.DEFAULT_NOTEBOOK))[0])
    (dirs["logdir"] / name).mkdir(parents=True)
    runs.write_metrics(dirs["logdir"] / name, status=runs.COMPLETE, test_accuracy=0.875, test_loss=0.4,
                       wall_time_s=3.0)
    started = time.perf_counter()
    rows = sweep.run_sweep(grid, dirs["out"], logdir=dirs["logdir"], progress=False)
    assert time.perf_counter() - started < 10  # no papermill, no kernel
    assert [(r["run_name"], r["status"], r["test_accuracy"]) for r in rows] == [(name, sweep.SKIPPED, 0.875)]
    assert len(read_csv(dirs["out"] / "summary.csv")) == 1


def test_a_notebook_that_broke_after_recording_does_not_count_as_finished(tmp_path) -> None:
    nb = nbformat.v4.new_notebook(metadata={"papermill": {"exception": True}})
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={runs.RECORD_MIMETYPE: {"test_accuracy": 0.9}})]))
    nbformat.write(nb, str(tmp_path / "r1.ipynb"))
    assert sweep.previous_result("r1", tmp_path, tmp_path / "logs") is None
    nb.metadata.papermill.exception = False
    nbformat.write(nb, str(tmp_path / "r1.ipynb"))
    assert sweep.previous_result("r1", tmp_path, tmp_path / "logs")["test_accuracy"] == 0.9


# --- real sweeps (tiny data) ----------------------------------------------------------------------

SEEDS = "seed=1,2,13"  # 13 fails in failing_notebook()


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One three-run sweep (two good runs, one that fails) on two local workers, run once."""
    root = tmp_path_factory.mktemp("local-sweep")
    out, logdir = root / "sweep", root / "hparams"
    argv = [*TINY, "--param", SEEDS, "--workers", "2", "--notebook", str(failing_notebook(root)),
            "--out", str(out), "--logdir", str(logdir)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFLAB_LOGDIR", str(root / "logs"))
        started = time.perf_counter()
        status, printed = run_main(argv)
    return {"root": root, "out": out, "logdir": logdir, "argv": argv, "status": status, "printed": printed,
            "seconds": time.perf_counter() - started}


def _names(seeds=(1, 2, 13)) -> dict[int, str]:
    return {seed: f"lr0.002-ep1-bs256-adam-n1000-s{seed}" for seed in seeds}


@pytest.mark.slow
def test_failed_run_is_kept_and_the_others_finish(local_sweep) -> None:
    out, names = local_sweep["out"], _names()
    assert local_sweep["status"] == 1, local_sweep["printed"]
    for seed in (1, 2):
        nb = nbformat.read(str(out / f"{names[seed]}.ipynb"), as_version=4)
        assert not nb.metadata.papermill.exception
        assert 0.5 < runs.read_records(nb)["test_accuracy"] <= 1
        assert runs.run_status(local_sweep["logdir"] / names[seed]) == runs.COMPLETE
        assert inline_tensorboard_frames(nb) == 1, f"run {seed}: %tensorboard showed no frame (a port race?)"
    failed = nbformat.read(str(out / f"{names[13]}.ipynb"), as_version=4)
    assert failed.metadata.papermill.exception
    assert "simulated failure for seed 13" in local_sweep["printed"]
    assert "1 failed" in local_sweep["printed"]
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_summary_covers_every_run_best_first_failed_last(local_sweep) -> None:
    out, names = local_sweep["out"], _names()
    table = read_csv(out / "summary.csv")
    assert len(table) == 3 and {r["run_name"] for r in table} == set(names.values())
    assert [r["status"] for r in table] == ["complete", "complete", "failed"]
    assert float(table[0]["test_accuracy"]) >= float(table[1]["test_accuracy"])
    assert table[2]["run_name"] == names[13] and "AssertionError: simulated failure" in table[2]["error"]
    assert Path(table[2]["notebook"]) == out / f"{names[13]}.ipynb"
    assert sum(line.startswith("| ") for line in (out / "summary.md").read_text().splitlines()) == 1 + 3
    assert_png(out / "summary.png")


@pytest.mark.slow
def test_rerun_skips_finished_runs_and_retries_the_failed_one(local_sweep, tmp_path) -> None:
    root = tmp_path / "again"
    shutil.copytree(local_sweep["root"], root)  # a copy, so the other tests see the first sweep
    names = _names()
    argv = [str(arg).replace(str(local_sweep["root"]), str(root)) for arg in local_sweep["argv"]]
    before = {seed: (root / "sweep" / f"{name}.ipynb").stat().st_mtime_ns for seed, name in names.items()}
    status, printed = run_main(argv)
    assert status == 1
    for seed in (1, 2):
        assert f"skipped  {names[seed]}" in printed
        assert (root / "sweep" / f"{names[seed]}.ipynb").stat().st_mtime_ns == before[seed]
    assert f"FAILED   {names[13]}" in printed
    assert (root / "sweep" / f"{names[13]}.ipynb").stat().st_mtime_ns != before[13]
    table = read_csv(root / "sweep" / "summary.csv")
    assert [r["status"] for r in table] == ["skipped", "skipped", "failed"]


@pytest.fixture
def dask_cluster(monkeypatch: pytest.MonkeyPatch):
    """A two-worker dask.distributed cluster on localhost (closed even if the test fails)."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setenv("TFLAB_THREADS", "1")  # two workers share this machine's cores
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.mark.slow
def test_dask_sweep_writes_notebooks_and_summaries_on_the_client(dask_cluster, dirs, tmp_path) -> None:
    names = _names((1, 13))
    argv = [*TINY, "--param", "seed=1,13", "--notebook", str(failing_notebook(tmp_path)),
            "--executor", "dask", "--scheduler", dask_cluster.scheduler_address,
            "--out", str(dirs["out"]), "--logdir", str(dirs["logdir"])]
    status, printed = run_main(argv)
    assert status == 1, printed
    good = nbformat.read(str(dirs["out"] / f"{names[1]}.ipynb"), as_version=4)
    assert 0.5 < runs.read_records(good)["test_accuracy"] <= 1
    assert nbformat.read(str(dirs["out"] / f"{names[13]}.ipynb"), as_version=4).metadata.papermill.exception
    table = read_csv(dirs["out"] / "summary.csv")
    assert [(r["run_name"], r["status"]) for r in table] == [(names[1], "complete"), (names[13], "failed")]
    assert_png(dirs["out"] / "summary.png")
