"""The fast training path on the JAX backend: Keras's own train_step, looped inside XLA.

``model.fit`` runs every batch (or every ``steps_per_execution`` group) through Python and
a data iterator; for the small models of these assignments that overhead is most of an
epoch. Here the whole training set sits on the device, an epoch's shuffled order is one
index array, and a jitted ``fori_loop`` runs ``STEPS_PER_CALL`` batches of Keras's
stateless ``train_step`` per call. The arithmetic is the same as ``model.fit``'s (same
loss, regulariser penalties, optimizer update and metrics); only the loop moved.

Callbacks: epoch-level hooks run as in ``model.fit``, and what they set (weights, the
learning rate) is read back before each epoch. Batch-level hooks cannot run inside a
compiled call: ``fit_and_log`` sends a run whose callbacks override one to ``model.fit``,
except callbacks marked ``runs_between_calls = True``, whose ``on_train_batch_end`` runs
once after each compiled call (the tuner's interrupt check). A learning-rate schedule is
computed inside the step from the iteration count, per batch, as in ``model.fit``.

Compiled functions are kept per model *structure* (architecture, optimizer settings
other than a float learning rate, batch shape; a schedule's settings do count), so trials
that differ only in a float learning rate or initial weights reuse them instead of
compiling again.
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict

import jax
import jax.numpy as jnp
import keras
import numpy as np

from dlcv_keras.training.devices import batch_shardings

# Batches per compiled call. Between calls the interrupt check runs, so Ctrl-C is
# honoured within a fraction of a second; the call overhead (~0.1 ms) is noise by then.
STEPS_PER_CALL = 256
EVAL_BATCH = 1024           # validation/test batch: only memory, not results, depends on it
_CACHE_SIZE = 8             # model structures kept compiled; bounded so memory stays flat


class _Compiled:
    """Jitted train/test/predict loops traced with one model (they keep it alive); valid for any
    model of the same structure.

    ``split``: None on one device; under a data-parallel distribution (``devices.batch_shardings``)
    the sharding that splits a batch's rows across the devices. Each batch gathered inside the loop
    is constrained to it, so XLA runs every device on its share of the rows and sums the gradients
    across devices (the variables are replicated); a partial batch that does not divide evenly is
    padded and masked by XLA, so its mean is still over its own rows, as on one device."""

    def __init__(self, model, split=None):
        def rows_of(batch):
            return batch if split is None else jax.lax.with_sharding_constraint(batch, split)

        self.train_steps = jax.jit(self._make_steps(model.train_step, rows_of))
        self.test_steps = jax.jit(self._make_steps(model.test_step, rows_of))
        self.predict = jax.jit(lambda trainable, non_trainable, x: model.stateless_call(
            trainable, non_trainable, rows_of(x), training=False)[0])

    @staticmethod
    def _make_steps(step, rows_of):
        """``count`` batches (rows ``start``.. of ``order``) through ``step``; count >= 1, not static."""

        def steps(state, x, y, order, start, count):
            def one(index, state):
                rows = order[index]
                return step(state, (rows_of(jnp.take(x, rows, axis=0)), rows_of(jnp.take(y, rows, axis=0))))

            logs, state = one(start, state)

            def body(i, carry):
                _, state = carry
                return one(start + i, state)

            # One compiled loop for any count: fori_loop with traced bounds is a while loop.
            return jax.lax.fori_loop(1, count, body, (logs, state))
        return steps


_compiled: OrderedDict[str, _Compiled] = OrderedDict()
_on_device: dict[int, tuple] = {}


def compiled_for(model, split=None) -> _Compiled:
    key = structure_key(model) + ("" if split is None else f"|split over {split}")
    if key in _compiled:
        _compiled.move_to_end(key)
    else:
        _compiled[key] = _Compiled(model, split)
        while len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    return _compiled[key]


def structure_key(model) -> str:
    """Everything a traced step depends on except variable values (weights, a float learning rate, step count):
    the architecture, the compile settings (loss, its weights, metrics) and the optimizer's other settings,
    including a learning-rate schedule's (its settings are constants in the traced step)."""
    if type(model).__name__ not in ("Functional", "Sequential"):
        # A subclassed model's get_config need not describe its call: never share its loops.
        return f"unshared:{id(model)}"
    if getattr(model, "optimizer", None) is None:
        # Uncompiled (a stored model loaded to predict): only its forward pass is ever traced.
        return json.dumps([type(model).__name__, model.get_config(), "uncompiled"], sort_keys=True, default=repr)
    optimizer = model.optimizer.get_config()
    optimizer.pop("name", None)
    rate = model.optimizer._learning_rate
    if isinstance(rate, keras.Variable):
        # A plain float learning rate lives in a variable: a value like the weights, so left out.
        optimizer.pop("learning_rate", None)
    elif not (isinstance(rate, keras.optimizers.schedules.LearningRateSchedule)
              and type(rate).__module__.startswith("keras.")):
        # Any other callable is traced into the step as constants, and a user's schedule class
        # need not describe itself in get_config: never share its loops.
        return f"unshared:{id(model)}"
    # A Keras schedule stays in the key (the serialized config names its class and every setting):
    # the step computes the rate from the iteration count with those settings as constants.
    compiled = {k: v for k, v in (model.get_compile_config() or {}).items() if k != "optimizer"}
    return json.dumps([type(model).__name__, model.get_config(), type(model.optimizer).__name__, optimizer,
                       compiled], sort_keys=True, default=repr)


def forget() -> None:
    """Drop the compiled loops (each holds the model it was traced with) and the device copies of data."""
    _compiled.clear()
    _on_device.clear()


def on_device(array: np.ndarray, whole=None):
    """The array as a JAX array, copied once per numpy array (a search passes the same arrays to every trial).
    ``whole``: a sharding that puts a whole copy on each of several devices (data-parallel training)."""
    key = id(array) if whole is None else (id(array), whole)
    held = _on_device.get(key)
    if held is not None and held[0]() is array:
        return held[1]
    device_array = jnp.asarray(array) if whole is None else jax.device_put(array, whole)
    for stale in [k for k, (ref, _) in _on_device.items() if ref() is None]:
        del _on_device[stale]
    _on_device[key] = (weakref.ref(array), device_array)
    return device_array


def batch_order(n: int, batch_size: int, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row indices as full batches (steps, batch_size) plus the leftover partial batch, as model.fit takes them.

    Shuffled the way model.fit shuffles arrays on JAX (Keras's ArrayDataAdapter): one
    ``np.random.permutation(n)`` from NumPy's global generator per epoch, so a seeded run
    visits the rows in model.fit's order."""
    order = np.random.permutation(n) if shuffle else np.arange(n)
    full = (n // batch_size) * batch_size
    return order[:full].reshape(-1, batch_size).astype(np.int32), order[full:].astype(np.int32)


class ScannedRun:
    """Drives one model through epochs with the compiled loops; state lives in JAX arrays between
    ``reload`` (from the model's variables) and ``sync`` (back into them)."""

    def __init__(self, model, x, y):
        self.model = model
        # What model.fit does first: create the optimizer's, loss's and metrics' variables
        # from one batch's shapes (Keras keeps this step private; fit calls it the same way).
        model._symbolic_build(data_batch=(x[:1], y[:1]))
        # Under a data-parallel distribution (devices.scope): batches split across its devices, the
        # data and the state one whole copy on each.
        split, self.whole = batch_shardings() or (None, None)
        self.compiled = compiled_for(model, split)
        model.reset_metrics()
        self.fresh_metrics = [v.value for v in model.metrics_variables]
        self.reload()

    def reload(self):
        """Take the model's current values: a callback may have set weights or the learning rate."""
        model = self.model
        self.trainable = [v.value for v in model.trainable_variables]
        self.non_trainable = [v.value for v in model.non_trainable_variables]
        self.optimizer_state = [v.value for v in model.optimizer.variables]
        self._unsynced = False

    def train_epoch(self, x, y, batch_size: int, shuffle: bool, between_calls=None) -> dict:
        """One epoch; ``between_calls(batches_done, logs)`` runs after each compiled call has finished."""
        full, rest = batch_order(len(x), batch_size, shuffle)
        state = (self.trainable, self.non_trainable, self.optimizer_state, self.fresh_metrics)
        logs, _ = self._run(self.compiled.train_steps, state, x, y, full, rest, between_calls, self._keep, self.whole)
        return logs

    def _keep(self, state):
        # After every call, so that an interrupt between calls leaves the steps taken so far.
        self.trainable, self.non_trainable, self.optimizer_state, _ = state
        self._unsynced = True

    def test(self, x, y, batch_size: int = EVAL_BATCH) -> dict:
        if not len(x):
            return {}
        full, rest = batch_order(len(x), min(batch_size, len(x)), False)
        state = (self.trainable, self.non_trainable, self.fresh_metrics)
        logs, _ = self._run(self.compiled.test_steps, state, x, y, full, rest, whole=self.whole)
        return logs

    @staticmethod
    def _run(steps, state, x, y, full, rest, between_calls=None, keep=None, whole=None):
        x, y = on_device(x, whole), on_device(y, whole)
        logs = None
        for start in range(0, len(full), STEPS_PER_CALL):
            count = min(STEPS_PER_CALL, len(full) - start)
            logs, state = steps(state, x, y, full, np.int32(start), np.int32(count))
            if keep is not None:
                keep(state)
            if between_calls is not None:
                # JAX dispatches asynchronously: reading the logs waits for this call to finish,
                # so the check runs between executed calls, not merely queued ones.
                between_calls(start + count, {name: float(value) for name, value in logs.items()})
        if len(rest):
            # The partial last batch, as model.fit includes it (its own shape: compiled once).
            logs, state = steps(state, x, y, rest[None, :], np.int32(0), np.int32(1))
            if keep is not None:
                keep(state)
        return {name: float(value) for name, value in logs.items()}, state

    def sync(self):
        """Write the values trained since the last reload or sync back into the Keras model's variables."""
        if not self._unsynced:
            return
        model = self.model
        for variables, values in ((model.trainable_variables, self.trainable),
                                  (model.non_trainable_variables, self.non_trainable),
                                  (model.optimizer.variables, self.optimizer_state)):
            for variable, value in zip(variables, values):
                variable.assign(value)
        self._unsynced = False


def predict(model, x: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """The model's outputs (a classifier's logits), with the compiled forward pass shared by models of
    one structure."""
    compiled = compiled_for(model, (batch_shardings() or (None,))[0])
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    outputs = [np.asarray(compiled.predict(trainable, non_trainable, x[i:i + batch_size]))
               for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0,) + tuple(model.output_shape[1:]), np.float32)
