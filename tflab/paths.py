"""Where the lab keeps its files: the repository root, logs/ and data/."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def logs_dir() -> Path:
    """Top-level ``logs/`` (or ``$TFLAB_LOGDIR``), whatever the current directory."""
    return Path(os.environ.get("TFLAB_LOGDIR") or REPO_ROOT / "logs").resolve()


def data_dir() -> Path:
    """Where the verified ``mnist.npz`` cache lives (``$TFLAB_DATA_DIR`` overrides)."""
    return Path(os.environ.get("TFLAB_DATA_DIR") or REPO_ROOT / "data").resolve()
