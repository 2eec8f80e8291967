"""Instruments: a callback that looks inside a network while it trains and keeps what it saw.

``LayerProbe`` measures every layer with a kernel (dense or convolution), on a fixed probe
batch of training rows, at initialisation (epoch 0) and after every epoch:

- ``gradients``: the mean absolute gradient of the training loss (cross-entropy plus the
  layers' L1/L2 penalties, dropout off) with respect to the layer's kernel: q13's vanishing
  gradients;
- ``weights``: the mean absolute kernel value;
- ``activations``: the mean and standard deviation of the layer's output after its activation
  (the Activation layer right after it, when it has none of its own; the output layer's are the
  logits): q15's statistics at initialisation;
- ``symmetry``: the largest difference between two units' incoming weight vectors, max over
  inputs of (max - min over units); 0 means every unit of the layer is the same unit (q15's
  zero initialisation).

It uses epoch-level hooks only, so it runs under ``model.fit`` and on the JAX fast path
(``training/scanned.py`` syncs the weights before ``on_epoch_end``), on JAX and TensorFlow.
Each row is one layer at one epoch. Its measurement after an epoch runs inside that epoch's
timed span (``fit_and_log`` adds its epoch log last), so history.csv's epoch ``seconds``
include it; ``probe_seconds`` says how much of them it took. When early stopping puts an
earlier epoch's weights back at the end, the last rows still describe the last epoch trained.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from dlcv_keras.models.compile import classification_loss
from dlcv_keras.models.options import INSTRUMENTS

PROBE_ROWS = 1024       # training rows the probe measures on: the same rows every epoch


def probe_rows(x, y, seed: int, rows: int = PROBE_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """A seeded choice of ``rows`` training rows (all of them when there are fewer), as the model
    sees them: uint8 images scaled to [0, 1] as ``data.images`` scales each batch."""
    picked = np.sort(np.random.default_rng(seed).permutation(len(y))[:rows])
    scale = 255.0 if np.asarray(x).dtype == np.uint8 else 1.0
    return np.asarray(x[picked], np.float32) / scale, np.asarray(y[picked], np.int32)


class LayerProbe(keras.callbacks.Callback):
    """Measures ``instruments`` (names from ``INSTRUMENTS``) of every kernel layer; ``rows`` holds them."""

    def __init__(self, x_probe, y_probe, instruments=INSTRUMENTS):
        super().__init__()
        unknown = sorted(set(instruments) - set(INSTRUMENTS))
        if unknown or not instruments:
            raise ValueError(f"instruments must be names from {INSTRUMENTS}, got {tuple(instruments)!r}")
        self.x, self.y = x_probe, y_probe
        self.instruments = tuple(instruments)
        self.rows: list[dict] = []
        self._layers = None
        self._gradients = None
        self._outputs = None

    def on_train_begin(self, logs=None):
        self._measure(0)

    def on_epoch_end(self, epoch, logs=None):
        self._measure(epoch + 1)

    # -- what is measured ------------------------------------------------------------------
    def _measure(self, epoch: int) -> None:
        started = time.perf_counter()
        layers = self._kernel_layers()
        found = [{"epoch": epoch, "layer": layer.name, "index": i} for i, layer in enumerate(layers, start=1)]
        kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in layers]
        if "weights" in self.instruments:
            for row, kernel in zip(found, kernels):
                row["weight_mean_abs"] = float(np.mean(np.abs(kernel)))
        if "symmetry" in self.instruments:
            for row, kernel in zip(found, kernels):
                units = kernel.reshape(-1, kernel.shape[-1])           # (inputs, units)
                row["unit_spread"] = float(np.max(units.max(axis=1) - units.min(axis=1)))
        if "gradients" in self.instruments:
            for row, gradient in zip(found, self._kernel_gradients(layers)):
                row["grad_mean_abs"] = float(np.mean(np.abs(gradient)))
        if "activations" in self.instruments:
            for row, output in zip(found, self._activations(layers)):
                row["act_mean"], row["act_std"] = float(np.mean(output)), float(np.std(output))
        seconds = round(time.perf_counter() - started, 4)
        for row in found:
            row["probe_seconds"] = seconds
        self.rows.extend(found)

    def _kernel_layers(self) -> list:
        if self._layers is None:
            self._layers = [layer for layer in self.model.layers if getattr(layer, "kernel", None) is not None]
        return self._layers

    def _kernel_gradients(self, layers) -> list[np.ndarray]:
        if self._gradients is None:
            self._gradients = _gradient_function(self.model)
        gradients = self._gradients(self.x, self.y)
        by_path = dict(zip((v.path for v in self.model.trainable_variables), gradients))
        return [np.asarray(by_path[layer.kernel.path]) for layer in layers]

    def _activations(self, layers) -> list[np.ndarray]:
        if self._outputs is None:
            followers = {id(layer): _activation_after(self.model, layer) for layer in layers}
            inputs = self.model.inputs[0] if len(self.model.inputs) == 1 else self.model.inputs
            self._outputs = keras.Model(inputs,
                                        [followers[id(layer)].output for layer in layers])
        outputs = self._outputs(self.x, training=False)
        return [keras.ops.convert_to_numpy(output) for output in outputs]


def _activation_after(model, layer):
    """The layer whose output is ``layer``'s activated output: the Activation layer that follows it
    directly (build_mlp's dense -> Activation), else the layer itself (an activation of its own)."""
    position = model.layers.index(layer)
    following = model.layers[position + 1] if position + 1 < len(model.layers) else None
    if isinstance(following, keras.layers.Activation) and following.input is layer.output:
        return following
    return layer


def _gradient_function(model):
    """(x, y) -> the gradient of the training loss for each of ``model.trainable_variables``, as numpy."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss(trainable, x, y):
            logits, _, penalties = model.stateless_call(trainable, non_trainable, x, training=False,
                                                        return_losses=True)
            return _training_loss(y, logits, penalties)

        # Compiled once per trial: an eager gradient dispatches every op from Python.
        compiled = jax.jit(jax.grad(loss))
        return lambda x, y: [np.asarray(g) for g in compiled([v.value for v in model.trainable_variables], x, y)]
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def gradients(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=False)
                value = _training_loss(y, logits, model.losses)
            return tape.gradient(value, model.trainable_variables)

        return lambda x, y: [g.numpy() for g in gradients(x, y)]
    raise ValueError(f"LayerProbe measures gradients on the jax and tensorflow backends, got {backend!r}")


def _training_loss(y, logits, penalties):
    loss = classification_loss()(y, logits)         # what compile_model trains on
    for penalty in penalties:
        loss = loss + penalty
    return loss
