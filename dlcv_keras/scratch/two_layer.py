"""The two-layer network of the HLCV / cs231n assignment (q6), fully vectorised in numpy.

input -> fully connected -> ReLU -> fully connected -> softmax, trained with softmax
cross-entropy plus ``reg * (sum(W1**2) + sum(W2**2))``.

``init_toy_data`` and ``init_toy_model`` rebuild the assignment's toy problem exactly
(same seeds, same draw order), so the forward pass can be checked against the
reference numbers below, which the seed write-up reports.

``TwoLayerClassifier`` is the same network on images (q7's CIFAR-10), fed as the exercise
feeds them and trained by ``solver.train`` like q3's ``nn.Classifier``.
"""

from __future__ import annotations

import math

import numpy as np

from dlcv_keras.scratch.gradient_check import eval_numerical_gradient, rel_error
from dlcv_keras.scratch.layers import softmax
from dlcv_keras.scratch.nn import batch_shape, check_dtype, check_shape
from dlcv_keras.validation import check_float, check_int, fail

# Softmax probabilities of the toy model on the toy data (HLCV's version of the check).
REFERENCE_SCORES = np.array([
    [0.36446210, 0.22911264, 0.40642526],
    [0.47590629, 0.17217039, 0.35192332],
    [0.43035767, 0.26164229, 0.30800004],
    [0.41583127, 0.29832280, 0.28584593],
    [0.36328815, 0.32279939, 0.31391246],
])
# Loss of the toy model on the toy data with reg = 0.05.
REFERENCE_LOSS = 1.30378789133

TOY_INPUT_SIZE, TOY_HIDDEN_SIZE, TOY_NUM_CLASSES, TOY_NUM_INPUTS = 4, 10, 3, 5


class TwoLayerNet:
    """A two-layer fully connected network with a ReLU hidden layer.

    Inputs:
    - input_size: D, the input dimension
    - hidden_size: H, the number of hidden units
    - output_size: C, the number of classes
    - std: weights start as std * standard normal draws; biases start at zero
    - seed: seeds a private RandomState (the global numpy state is left alone)

    ``params`` holds W1 (D, H), b1 (H,), W2 (H, C), b2 (C,).
    """

    def __init__(self, input_size, hidden_size, output_size, std=1e-1, seed=0):
        check_int("input_size", input_size, low=1)
        check_int("hidden_size", hidden_size, low=1)
        check_int("output_size", output_size, low=1)
        check_float("std", std, low=0, closed="right")
        # RandomState(seed).randn draws the same numbers as np.random.seed(seed); np.random.randn,
        # the assignment's recipe, in the same order: W1 first, then W2.
        rng = np.random.RandomState(seed)
        self.params = {
            "W1": std * rng.randn(input_size, hidden_size),
            "b1": np.zeros(hidden_size),
            "W2": std * rng.randn(hidden_size, output_size),
            "b2": np.zeros(output_size),
        }

    def loss(self, X, y=None, reg=0.0, parts=False):
        """Probabilities, or loss and gradients, for a batch.

        Inputs:
        - X: inputs, shape (N, D)
        - y: integer labels, shape (N,), or None
        - reg: L2 strength; the penalty is reg * (sum(W1**2) + sum(W2**2))
        - parts: return the loss's two terms and the probabilities too (see below)

        Returns:
        - if y is None: probs, shape (N, C), the softmax of the class scores
        - otherwise a tuple (loss, grads): loss a float, grads a dict with the keys and
          shapes of ``params``
        - with parts: a tuple (data_loss, penalty, grads, probs), so a training loop can log
          both terms and count correct predictions without a second forward pass
        """
        W1, W2 = self.params["W1"], self.params["W2"]
        N = X.shape[0]

        # Forward pass.
        hidden, scores = self._forward(X)                         # (N, H), (N, C)
        shifted = scores - scores.max(axis=1, keepdims=True)     # no overflow in exp
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        probs = np.exp(log_probs)                                 # (N, C)
        if y is None:
            return probs

        rows = np.arange(N)
        data_loss = -log_probs[rows, y].mean()
        penalty = self.penalty(reg)
        loss = data_loss + penalty

        # Backward pass: d(mean CE)/d(scores) = (probs - one_hot(y)) / N.
        dscores = probs.copy()
        dscores[rows, y] -= 1
        dscores /= N
        dhidden = dscores @ W2.T                                  # (N, H)
        dhidden[hidden <= 0] = 0                                  # ReLU passes gradient only where active
        grads = {
            "W1": X.T @ dhidden + 2 * reg * W1,
            "b1": dhidden.sum(axis=0),
            "W2": hidden.T @ dscores + 2 * reg * W2,
            "b2": dscores.sum(axis=0),
        }
        if parts:
            return float(data_loss), penalty, grads, probs
        return float(loss), grads

    def scores(self, X):
        """Class scores before the softmax (logits), shape (N, C), for inputs X of shape (N, D)."""
        return self._forward(X)[1]

    def _forward(self, X):
        """The forward pass: (hidden ReLU activations (N, H), class scores (N, C))."""
        hidden = np.maximum(0, X @ self.params["W1"] + self.params["b1"])
        return hidden, hidden @ self.params["W2"] + self.params["b2"]

    def penalty(self, reg):
        """The L2 term of the loss, reg * (sum(W1**2) + sum(W2**2)), as a float."""
        W1, W2 = self.params["W1"], self.params["W2"]
        return float(reg * (np.sum(W1 * W1) + np.sum(W2 * W2)))

    def train(self, X, y, X_val, y_val, learning_rate=1e-1, learning_rate_decay=0.95,
              reg=5e-6, num_iters=100, batch_size=200, seed=0, verbose=False):
        """Minibatch SGD, with the learning rate multiplied by ``learning_rate_decay`` once
        per epoch.

        Inputs:
        - X, y: training data, shapes (N, D) and (N,)
        - X_val, y_val: validation data, shapes (N_val, D) and (N_val,)
        - learning_rate, learning_rate_decay, reg: as in the assignment
        - num_iters: number of SGD steps
        - batch_size: minibatch size, drawn with replacement; the whole set when
          batch_size >= N
        - seed: seeds the minibatch sampling
        - verbose: print the loss every 100 iterations

        Returns a dict with:
        - loss_history: one loss per iteration
        - train_acc_history, val_acc_history: one accuracy per epoch
        """
        check_float("learning_rate", learning_rate, low=0, closed="right")
        check_float("learning_rate_decay", learning_rate_decay, low=0, high=1, closed="right")
        check_float("reg", reg, low=0)
        check_int("num_iters", num_iters, low=1)
        check_int("batch_size", batch_size, low=1)
        rng = np.random.RandomState(seed)
        num_train = X.shape[0]
        iterations_per_epoch = max(num_train // batch_size, 1)

        loss_history, train_acc_history, val_acc_history = [], [], []
        for it in range(num_iters):
            if batch_size >= num_train:
                X_batch, y_batch = X, y
            else:
                idx = rng.choice(num_train, batch_size, replace=True)
                X_batch, y_batch = X[idx], y[idx]

            loss, grads = self.loss(X_batch, y=y_batch, reg=reg)
            loss_history.append(loss)
            for name, grad in grads.items():
                self.params[name] -= learning_rate * grad

            if verbose and it % 100 == 0:
                print(f"iteration {it} / {num_iters}: loss {loss:f}")
            if it % iterations_per_epoch == 0:
                train_acc_history.append(float((self.predict(X_batch) == y_batch).mean()))
                val_acc_history.append(float((self.predict(X_val) == y_val).mean()))
                learning_rate *= learning_rate_decay

        return {"loss_history": loss_history, "train_acc_history": train_acc_history,
                "val_acc_history": val_acc_history}

    def predict(self, X):
        """Predicted labels, shape (N,), for inputs X of shape (N, D)."""
        return np.argmax(self.loss(X), axis=1)


class TwoLayerClassifier:
    """``TwoLayerNet`` on images, with the interface of ``nn.Classifier`` (what ``solver.train``,
    the tuner and ``training.fit.evaluate_classifier`` call).

    The network sees ``features(x)``: pixel values on the 0-255 scale minus the training split's
    mean image, as the exercise feeds CIFAR-10, projected on the first ``pca`` principal axes of
    the training split when ``pca`` > 0. ``adapt`` fits the mean and the axes on the training
    split; ``predict`` applies them, so validation and test images are transformed with the
    training split's statistics only.

    Inputs:
    - input_shape: shape of one example, e.g. (32, 32, 3); D is its size
    - num_classes: C, at least 2
    - units: H, the hidden layer's width
    - l2: reg in the penalty reg * (sum(W1**2) + sum(W2**2))
    - std: weights start as std * N(0, 1); 1e-4 is the exercise's
    - pca: principal components kept, 0 (off: all D centred pixels) to D
    - seed: seeds the weights (``TwoLayerNet``'s draw)
    - dtype: np.float32 or np.float64
    """

    def __init__(self, input_shape, num_classes, *, units=50, l2=0.0, std=1e-4, pca=0, seed=0,
                 dtype=np.float32):
        self.input_shape = check_shape("input_shape", input_shape)
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.units = check_int("units", units, low=1)
        self.l2 = check_float("l2", l2, low=0)
        self.pca = check_int("pca", pca, low=0, high=math.prod(self.input_shape))
        self.dtype = check_dtype(dtype)
        self.net = TwoLayerNet(self.pca or math.prod(self.input_shape), units, num_classes, std=std, seed=seed)
        for name, value in self.net.params.items():
            self.net.params[name] = value.astype(self.dtype)
        self.mean = None        # (D,) the training split's mean image, 0-255 scale
        self.axes = None        # (D, pca) its principal axes, largest variance first

    def pixels(self, x):
        """Images (N, *input_shape) as rows of pixel values on the 0-255 scale, shape (N, D):
        float images in [0, 1] are scaled, uint8 ones are on that scale already."""
        x = np.asarray(x)
        scale = 255.0 if x.dtype.kind == "f" else 1.0
        return (x.reshape(len(x), -1) * scale).astype(self.dtype, copy=False)

    def adapt(self, x):
        """Fit the input transform on the training images ``x``, shape (N, *input_shape)."""
        pixels = self.pixels(x)
        mean = pixels.mean(axis=0, dtype=np.float64)
        self.mean = mean.astype(self.dtype)
        if self.pca:
            if self.pca > len(pixels):
                fail("pca", f"an int in [0, {len(pixels)}] (at most the number of training rows)", self.pca)
            centred = pixels - mean            # float64: the scatter matrix sums N squares of up to 255**2
            # The principal axes are the right singular vectors of the centred data, which are the
            # eigenvectors of its (D, D) scatter matrix: eigh of that takes 3.5 s for 8,000 CIFAR-10
            # images here, np.linalg.svd of the (8000, 3072) data 15 s.
            _, vectors = np.linalg.eigh(centred.T @ centred)     # eigenvalues in ascending order
            self.axes = vectors[:, ::-1][:, :self.pca].astype(self.dtype)
        return self

    def features(self, x):
        """What the network computes on: centred pixels (N, D), or their projections (N, pca)."""
        if self.mean is None:
            raise RuntimeError("adapt(x_train) must come first: the input transform is fitted on the training split")
        centred = self.pixels(x) - self.mean
        return centred if self.axes is None else centred @ self.axes

    def loss_and_gradients(self, inputs, y, training=True, with_scores=False):
        """Data loss, penalty and gradients for one batch of ``features``, as ``nn.Classifier``'s.

        ``training`` changes nothing (the network has no dropout). The scores returned are the
        probabilities, which rank the classes as the scores do.
        """
        data_loss, penalty, grads, probs = self.net.loss(inputs, y, reg=self.l2, parts=True)
        return (data_loss, penalty, grads, probs) if with_scores else (data_loss, penalty, grads)

    def penalty(self):
        """The current L2 penalty, reg * (sum(W1**2) + sum(W2**2))."""
        return self.net.penalty(self.l2)

    def logits(self, x, batch_size=1024):
        """Class scores before the softmax (N, C) for images ``x``, in batches (what
        ``training.fit.evaluate_classifier`` reads)."""
        check_int("batch_size", batch_size, low=1)
        batches = [self.net.scores(self.features(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(batches) if batches else np.zeros((0, self.num_classes), self.dtype)

    def predict(self, x, batch_size=1024, verbose=0):
        """Class probabilities (N, C) for images ``x``, in batches; the signature of keras.Model.predict."""
        return softmax(self.logits(x, batch_size))

    def parameters(self):
        """W1, b1, W2, b2: the live arrays an optimizer updates in place."""
        return self.net.params

    def input_weights(self):
        """W1 in the space of the input pixels, shape (D, H): mapped back through the principal
        axes when the network sees PCA projections (what q7's weight images show)."""
        w1 = self.net.params["W1"]
        return w1 if self.axes is None else self.axes @ w1

    def count_params(self):
        """The trained parameters. The mean image and the principal axes are statistics of the
        training split, not trained, and are not counted (the exercise counts W1, b1, W2, b2)."""
        return int(sum(p.size for p in self.net.params.values()))

    def parameter_table(self):
        """One row per step, in the format of ``nn.Classifier.parameter_table``."""
        p = self.net.params
        steps = [("image", "Input", self.input_shape, 0),
                 ("pca" if self.pca else "centre", "PCA" if self.pca else "MeanImage", (p["W1"].shape[0],), 0),
                 ("fc1", "Affine", (self.units,), p["W1"].size + p["b1"].size),
                 ("relu", "ReLU", (self.units,), 0),
                 ("fc2", "Affine", (self.num_classes,), p["W2"].size + p["b2"].size)]
        return [{"layer": layer, "type": kind, "output_shape": batch_shape(shape), "params": int(params)}
                for layer, kind, shape, params in steps]

    def __repr__(self):
        return (f"TwoLayerClassifier(input_shape={self.input_shape}, num_classes={self.num_classes}, "
                f"units={self.units}, l2={self.l2:g}, pca={self.pca}, params={self.count_params()})")


def init_toy_model(seed=0):
    """The assignment's toy model: TwoLayerNet(4, 10, 3, std=1e-1)."""
    return TwoLayerNet(TOY_INPUT_SIZE, TOY_HIDDEN_SIZE, TOY_NUM_CLASSES, std=1e-1, seed=seed)


def init_toy_data(num_inputs=TOY_NUM_INPUTS, input_size=TOY_INPUT_SIZE, seed=1):
    """The assignment's toy data: X = 10 * randn(5, 4) from seed 1, y = [0, 1, 2, 2, 1].

    Returns a tuple (X, y) of shapes (num_inputs, input_size) and (5,).
    """
    X = 10 * np.random.RandomState(seed).randn(num_inputs, input_size)
    y = np.array([0, 1, 2, 2, 1])
    return X, y


def check_gradients(net, X, y, reg=0.05, h=1e-5):
    """Largest relative error between the analytic and numerical gradient, per parameter.

    Runs in float64: the net's parameters are converted to float64 if they are not already.

    Returns:
    - dict name -> max relative error, e.g. {"W1": 3e-10, ...}
    """
    X = np.asarray(X, dtype=np.float64)
    for name, value in net.params.items():
        net.params[name] = np.asarray(value, dtype=np.float64)
    _, grads = net.loss(X, y, reg=reg)
    errors = {}
    for name in net.params:
        numeric = eval_numerical_gradient(lambda _: net.loss(X, y, reg=reg)[0], net.params[name], h=h)
        errors[name] = rel_error(numeric, grads[name])
    return errors
