"""Optimizer, loss and metrics for the classifiers; the one place that calls ``model.compile``."""

from __future__ import annotations

import keras

from dlcv_keras.models.options import OPTIMIZERS
from dlcv_keras.validation import check_choice, check_float


def compile_model(model: keras.Model, *, lr: float, optimizer: str = "sgd", momentum: float = 0.0,
                  steps_per_execution: int = 1) -> keras.Model:
    """Sparse categorical cross-entropy (plus the layers' L1/L2 penalties) and accuracy.

    ``steps_per_execution`` runs several batches per compiled call: on a CPU the
    per-step Python overhead otherwise dominates small models.
    """
    check_float("lr", lr, low=0, closed="right")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if optimizer == "sgd":
        check_float("momentum", momentum, low=0, high=1, closed="left")
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=momentum)
    else:
        opt = keras.optimizers.Adam(learning_rate=lr)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model
