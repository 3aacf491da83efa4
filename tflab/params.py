"""Validate training parameters from notebooks, papermill and the command line, before TensorFlow loads."""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

OPTIMIZERS = ("adam", "sgd", "rmsprop")
MAX_TRAIN_SAMPLES = 60_000
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,119}$")


def _got(value: Any) -> str:
    return repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."


def _number(name: str, value: Any, accepted: str) -> float:
    """Turn an int, float or a cleanly numeric string (papermill ``-r``) into a float."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be {accepted}, got {_got(value)}")
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be {accepted}, got {_got(value)}") from None
    if isinstance(value, (int, float)):
        return float(value)
    try:  # NumPy scalars and the like
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {accepted}, got {_got(value)}") from None


def positive_float(value: Any, name: str = "learning_rate") -> float:
    """A finite number > 0, such as a learning rate."""
    accepted = "a number > 0 (for example 0.001)"
    number = _number(name, value, accepted)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be {accepted}, got {_got(value)}")
    return number


def int_in_range(value: Any, name: str, low: int = 1, high: int | None = None) -> int:
    """A whole number in ``[low, high]``; ``"5"`` and ``5.0`` count, ``2.5`` and ``"ten"`` do not."""
    accepted = f"a whole number >= {low}" + (f" and <= {high}" if high is not None else "")
    number = _number(name, value, accepted)
    if not math.isfinite(number) or number != int(number) or number < low or (high is not None and number > high):
        raise ValueError(f"{name} must be {accepted}, got {_got(value)}")
    return int(number)


def choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, case-insensitive."""
    accepted = "one of " + ", ".join(choices)
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise ValueError(f"{name} must be {accepted}, got {_got(value)}")
    return value.strip().lower()


def optional(value: Any) -> bool:
    """True when a parameter means "not set": ``None``, or the strings ``"None"``/``""`` from ``-r``."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None", "none", "null"))


def train_samples(value: Any, name: str = "train_samples") -> int | None:
    """``None`` for all 60,000 training images, or how many to use."""
    return None if optional(value) else int_in_range(value, name, 1, MAX_TRAIN_SAMPLES)


def run_name(value: Any, name: str = "run_name") -> str | None:
    """``None`` to derive a name, or a folder name of letters, digits and ``._+=-``."""
    if optional(value):
        return None
    if not isinstance(value, str) or not RUN_NAME_PATTERN.match(value):
        raise ValueError(
            f"{name} must be None or a folder name of letters, digits and ._+=- "
            f"(at most 120, no slashes), got {_got(value)}"
        )
    return value


def log_folder(value: Any, default: Path, name: str = "log_dir") -> Path:
    """``None`` for ``default``, or a folder path (created if missing) to write run logs into."""
    if optional(value):
        return Path(default)
    if not isinstance(value, (str, Path)):
        raise TypeError(f"{name} must be None or a folder path, got {_got(value)}")
    folder = Path(value).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} must be None or a folder path, got {_got(value)} (a file)")
    return folder


def flag(value: Any, name: str) -> bool:
    """A bool, or the strings true/false/1/0 from papermill ``-r``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{name} must be True or False, got {_got(value)}")


def validate(
    *,
    learning_rate: Any,
    epochs: Any,
    batch_size: Any,
    train_samples: Any = None,
    optimizer: Any = "adam",
    run_name: Any = None,
    seed: Any = 42,
) -> dict[str, Any]:
    """Check every training parameter; return them normalised or raise a one-line error."""
    return {
        "learning_rate": positive_float(learning_rate, "learning_rate"),
        "epochs": int_in_range(epochs, "epochs", 1, 1000),
        "batch_size": int_in_range(batch_size, "batch_size", 1, MAX_TRAIN_SAMPLES),
        "optimizer": choice(optimizer, "optimizer", OPTIMIZERS),
        "train_samples": _train_samples(train_samples),
        "run_name": _run_name(run_name),
        "seed": int_in_range(seed, "seed", 0, 2**31 - 1),
    }


_train_samples, _run_name = train_samples, run_name


class LabArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def arg_type(check, name: str):
    """Wrap a checker as an argparse ``type=`` so its message becomes the one-line error."""

    def convert(text: str):
        try:
            return check(text, name)
        except (TypeError, ValueError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = name
    return convert


def fail(message: str, status: int = 2) -> NoReturn:
    """Print a one-line error to stderr and exit."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)
