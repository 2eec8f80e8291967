"""Train a numpy classifier with minibatch SGD, logging what ``model.fit`` logs (after cs231n's Solver).

One row per epoch: ``loss`` and ``accuracy`` averaged over the epoch's training batches
(dropout on, as Keras reports them), ``val_loss`` and ``val_accuracy`` on the whole
validation split after the epoch, and ``learning_rate`` when it decays; every loss includes
the L2 penalty, as Keras's does. The stopping rules are the Keras path's own
(``training.rules``), so both implementations of a question stop for the same reasons.

A model (``nn.Classifier``, ``two_layer.TwoLayerClassifier``) has:
- ``adapt(x)``: fits its input transform on the training split (the Classifier has none);
- ``features(x)``: that transform, from images to what its layers compute on;
- ``loss_and_gradients(inputs, y, training, with_scores)``, on features;
- ``predict(x, batch_size)``: class probabilities of images;
- ``parameters()`` (the live arrays), ``penalty()``, ``dtype`` and ``input_shape``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from dlcv_keras.scratch.optim import SGD
from dlcv_keras.training.rules import early_stop_reason, non_finite_loss, patience_reason, restored_reason
from dlcv_keras.validation import InvalidParameterError, check_float, check_int, fail

CHECK_EVERY = 32        # batches between two polls of ``should_stop`` (the Keras path's steps_per_execution)
FLIP_PROBABILITY = 0.5  # data.augment's: each training image is mirrored left-right with this chance


def evaluate(model, x, y, batch_size: int = 1024) -> tuple[float, float]:
    """(loss including the L2 penalty, accuracy) with dropout off."""
    probabilities = model.predict(x, batch_size=batch_size)
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)
    loss = float(-np.mean(np.log(picked))) + model.penalty()
    return loss, float(np.mean(np.argmax(probabilities, axis=1) == y))


def flip_images(x, input_shape) -> np.ndarray:
    """Images ``x`` (N, H, W, C), or those rows flattened, mirrored left-right; same shape as ``x``."""
    if len(input_shape) != 3:
        fail("augment 'flip'", "used with images of shape (H, W, C)", tuple(input_shape))
    x = np.asarray(x)
    return x.reshape(len(x), *input_shape)[:, :, ::-1, :].reshape(x.shape)


def train(model, x, y, x_val, y_val, *, lr: float, batch_size: int, epochs: int | None = None,
          iterations: int | None = None, lr_decay: float = 1.0, patience: int = 0, augment: tuple = (),
          early_stopping: dict | None = None, seed: int = 0, clip: float | None = None,
          should_stop=None) -> dict:
    """Minibatch SGD over shuffled data.

    Inputs:
    - model: see the module docstring
    - x, y: training images (N, *input_shape) and integer labels (N,); x_val, y_val likewise
    - lr: the first epoch's learning rate; ``lr_decay`` multiplies it after every epoch (1: constant)
    - epochs or iterations, exactly one, sets the run's length. An epoch of ``epochs`` visits every
      row once, ceil(N / batch_size) steps, as model.fit does; with ``iterations`` an epoch is
      max(N // batch_size, 1) full batches, as ``TwoLayerNet.train`` counts, and the last epoch may
      be partial
    - patience: Keras's EarlyStopping on val_loss (0: off): stop after ``patience`` epochs without a
      lower val_loss; the best epoch's parameters are put back when the run ends, as Keras does
    - augment: augmentation names (data.augment); the solver has "flip" only, each training image
      mirrored left-right with probability FLIP_PROBABILITY, drawn anew in every batch
    - early_stopping: {"min_epochs", "min_delta"} for q3's rule, or None
    - clip: elementwise gradient clipping (``optim.SGD``)
    - should_stop: polled every CHECK_EVERY batches; True raises KeyboardInterrupt

    Returns a dict with "history" (one row per epoch), "status" ("completed" or "diverged"),
    "stop_reason", "restored_epoch" (the epoch whose parameters the model ends with, when not the
    last), "steps" (SGD steps taken) and "seconds".
    """
    check_int("batch_size", batch_size, low=1)
    check_float("lr_decay", lr_decay, low=0, high=1, closed="right")
    check_int("patience", patience, low=0)
    if (epochs is None) == (iterations is None):
        raise InvalidParameterError(f"train must be given epochs or iterations (exactly one sets the run's "
                                    f"length), got epochs={epochs!r}, iterations={iterations!r}")
    if set(augment) - {"flip"}:
        fail("augment", "'flip' or nothing for the numpy solver", "+".join(augment))
    y, y_val = np.asarray(y), np.asarray(y_val)
    if iterations is None:
        steps_per_epoch = math.ceil(len(y) / batch_size)
        total_steps = steps_per_epoch * check_int("epochs", epochs, low=1)
    else:
        steps_per_epoch = max(len(y) // batch_size, 1)
        total_steps = check_int("iterations", iterations, low=1)
    started = time.perf_counter()               # the input transform's fit counts: PCA takes seconds
    model.adapt(x)                              # the input transform sees the training split only
    inputs = model.features(x)                  # once, not per batch: a projection costs as much as a step
    mirrored = model.features(flip_images(x, model.input_shape)) if "flip" in augment else None
    optimizer = SGD(lr, clip)
    rng = np.random.default_rng(seed)
    history: list[dict] = []
    status, stop_reason, previous_val_loss = "completed", "max epochs", None
    best = None         # (val_loss, epoch, copies of the parameters), for patience
    steps = 0           # counted across epochs, so short epochs still reach a poll
    with np.errstate(over="ignore", invalid="ignore"):   # a diverging run is logged, not warned about
        for epoch in range(1, math.ceil(total_steps / steps_per_epoch) + 1):
            epoch_started = time.perf_counter()
            rate = lr * lr_decay ** (epoch - 1)
            optimizer.config["learning_rate"] = rate
            order = rng.permutation(len(y))
            loss_sum, correct, seen = 0.0, 0, 0
            for first in range(0, min(steps_per_epoch, total_steps - steps) * batch_size, batch_size):
                batch = order[first:first + batch_size]
                batch_inputs = inputs[batch]           # a copy: flipping rows leaves ``inputs`` alone
                if mirrored is not None:
                    flip = rng.random(len(batch)) < FLIP_PROBABILITY
                    batch_inputs[flip] = mirrored[batch[flip]]
                data_loss, penalty, grads, scores = model.loss_and_gradients(
                    batch_inputs, y[batch], training=True, with_scores=True)
                optimizer.step(model.parameters(), grads)
                loss_sum += (data_loss + penalty) * len(batch)
                correct += int(np.sum(np.argmax(scores, axis=1) == y[batch]))
                seen += len(batch)
                steps += 1
                if should_stop is not None and steps % CHECK_EVERY == 0 and should_stop():
                    raise KeyboardInterrupt
            if should_stop is not None and should_stop():      # and at every epoch's end, as Keras does
                raise KeyboardInterrupt
            val_loss, val_accuracy = evaluate(model, x_val, y_val)
            row = {"epoch": epoch, "loss": loss_sum / seen, "accuracy": correct / seen,
                   "val_loss": val_loss, "val_accuracy": val_accuracy}
            if lr_decay != 1:
                row["learning_rate"] = rate
            row["seconds"] = round(time.perf_counter() - epoch_started, 4)
            history.append(row)
            if non_finite_loss(row):
                status = "diverged"
                stop_reason = f"diverged at epoch {epoch} (loss {row['loss']}, val_loss {row['val_loss']})"
                break
            reason = None
            if early_stopping:
                reason = early_stop_reason(previous_val_loss, val_loss, epoch, **early_stopping)
                previous_val_loss = val_loss
            if patience:
                if best is None or val_loss < best[0]:
                    best = (val_loss, epoch, {name: p.copy() for name, p in model.parameters().items()})
                elif epoch - best[1] >= patience:
                    reason = patience_reason(patience)
            if reason:
                stop_reason = reason
                break
    restored_epoch = None
    if best is not None and status == "completed" and best[1] != len(history):
        restored_epoch = best[1]
        for name, value in best[2].items():
            model.parameters()[name][...] = value
        stop_reason = restored_reason(stop_reason, restored_epoch)
    return {"history": history, "status": status, "stop_reason": stop_reason, "restored_epoch": restored_epoch,
            "steps": steps, "seconds": round(time.perf_counter() - started, 3)}
