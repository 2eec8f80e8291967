"""The two-layer network of the HLCV / cs231n assignment (q6), fully vectorised in numpy.

input -> fully connected -> ReLU -> fully connected -> softmax, trained with softmax
cross-entropy plus ``reg * (sum(W1**2) + sum(W2**2))``.

``init_toy_data`` and ``init_toy_model`` rebuild the assignment's toy problem exactly
(same seeds, same draw order), so the forward pass can be checked against the
reference numbers below, which the seed write-up reports.
"""

from __future__ import annotations

import numpy as np

from dlcv_keras.scratch.gradient_check import eval_numerical_gradient, rel_error
from dlcv_keras.validation import check_float, check_int

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

    def loss(self, X, y=None, reg=0.0):
        """Probabilities, or loss and gradients, for a batch.

        Inputs:
        - X: inputs, shape (N, D)
        - y: integer labels, shape (N,), or None
        - reg: L2 strength; the penalty is reg * (sum(W1**2) + sum(W2**2))

        Returns:
        - if y is None: probs, shape (N, C), the softmax of the class scores
        - otherwise a tuple (loss, grads): loss a float, grads a dict with the keys and
          shapes of ``params``
        """
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        N = X.shape[0]

        # Forward pass.
        hidden = np.maximum(0, X @ W1 + b1)                       # (N, H)
        scores = hidden @ W2 + b2                                 # (N, C)
        shifted = scores - scores.max(axis=1, keepdims=True)     # no overflow in exp
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        probs = np.exp(log_probs)                                 # (N, C)
        if y is None:
            return probs

        rows = np.arange(N)
        data_loss = -log_probs[rows, y].mean()
        loss = data_loss + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))

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
        return float(loss), grads

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
