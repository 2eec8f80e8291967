"""Model builders in the keras-io shape: ``keras.Input`` -> a chain of layers -> ``keras.Model``.

Every knob is a plain keyword argument named like its hyperparameter (``l2``,
``units``, ``dropout``, ...), so a tuner can pass sampled values straight through.
Compiling and fitting happen elsewhere (``compile.py``, ``training/``).

Every classifier ends in ``logits_layer``: a Dense layer with no activation, named "logits". The
softmax lives in the loss (``compile.classification_loss``, from_logits=True), which computes
log-softmax directly and so still passes a gradient when the softmax saturates;
``training.fit.predict_probabilities`` applies it for reports.
"""

from __future__ import annotations

import keras
from keras import layers, regularizers

from dlcv_keras.models.options import ACTIVATIONS, INITIALIZERS, MODELS
from dlcv_keras.validation import InvalidParameterError, check_choice, check_float, check_int, fail


def _regularizer(l1: float, l2: float):
    check_float("l1", l1, low=0)
    check_float("l2", l2, low=0)
    if l1 == 0 and l2 == 0:
        return None
    return regularizers.L1L2(l1=l1, l2=l2)


OUTPUT_LAYER = "logits"


def logits_layer(num_classes: int, **dense_kwargs) -> layers.Dense:
    """The output layer of every classifier here: dense(num_classes) with no activation, named
    ``OUTPUT_LAYER``. Its outputs are logits (unnormalised log-probabilities), not probabilities."""
    return layers.Dense(num_classes, activation=None, name=OUTPUT_LAYER, **dense_kwargs)


def keras_initializer(name: str):
    """The Keras initializer for ``name`` (one of INITIALIZERS): Keras's own name as it is, and
    "standard_normal" (IFT6135's N(0, 1); Keras's random_normal is N(0, 0.05^2)) as RandomNormal
    with stddev 1. Called once per layer: a RandomNormal object shared by layers would draw the
    same weights for every layer of the same shape."""
    check_choice("initializer", name, INITIALIZERS)
    return keras.initializers.RandomNormal(stddev=1.0) if name == "standard_normal" else name


def build_linear(input_shape, num_classes: int, *, l1: float = 0.0, l2: float = 0.0,
                 initializer: str = "glorot_uniform") -> keras.Model:
    """A single-layer softmax classifier: flatten -> dense(num_classes), whose logits the loss
    turns into softmax probabilities."""
    check_int("num_classes", num_classes, low=2)
    check_choice("initializer", initializer, INITIALIZERS)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Flatten(name="flatten")(inputs)
    outputs = logits_layer(num_classes, kernel_initializer=keras_initializer(initializer),
                           kernel_regularizer=_regularizer(l1, l2))(x)
    return keras.Model(inputs, outputs, name="linear")


def build_mlp(input_shape, num_classes: int, *, depth: int = 1, units: int | list[int] = 256,
              activation: str = "relu", dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0,
              initializer: str = "glorot_uniform") -> keras.Model:
    """A multilayer perceptron: flatten -> ``depth`` x (dense(units) -> activation -> dropout) -> logits.

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
        x = layers.Dense(width, kernel_initializer=keras_initializer(initializer),
                         kernel_regularizer=_regularizer(l1, l2), name=f"dense_{i}")(x)
        x = layers.Activation(activation, name=f"{activation}_{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
    outputs = logits_layer(num_classes, kernel_initializer=keras_initializer(initializer),
                           kernel_regularizer=_regularizer(l1, l2))(x)
    return keras.Model(inputs, outputs, name=f"mlp_{depth}x{'-'.join(map(str, widths))}")


def _image_input(input_shape, input_mean, input_variance):
    """``keras.Input``, then, when ``input_mean`` and ``input_variance`` are given (per-channel lists,
    adapted by the caller on the training split), the model's own standardisation as its first
    layer, named "normalize". Images arrive as float32 in [0, 1]. Returns (inputs, x)."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    if input_mean is None and input_variance is None:
        return inputs, inputs
    if input_mean is None or input_variance is None:
        raise InvalidParameterError(f"input_mean and input_variance must be given together, got "
                                    f"input_mean={input_mean!r}, input_variance={input_variance!r}")
    channels = inputs.shape[-1]
    for name, values, low in (("input_mean", input_mean, None), ("input_variance", input_variance, 0)):
        if not isinstance(values, (list, tuple)) or len(values) != channels:
            fail(name, f"a list of {channels} per-channel numbers", values)
        for value in values:
            check_float(name, value, low=low)
    x = layers.Normalization(mean=[float(v) for v in input_mean], variance=[float(v) for v in input_variance],
                             name="normalize")(inputs)
    return inputs, x


def _width(width: float) -> float:
    return check_float("width", width, low=0, high=16, closed="right")


def _scaled(count: int, width: float) -> int:
    """``count`` x ``width``, rounded to an int, at least 1."""
    return max(1, int(round(count * width)))


def build_cnn(input_shape, num_classes: int, *, filters=(18, 36, 72, 72), pool_after=(1, 2, 3),
              dense_units: int = 750, dropout: float = 0.0, l2: float = 0.0,
              initializer: str = "glorot_uniform", input_mean=None, input_variance=None) -> keras.Model:
    """q17's CNN: 3x3 'same' convs with ReLU, 2x2 max pooling after the convs listed in
    ``pool_after`` (0-based), then flatten -> dense(dense_units) -> logits.

    The defaults on 28x28x1 give the seed's 1->18->36->72->72, FC 648->750->10: 570,436 parameters.
    """
    check_int("num_classes", num_classes, low=2)
    check_int("dense_units", dense_units, low=1)
    check_choice("initializer", initializer, INITIALIZERS)
    check_float("dropout", dropout, low=0, high=1, closed="left")
    inputs, x = _image_input(input_shape, input_mean, input_variance)
    for i, width in enumerate(filters):
        x = layers.Conv2D(check_int("filters", width, low=1), 3, padding="same", activation="relu",
                          kernel_initializer=keras_initializer(initializer), kernel_regularizer=_regularizer(0.0, l2),
                          name=f"conv_{i}")(x)
        if i in pool_after:
            x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", kernel_initializer=keras_initializer(initializer),
                     kernel_regularizer=_regularizer(0.0, l2), name="dense")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = logits_layer(num_classes, kernel_initializer=keras_initializer(initializer),
                           kernel_regularizer=_regularizer(0.0, l2))(x)
    return keras.Model(inputs, outputs, name="cnn")


def build_tiny_cnn(input_shape, num_classes: int, *, l2: float = 0.0, dropout: float = 0.0,
                   initializer: str = "glorot_uniform", input_mean=None, input_variance=None) -> keras.Model:
    """q17's tiny CNN: the big CNN's pattern (double the channels while max pooling halves the
    image) at its smallest: conv 3x3 'same' 1->2 + ReLU, 2x2 max pool, conv 3x3 2->4 + ReLU,
    2x2 max pool, flatten, (dropout), dense -> logits.

    The seed gives only the count, 2,066 parameters on 28x28x1 -> 10; this layout hits it:
    conv_0 3*3*1*2 + 2 = 20, conv_1 3*3*2*4 + 4 = 76, logits (7*7*4 = 196) * 10 + 10 = 1,970.
    (No "a few convs, global average pooling, dense" layout with round channel counts adds up to
    2,066; this one does, and is the seed's own CNN shrunk.)
    """
    check_int("num_classes", num_classes, low=2)
    check_choice("initializer", initializer, INITIALIZERS)
    check_float("dropout", dropout, low=0, high=1, closed="left")
    inputs, x = _image_input(input_shape, input_mean, input_variance)
    for i, width in enumerate((2, 4)):
        x = layers.Conv2D(width, 3, padding="same", activation="relu",
                          kernel_initializer=keras_initializer(initializer),
                          kernel_regularizer=_regularizer(0.0, l2), name=f"conv_{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = logits_layer(num_classes, kernel_initializer=keras_initializer(initializer),
                           kernel_regularizer=_regularizer(0.0, l2))(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


# PyTorch's BatchNorm2d defaults, which the seeds' ResNet-18 used: its moving statistics follow the
# batches with weight 0.1 (Keras's default 0.01 leaves them far behind the weights in a short run,
# and validation accuracy far below training accuracy) and epsilon 1e-5.
PYTORCH_BATCH_NORM = {"momentum": 0.9, "epsilon": 1e-5}


def build_resnet18(input_shape, num_classes: int, *, width: float = 1.0, l2: float = 0.0,
                   dropout_first: float = 0.0, dropout_head: float = 0.0,
                   input_mean=None, input_variance=None) -> keras.Model:
    """ResNet-18 for 32x32 images (the CIFAR variant: a 3x3 stem, no max pooling), with batch
    normalisation: four stages of two basic blocks, 64-128-256-512 filters x ``width`` (rounded,
    at least 1); a 1x1 projection (+ batch norm) where a block changes shape. At width 1 on
    32x32x3 -> 10: 11,173,962 trainable parameters (PyTorch's count), 11,183,562 with the batch
    norms' moving statistics (Keras's ``count_params``).

    ``dropout_first``: dropout after the stem conv (its batch norm and ReLU: q11's "after the first
    conv"); ``dropout_head``: dropout after global average pooling, before the classifier.
    Layer names: "normalize" (if given), "stem_conv" (the first-layer filters), "stem_bn",
    "stem_relu", "stem_dropout", "stage{i}_block{j}_{a,b}_{conv,bn,relu}", "..._proj(_bn)",
    "..._add", "..._out", "pool" (the backbone's features), "head_dropout", "logits".
    """
    check_int("num_classes", num_classes, low=2)
    width = _width(width)
    check_float("dropout_first", dropout_first, low=0, high=1, closed="left")
    check_float("dropout_head", dropout_head, low=0, high=1, closed="left")
    regularizer = _regularizer(0.0, l2)

    def conv_bn(x, filters, stride, name, relu=True):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          kernel_regularizer=regularizer, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(**PYTORCH_BATCH_NORM, name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x) if relu else x

    inputs, x = _image_input(input_shape, input_mean, input_variance)
    x = conv_bn(x, _scaled(64, width), 1, "stem")
    if dropout_first > 0:
        x = layers.Dropout(dropout_first, name="stem_dropout")(x)
    for stage, base in enumerate((64, 128, 256, 512)):
        filters = _scaled(base, width)
        for block in range(2):
            name = f"stage{stage}_block{block}"
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = conv_bn(x, filters, stride, f"{name}_a")
            y = conv_bn(y, filters, 1, f"{name}_b", relu=False)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                         kernel_regularizer=regularizer, name=f"{name}_proj")(shortcut)
                shortcut = layers.BatchNormalization(**PYTORCH_BATCH_NORM, name=f"{name}_proj_bn")(shortcut)
            x = layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout_head > 0:
        x = layers.Dropout(dropout_head, name="head_dropout")(x)
    outputs = logits_layer(num_classes, kernel_regularizer=regularizer)(x)
    return keras.Model(inputs, outputs, name="resnet18")


# VGG-11 (configuration "A" of Simonyan & Zisserman): filters per block, one or two 3x3 convs each.
VGG_BLOCKS = ((64, 1), (128, 1), (256, 2), (512, 2), (512, 2))


def build_vgg(input_shape, num_classes: int, *, width: float = 1.0, dense_units: int = 4096,
              dropout: float = 0.5, l2: float = 0.0, input_mean=None, input_variance=None) -> keras.Model:
    """q18's VGG-style net for 64x64x3 cats vs dogs: VGG-11's conv layout (``VGG_BLOCKS``: blocks of
    64, 128, 256x2, 512x2, 512x2 3x3 'same' convs with ReLU, each block ending in 2x2 max pooling,
    64 -> 2 pixels), flatten, then dropout -> FC -> ReLU, dropout -> FC -> ReLU, dropout -> FC (logits).

    ``width`` scales the conv filters and the FC widths (round(dense_units * width), at least 1);
    at width 1 the FC is the seed's 4096-4096-2. Glorot ("Xavier") initialisation, as the seed.
    On 64x64x3 -> 2: 34,402,690 parameters at width 1 (9,220,480 in the convs), 539,826 at width 0.125.
    """
    check_int("num_classes", num_classes, low=2)
    width = _width(width)
    check_int("dense_units", dense_units, low=1)
    check_float("dropout", dropout, low=0, high=1, closed="left")
    regularizer = _regularizer(0.0, l2)
    inputs, x = _image_input(input_shape, input_mean, input_variance)
    for block, (filters, convs) in enumerate(VGG_BLOCKS):
        for i in range(convs):
            x = layers.Conv2D(_scaled(filters, width), 3, padding="same", activation="relu",
                              kernel_regularizer=regularizer, name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    units = _scaled(dense_units, width)
    for i in range(2):
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"dropout_{i}")(x)
        x = layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"dense_{i}")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout_2")(x)
    outputs = logits_layer(num_classes, kernel_regularizer=regularizer)(x)
    return keras.Model(inputs, outputs, name="vgg")


def build_resnet18_transfer(input_shape, num_classes: int, *, weights: str, mode: str = "finetune",
                            l2: float = 0.0, dropout_head: float = 0.0, width: float = 1.0,
                            input_mean=None, input_variance=None) -> keras.Model:
    """q10's ResNet-18 from pretrained weights (models/pretrained.py, which builds on build_resnet18).
    ``width`` and the input statistics apply to a .weights.h5 backbone of ours; a keras-hub preset
    brings its own architecture and ImageNet normalisation."""
    from dlcv_keras.models.pretrained import build_resnet18_transfer as build

    ours = {"width": width, "input_mean": input_mean, "input_variance": input_variance}
    return build(input_shape, num_classes, weights=weights, mode=mode, l2=l2, dropout_head=dropout_head,
                 **{k: v for k, v in ours.items() if v is not None})


BUILDERS = {"linear": build_linear, "mlp": build_mlp, "cnn": build_cnn, "tiny_cnn": build_tiny_cnn,
            "resnet18": build_resnet18, "vgg": build_vgg, "resnet18_transfer": build_resnet18_transfer}


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
