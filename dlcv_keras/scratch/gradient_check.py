"""Numerical gradients by centred differences, after cs231n's ``gradient_check.py``.

``df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)``: the error of this estimate shrinks
like h**2 until floating-point rounding (about eps * |f| / h) takes over, so run checks
in float64 with h near 1e-5 and compare with ``rel_error``.

``finite_difference_sweep`` shows that trade-off for q16: the same check for a range of
step sizes epsilon = 1 / N.
"""

from __future__ import annotations

import numpy as np

from dlcv_keras.validation import check_int, fail


def eval_numerical_gradient(f, x, h=1e-5):
    """Numerical gradient of a scalar function ``f`` at ``x``.

    ``x`` is changed in place, one entry at a time, and restored; so ``f`` may ignore its
    argument and read the same array elsewhere (a model's weights, for example).

    Inputs:
    - f: function taking the array x and returning a scalar
    - x: float array of any shape
    - h: step size

    Returns:
    - grad: the same shape as x
    """
    # A scalar f is the array case with an upstream gradient of 1.
    return eval_numerical_gradient_array(lambda v: np.asarray(f(v), dtype=float), x, 1.0, h)


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numerical gradient of ``sum(f(x) * df)``, for an array-valued ``f`` and an upstream
    gradient ``df``: what a layer's backward pass should return for ``dout = df``.

    Inputs:
    - f: function taking the array x and returning an array shaped like df
    - x: float array of any shape (changed in place and restored)
    - df: upstream gradient, shaped like f(x)
    - h: step size

    Returns:
    - grad: the same shape as x
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = f(x).copy()  # copy: f may return a view of x
        x[ix] = old - h
        neg = f(x).copy()
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def rel_error(x, y):
    """Largest elementwise relative error ``|x - y| / max(1e-8, |x| + |y|)``.

    Float64 gradient checks usually land below 1e-7; 1e-2 or more means a bug.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def finite_difference_sweep(loss_fn, param, analytic_grad, n_values, count=10):
    """Compare an analytic gradient with centred differences for steps epsilon = 1 / N.

    Only the first ``count`` entries of ``param`` (in flattened order) are checked, which
    keeps large models cheap. ``param`` is changed in place and restored.

    Inputs:
    - loss_fn: function called as ``loss_fn(param)`` returning a scalar loss
    - param: float array of any shape, the parameter to perturb
    - analytic_grad: gradient of the loss with respect to param, same shape
    - n_values: positive numbers N; each gives the step epsilon = 1 / N
    - count: how many entries to check

    Returns:
    - rows: list of dicts {"N", "epsilon", "index", "analytic", "numeric", "abs_gap"},
      one per (N, entry), with index the position in the flattened array
    """
    check_int("count", count, low=1)
    n_values = list(n_values)
    for n in n_values:
        if isinstance(n, bool) or not isinstance(n, (int, float, np.number)) or not n > 0:
            fail("n_values", "a list of positive numbers", n_values)
    if np.shape(analytic_grad) != param.shape:
        fail("analytic_grad", f"an array of shape {param.shape}", np.shape(analytic_grad))

    flat = param.reshape(-1)  # a view: writing to it writes to param
    if not np.shares_memory(flat, param):
        fail("param", "a contiguous array (so it can be perturbed in place)", type(param))
    analytic = np.asarray(analytic_grad).reshape(-1)
    rows = []
    for n in n_values:
        eps = 1.0 / n
        for i in range(min(count, flat.size)):
            old = flat[i]
            flat[i] = old + eps
            plus = float(loss_fn(param))
            flat[i] = old - eps
            minus = float(loss_fn(param))
            flat[i] = old
            numeric = (plus - minus) / (2 * eps)
            rows.append({"N": n, "epsilon": eps, "index": i, "analytic": float(analytic[i]),
                         "numeric": numeric, "abs_gap": abs(numeric - float(analytic[i]))})
    return rows


def max_gap_by_n(rows):
    """Largest absolute gap per N, in the order the N values first appear.

    Inputs:
    - rows: the output of ``finite_difference_sweep``

    Returns:
    - list of dicts {"N", "epsilon", "max_abs_gap"}
    """
    summary = {}
    for row in rows:
        entry = summary.setdefault(row["N"], {"N": row["N"], "epsilon": row["epsilon"],
                                              "max_abs_gap": 0.0})
        # A nan gap must win (max(0.0, nan) is 0.0): a broken gradient is shown, never hidden.
        gap = row["abs_gap"]
        if np.isnan(gap) or gap > entry["max_abs_gap"]:
            entry["max_abs_gap"] = gap
    return list(summary.values())
