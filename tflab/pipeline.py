"""TensorFlow set-up for training: seeds, CPU threads, and the tf.data input pipeline."""
from __future__ import annotations

import os
import warnings

import numpy as np
import tensorflow as tf
import keras

THREADS_ENV = "TFLAB_THREADS"  # set by `python -m tflab sweep` so parallel runs share the cores


def configure(seed: int) -> None:
    """Fix every seed (Python, NumPy, TensorFlow) and apply ``$TFLAB_THREADS`` if set."""
    from .params import int_in_range

    threads = int_in_range(os.environ.get(THREADS_ENV) or 0, f"${THREADS_ENV}", 0, 1024)
    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        except RuntimeError:  # TensorFlow already started in this process; keep its threads
            pass
    keras.utils.set_random_seed(seed)
    # The lesson writes Conv2D(..., input_shape=...) and fits tf.data pipelines; Keras 3 warns
    # about both although they work as intended here.
    warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")


def to_images(x: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) → float32 (n, 28, 28, 1) in [0, 1], the shape Conv2D expects."""
    return (x.astype("float32") / 255.0)[..., np.newaxis]


def subset(x: np.ndarray, y: np.ndarray, samples: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` examples (all when ``None``)."""
    return (x, y) if samples is None else (x[:samples], y[:samples])


def make_datasets(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    *, batch_size: int, seed: int,
) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Train and test pipelines: cache the converted images once, reshuffle each epoch, prefetch.

    The test set is batched large because evaluation has no gradients to keep in memory.
    """
    train = (
        tf.data.Dataset.from_tensor_slices((to_images(x_train), y_train))
        .cache()
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    test = (
        tf.data.Dataset.from_tensor_slices((to_images(x_test), y_test))
        .batch(1024)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, test
