"""Which Keras backend a run uses. Keras reads it once, at its first import, so this module
stays free of Keras and is called before anything imports it.

The package picks the fastest backend for the models a run trains (``FASTEST_BACKEND``);
a ``KERAS_BACKEND`` the user exported wins, so a GPU machine can choose its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dlcv_keras.models.options import FASTEST_BACKEND
from dlcv_keras.validation import InvalidParameterError

BACKENDS = ("jax", "tensorflow")
DEFAULT = "jax"       # for runs that train no Keras model (the from-scratch questions)
# XLA's CPU compile of one training loop takes 0.5-1 s, more than a small trial trains:
# JAX keeps compiled programs on disk, so a re-run, a resumed search or a retrain skips it.
COMPILE_CACHE_BYTES = 512 * 2**20


def fastest_for(models) -> str:
    """The backend for a run training ``models`` (names, None for none); the first model with a preference decides."""
    for model in models:
        if model in FASTEST_BACKEND:
            return FASTEST_BACKEND[model]
    return DEFAULT


def choose(models) -> str:
    """Set KERAS_BACKEND for this process unless the user (or an earlier Keras import) fixed it; returns it."""
    if "keras" in sys.modules:
        import keras
        return keras.backend.backend()
    chosen = os.environ.get("KERAS_BACKEND") or fastest_for(models)
    if chosen not in BACKENDS:
        raise InvalidParameterError(f"KERAS_BACKEND must be one of {', '.join(map(repr, BACKENDS))} "
                                    f"(or unset, to let each run choose), got {chosen!r}")
    os.environ["KERAS_BACKEND"] = chosen
    if chosen == "jax":
        use_compile_cache()
    return chosen


def compile_cache_dir() -> Path:
    return Path(os.environ.get("DLCV_CACHE_DIR") or Path.home() / ".cache" / "dlcv_keras") / "jax"


def use_compile_cache() -> None:
    """JAX's persistent compilation cache, set up through the environment: JAX reads it when
    it first compiles, which Keras does while building a model. A cache the user set up wins."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(compile_cache_dir())
    # Training, test and predict loops take 0.2-1 s to compile; Keras's tiny eager ops are not worth a file.
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.1"
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(COMPILE_CACHE_BYTES)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    Its native libraries print start-up lines ("oneDNN custom operations are on", "Could not
    find cuda drivers") straight to fd 2 before any log level applies; they bury the
    progress lines on a CPU machine. An import error still raises as usual.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
