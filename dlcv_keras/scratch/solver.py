"""Train a ``Classifier`` with minibatch SGD, logging what ``model.fit`` logs (after cs231n's Solver).

One row per epoch: ``loss`` and ``accuracy`` averaged over the epoch's training batches
(dropout on, as Keras reports them), ``val_loss`` and ``val_accuracy`` on the whole
validation split after the epoch; every loss includes the L2 penalty, as Keras's does.
The stopping rules are the Keras path's own (``training.rules``), so both implementations
of q3 stop for the same reasons.
"""

from __future__ import annotations

import time

import numpy as np

from dlcv_keras.scratch.optim import SGD
from dlcv_keras.training.rules import early_stop_reason, non_finite_loss
from dlcv_keras.validation import check_int

CHECK_EVERY = 32   # batches between two polls of ``should_stop`` (the Keras path's steps_per_execution)


def evaluate(model, x, y, batch_size: int = 1024) -> tuple[float, float]:
    """(loss including the L2 penalty, accuracy) with dropout off."""
    probabilities = model.predict(x, batch_size=batch_size)
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)
    loss = float(-np.mean(np.log(picked))) + model.penalty()
    return loss, float(np.mean(np.argmax(probabilities, axis=1) == y))


def train(model, x, y, x_val, y_val, *, lr: float, batch_size: int, epochs: int,
          early_stopping: dict | None = None, seed: int = 0, clip: float | None = None,
          should_stop=None) -> dict:
    """Minibatch SGD over shuffled data; returns {"history", "status", "stop_reason", "seconds"}.

    Inputs:
    - model: a ``nn.Classifier`` (``loss_and_gradients``, ``parameters``, ``predict``, ``penalty``)
    - x, y: training images (N, *input_shape) and integer labels (N,); x_val, y_val likewise
    - early_stopping: {"min_epochs", "min_delta"} for q3's rule, or None
    - should_stop: polled every CHECK_EVERY batches; True raises KeyboardInterrupt
    """
    check_int("batch_size", batch_size, low=1)
    check_int("epochs", epochs, low=1)
    optimizer = SGD(lr, clip)
    rng = np.random.default_rng(seed)
    x, x_val = np.asarray(x, dtype=model.dtype), np.asarray(x_val, dtype=model.dtype)
    y, y_val = np.asarray(y), np.asarray(y_val)
    history: list[dict] = []
    status, stop_reason, previous_val_loss = "completed", "max epochs", None
    steps = 0          # counted across epochs, so short epochs still reach a poll
    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):   # a diverging run is logged, not warned about
        for epoch in range(1, epochs + 1):
            epoch_started = time.perf_counter()
            order = rng.permutation(len(y))
            loss_sum, correct = 0.0, 0
            for first in range(0, len(y), batch_size):
                batch = order[first:first + batch_size]
                data_loss, penalty, grads, scores = model.loss_and_gradients(
                    x[batch], y[batch], training=True, with_scores=True)
                optimizer.step(model.parameters(), grads)
                loss_sum += (data_loss + penalty) * len(batch)
                correct += int(np.sum(np.argmax(scores, axis=1) == y[batch]))
                steps += 1
                if should_stop is not None and steps % CHECK_EVERY == 0 and should_stop():
                    raise KeyboardInterrupt
            if should_stop is not None and should_stop():      # and at every epoch's end, as Keras does
                raise KeyboardInterrupt
            val_loss, val_accuracy = evaluate(model, x_val, y_val)
            row = {"epoch": epoch, "loss": loss_sum / len(y), "accuracy": correct / len(y),
                   "val_loss": val_loss, "val_accuracy": val_accuracy,
                   "seconds": round(time.perf_counter() - epoch_started, 4)}
            history.append(row)
            if non_finite_loss(row):
                status = "diverged"
                stop_reason = f"diverged at epoch {epoch} (loss {row['loss']}, val_loss {row['val_loss']})"
                break
            if early_stopping:
                reason = early_stop_reason(previous_val_loss, val_loss, epoch, **early_stopping)
                previous_val_loss = val_loss
                if reason:
                    stop_reason = reason
                    break
    return {"history": history, "status": status, "stop_reason": stop_reason,
            "seconds": round(time.perf_counter() - started, 3)}
