"""Callbacks that keep every epoch and end a run for the reasons the seeds give."""

from __future__ import annotations

import math
import time

import keras

from dlcv_keras.training.rules import early_stop_reason, non_finite_loss

LOGGED = ("loss", "accuracy", "val_loss", "val_accuracy")

# Hooks model.fit calls around every batch. The fast path (training/scanned.py) runs 256 batches
# per compiled call, and the validation batches inside another, so it cannot call these per batch.
BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end",
               "on_test_batch_begin", "on_test_batch_end")


def needs_every_batch(callback) -> bool:
    """Whether ``callback`` overrides a batch-level hook, so only ``model.fit`` runs it as written.

    A callback whose class sets ``runs_between_calls = True`` declares that its batch hooks may
    instead run once after each compiled call of the fast path (with the index of the last batch
    done and that call's logs), and must not change what trains: the tuner's interrupt check is one.
    """
    if getattr(callback, "runs_between_calls", False):
        return False
    return any(getattr(type(callback), hook, None) is not getattr(keras.callbacks.Callback, hook)
               for hook in BATCH_HOOKS)


class EpochLog(keras.callbacks.Callback):
    """Keeps each epoch's metrics and wall time, and ends a run whose loss is no longer finite.

    KerasTuner keeps only a trial's best epoch; the report draws every epoch, so we
    keep them here. A NaN/inf loss would poison every later epoch, so the run
    stops and is marked diverged instead of crashing or training on garbage.
    """

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.diverged_at: int | None = None
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def _scheduled_rate(self) -> float | None:
        """The rate a learning-rate schedule (q9's one-cycle) has reached at the epoch's end."""
        optimizer = getattr(self.model, "optimizer", None)
        schedule = getattr(optimizer, "_learning_rate", None)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            return None
        return float(keras.ops.convert_to_numpy(schedule(optimizer.iterations)))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1}
        row.update({k: float(logs[k]) for k in LOGGED if k in logs})
        rate = self._scheduled_rate()
        if rate is not None:
            row["learning_rate"] = rate
        elif "learning_rate" in logs:            # ReduceLROnPlateau (q18) writes the rate it trained with
            row["learning_rate"] = float(logs["learning_rate"])
        row["seconds"] = round(time.perf_counter() - self._started, 4)
        self.rows.append(row)
        if non_finite_loss(row):
            self.diverged_at = epoch + 1
            self.model.stop_training = True


class SeedEarlyStopping(keras.callbacks.Callback):
    """q3's rule: after ``min_epochs``, stop when the validation loss rises, or when it
    changes by less than ``min_delta`` from one epoch to the next."""

    def __init__(self, min_epochs: int, min_delta: float):
        super().__init__()
        self.min_epochs = min_epochs
        self.min_delta = min_delta
        self.previous: float | None = None
        self.reason: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        current = float((logs or {}).get("val_loss", math.nan))
        previous, self.previous = self.previous, current
        self.reason = early_stop_reason(previous, current, epoch + 1, min_epochs=self.min_epochs,
                                        min_delta=self.min_delta)
        if self.reason:
            self.model.stop_training = True
