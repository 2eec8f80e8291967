"""Model builders in the keras-io shape: ``keras.Input`` -> a chain of layers -> ``keras.Model``.

Every knob is a plain keyword argument named like its hyperparameter (``l2``,
``units``, ``dropout``, ...), so a tuner can pass sampled values straight through.
Compiling and fitting happen elsewhere (``compile.py``, ``training/``).
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from dlcv_keras.models.options import ACTIVATIONS, INITIALIZERS, MODELS
from dlcv_keras.validation import check_choice, check_float, check_int


def _regularizer(l1: float, l2: float):
    check_float("l1", l1, low=0)
    check_float("l2", l2, low=0)
    if l1 == 0 and l2 == 0:
        return None
    return regularizers.L1L2(l1=l1, l2=l2)


def build_linear(input_shape, num_classes: int, *, l1: float = 0.0, l2: float = 0.0,
                 initializer: str = "glorot_uniform") -> keras.Model:
    """A single-layer softmax classifier: flatten -> dense(num_classes)."""
    check_int("num_classes", num_classes, low=2)
    check_choice("initializer", initializer, INITIALIZERS)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Flatten(name="flatten")(inputs)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer,
                           kernel_regularizer=_regularizer(l1, l2), name="softmax")(x)
    return keras.Model(inputs, outputs, name="linear")


def build_mlp(input_shape, num_classes: int, *, depth: int = 1, units: int | list[int] = 256,
              activation: str = "relu", dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0,
              initializer: str = "glorot_uniform") -> keras.Model:
    """A multilayer perceptron: flatten -> ``depth`` x (dense(units) -> activation -> dropout) -> softmax.

    ``units`` is one width for every hidden layer or a list of ``depth`` widths.
    """
    check_int("num_classes", num_classes, low=2)
    check_int("depth", depth, low=1, high=100)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("initializer", initializer, INITIALIZERS)
    check_float("dropout", dropout, low=0, high=1, closed="left")
    widths = list(units) if isinstance(units, (list, tuple)) else [units] * depth
    if len(widths) != depth:
        raise ValueError(f"units must be one int or a list of depth={depth} ints, got {units!r}")
    for width in widths:
        check_int("units", width, low=1)

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(widths):
        x = layers.Dense(width, kernel_initializer=initializer,
                         kernel_regularizer=_regularizer(l1, l2), name=f"dense_{i}")(x)
        x = layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer,
                           kernel_regularizer=_regularizer(l1, l2), name="softmax")(x)
    return keras.Model(inputs, outputs, name=f"mlp_{depth}x{'-'.join(map(str, widths))}")


BUILDERS = {"linear": build_linear, "mlp": build_mlp}


def get_builder(name: str):
    return BUILDERS[check_choice("model", name, MODELS)]


def parameter_table(model: keras.Model) -> list[dict]:
    """One row per layer, read from the model itself: name, type, output shape, parameters."""
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = tuple(shape.shape) if shape is not None else ()
        rows.append({"layer": layer.name, "type": type(layer).__name__,
                     "output_shape": str(shape).replace("None", "batch"),
                     "params": int(layer.count_params())})
    return rows
