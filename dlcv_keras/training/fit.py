"""fit_and_log: one training run with every epoch kept; evaluate_classifier: test metrics."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from dlcv_keras.training.callbacks import EpochLog, SeedEarlyStopping, needs_every_batch

# Batches per compiled call. On a 2-core CPU the per-batch Python overhead of
# model.fit rivals the arithmetic of a small model; grouping batches halves an epoch.
STEPS_PER_EXECUTION = 32


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)   # one row per epoch (see EpochLog)
    status: str = "completed"                           # or "diverged"
    stop_reason: str = "max epochs"
    seconds: float = 0.0

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def last(self) -> dict:
        return self.history[-1] if self.history else {}


def fit_and_log(model, x_train, y_train, x_val, y_val, *, batch_size: int, epochs: int,
                early_stopping: dict | None = None, callbacks: list | None = None,
                shuffle: bool = True) -> FitResult:
    """Train a compiled model; ``early_stopping`` = {"min_epochs", "min_delta"} applies q3's rule.

    ``callbacks`` are extra Keras callbacks (the tuner's interrupt check). On the JAX
    backend the epochs run through ``scanned`` (the fast path); on any other, ``model.fit``.
    The fast path calls epoch-level hooks as model.fit does, but batch-level hooks only once per
    compiled call of ``scanned.STEPS_PER_CALL`` batches: so when any callback overrides a batch
    hook (``callbacks.BATCH_HOOKS``: one that sets the learning rate every batch, say), the run
    goes through ``model.fit`` instead, unless the callback's class sets ``runs_between_calls = True``
    (the tuner's interrupt check does). See ``callbacks.needs_every_batch``.
    The shuffle order comes from NumPy's global generator, which ``keras.utils.set_random_seed`` seeds,
    drawn as model.fit draws it on JAX (one permutation per epoch), so a seeded run visits the
    rows in the same order on both paths.
    """
    log = EpochLog()
    callbacks = [log, *(callbacks or [])]
    stopper = None
    if early_stopping:
        stopper = SeedEarlyStopping(early_stopping["min_epochs"], early_stopping["min_delta"])
        callbacks.append(stopper)
    started = time.perf_counter()
    if keras.backend.backend() == "jax" and not any(needs_every_batch(c) for c in callbacks):
        _fit_scanned(model, x_train, y_train, x_val, y_val, batch_size=batch_size, epochs=epochs,
                     callbacks=callbacks, shuffle=shuffle)
    else:
        model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=batch_size,
                  epochs=epochs, callbacks=callbacks, verbose=0, shuffle=shuffle)
    result = FitResult(history=log.rows, seconds=round(time.perf_counter() - started, 3))
    if log.diverged_at is not None:
        result.status = "diverged"
        bad = result.last
        result.stop_reason = (f"diverged at epoch {log.diverged_at} "
                              f"(loss {bad.get('loss')}, val_loss {bad.get('val_loss')})")
    elif stopper is not None and stopper.reason:
        result.stop_reason = stopper.reason
    return result


def _fit_scanned(model, x_train, y_train, x_val, y_val, *, batch_size, epochs, callbacks, shuffle):
    """model.fit's epoch loop and callback calls around the compiled loops of ``scanned``."""
    from dlcv_keras.training import scanned

    x_train, x_val = np.asarray(x_train, np.float32), np.asarray(x_val, np.float32)
    y_train, y_val = np.asarray(y_train, np.int32), np.asarray(y_val, np.int32)
    run = scanned.ScannedRun(model, x_train, y_train)
    model.stop_training = False
    # Keras's own dispatcher, as model.fit uses it: set_model, params, and every hook in order.
    callbacks = keras.callbacks.CallbackList(callbacks, model=model, epochs=epochs,
                                             steps=-(-len(x_train) // batch_size), verbose=0)
    callbacks.on_train_begin()

    def between_calls(batches_done, logs):
        callbacks.on_train_batch_end(batches_done - 1, logs)

    logs = None
    try:
        for epoch in range(epochs):
            callbacks.on_epoch_begin(epoch)
            run.reload()        # what callbacks set so far (weights, learning rate) is what trains
            logs = run.train_epoch(x_train, y_train, batch_size, shuffle, between_calls)
            logs.update({f"val_{name}": value for name, value in run.test(x_val, y_val).items()})
            run.sync()          # callbacks see (and the caller keeps) this epoch's weights
            callbacks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        run.sync()              # only if steps ran since the last sync (an interrupt mid-epoch)
    callbacks.on_train_end(logs)


def release_compiled() -> None:
    """Drop the fast path's compiled loops and the models they were traced with (a search ends with it).
    Checked through sys.modules so that a TensorFlow run never imports JAX for it."""
    scanned = sys.modules.get("dlcv_keras.training.scanned")
    if scanned is not None:
        scanned.forget()


def evaluate_classifier(model, x, y, num_classes: int, batch_size: int = 1024) -> dict:
    """Loss, accuracy, per-class accuracy and the confusion matrix (rows true, columns predicted)."""
    if isinstance(model, keras.Model) and keras.backend.backend() == "jax":   # not the scratch Classifier
        from dlcv_keras.training import scanned
        probabilities = scanned.predict(model, np.asarray(x, np.float32), batch_size)
    else:
        probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    predicted = np.argmax(probabilities, axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    support = confusion.sum(axis=1)
    # A class with no examples here has no accuracy (None), not an accuracy of 0.
    per_class = [float(confusion[k, k] / support[k]) if support[k] else None for k in range(num_classes)]
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)
    return {"loss": float(-np.mean(np.log(picked))), "accuracy": float(np.mean(predicted == y)),
            "per_class_accuracy": per_class, "confusion_matrix": confusion.tolist()}
