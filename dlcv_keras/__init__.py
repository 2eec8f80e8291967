"""dlcv_keras: deep-learning-for-computer-vision assignments, reproduced with Keras.

Run a question with ``python -m dlcv_keras.run q3``; rebuild write-ups from stored
results with ``python -m dlcv_keras.report q3``.
"""

import os

# Keras reads its backend once, at first import: choose it before anything imports keras.
# TensorFlow is the backend the package is tested on; an explicit KERAS_BACKEND still wins.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's C++ chatter (oneDNN banners, "no CUDA driver" errors on CPU machines) buries our
# progress lines; real failures still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

__all__ = ["__version__"]
