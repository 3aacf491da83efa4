"""tflab: the plumbing behind Lab 12 (TensorFlow Overview), so that notebooks show only the lesson.

Importing tflab is cheap and never loads TensorFlow; the modules that need it import it themselves.
Import tflab before TensorFlow: it sets TensorFlow's environment, which is read once, at import.
"""
import os
import sys

# True when TensorFlow was loaded before tflab, too late for the settings below (Exercise 1.01 says so).
TENSORFLOW_LOADED_FIRST = "tensorflow" in sys.modules
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up notices
# oneDNN's CPU kernels train the lesson model about 1.5x faster (see `make bench`). TensorFlow turns
# them on by itself only on CPUs with AVX-512 VNNI or AMX. Set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from .data import load_mnist  # noqa: E402
from .paths import REPO_ROOT, data_dir, logs_dir  # noqa: E402

__all__ = ["REPO_ROOT", "data_dir", "load_mnist", "logs_dir"]
__version__ = "1.0.0"
