"""Instructor sweeps: run Activity 1.01 once per combination of a hyperparameter grid, then summarise.

``python -m tflab sweep --param learning_rate=0.01,0.001 --param epochs=2,5`` executes
``Activity1.01/hyperparams.ipynb`` with papermill once per combination, keeps every executed
notebook in the sweep folder, and writes ``summary.csv``, ``summary.md`` and ``summary.png``.
Runs go to this machine's CPU cores (``--executor local``) or to an existing Dask cluster
(``--executor dask``). Re-running the same sweep skips the runs that already finished.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import csv
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from . import atomic, params, paths, runs

DEFAULT_NOTEBOOK = paths.REPO_ROOT / "Activity1.01" / "hyperparams.ipynb"
RUNS_DIR = paths.REPO_ROOT / "runs"
MAX_WORKERS = 128
DEFAULT_MAX_WORKERS = 4  # each run's kernel holds MNIST and TensorFlow: about 1.2 GB at its peak

# What a grid may vary, with the check that normalises each value. The notebook's other
# parameters (run_name, log_dir, overwrite) belong to the sweep.
PARAMETERS: dict[str, Callable[[Any], Any]] = {
    "learning_rate": lambda v: params.positive_float(v, "learning_rate"),
    "epochs": lambda v: params.int_in_range(v, "epochs", 1, 1000),
    "batch_size": lambda v: params.int_in_range(v, "batch_size", 1, params.MAX_TRAIN_SAMPLES),
    "optimizer": lambda v: params.choice(v, "optimizer", params.OPTIMIZERS),
    "train_samples": lambda v: params.train_samples(v, "train_samples"),
    "seed": lambda v: params.int_in_range(v, "seed", 0, 2**31 - 1),
}
SET_BY_SWEEP = ("run_name", "log_dir", "overwrite")

# Run statuses in the summary. "skipped" runs finished in an earlier invocation of the same
# sweep; their values are read back from the notebook or the run's metrics.json.
COMPLETE, SKIPPED, FAILED, NOT_RUN = "complete", "skipped", "failed", "not run"
SUMMARY_FIELDS = [*PARAMETERS, "run_name", "status", "test_accuracy", "test_loss", "wall_time_s",
                  "seconds", "error", "notebook"]


# --- the grid -----------------------------------------------------------------------------------

def check_name(name: str) -> None:
    """A parameter a grid may vary, or a one-line ValueError listing those."""
    if name in SET_BY_SWEEP:
        raise ValueError(f"{name} is set by the sweep itself; vary one of {', '.join(PARAMETERS)}")
    if name not in PARAMETERS:
        raise ValueError(f"unknown parameter {name!r}; choose from {', '.join(PARAMETERS)}")


def check_value(name: str, value: Any) -> Any:
    """One grid value, normalised by the parameter's validator (one-line ValueError/TypeError)."""
    check_name(name)
    return PARAMETERS[name](value)


def check_values(name: str, values: Iterable[Any]) -> list[Any]:
    """Every value of one parameter, normalised, duplicates dropped, order kept."""
    check_name(name)
    checked: list[Any] = []
    for value in values:
        normal = check_value(name, value)
        if normal not in checked:
            checked.append(normal)
    if not checked:
        raise ValueError(f"{name} has no values; give at least one, for example {name}={_example(name)}")
    return checked


def _example(name: str) -> str:
    return {"learning_rate": "0.01,0.001", "epochs": "2,5", "batch_size": "64,256",
            "optimizer": "adam,sgd", "train_samples": "3000,None", "seed": "1,2"}.get(name, "1,2")


def parse_param(text: str) -> tuple[str, list[Any]]:
    """``"epochs=2,5"`` → ``("epochs", [2, 5])``; a one-line ValueError names the input."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"--param {text!r}: expected NAME=VALUE[,VALUE...], for example epochs=2,5")
    items = [item.strip() for item in values.split(",")] if values.strip() else []
    if "" in items:
        raise ValueError(f"--param {text}: empty value between commas")
    try:
        return name, check_values(name, items)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--param {text}: {err}") from None


def read_grid_file(path: str | os.PathLike) -> dict[str, list[Any]]:
    """A YAML mapping of parameter name to one value or a list of values, checked."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--grid {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--grid {path}: cannot read it ({err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"--grid {path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"--grid {path}: expected a mapping of parameter names to a value or a list of "
                         f"values (for example 'epochs: [2, 5]'), got {type(data).__name__}")
    grid = {}
    for name, values in data.items():
        values = values if isinstance(values, list) else [values]
        try:
            grid[str(name)] = check_values(str(name), values)
        except (TypeError, ValueError) as err:
            raise ValueError(f"--grid {path}: {err}") from None
    return grid


def parse_grid(param_args: list[str], grid_file: str | os.PathLike | None = None) -> dict[str, list[Any]]:
    """The grid from ``--grid FILE`` (if any) and ``--param`` entries, which add to or replace it.

    Every value is checked before anything runs; errors are one-line ValueErrors naming the input.
    """
    grid = read_grid_file(grid_file) if grid_file is not None else {}
    given: set[str] = set()
    for text in param_args:
        name, values = parse_param(text)
        if name in given:
            raise ValueError(f"--param {name} is given twice; list all its values in one, e.g. {name}={_example(name)}")
        given.add(name)
        grid[name] = values
    if not grid:
        raise ValueError("the grid is empty; give --param NAME=V1,V2 (for example --param epochs=2,5) or --grid FILE")
    return grid


def notebook_defaults(notebook: str | os.PathLike) -> dict[str, Any]:
    """The values of the notebook's ``parameters`` cell for every sweepable parameter, checked."""
    import nbformat

    path = Path(notebook)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise ValueError(f"--notebook {path}: no such file") from None
    except Exception as err:  # nbformat raises several kinds for a file that is not a notebook
        raise ValueError(f"--notebook {path}: not a readable notebook ({type(err).__name__})") from None
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f"--notebook {path}: no cell tagged 'parameters'")
    try:
        body = ast.parse(cells[0].source).body
    except SyntaxError as err:
        raise ValueError(f"--notebook {path}: parameters cell line {err.lineno}: {err.msg}") from None
    values: dict[str, Any] = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):  # not a plain value: papermill replaces it anyway
                continue
    missing = [name for name in (*PARAMETERS, *SET_BY_SWEEP) if name not in values]
    if missing:
        raise ValueError(f"--notebook {path}: its parameters cell lacks {', '.join(missing)}")
    try:
        return {name: check_value(name, values[name]) for name in PARAMETERS}
    except (TypeError, ValueError) as err:
        raise ValueError(f"--notebook {path}: parameters cell: {err}") from None


def combinations(grid: Mapping[str, list[Any]], defaults: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid's values (first parameter varies slowest), on top of ``defaults``."""
    names = list(grid)
    return [{**(defaults or {}), **dict(zip(names, values))} for values in itertools.product(*grid.values())]


def _number_text(value: float) -> str:
    """Shortest text for a float that reads back exactly: 0.001, 1e-05, 2."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def run_name(combo: Mapping[str, Any]) -> str:
    """A readable, folder-safe name that differs for every combination: ``lr0.001-ep2-bs256-adam-n3000-s42``.

    Parameters missing from ``combo`` are left out of the name.
    """
    parts = {
        "learning_rate": lambda v: f"lr{_number_text(v)}",
        "epochs": lambda v: f"ep{v}",
        "batch_size": lambda v: f"bs{v}",
        "optimizer": str,
        "train_samples": lambda v: f"n{'all' if v is None else v}",
        "seed": lambda v: f"s{v}",
    }
    return "-".join(part(combo[name]) for name, part in parts.items() if name in combo)


def sweep_name(grid: Mapping[str, list[Any]]) -> str:
    """``sweep-<8 hex>`` from the grid's values, so the same grid always maps to the same folder."""
    canonical = {name: sorted(repr(v) for v in values) for name, values in grid.items()}
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:8]
    return f"sweep-{digest}"


# --- cores and threads --------------------------------------------------------------------------

def available_cores() -> int:
    """CPU cores this process may use (respects taskset/cgroup affinity where the OS reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def default_workers(cores: int) -> int:
    """Parallel runs by default: one per two cores, at most 4 (memory), at least 1.

    TensorFlow trains this small CNN well on two threads, and the kernel start and imports of
    each run are single-threaded, so two cores per run keeps every core busy without runs
    fighting over them; four runs at once already need about 5 GB of memory.
    """
    return max(1, min(cores // 2, DEFAULT_MAX_WORKERS))


def threads_per_run(cores: int, workers: int) -> int:
    """TensorFlow threads for each of ``workers`` parallel runs sharing ``cores``: at least 1."""
    return max(1, cores // max(1, workers))


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a kernel that should use ``threads`` CPU threads (read by ``pipeline.configure``)."""
    return {
        "TFLAB_THREADS": str(threads),  # tflab.pipeline.THREADS_ENV (not imported: it loads TensorFlow)
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(max(1, threads // 2)),
        "OMP_NUM_THREADS": str(threads),
    }


def _worker_threads() -> int:
    """Threads per run on this machine when the caller could not know it (a Dask worker)."""
    try:
        from distributed import get_worker

        nthreads = int(getattr(get_worker(), "nthreads", 1) or 1)
    except (ImportError, ValueError):  # not inside a Dask worker
        nthreads = 1
    return threads_per_run(available_cores(), nthreads)


# --- one run ------------------------------------------------------------------------------------

def one_line(text: Any, limit: int = 200) -> str:
    """The first non-empty line of ``text`` without terminal colours, at most ``limit`` characters."""
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(text))
    line = next((part.strip() for part in plain.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _finished(metrics: Mapping[str, Any]) -> bool:
    return metrics.get("status") == runs.COMPLETE and isinstance(metrics.get("test_accuracy"), (int, float))


def execute_run(task: Mapping[str, Any]) -> dict[str, Any]:
    """Execute the notebook for one combination; runs in a local worker process or on a Dask worker.

    ``task`` holds ``notebook`` and ``cwd`` (absolute paths valid where this runs), ``run_name``,
    ``parameters``, ``logdir`` and ``threads`` (``None``: from this machine's cores). The notebook
    is executed into a temporary file here and returned as text, so that the caller writes it into
    the sweep folder, even from another machine. A run whose ``metrics.json`` already says
    complete is not executed again (the notebook would refuse it) but reported as skipped.
    Returns ``run_name``, ``status``, ``error`` (one line or ``None``), ``notebook`` (text or
    ``None``), ``metrics`` (the run's metrics.json) and ``seconds``.
    """
    import logging

    name = task["run_name"]
    run_dir = Path(task["logdir"]) / name
    result: dict[str, Any] = {"run_name": name, "status": COMPLETE, "error": None, "notebook": None,
                              "metrics": runs.read_metrics(run_dir), "seconds": None}
    if _finished(result["metrics"]):
        return result | {"status": SKIPPED}
    # A Dask worker cannot see the other workers on its machine: TFLAB_THREADS set there wins.
    threads = task.get("threads") or int(os.environ.get("TFLAB_THREADS") or 0) or _worker_threads()
    os.environ.update(thread_env(threads))
    started = time.perf_counter()
    import papermill

    # papermill warns that it cannot infer the type of `None` defaults; the sweep passes every value.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    parameters = {**task["parameters"], "run_name": name, "log_dir": str(task["logdir"])}
    with tempfile.TemporaryDirectory(prefix="tflab-sweep-") as tmp:
        output = Path(tmp) / f"{name}.ipynb"
        try:
            papermill.execute_notebook(
                str(task["notebook"]), str(output), parameters=parameters, kernel_name="python3",
                progress_bar=False, log_output=False,
                # the kernel's working directory, without papermill's process-wide chdir
                resources={"metadata": {"path": str(task["cwd"])}},
            )
        except papermill.PapermillExecutionError as err:
            result.update(status=FAILED, error=one_line(f"{err.ename}: {err.evalue}"))
        except Exception as err:  # the kernel died, the notebook is missing on this worker, ...
            result.update(status=FAILED, error=one_line(f"{type(err).__name__}: {err}"))
        if output.exists():
            result["notebook"] = output.read_text(encoding="utf-8")
    result.update(seconds=round(time.perf_counter() - started, 1), metrics=runs.read_metrics(run_dir))
    return result


def _quiet_worker(log_path: str) -> None:
    """Send a local worker's stdout/stderr, which its kernels inherit, to the sweep's kernels.log."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _outcome(future: Any, task: Mapping[str, Any]) -> dict[str, Any]:
    """A future's result, or a failed result naming the exception (a crashed worker, a lost task)."""
    try:
        return future.result()
    except Exception as err:
        return {"run_name": task["run_name"], "status": FAILED, "error": one_line(f"{type(err).__name__}: {err}"),
                "notebook": None, "metrics": {}, "seconds": None}


def _run_local(tasks: list[dict[str, Any]], workers: int, log_path: Path) -> Iterator[dict[str, Any]]:
    """Results of ``tasks`` in finishing order, ``workers`` at a time in fresh worker processes.

    Processes, not threads: a run's kernel gets its own environment, and Ctrl-C reaches the
    workers, whose papermill then shuts its kernel down.
    """
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=max(1, min(workers, len(tasks))), mp_context=multiprocessing.get_context("spawn"),
        initializer=_quiet_worker, initargs=(str(log_path),))
    futures = {pool.submit(execute_run, task): task for task in tasks}
    try:
        for future in concurrent.futures.as_completed(futures):
            yield _outcome(future, futures[future])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def import_distributed() -> Any:
    """``dask.distributed``, or a ValueError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ValueError("--executor dask needs Dask: pip install -e '.[cluster]' (or make setup)") from None
    return distributed


def _run_dask(tasks: list[dict[str, Any]], client: Any) -> Iterator[dict[str, Any]]:
    """Results of ``tasks`` in finishing order, run by the Dask cluster behind ``client``."""
    import uuid

    distributed = import_distributed()
    futures = {client.submit(execute_run, task, key=f"tflab-{task['run_name']}-{uuid.uuid4().hex[:8]}",
                             pure=False): task for task in tasks}
    try:
        for future in distributed.as_completed(futures):
            yield _outcome(future, futures[future])
    finally:
        client.cancel([future for future in futures if not future.done()])


# --- the sweep ----------------------------------------------------------------------------------

def _values(source: Mapping[str, Any]) -> dict[str, Any]:
    return {key: source.get(key) for key in ("test_accuracy", "test_loss", "wall_time_s")}


def previous_result(name: str, out: Path, logdir: Path) -> dict[str, Any] | None:
    """The recorded values of a run that finished earlier, or ``None`` if it has to run.

    Finished means: its notebook in ``out`` ran without error and recorded a test accuracy, or
    its ``metrics.json`` under ``logdir`` says complete (a run whose notebook was lost or that a
    later cell broke: the notebook would refuse to train it again without ``overwrite``).
    """
    import nbformat

    notebook = out / f"{name}.ipynb"
    if notebook.exists():
        try:
            nb = nbformat.read(str(notebook), as_version=4)
            records = runs.read_records(nb)
            broke = nb.metadata.get("papermill", {}).get("exception")
        except Exception:  # half-written or hand-edited: run it again
            records, broke = {}, True
        if not broke and isinstance(records.get("test_accuracy"), (int, float)):
            return _values(records)
    metrics = runs.read_metrics(logdir / name)
    return _values(metrics) if _finished(metrics) else None


def _row(combo: Mapping[str, Any], name: str, status: str, values: Mapping[str, Any] | None = None, *,
         seconds: float | None = None, error: str | None = None, notebook: Path | None = None) -> dict[str, Any]:
    return {**{key: combo.get(key) for key in PARAMETERS}, "run_name": name, "status": status,
            **_values(values or {}), "seconds": seconds, "error": error,
            "notebook": str(notebook) if notebook is not None and notebook.exists() else None}


def _report(row: Mapping[str, Any]) -> str:
    """One line for the console: status, name, accuracy or error, seconds."""
    word = {COMPLETE: "ok", SKIPPED: "skipped", FAILED: "FAILED", NOT_RUN: "not run"}[row["status"]]
    text = f"{word:8} {row['run_name']}"
    if row["error"]:
        text += f"  {row['error']}"
    elif row["test_accuracy"] is not None:
        text += f"  test accuracy {row['test_accuracy']:.4f}"
    if row["status"] == SKIPPED:
        text += "  (finished earlier)"
    elif row["seconds"] is not None:
        text += f"  {row['seconds']:.0f} s"
    return text


def _from_result(result: Mapping[str, Any], combo: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Write a run's executed notebook into ``out`` (atomically) and make its summary row."""
    import nbformat

    name = result["run_name"]
    notebook = out / f"{name}.ipynb"
    values: Mapping[str, Any] = result.get("metrics") or {}
    if result.get("notebook"):
        atomic.write_text(notebook, result["notebook"])
        try:
            records = runs.read_records(nbformat.reads(result["notebook"], as_version=4))
        except Exception:  # not a notebook after all; it is kept for a look
            records = {}
        if "test_accuracy" in records:
            values = records
    if result["status"] == FAILED:
        values = {}
    return _row(combo, name, result["status"], values, seconds=result.get("seconds"),
                error=result.get("error"), notebook=notebook)


def run_sweep(
    grid: Mapping[str, list[Any]],
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    logdir: str | os.PathLike | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    notebook: str | os.PathLike = DEFAULT_NOTEBOOK,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run the notebook once per combination of ``grid``; return the summary rows (best first).

    Runs that finished earlier are skipped and read back; the executed notebooks go to
    ``out/<run name>.ipynb`` and the summaries to ``out/summary.{csv,md,png}``. ``logdir`` (default
    ``logs/hparams``) is where the runs log; with ``executor="dask"`` it must be a folder every
    worker can reach at that path, as must ``notebook``. A Ctrl-C writes the summary of what
    finished and re-raises KeyboardInterrupt.
    """
    from tqdm.auto import tqdm

    notebook = Path(notebook).expanduser().resolve()
    combos = combinations(grid, notebook_defaults(notebook))
    names = [run_name(combo) for combo in combos]
    out = Path(out).expanduser().resolve()
    logdir = Path(logdir).expanduser().resolve() if logdir else paths.logs_dir() / "hparams"
    workers = workers or default_workers(available_cores())
    client = None
    if executor == "dask":
        try:
            client = import_distributed().Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ConnectionError(f"cannot reach the Dask scheduler at {scheduler}: {one_line(err)}") from None
    elif executor != "local":
        raise ValueError(f"executor must be local or dask, got {executor!r}")
    out.mkdir(parents=True, exist_ok=True)

    rows = {name: _row(combo, name, NOT_RUN) for name, combo in zip(names, combos)}
    by_name = dict(zip(names, combos))
    bar = tqdm(total=len(combos), unit="run", desc=out.name, disable=not progress, dynamic_ncols=True)
    try:
        pending = []
        for name, combo in by_name.items():
            earlier = previous_result(name, out, logdir)
            if earlier is None:
                pending.append(name)
                continue
            rows[name] = _row(combo, name, SKIPPED, earlier, notebook=out / f"{name}.ipynb")
            bar.write(_report(rows[name]))
            bar.update()
        # Dask workers split their own machine's cores (execute_run asks the worker).
        at_once = max(1, min(workers, len(pending)))
        threads = threads_per_run(available_cores(), at_once) if client is None else None
        if pending:
            bar.write(f"running {len(pending)} of {len(combos)} runs "
                      + (f"on the Dask cluster at {scheduler}" if client is not None else
                         f"on {at_once} local worker(s), {threads} TensorFlow thread(s) each"))
        if pending and client is not None and not client.scheduler_info().get("workers"):
            bar.write("the Dask cluster has no workers yet: the runs wait until workers join")
        tasks = [{"notebook": str(notebook), "cwd": str(notebook.parent), "run_name": name,
                  "parameters": by_name[name], "logdir": str(logdir), "threads": threads} for name in pending]
        if tasks:
            results = (_run_dask(tasks, client) if client is not None
                       else _run_local(tasks, workers, out / "kernels.log"))
            with contextlib.closing(results):
                for result in results:
                    name = result["run_name"]
                    rows[name] = _from_result(result, by_name[name], out)
                    bar.write(_report(rows[name]))
                    bar.update()
    finally:  # also on Ctrl-C: summarise what finished
        bar.close()
        if client is not None:
            client.close()
        ordered = write_summary(list(rows.values()), out)
    return ordered


# --- summaries ----------------------------------------------------------------------------------

def sort_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs by test accuracy (best first), then failed runs, then runs not run."""
    rank = {COMPLETE: 0, SKIPPED: 0, FAILED: 1, NOT_RUN: 2}

    def key(row: Mapping[str, Any]) -> tuple:
        accuracy = row.get("test_accuracy")
        return (rank.get(row.get("status"), 3), -accuracy if isinstance(accuracy, (int, float)) else math.inf,
                row.get("run_name") or "")

    return [dict(row) for row in sorted(rows, key=key)]


def _cell(value: Any, name: str) -> str:
    """A value as the Markdown table shows it."""
    if value is None:
        return "all" if name == "train_samples" else ""
    if name in ("test_accuracy", "test_loss"):
        return f"{value:.4f}"
    if isinstance(value, float):
        return _number_text(value) if name == "learning_rate" else f"{value:g}"
    return str(value).replace("|", "\\|")


def summary_markdown(rows: list[Mapping[str, Any]], out: Path) -> str:
    """``summary.md``: a count line and one table row per run, linking each notebook."""
    counts = {status: sum(row["status"] == status for row in rows) for status in (COMPLETE, SKIPPED, FAILED, NOT_RUN)}
    lines = [f"# Sweep {out.name}", "",
             f"{len(rows)} runs: {counts[COMPLETE] + counts[SKIPPED]} complete "
             f"({counts[SKIPPED]} from an earlier invocation), {counts[FAILED]} failed, {counts[NOT_RUN]} not run.", ""]
    columns = ["#", "run", *PARAMETERS, "status", "test accuracy", "test loss", "training s", "notebook", "error"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for index, row in enumerate(rows, 1):
        notebook = Path(row["notebook"]).name if row.get("notebook") else ""
        link = f"[{notebook}]({notebook})" if notebook else ""
        cells = [str(index), row["run_name"], *(_cell(row[name], name) for name in PARAMETERS), row["status"],
                 _cell(row["test_accuracy"], "test_accuracy"), _cell(row["test_loss"], "test_loss"),
                 _cell(row["wall_time_s"], "wall_time_s"), link, _cell(row["error"], "error")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary_figure(rows: list[Mapping[str, Any]]):
    """Horizontal bars of test accuracy per run, best on top; runs without a result marked in red."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, no window

    fig = Figure(figsize=(8, 1.2 + 0.35 * max(1, len(rows))), layout="constrained")
    ax = fig.add_subplot()
    labels = [row["run_name"] for row in rows][::-1]
    accuracies = [row["test_accuracy"] if isinstance(row["test_accuracy"], (int, float)) else 0.0 for row in rows][::-1]
    colors = ["tab:blue" if row["status"] in (COMPLETE, SKIPPED) else "tab:red" for row in rows][::-1]
    bars = ax.barh(range(len(rows)), accuracies, color=colors)
    for bar, row in zip(bars, rows[::-1]):
        finished = row["status"] in (COMPLETE, SKIPPED) and isinstance(row["test_accuracy"], (int, float))
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2,
                f"{row['test_accuracy']:.4f}" if finished else row["status"],
                va="center", fontsize=8, color="black" if finished else "tab:red")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    for label, color in zip(ax.get_yticklabels(), colors):
        label.set_color("black" if color == "tab:blue" else "tab:red")
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("test accuracy")
    ax.set_title("Sweep: test accuracy per run (red: failed or not run)")
    return fig


def write_summary(rows: Iterable[Mapping[str, Any]], out: str | os.PathLike) -> list[dict[str, Any]]:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` into ``out``, atomically; return the sorted rows."""
    out = Path(out)
    ordered = sort_rows(rows)
    with atomic.atomic_write(out / "summary.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({key: "" if row.get(key) is None else row[key] for key in SUMMARY_FIELDS} for row in ordered)
    atomic.write_text(out / "summary.md", summary_markdown(ordered, out))
    with atomic.atomic_write(out / "summary.png", "wb") as handle:
        summary_figure(ordered).savefig(handle, format="png", dpi=100)
    return ordered


# --- command line -------------------------------------------------------------------------------

EPILOG = """\
examples:
  python -m tflab sweep --param learning_rate=0.01,0.001,0.0001 --param epochs=2,5
  python -m tflab sweep --grid grid.yaml --param seed=1,2,3 --workers 2
  python -m tflab sweep --grid grid.yaml --executor dask --scheduler tcp://10.0.0.5:8786 \\
      --logdir /shared/lab12/hparams

resuming: the default --out folder is named from a hash of the grid, so running the same command
again resumes the sweep: runs that finished (their notebook ran without error, or their
metrics.json says complete) are skipped and read back, unfinished ones run again and continue
from their last finished epoch. With an explicit --out, pass the same --out to resume.

dask: the runs go to an existing dask.distributed cluster. Every worker needs this repository
and its .venv at the same path (or pass --notebook with a path valid on the workers), and
--logdir must be a folder that every worker can reach at the same path (a shared file system),
or the runs' logs end up scattered over the workers' disks. The executed notebooks come back
to this machine and are written into --out. Each run uses its machine's cores divided by its
worker's threads; when several workers share a machine, start them with TFLAB_THREADS set.
"""


def main(argv: list[str] | None = None) -> int:
    """``python -m tflab sweep``: run Activity 1.01 over a grid of hyperparameters with papermill."""
    cores = available_cores()
    parser = params.LabArgumentParser(
        prog="python -m tflab sweep", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run Activity 1.01 once per combination of hyperparameters; keep every executed "
                    "notebook and write summary.csv, summary.md and summary.png.",
        epilog=EPILOG)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                        help=f"values of one parameter (repeatable); NAME is one of {', '.join(PARAMETERS)}; "
                             "adds to or replaces the --grid file's entry")
    parser.add_argument("--grid", type=Path, metavar="FILE",
                        help="YAML mapping of parameter name to a value or a list of values")
    parser.add_argument("--workers", type=params.arg_type(lambda v, n: params.int_in_range(v, n, 1, MAX_WORKERS),
                                                          "--workers"),
                        default=default_workers(cores),
                        help="runs at once with --executor local (default: %(default)s here, one per two "
                             "cores, at most 4); the cores are split between them")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="sweep folder for notebooks and summaries (default: runs/sweep-<hash of the grid>)")
    parser.add_argument("--logdir", metavar="DIR",
                        help="where the runs log (default: logs/hparams); with dask a folder every worker reaches")
    parser.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="local worker processes (default) or an existing Dask cluster")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="the Dask scheduler's address")
    parser.add_argument("--notebook", type=Path, default=DEFAULT_NOTEBOOK,
                        help="notebook to run (default: Activity1.01/hyperparams.ipynb)")
    args = parser.parse_args(argv)

    try:
        grid = parse_grid(args.param, args.grid)
        combos = combinations(grid, notebook_defaults(args.notebook))
        logdir = params.log_folder(args.logdir, default=paths.logs_dir() / "hparams", name="--logdir")
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    out = (args.out or RUNS_DIR / sweep_name(grid)).expanduser().resolve()
    if out.exists() and not out.is_dir():
        parser.error(f"--out {args.out}: is a file, not a folder")
    if args.executor == "dask":
        if not args.scheduler:
            parser.error("--executor dask needs --scheduler tcp://HOST:PORT (the address of a running scheduler)")
        try:
            import_distributed()
        except ValueError as err:
            parser.error(str(err))
    elif args.scheduler:
        parser.error("--scheduler needs --executor dask")

    print(f"sweep of {len(combos)} runs\n  notebooks and summaries: {out}\n  run logs: {logdir}")
    try:
        rows = run_sweep(grid, out, workers=args.workers, logdir=logdir, executor=args.executor,
                         scheduler=args.scheduler, notebook=args.notebook)
    except ConnectionError as err:
        parser.error(str(err))
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are kept; run the same command again to resume ({out})")
        return 130
    failed = [row for row in rows if row["status"] != COMPLETE and row["status"] != SKIPPED]
    done = len(rows) - len(failed)
    print(f"{done} of {len(rows)} runs complete"
          + (f", {len(failed)} failed: {', '.join(row['run_name'] for row in failed)}" if failed else "")
          + f"\nsummary: {out / 'summary.md'}")
    return 1 if failed else 0
