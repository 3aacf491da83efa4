"""tflab: the plumbing behind Lab 12 (TensorFlow Overview), so that notebooks show only the lesson.

Importing tflab is cheap and never loads TensorFlow; the modules that need it import it themselves.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up notices

from .data import load_mnist  # noqa: E402
from .paths import REPO_ROOT, data_dir, logs_dir  # noqa: E402

__all__ = ["REPO_ROOT", "data_dir", "load_mnist", "logs_dir"]
__version__ = "1.0.0"
