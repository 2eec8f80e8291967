"""fit_and_log: one training run with every epoch kept; evaluate_classifier: test metrics."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from dlcv_keras.training.callbacks import EpochLog, SeedEarlyStopping, needs_every_batch
from dlcv_keras.validation import InvalidParameterError

# Batches per compiled call. On a 2-core CPU the per-batch Python overhead of
# model.fit rivals the arithmetic of a small model; grouping batches halves an epoch.
STEPS_PER_EXECUTION = 32


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)   # one row per epoch (see EpochLog)
    status: str = "completed"                           # or "diverged"
    stop_reason: str = "max epochs"
    seconds: float = 0.0
    restored_epoch: int | None = None                   # early stopping put this epoch's weights back
    layers: list[dict] = field(default_factory=list)    # an instrument's rows, one per layer and epoch

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def last(self) -> dict:
        """The metrics of the weights the run ends with: the last epoch's, or the restored one's."""
        if self.restored_epoch is not None:
            return self.history[self.restored_epoch - 1]
        return self.history[-1] if self.history else {}


def fit_and_log(model, x_train, y_train, x_val, y_val, *, batch_size: int, epochs: int,
                early_stopping: dict | None = None, callbacks: list | None = None,
                shuffle: bool = True, augment: tuple = (), seed: int = 0) -> FitResult:
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
    Images kept as uint8 (``is_uint8_images``) train through ``data.images.image_batches``: a
    tf.data pipeline that shuffles (seeded by ``seed``), batches, scales to [0, 1] per batch and
    applies ``augment`` (names from ``data.augment``) to the training split only.
    """
    log = EpochLog()
    # The log comes last: it sees what the others add to an epoch's logs (ReduceLROnPlateau's rate).
    callbacks = [*(callbacks or []), log]
    stopper = None
    if early_stopping:
        stopper = SeedEarlyStopping(early_stopping["min_epochs"], early_stopping["min_delta"])
        callbacks.append(stopper)
    started = time.perf_counter()
    fast_path = keras.backend.backend() == "jax" and not any(needs_every_batch(c) for c in callbacks)
    if is_uint8_images(x_train) or not fast_path:
        # Under devices.scope on JAX, model.fit shards every batch as it is: it must divide evenly.
        check_even_batches(batch_size, {"training": len(x_train), "validation": len(x_val)})
    if is_uint8_images(x_train):
        from dlcv_keras.data.images import image_batches
        train = image_batches(x_train, y_train, batch_size=batch_size, augment=augment, seed=seed, shuffle=shuffle)
        val = image_batches(x_val, y_val, batch_size=batch_size, shuffle=False)
        model.fit(train, validation_data=val, epochs=epochs, callbacks=callbacks, verbose=0,
                  shuffle=False)            # image_batches shuffles, seeded
    elif augment:
        raise ValueError(f"augmentation {augment!r} needs uint8 images (load_dataset(keep_uint8=True))")
    elif fast_path:
        # Also with several devices: scanned splits each batch across them (devices.batch_shardings).
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


def check_even_batches(batch_size: int, rows: dict[str, int]) -> None:
    """On JAX with several devices, ``model.fit`` places each batch split evenly across them (Keras's
    DataParallel), and a batch that does not divide fails deep inside JAX. Said here first, in one line.
    (The fast path, ``scanned``, has no such limit: XLA pads an uneven batch.)"""
    from dlcv_keras.training.devices import replicas

    if keras.backend.backend() != "jax" or (count := replicas()) == 1:
        return
    sizes = {f"batch_size {batch_size}": batch_size,
             **{f"a last {split} batch of {n % batch_size} rows": n % batch_size for split, n in rows.items()}}
    uneven = [what for what, size in sizes.items() if size % count]
    if uneven:
        raise InvalidParameterError(
            f"--devices {count} on the JAX backend must split every model.fit batch evenly (image data, or a "
            f"callback with batch hooks), got {' and '.join(uneven)}, not divisible by {count}; "
            f"use KERAS_BACKEND=tensorflow, whose MirroredStrategy splits unevenly, or other sizes")


def is_uint8_images(x) -> bool:
    """Images kept as uint8 until the batch is formed (the convolutional questions' data)."""
    return isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 4


def predict_logits(model, x, batch_size: int = 256) -> np.ndarray:
    """Class scores (logits), shape (N, C), for ``x``: a Keras model's outputs (its output layer has no
    activation, ``models.builders.logits_layer``), or a scratch classifier's ``logits``. Float arrays
    directly, uint8 images through the same pipeline as training (scaled to [0, 1] batch by batch,
    never augmented)."""
    if not isinstance(model, keras.Model):                 # the scratch Classifier, TwoLayerClassifier
        return np.asarray(model.logits(x, batch_size=batch_size))
    check_outputs_logits(model)
    if is_uint8_images(x):
        from dlcv_keras.data.images import image_batches
        batches = image_batches(x, np.zeros(len(x), np.int64), batch_size=batch_size, shuffle=False)
        return model.predict(batches.map(lambda images, labels: images), verbose=0)
    if keras.backend.backend() == "jax":
        from dlcv_keras.training import scanned
        return scanned.predict(model, np.asarray(x, np.float32), batch_size)
    return model.predict(x, batch_size=batch_size, verbose=0)


def predict_probabilities(model, x, batch_size: int = 256) -> np.ndarray:
    """Class probabilities, shape (N, C), each row summing to 1: the softmax of ``predict_logits``."""
    return softmax(predict_logits(model, x, batch_size))


def check_outputs_logits(model) -> None:
    """A Keras model whose output layer applies a softmax outputs probabilities, not logits: one saved
    by an earlier dlcv_keras, say. Said in one line rather than read as logits."""
    last = model.layers[-1] if model.layers else None
    if getattr(getattr(last, "activation", None), "__name__", None) == "softmax":
        raise InvalidParameterError(
            f"model {model.name!r} must output logits (an output layer with no activation), got an output "
            f"layer {last.name!r} with a softmax (a model saved by an earlier dlcv_keras); run its question "
            f"again with --fresh")


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
    """Loss, accuracy, per-class accuracy and the confusion matrix (rows true, columns predicted).

    ``loss`` is what Keras reports as ``val_loss`` (and ``model.evaluate`` as loss) on these rows, on
    every backend: the mean sparse categorical cross-entropy computed from the logits through
    log-softmax (``cross_entropy``: no probability is formed or clipped), plus the layers' L1/L2
    penalties (``model.losses``; the scratch ``Classifier``'s own ``penalty()``, the same
    ``l2 * sum(W**2)``). ``loss_includes`` says so in words for the report.
    """
    logits = predict_logits(model, x, batch_size)
    y = np.asarray(y)
    predicted = np.argmax(logits, axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    support = confusion.sum(axis=1)
    # A class with no examples here has no accuracy (None), not an accuracy of 0.
    per_class = [float(confusion[k, k] / support[k]) if support[k] else None for k in range(num_classes)]
    return {"loss": cross_entropy(logits, y) + regularisation_penalty(model),
            "loss_includes": loss_includes(), "accuracy": float(np.mean(predicted == y)),
            "per_class_accuracy": per_class, "confusion_matrix": confusion.tolist(),
            # Each image's predicted class: paired tests compare two models image by image (dlcv_keras/stats.py).
            "predicted": predicted.astype(np.int16)}


def loss_includes() -> str:
    """What evaluate_classifier's loss adds up, in words, for the report."""
    return "cross-entropy from the logits (log-softmax, unclipped) + L1/L2 penalty"


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, stable: the row's maximum is subtracted before ``exp``."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax probabilities in float64 (rows sum to 1), from ``log_softmax``."""
    return np.exp(log_softmax(logits))


def cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean sparse categorical cross-entropy from logits, as Keras computes it with from_logits=True:
    the mean of -log_softmax(logits)[i, y[i]]."""
    if not len(y):
        return float("nan")
    return float(-np.mean(log_softmax(logits)[np.arange(len(y)), y]))


def regularisation_penalty(model) -> float:
    """The L1/L2 penalty a model adds to its training loss at its current weights."""
    if isinstance(model, keras.Model):
        return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses))
    penalty = getattr(model, "penalty", None)      # the scratch Classifier
    return float(penalty()) if callable(penalty) else 0.0
