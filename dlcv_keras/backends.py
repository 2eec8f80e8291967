"""Which Keras backend a run uses. Keras reads it once, at its first import, so this module
stays free of Keras and is called before anything imports it.

The package picks the fastest backend for the models a run trains (``FASTEST_BACKEND``);
a ``KERAS_BACKEND`` the user exported wins, so a GPU machine can choose its own.

TensorFlow's oneDNN kernels are turned on where TensorFlow itself would leave them off
(``use_onednn``, called when the package is imported); an exported ``TF_ENABLE_ONEDNN_OPTS`` wins.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from dlcv_keras.models.options import FASTEST_BACKEND
from dlcv_keras.validation import InvalidParameterError

BACKENDS = ("jax", "tensorflow")
DEFAULT = "jax"       # for runs that train no Keras model (the from-scratch questions)
# XLA's CPU compile of one training loop takes 0.5-1 s, more than a small trial trains:
# JAX keeps compiled programs on disk, so a re-run, a resumed search or a retrain skips it.
COMPILE_CACHE_BYTES = 512 * 2**20

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
# Set beside ONEDNN when the package, not the user, turned oneDNN on: a child process inherits
# both and still records who decided.
ONEDNN_OURS = "DLCV_ONEDNN_DEFAULT"
# On Linux, TensorFlow turns its oneDNN kernels on by itself only on CPUs with one of these features
# (tensorflow/core/util/port.cc, DefaultOneDnnPolicy; names as /proc/cpuinfo spells them). On an
# AVX2-only CPU they stay off, though on an AVX2-only EPYC they trained ResNet-18 1.6-1.8x faster
# (measured for issue 20; README, Performance).
ONEDNN_CPU_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"})


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


def cpu_flags() -> frozenset | None:
    """The CPU's feature flags on x86-64 Linux (/proc/cpuinfo); None elsewhere, where we leave oneDNN to TensorFlow."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def tensorflow_default_onednn(flags: frozenset | None) -> bool | None:
    """Whether TensorFlow turns oneDNN on by itself on a CPU with ``flags`` (None: flags unknown)."""
    return None if flags is None else bool(flags & ONEDNN_CPU_FLAGS)


def use_onednn(environ=None, flags: frozenset | None = None) -> None:
    """Turn TensorFlow's oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) where TensorFlow would leave
    them off, before it is imported. An exported variable wins (``=0`` keeps them off); once
    TensorFlow is imported, setting it would change nothing and only mislead the record."""
    environ = os.environ if environ is None else environ
    if ONEDNN in environ or "tensorflow" in sys.modules:
        return
    if tensorflow_default_onednn(cpu_flags() if flags is None else flags) is False:
        environ[ONEDNN] = "1"
        environ[ONEDNN_OURS] = "1"


def onednn_state(environ=None) -> dict:
    """Whether TensorFlow's oneDNN kernels are on in this process, and who decided: "dlcv_keras" (our
    default, on a CPU where TensorFlow leaves them off), "user" (an exported TF_ENABLE_ONEDNN_OPTS) or
    "tensorflow" (its own default). ``on`` is TensorFlow's own answer once it is imported, else the
    expected one (None when unknown)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ONEDNN, "").strip().lower()
    if value not in ("0", "1", "false", "true"):       # unset, or a value TensorFlow ignores for its default
        decided_by, expected = "tensorflow", tensorflow_default_onednn(cpu_flags())
    else:
        decided_by = "dlcv_keras" if environ.get(ONEDNN_OURS) == "1" and value == "1" else "user"
        expected = value in ("1", "true")
    on = tensorflow_onednn_on()
    return {"on": expected if on is None else on, "decided_by": decided_by}


def tensorflow_onednn_on() -> bool | None:
    """TensorFlow's own answer, once it is imported (the one it printed as "oneDNN custom operations are on")."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):           # a private module: gone in some release
        return None
