"""Data-parallel trials: one trial's training spread over several devices (``--devices N|all``).

Every replica holds the whole model; each batch of ``batch_size`` rows (the global batch, the
same as on one device) is split across the devices, and the gradients are summed across them
before the one update. So the arithmetic is that of one device up to the order of the sums.

- TensorFlow: ``tf.distribute.MirroredStrategy`` (as KerasTuner's ``distribution_strategy``:
  the model is built, compiled and fitted inside ``strategy.scope()``).
- JAX: ``keras.distribution.DataParallel`` over a one-axis ``DeviceMesh``; the variables are
  replicated and each batch is sharded along the mesh's batch axis.

A device is a GPU when the machine has one, else a logical CPU device: TensorFlow splits its
CPU with ``tf.config.set_logical_device_configuration`` (before its first op runs) and XLA's
host platform is told how many to make with ``XLA_FLAGS=--xla_force_host_platform_device_count``
(before JAX is imported). Logical CPU devices share the same cores: they exercise the
data-parallel code on a machine without a GPU, they do not make it faster.

Batch normalisation uses the global batch's statistics on both backends, as on one device
(``synchronize_batch_norm``).

The count travels as a plain int (``Settings.devices``, ``ClassifierHyperModel.devices``, which is
pickled to a trial's own process); each process makes its own strategy from it, once.
"""

from __future__ import annotations

import contextlib
import os
import sys

from dlcv_keras.validation import InvalidParameterError

ALL = "all"
HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
EXPECTED = "'all' or an int >= 1 (GPUs, or logical CPU devices on a machine without a GPU)"

_distributions: dict[int, object] = {}      # device count -> this process's strategy / distribution


def parse(value) -> int | str:
    """``--devices``'s value: ``"all"`` or an int >= 1 (its upper bound is checked by ``resolve``)."""
    text = str(value).strip().lower()
    if text == ALL:
        return ALL
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InvalidParameterError(f"--devices must be {EXPECTED}, got {value!r}")
    return int(text)


def cpu_cores() -> int:
    """The CPU cores this process may run on (a container's or taskset's limit, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def prepare(spec) -> None:
    """Before Keras (so JAX) is imported: on the JAX backend, ask XLA's host platform for as many CPU
    devices as ``spec`` may need. A GPU machine's JAX uses its GPUs and ignores the flag; an
    ``XLA_FLAGS`` that already sets the count is left alone."""
    if spec == 1 or os.environ.get("KERAS_BACKEND") != "jax" or "jax" in sys.modules:
        return       # one device; or TensorFlow (configure() splits its CPU); or too late (resolve() says so)
    flags = os.environ.get("XLA_FLAGS", "")
    if HOST_DEVICES_FLAG not in flags:
        count = cpu_cores() if spec == ALL else spec
        os.environ["XLA_FLAGS"] = f"{flags} {HOST_DEVICES_FLAG}={count}".strip()


def resolve(spec) -> int:
    """The number of devices ``spec`` ("all" or an int) means here, checked against the machine;
    sets those devices up (``configure``). Imports the Keras backend: call after ``prepare``."""
    accelerators = accelerator_count()
    if accelerators:
        available, machine = accelerators, f"this machine has {accelerators} GPU(s)"
    else:
        available = cpu_cores()
        machine = f"this machine has no GPU and {available} CPU core(s), one logical CPU device per core at most"
    count = available if spec == ALL else spec
    if count > available:
        raise InvalidParameterError(f"--devices must be 'all' or an int in [1, {available}] ({machine}), "
                                    f"got {spec!r}")
    if count > 1:
        configure(count)
    return count


def accelerator_count() -> int:
    """GPUs (or TPUs, on JAX) the Keras backend sees; 0 on a CPU-only machine. Starts no TensorFlow op."""
    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        from dlcv_keras.backends import import_tensorflow_quietly
        import_tensorflow_quietly()           # its start-up lines would bury the run's first lines
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return len(tf.config.list_physical_devices("GPU"))
    import jax
    return 0 if jax.default_backend() == "cpu" else jax.device_count()


def configure(count: int) -> None:
    """Make ``count`` devices exist in this process: on a CPU-only TensorFlow, split the CPU into that
    many logical devices (only possible before TensorFlow's first op; at most once per process).
    Called by ``resolve`` and again by ``scope`` in a trial's own process."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        if tf.config.list_physical_devices("GPU"):
            have = len(tf.config.list_physical_devices("GPU"))
        else:
            cpu = tf.config.list_physical_devices("CPU")[0]
            have = len(tf.config.get_logical_device_configuration(cpu) or [None])
            if have < count:
                try:
                    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
                    have = count
                except RuntimeError as error:          # "Virtual devices cannot be modified after being initialized"
                    raise RuntimeError(f"cannot make {count} logical CPU devices: TensorFlow ran an op before "
                                       f"dlcv_keras.training.devices.configure({count}) ({error})") from None
        where = "TensorFlow"
    else:
        have = len(keras.distribution.list_devices())
        where = (f"JAX (XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; on a CPU set {HOST_DEVICES_FLAG}="
                 f"{count} before JAX is imported)")
    if have < count:
        raise RuntimeError(f"{count} devices asked for, {have} seen by {where}")


def _distribution(count: int):
    """This process's strategy (TensorFlow) or distribution (JAX) over the first ``count`` devices,
    made once: a model must be fitted under the strategy object it was built under."""
    if count not in _distributions:
        import keras

        configure(count)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf
            kind = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
            names = [device.name for device in tf.config.list_logical_devices(kind)[:count]]
            _distributions[count] = tf.distribute.MirroredStrategy(names)
        else:
            _distributions[count] = keras.distribution.DataParallel(
                devices=keras.distribution.list_devices()[:count])
    return _distributions[count]


@contextlib.contextmanager
def scope(count: int):
    """Build, compile and fit a model inside this: data-parallel over ``count`` devices; with one,
    nothing at all (exactly the single-device code). Entered once for the build and again for the
    fit (KerasTuner clears Keras's global state, a JAX distribution included, between trials)."""
    if count == 1:
        yield
        return
    with _distribution(count).scope():
        yield


def replicas() -> int:
    """Replicas of the data-parallel scope in force here (1 outside one)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        return tf.distribute.get_strategy().num_replicas_in_sync
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)


def synchronize_batch_norm(model) -> int:
    """Under a TensorFlow strategy of several replicas, make every BatchNormalization layer of ``model``
    (nested ones too: a keras-hub backbone's) normalise with the global batch's statistics, as on one
    device: ``synchronized=True``, which all-reduces each replica's sums. Keras's default normalises
    each replica's share by its own statistics. JAX needs nothing: under ``DataParallel`` a step is one
    program over the whole (sharded) batch, so its statistics are the global batch's already (and Keras
    refuses ``synchronized=True`` there). Call inside ``scope``, before the model is compiled and first
    called. Returns how many layers it set."""
    import keras

    if keras.backend.backend() != "tensorflow" or replicas() == 1:
        return 0
    found = [layer for layer in _nested_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in found:
        layer.synchronized = True
    return len(found)


def _nested_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _nested_layers(layer)


def steps_per_execution(wanted: int) -> int:
    """``wanted`` batches per compiled call, except 1 under a TensorFlow strategy of several replicas:
    there Keras 3's multi-step loop fails ("You must feed a value for placeholder tensor",
    keras-team/keras#19246, open), so each batch is its own call (slower on a CPU, correct)."""
    import keras

    if keras.backend.backend() == "tensorflow" and replicas() > 1:
        return 1
    return wanted


def batch_shardings():
    """On JAX under a data-parallel distribution: (the sharding that splits a batch's rows across the
    devices, the sharding that keeps a whole array on each); else None."""
    import keras

    if keras.backend.backend() != "jax" or replicas() == 1:
        return None
    from jax.sharding import NamedSharding, PartitionSpec

    distribution = keras.distribution.distribution()
    mesh = distribution.device_mesh.backend_mesh
    return NamedSharding(mesh, PartitionSpec(distribution.batch_dim_name)), NamedSharding(mesh, PartitionSpec())
