"""Modules built on the layer pairs in ``layers.py``, a container, and the classifier that
``q3 --impl scratch`` trains.

A ``Module`` has a ``params`` dict (empty if it has no parameters) and two methods:

- ``forward(x, training=False) -> (out, cache)``
- ``backward(dout, cache) -> (dx, grads)``, with ``grads`` keyed like ``params``.

``Sequential`` chains modules and names them (``dense_0``, ``relu_0``, ...), so a
parameter is addressed as ``"dense_0.W"``. ``Classifier`` mirrors
``dlcv_keras.models.builders.build_mlp`` layer for layer, with the same argument names,
initialisers and layer names, so its parameter table and (given the same weights) its
predictions match the Keras model's.
"""

from __future__ import annotations

import math

import numpy as np

from dlcv_keras.scratch.layers import (
    affine_backward, affine_forward, dropout_backward, dropout_forward, l2_penalty,
    leaky_relu_backward, leaky_relu_forward, relu_backward, relu_forward, sigmoid_backward,
    sigmoid_forward, softmax, softmax_cross_entropy, tanh_backward, tanh_forward,
)
from dlcv_keras.models.options import INITIALIZERS
from dlcv_keras.validation import check_choice, check_float, check_int, fail

# build_mlp's activations (models/options.py) that have a hand-written backward here: not elu, gelu.
ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "linear")
# Settings a Keras run may use that the Classifier and its plain-SGD solver can train: name -> allowed values.
TRAINABLE = {"activation": ACTIVATIONS, "optimizer": ("sgd",), "momentum": (0, 0.0), "l1": (0, 0.0),
             "augment": ("none", "flip")}


def untrainable(values: dict) -> str | None:
    """What in ``values`` (hyperparameter -> value) the scratch implementation cannot train, or None."""
    for key, allowed in TRAINABLE.items():
        if key in values and values[key] not in allowed:
            return (f"{key} must be one of {', '.join(map(repr, dict.fromkeys(allowed)))} for --impl scratch "
                    f"(hand-written modules, plain SGD), got {values[key]!r}")
    return None
# keras.activations.leaky_relu's default slope, used by Activation("leaky_relu") in build_mlp.
KERAS_LEAKY_RELU_ALPHA = 0.2


class ParamDict(dict):
    """A dict of the parameter arrays the modules compute with.

    Assigning to an existing key copies the new values INTO the array
    (``d[key][...] = value``) instead of replacing it, so code written for cs231n's
    Solver (``model.params[k] = next_w``) still changes the network.
    """

    def __setitem__(self, key, value):
        if key in self:
            self[key][...] = value
        else:
            super().__setitem__(key, value)


# ## Initialisers: the formulas of keras.initializers, drawn with numpy


def initial_weights(initializer, fan_in, fan_out, rng, dtype=np.float32):
    """A (fan_in, fan_out) weight matrix drawn like the Keras initialiser of the same name.

    - glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))
    - glorot_normal: normal with std sqrt(2 / (fan_in + fan_out)), truncated at 2 std
    - he_uniform: U(-limit, limit), limit = sqrt(6 / fan_in)
    - he_normal: normal with std sqrt(2 / fan_in), truncated at 2 std
    - random_normal: N(0, 0.05**2); random_uniform: U(-0.05, 0.05); zeros
    - standard_normal: N(0, 1), IFT6135's "Normal" (RandomNormal(stddev=1.0) in Keras)

    Keras divides the truncated normal's std by 0.8796..., the std of a standard
    normal truncated at +-2, so the truncated draw ends up with the intended std.
    """
    shape = (fan_in, fan_out)
    if initializer == "zeros":
        w = np.zeros(shape)
    elif initializer == "random_normal":
        w = rng.normal(0.0, 0.05, shape)
    elif initializer == "standard_normal":
        w = rng.standard_normal(shape)
    elif initializer == "random_uniform":
        w = rng.uniform(-0.05, 0.05, shape)
    else:
        # Keras's VarianceScaling: variance = scale / n, with n the fan it averages over.
        family, distribution = initializer.split("_")
        scale, n = (1.0, (fan_in + fan_out) / 2) if family == "glorot" else (2.0, fan_in)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * scale / n)
            w = rng.uniform(-limit, limit, shape)
        else:
            w = _truncated_normal(rng, math.sqrt(scale / n) / 0.87962566103423978, shape)
    return w.astype(dtype)


def _truncated_normal(rng, std, shape):
    """Normal draws with |w| <= 2 std: redraw the ones outside, as tf.random.truncated_normal does."""
    w = rng.normal(0.0, std, shape)
    outside = np.abs(w) > 2 * std
    while outside.any():
        w[outside] = rng.normal(0.0, std, outside.sum())
        outside = np.abs(w) > 2 * std
    return w


# ## Modules


class Module:
    """Base class. ``kind`` is the name prefix ``Sequential`` gives unnamed modules."""

    kind = "module"

    def __init__(self):
        self.params = ParamDict()

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout, cache):
        raise NotImplementedError

    def output_shape(self, input_shape):
        """Shape of one example's output, given one example's input shape (no batch axis)."""
        return tuple(input_shape)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Affine(Module):
    """Fully connected layer ``x @ W + b``; W has shape (in_dim, out_dim), like a Keras Dense kernel.

    ``weight_scale``, if given, replaces the initialiser with cs231n's
    ``weight_scale * randn(in_dim, out_dim)``. The bias starts at zero.
    """

    kind = "dense"

    def __init__(self, in_dim, out_dim, *, initializer="glorot_uniform", rng,
                 dtype=np.float32, weight_scale=None):
        super().__init__()
        check_int("in_dim", in_dim, low=1)
        check_int("out_dim", out_dim, low=1)
        check_choice("initializer", initializer, INITIALIZERS)
        self.in_dim, self.out_dim, self.initializer = in_dim, out_dim, initializer
        if weight_scale is None:
            w = initial_weights(initializer, in_dim, out_dim, rng, dtype)
        else:
            check_float("weight_scale", weight_scale, low=0, closed="right")
            w = (weight_scale * rng.standard_normal((in_dim, out_dim))).astype(dtype)
            self.initializer = f"weight_scale={weight_scale:g}"
        self.params["W"] = w
        self.params["b"] = np.zeros(out_dim, dtype=dtype)

    def forward(self, x, training=False):
        return affine_forward(x, self.params["W"], self.params["b"])

    def backward(self, dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        return dx, {"W": dw, "b": db}

    def output_shape(self, input_shape):
        return (self.out_dim,)

    def __repr__(self):
        return f"Affine({self.in_dim} -> {self.out_dim}, {self.initializer})"


class ReLU(Module):
    kind = "relu"

    def forward(self, x, training=False):
        return relu_forward(x)

    def backward(self, dout, cache):
        return relu_backward(dout, cache), {}


class Sigmoid(Module):
    kind = "sigmoid"

    def forward(self, x, training=False):
        return sigmoid_forward(x)

    def backward(self, dout, cache):
        return sigmoid_backward(dout, cache), {}


class Tanh(Module):
    kind = "tanh"

    def forward(self, x, training=False):
        return tanh_forward(x)

    def backward(self, dout, cache):
        return tanh_backward(dout, cache), {}


class LeakyReLU(Module):
    kind = "leaky_relu"

    def __init__(self, alpha=0.01):
        super().__init__()
        self.alpha = check_float("alpha", alpha, low=0)

    def forward(self, x, training=False):
        return leaky_relu_forward(x, self.alpha)

    def backward(self, dout, cache):
        return leaky_relu_backward(dout, cache), {}

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha:g})"


class Identity(Module):
    """The "linear" activation: passes values and gradients through unchanged."""

    kind = "linear"

    def forward(self, x, training=False):
        return x, None

    def backward(self, dout, cache):
        return dout, {}


class Dropout(Module):
    """Inverted dropout that drops a fraction ``rate`` of units in training only."""

    kind = "dropout"

    def __init__(self, rate, rng):
        super().__init__()
        self.rate = check_float("rate", rate, low=0, high=1, closed="left")
        self.rng = rng

    def forward(self, x, training=False):
        mode = "train" if training and self.rate > 0 else "test"
        return dropout_forward(x, self.rate, mode, self.rng)

    def backward(self, dout, cache):
        return dropout_backward(dout, cache), {}

    def __repr__(self):
        return f"Dropout(rate={self.rate:g})"


class Flatten(Module):
    """Reshape (N, d_1, ..., d_k) to (N, d_1 * ... * d_k)."""

    kind = "flatten"

    def forward(self, x, training=False):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, cache):
        return dout.reshape(cache), {}

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)


def make_activation(name):
    """The module for an activation name in ``ACTIVATIONS``; leaky_relu uses Keras's slope 0.2."""
    check_choice("activation", name, ACTIVATIONS)
    if name == "leaky_relu":
        return LeakyReLU(KERAS_LEAKY_RELU_ALPHA)
    return {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "linear": Identity}[name]()


class Sequential(Module):
    """Modules applied in order.

    ``modules`` is a list (names are made from each module's ``kind`` and a per-kind
    count: ``dense_0``, ``relu_0``, ``dense_1``, ...) or a dict name -> module.
    Parameters are addressed as ``"<module name>.<param name>"``, e.g. ``"dense_0.W"``.
    """

    kind = "sequential"

    def __init__(self, modules):
        super().__init__()
        if isinstance(modules, dict):
            self.modules = dict(modules)
        else:
            self.modules, counts = {}, {}
            for module in modules:
                i = counts[module.kind] = counts.get(module.kind, -1) + 1
                self.modules[f"{module.kind}_{i}"] = module
        for name, module in self.modules.items():
            if not isinstance(module, Module):
                fail(f"modules[{name!r}]", "a Module", module)
        self.params = self.parameters()

    def parameters(self):
        """Flat ParamDict "<module>.<param>" -> the live array that module computes with."""
        params = ParamDict()
        for name, module in self.modules.items():
            for key, value in module.params.items():
                params[f"{name}.{key}"] = value
        return params

    def forward(self, x, training=False):
        """Returns (out, caches): the last module's output and one cache per module."""
        caches = []
        for module in self.modules.values():
            x, cache = module.forward(x, training)
            caches.append(cache)
        return x, caches

    def backward(self, dout, caches):
        """Returns (dx, grads): the input gradient and a flat dict keyed like ``parameters()``."""
        grads = {}
        for (name, module), cache in zip(reversed(self.modules.items()), reversed(caches)):
            dout, module_grads = module.backward(dout, cache)
            for key, value in module_grads.items():
                grads[f"{name}.{key}"] = value
        return dout, grads

    def output_shape(self, input_shape):
        for module in self.modules.values():
            input_shape = module.output_shape(input_shape)
        return input_shape

    def __repr__(self):
        lines = [f"  ({name}): {module!r}" for name, module in self.modules.items()]
        return "Sequential(\n" + "\n".join(lines) + "\n)"


# ## The classifier q3 --impl scratch trains


class Classifier:
    """An MLP classifier: flatten -> ``depth`` x (Affine -> activation -> Dropout) -> Affine,
    trained with softmax cross-entropy plus an L2 penalty on the Affine weight matrices.

    Mirrors ``build_mlp`` (same arguments, initialisers, layer names and L2 convention)
    and meets cs231n's Solver contract: a ``params`` dict and ``loss(x, y=None)``.

    Inputs:
    - input_shape: shape of one example, e.g. (28, 28, 1)
    - num_classes: C, at least 2
    - depth: number of hidden layers, 1 to 100
    - units: one width for every hidden layer, or a list of ``depth`` widths
    - activation: one of ACTIVATIONS
    - dropout: drop rate after each hidden activation, in [0, 1); 0 adds no Dropout module
    - l2: penalty ``l2 * sum(W**2)`` per weight matrix (biases are not penalised)
    - initializer: one of INITIALIZERS
    - seed: seeds the weights and the dropout masks
    - dtype: np.float32 or np.float64
    """

    def __init__(self, input_shape, num_classes, *, depth=1, units=256, activation="relu",
                 dropout=0.0, l2=0.0, initializer="glorot_uniform", seed=0, dtype=np.float32):
        self.input_shape = check_shape("input_shape", input_shape)
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.depth = check_int("depth", depth, low=1, high=100)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.dropout = check_float("dropout", dropout, low=0, high=1, closed="left")
        self.l2 = check_float("l2", l2, low=0)
        self.initializer = check_choice("initializer", initializer, INITIALIZERS)
        self.seed = check_int("seed", seed, low=0)
        self.dtype = check_dtype(dtype)
        self.units = _check_widths(units, depth)

        rng = np.random.default_rng(seed)
        layers = {"flatten": Flatten()}
        in_dim = math.prod(self.input_shape)
        for i, width in enumerate(self.units):
            layers[f"dense_{i}"] = Affine(in_dim, width, initializer=initializer, rng=rng,
                                          dtype=self.dtype)
            layers[f"{activation}_{i}"] = make_activation(activation)
            if dropout > 0:
                layers[f"dropout_{i}"] = Dropout(dropout, rng)
            in_dim = width
        layers["logits"] = Affine(in_dim, num_classes, initializer=initializer, rng=rng,
                                  dtype=self.dtype)
        self.net = Sequential(layers)
        self.params = self.net.params
        # Only weight matrices are penalised, as kernel_regularizer does in Keras.
        self.weight_keys = [f"{name}.W" for name, m in layers.items() if isinstance(m, Affine)]
        self.loss_parts = {"data_loss": None, "penalty": None}

    def adapt(self, x):
        """Nothing to fit on the training split: the layers take inputs as they come (``solver.train``
        calls this on every model; the two-layer net of q7 fits its input transform here)."""
        return self

    def features(self, x):
        """The inputs as the layers compute on them: ``x`` itself, in this network's dtype."""
        return np.asarray(x, dtype=self.dtype)

    def loss_and_gradients(self, x, y, training=True, with_scores=False):
        """Data loss, penalty and gradients for one batch.

        Inputs:
        - x: shape (N, *input_shape)
        - y: integer labels, shape (N,)
        - training: apply dropout (True) or not
        - with_scores: also return the class scores, so a training loop can count correct
          predictions without a second forward pass

        Returns a tuple of:
        - data_loss: mean softmax cross-entropy (float)
        - penalty: l2 * sum of squared weight matrices (float)
        - grads: dict keyed like ``params``, gradients of data_loss + penalty
        - scores: (only if with_scores) class scores before the softmax, shape (N, C)
        """
        x = np.asarray(x, dtype=self.dtype)
        scores, caches = self.net.forward(x, training)
        data_loss, dscores = softmax_cross_entropy(scores, np.asarray(y))
        _, grads = self.net.backward(dscores, caches)
        penalty = 0.0
        if self.l2 > 0:
            weights = [self.params[key] for key in self.weight_keys]
            penalty, weight_grads = l2_penalty(weights, self.l2)
            for key, grad in zip(self.weight_keys, weight_grads):
                grads[key] += grad
        if with_scores:
            return data_loss, penalty, grads, scores
        return data_loss, penalty, grads

    def penalty(self):
        """The current L2 penalty, ``l2 * sum(W**2)`` over the weight matrices (float)."""
        if self.l2 == 0:
            return 0.0
        return l2_penalty([self.params[key] for key in self.weight_keys], self.l2)[0]

    def loss(self, x, y=None, training=None):
        """cs231n's model contract.

        - ``y`` is None: returns class probabilities, shape (N, C).
        - otherwise: returns ``(loss, grads)`` with loss = data loss + L2 penalty, the same
          total Keras reports as ``loss``; the two parts are kept in ``self.loss_parts``.

        ``training=None`` means cs231n's rule: dropout on when y is given, off when it is not.
        """
        if y is None:
            scores, _ = self.net.forward(np.asarray(x, dtype=self.dtype), bool(training))
            return softmax(scores)
        data_loss, penalty, grads = self.loss_and_gradients(x, y, True if training is None else training)
        self.loss_parts = {"data_loss": data_loss, "penalty": penalty}
        return data_loss + penalty, grads

    def logits(self, x, batch_size=1024):
        """Class scores before the softmax, shape (N, C), computed in batches with dropout off
        (what ``training.fit.evaluate_classifier`` reads, as it reads a Keras model's outputs)."""
        check_int("batch_size", batch_size, low=1)
        x = np.asarray(x, dtype=self.dtype)
        batches = [self.net.forward(x[i:i + batch_size], False)[0] for i in range(0, len(x), batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, self.num_classes), self.dtype)

    def predict(self, x, batch_size=1024, verbose=0):
        """Class probabilities, shape (N, C): the softmax of ``logits``.

        Same signature as ``keras.Model.predict`` so evaluation code works on both;
        ``verbose`` is accepted and ignored.
        """
        return softmax(self.logits(x, batch_size))

    def parameters(self):
        """ParamDict "<layer>.<param>" -> live array (an optimizer updates these in place)."""
        return self.params

    def count_params(self):
        return int(sum(p.size for p in self.params.values()))

    def parameter_table(self):
        """One row per layer, in the format of ``dlcv_keras.models.builders.parameter_table``
        and with the same layer names, including the input row ("image")."""
        shape = self.input_shape
        rows = [{"layer": "image", "type": "Input", "output_shape": batch_shape(shape), "params": 0}]
        for name, module in self.net.modules.items():
            shape = module.output_shape(shape)
            rows.append({"layer": name, "type": type(module).__name__,
                         "output_shape": batch_shape(shape),
                         "params": int(sum(p.size for p in module.params.values()))})
        return rows

    def __repr__(self):
        head = (f"Classifier(input_shape={self.input_shape}, num_classes={self.num_classes}, "
                f"depth={self.depth}, units={self.units}, activation={self.activation!r}, "
                f"dropout={self.dropout:g}, l2={self.l2:g}, params={self.count_params()})")
        return head + "\n" + repr(self.net)


def batch_shape(shape):
    """A layer's output shape as the parameter tables print it: "(batch, 256)"."""
    return str((None, *shape)).replace("None", "batch")


def check_shape(name, shape):
    """``shape`` as a tuple of positive ints (one example's shape); InvalidParameterError otherwise."""
    if not isinstance(shape, (tuple, list)) or not shape:
        fail(name, "a non-empty tuple of positive ints", shape)
    for dim in shape:
        check_int(f"{name} entries", dim, low=1)
    return tuple(shape)


def _check_widths(units, depth):
    widths = list(units) if isinstance(units, (list, tuple)) else [units] * depth
    if len(widths) != depth:
        fail("units", f"one int or a list of depth={depth} ints", units)
    for width in widths:
        check_int("units", width, low=1)
    return widths


def check_dtype(dtype):
    """np.float32 or np.float64, from any spelling numpy understands; InvalidParameterError otherwise."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    check_choice("dtype", name, ("float32", "float64"))
    return np.dtype(name).type
