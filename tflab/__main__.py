"""Command line: ``python -m tflab {data,stack,board,sweep} …``."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "data": ("tflab.data", "fetch or build the MNIST cache and verify it"),
    "stack": ("tflab.stack", "check the software stack (Exercise 1.01)"),
    "board": ("tflab.board", "serve logs/ with TensorBoard on localhost, or list/stop TensorBoards"),
    "sweep": ("tflab.sweep", "run Activity 1.01 over a grid of hyperparameters with papermill"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m tflab {" + ",".join(COMMANDS) + "} [options]\n")
        for name, (_, summary) in COMMANDS.items():
            print(f"  {name:6} {summary}")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"tflab: error: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
