"""Refresh the committed outputs of `# NBVAL_CHECK_OUTPUT` cells and strip every other output.

    .venv/bin/python tools/refresh_outputs.py            # all notebooks
    .venv/bin/python tools/refresh_outputs.py --strip    # only strip (no execution)

Checked cells (dataset shapes, parameter counts, the stack table) do not depend on the
parameters, so the notebooks are executed small and fast here.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {
    "Exercise1.01/test_stack.ipynb": {},
    "Exercise1.02/mnist.ipynb": {"epochs": 1, "train_samples": 1000},
    "Activity1.01/hyperparams.ipynb": {"epochs": 1, "train_samples": 1000},
}
CHECK = "NBVAL_CHECK_OUTPUT"


def clean(notebook: nbformat.NotebookNode, executed: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    """Keep outputs only in checked cells (taken from ``executed``), drop counts and run metadata."""
    for index, cell in enumerate(notebook.cells):
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        cell.pop("id", None)
        if cell.cell_type != "code":
            continue
        keep = CHECK in cell.source and executed is not None
        # nbval compares only cells that were run, so checked cells keep a (fixed) count.
        cell.execution_count = 1 if keep else None
        outputs = executed.cells[index].outputs if keep else []
        for output in outputs:
            output.pop("execution_count", None)
        cell.outputs = outputs
    notebook.metadata.pop("papermill", None)
    notebook.metadata.pop("widgets", None)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.nbformat_minor = 4
    return notebook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strip", action="store_true", help="only strip outputs; do not execute")
    args = parser.parse_args()
    os.environ.setdefault("TFLAB_LOGDIR", tempfile.mkdtemp(prefix="tflab-refresh-"))
    for relative, parameters in NOTEBOOKS.items():
        path = REPO / relative
        source = nbformat.read(path, as_version=4)
        executed = None
        if not args.strip:
            with tempfile.TemporaryDirectory() as tmp:
                executed = papermill.execute_notebook(
                    str(path), str(Path(tmp) / "out.ipynb"), parameters=parameters,
                    cwd=str(path.parent), kernel_name="python3", progress_bar=False)
            # papermill inserts an "injected-parameters" cell after the parameters cell; drop it
            executed.cells = [c for c in executed.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        nbformat.write(clean(source, executed), path)
        print(f"refreshed {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
