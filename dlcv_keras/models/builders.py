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


def build_cnn(input_shape, num_classes: int, *, filters=(18, 36, 72, 72), pool_after=(1, 2, 3),
              dense_units: int = 750, dropout: float = 0.0, l2: float = 0.0,
              initializer: str = "glorot_uniform") -> keras.Model:
    """q17's CNN: 3x3 'same' convs with ReLU, 2x2 max pooling after the convs listed in
    ``pool_after`` (0-based), then flatten -> dense(dense_units) -> softmax.

    The defaults on 28x28x1 give the seed's 1->18->36->72->72, FC 648->750->10: 570,436 parameters.
    """
    check_int("num_classes", num_classes, low=2)
    check_int("dense_units", dense_units, low=1)
    check_choice("initializer", initializer, INITIALIZERS)
    check_float("dropout", dropout, low=0, high=1, closed="left")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, width in enumerate(filters):
        x = layers.Conv2D(check_int("filters", width, low=1), 3, padding="same", activation="relu",
                          kernel_initializer=initializer, kernel_regularizer=_regularizer(0.0, l2),
                          name=f"conv_{i}")(x)
        if i in pool_after:
            x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer=initializer,
                     kernel_regularizer=_regularizer(0.0, l2), name="dense")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer,
                           kernel_regularizer=_regularizer(0.0, l2), name="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_resnet18(input_shape, num_classes: int, *, l2: float = 0.0) -> keras.Model:
    """ResNet-18 for 32x32 images (the CIFAR variant: a 3x3 stem, no max pooling), with
    batch normalisation; four stages of two basic blocks, 64-128-256-512 filters."""
    check_int("num_classes", num_classes, low=2)
    regularizer = _regularizer(0.0, l2)

    def conv_bn(x, filters, stride, name, relu=True):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          kernel_regularizer=regularizer, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = conv_bn(inputs, 64, 1, "stem")
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            name = f"stage{stage}_block{block}"
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = conv_bn(x, filters, stride, f"{name}_a")
            y = conv_bn(y, filters, 1, f"{name}_b", relu=False)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                         kernel_regularizer=regularizer, name=f"{name}_proj")(shortcut)
                shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
            x = layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_regularizer=regularizer, name="softmax")(x)
    return keras.Model(inputs, outputs, name="resnet18")


BUILDERS = {"linear": build_linear, "mlp": build_mlp, "cnn": build_cnn, "resnet18": build_resnet18}


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
