"""The suite runs on the backend the questions choose by default: JAX, the dense models' fast path
(an exported KERAS_BACKEND still wins). The TensorFlow path runs in subprocess tests."""

from dlcv_keras import backends

backends.choose(["mlp"])
