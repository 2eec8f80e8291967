"""Update rules, after cs231n's ``optim.py``.

A rule has the signature ``rule(w, dw, config) -> (next_w, config)``: ``config`` holds
the hyperparameters (defaults filled with ``setdefault``) and any state the rule keeps.
``SGD`` wraps the rule for a whole dict of parameters and adds gradient clipping.
"""

from __future__ import annotations

import numpy as np

from dlcv_keras.validation import check_float


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w <- w - learning_rate * dw``.

    ``w`` is updated in place (as in cs231n), so any module holding this array sees the
    new values; ``next_w`` is that same array.

    Inputs:
    - w: parameter array, any shape
    - dw: gradient, same shape as w
    - config: dict with "learning_rate" (default 1e-2)

    Returns a tuple of:
    - next_w: the updated w
    - config: the config dict
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    w -= config["learning_rate"] * dw
    return w, config


class SGD:
    """SGD over a dict of parameters, with optional elementwise gradient clipping.

    ``clip`` limits every gradient entry to [-clip, clip] before the step (q5 uses 1.0),
    which stops a single huge gradient from throwing the weights far away.
    """

    def __init__(self, lr, clip=None):
        self.lr = check_float("lr", lr, low=0, closed="right")
        self.clip = None if clip is None else check_float("clip", clip, low=0, closed="right")
        self.config = {"learning_rate": self.lr}

    def step(self, params, grads):
        """Update every array in ``params`` in place.

        Inputs:
        - params: dict name -> array (the live arrays the model uses)
        - grads: dict name -> gradient, same keys and shapes
        """
        for name, grad in grads.items():
            if self.clip is not None:
                grad = np.clip(grad, -self.clip, self.clip)
            sgd(params[name], grad, self.config)

    def __repr__(self):
        return f"SGD(lr={self.lr:g}, clip={self.clip!r})"
