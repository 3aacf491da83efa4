"""Read per-epoch scalars back from TensorBoard event files and plot runs side by side."""
from __future__ import annotations

import os
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from . import runs


def read_scalars(event_dir: str | os.PathLike, tag: str) -> list[tuple[int, float]]:
    """``(step, value)`` pairs for ``tag`` in one folder of event files, one per step (latest wins)."""
    accumulator = EventAccumulator(str(event_dir), size_guidance={"tensors": 0, "scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    by_step: dict[int, float] = {}
    if tag in tags.get("tensors", []):  # Keras 3 writes scalars as tensor summaries
        import tensorflow as tf

        for event in accumulator.Tensors(tag):
            by_step[event.step] = float(tf.make_ndarray(event.tensor_proto))
    elif tag in tags.get("scalars", []):
        for event in accumulator.Scalars(tag):
            by_step[event.step] = float(event.value)
    return sorted(by_step.items())


def run_label(run_dir: str | os.PathLike) -> str:
    """A legend label from the run's parameters, e.g. ``lr=0.001 epochs=5 bs=256 adam``."""
    metrics = runs.read_metrics(run_dir)
    p = metrics.get("params", {})
    if not p:
        return Path(run_dir).name
    label = f"lr={p.get('learning_rate'):g} epochs={p.get('epochs')} bs={p.get('batch_size')}"
    if p.get("optimizer"):
        label += f" {p['optimizer']}"
    if p.get("train_samples"):
        label += f" n={p['train_samples']}"
    if metrics.get("status") != runs.COMPLETE:
        label += " (incomplete)"
    return label


def plot_runs(root: str | os.PathLike, tag: str = "epoch_accuracy", subdir: str = "validation"):
    """One line per run under ``root``: ``tag`` (validation accuracy by default) against epoch.

    Unfinished runs are drawn dashed and marked "(incomplete)" in the legend.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = 0
    for run_dir in sorted(p for p in Path(root).iterdir() if (p / subdir).is_dir()):
        points = read_scalars(run_dir / subdir, tag)
        if not points:
            continue
        steps, values = zip(*points)
        complete = runs.run_status(run_dir) == runs.COMPLETE
        ax.plot([s + 1 for s in steps], values, marker="o", linestyle="-" if complete else "--",
                label=run_label(run_dir))
        drawn += 1
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{subdir} {tag.removeprefix('epoch_')}")
    ax.set_title(f"{subdir.capitalize()} {tag.removeprefix('epoch_')} per epoch, {drawn} run(s) in {Path(root).name}/")
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
