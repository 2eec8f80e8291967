"""dlcv_keras: deep-learning-for-computer-vision assignments, reproduced with Keras.

Run a question with ``python -m dlcv_keras.run q3``; rebuild write-ups from stored
results with ``python -m dlcv_keras.report q3``.
"""

import os

# The Keras backend is chosen per run, before Keras is imported (dlcv_keras/backends.py).
# TensorFlow's C++ chatter (oneDNN banners, "no CUDA driver" errors on CPU machines) buries our
# progress lines; real failures still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Before anything imports TensorFlow, in this process and (through the environment) in every child
# it starts: oneDNN on where TensorFlow would leave it off (dlcv_keras/backends.py).
from dlcv_keras.backends import use_onednn  # noqa: E402

use_onednn()

__version__ = "0.1.0"

__all__ = ["__version__"]
