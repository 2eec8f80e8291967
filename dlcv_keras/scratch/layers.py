"""Layers as pairs of plain numpy functions, in the shape of cs231n's ``layers.py``.

Every ``*_forward`` returns ``(out, cache)``; the cache holds exactly what the
matching ``*_backward(dout, cache)`` needs to turn the upstream gradient ``dout``
into the gradient with respect to the inputs (and the parameters, if any).

All functions keep the dtype they are given: float32 in gives float32 out, float64
in gives float64 out (the gradient checks in the tests run in float64).
"""

from __future__ import annotations

import numpy as np


def affine_forward(x, w, b):
    """Fully connected layer: ``out = x.reshape(N, D) @ w + b``.

    Inputs:
    - x: array of shape (N, d_1, ..., d_k); each example is flattened to D = d_1 * ... * d_k
    - w: weights, shape (D, M)
    - b: biases, shape (M,)

    Returns a tuple of:
    - out: shape (N, M)
    - cache: (x, w), what the backward pass needs
    """
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w)


def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs:
    - dout: upstream gradient, shape (N, M)
    - cache: (x, w) from the forward pass; x of shape (N, d_1, ..., d_k), w of shape (D, M)

    Returns a tuple of:
    - dx: shape (N, d_1, ..., d_k), the same shape as x
    - dw: shape (D, M)
    - db: shape (M,)
    """
    x, w = cache
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    """Rectified linear unit, ``max(0, x)``.

    Inputs:
    - x: array of any shape

    Returns a tuple of:
    - out: the same shape as x
    - cache: x
    """
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """Backward pass of ``relu_forward``: the gradient flows only where x > 0.

    Inputs:
    - dout: upstream gradient, any shape
    - cache: x, the same shape as dout

    Returns:
    - dx: the same shape as dout
    """
    x = cache
    return dout * (x > 0)


def sigmoid_forward(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow.

    ``exp(-|x|)`` is at most 1, so neither branch below can overflow, even for x = -1000.

    Inputs:
    - x: array of any shape

    Returns a tuple of:
    - out: the same shape as x, values in [0, 1]
    - cache: out (the derivative is out * (1 - out))
    """
    z = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
    return out, out


def sigmoid_backward(dout, cache):
    """Backward pass of ``sigmoid_forward``.

    Inputs:
    - dout: upstream gradient, any shape
    - cache: out = sigmoid(x), the same shape as dout

    Returns:
    - dx: the same shape as dout
    """
    out = cache
    return dout * out * (1 - out)


def tanh_forward(x):
    """Hyperbolic tangent.

    Inputs:
    - x: array of any shape

    Returns a tuple of:
    - out: the same shape as x, values in [-1, 1]
    - cache: out (the derivative is 1 - out**2)
    """
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """Backward pass of ``tanh_forward``.

    Inputs:
    - dout: upstream gradient, any shape
    - cache: out = tanh(x), the same shape as dout

    Returns:
    - dx: the same shape as dout
    """
    out = cache
    return dout * (1 - out * out)


def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU: x where x > 0, ``alpha * x`` elsewhere.

    Note: Keras's ``activation="leaky_relu"`` uses alpha = 0.2, not 0.01.

    Inputs:
    - x: array of any shape
    - alpha: slope for negative inputs

    Returns a tuple of:
    - out: the same shape as x
    - cache: (x, alpha)
    """
    out = np.where(x > 0, x, alpha * x).astype(x.dtype, copy=False)
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    """Backward pass of ``leaky_relu_forward``.

    Inputs:
    - dout: upstream gradient, any shape
    - cache: (x, alpha); x has the same shape as dout

    Returns:
    - dx: the same shape as dout
    """
    x, alpha = cache
    return np.where(x > 0, dout, alpha * dout).astype(dout.dtype, copy=False)


def dropout_forward(x, rate, mode, rng):
    """Inverted dropout: in training, zero each unit with probability ``rate`` and scale
    the survivors by ``1 / (1 - rate)``, so the expected activation is unchanged and the
    test pass needs no rescaling. ``rate`` is the fraction DROPPED, as in Keras
    (cs231n's ``p`` is the fraction kept).

    Inputs:
    - x: array of any shape
    - rate: drop probability in [0, 1)
    - mode: "train" (drop) or "test" (identity)
    - rng: a ``numpy.random.Generator`` that draws the mask

    Returns a tuple of:
    - out: the same shape as x
    - cache: (mask, mode); mask has the shape of x in train mode, None in test mode
    """
    if mode == "train":
        keep = rng.random(x.shape) >= rate
        mask = (keep / (1 - rate)).astype(x.dtype)
        out = x * mask
    elif mode == "test":
        mask = None
        out = x
    else:
        raise ValueError(f"mode must be one of 'train', 'test', got {mode!r}")
    return out, (mask, mode)


def dropout_backward(dout, cache):
    """Backward pass of ``dropout_forward``: the same mask gates the gradient.

    Inputs:
    - dout: upstream gradient, any shape
    - cache: (mask, mode) from the forward pass

    Returns:
    - dx: the same shape as dout
    """
    mask, mode = cache
    if mode == "train":
        return dout * mask
    return dout


def softmax(scores):
    """Row-wise softmax. Subtracting each row's maximum first leaves the result unchanged
    but keeps ``exp`` from overflowing.

    Inputs:
    - scores: shape (N, C)

    Returns:
    - probs: shape (N, C); every row is positive and sums to 1
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def softmax_cross_entropy(scores, y):
    """Mean softmax cross-entropy loss over a batch, and its gradient.

    Inputs:
    - scores: class scores (logits), shape (N, C)
    - y: integer labels, shape (N,), each in [0, C)

    Returns a tuple of:
    - loss: a Python float, the mean of -log softmax(scores)[i, y[i]]
    - dscores: gradient of the loss with respect to scores, shape (N, C)
    """
    n = scores.shape[0]
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, y].mean()
    dscores = np.exp(log_probs)
    dscores[rows, y] -= 1
    dscores /= n  # the loss is a mean over the batch
    return float(loss), dscores


def l2_penalty(weights, lam):
    """L2 weight penalty ``lam * sum_W sum(W**2)``, the same as ``keras.regularizers.L2(lam)``
    (no factor 1/2), so losses from our runs and Keras runs compare directly.

    Inputs:
    - weights: list of weight arrays (any shapes); biases are usually left out
    - lam: regularisation strength, >= 0

    Returns a tuple of:
    - loss: a Python float
    - grads: list of arrays, ``2 * lam * W`` for each W, same shapes and dtypes
    """
    lam = float(lam)  # a Python float keeps float32 weights float32 (a numpy float64 would not)
    loss = lam * sum(float(np.sum(w * w)) for w in weights)
    grads = [(2 * lam) * w for w in weights]
    return float(loss), grads
