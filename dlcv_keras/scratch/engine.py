"""A scalar that remembers how it was computed, and reverse-mode gradients (after micrograd).

Every operation builds a new ``Value`` whose ``_backward`` closure applies the chain rule for
that one operation; ``backward()`` runs those closures from the output back to the inputs.

Powers and functions are computed in numpy float64, so a bad point gives what numpy gives,
silently: ``1 / 0`` is ``inf``, ``log(0)`` is ``-inf``, ``log(-1)`` is ``nan`` and
``exp(1000)`` is ``inf``, where Python's ``float`` and ``math`` would raise ``ZeroDivisionError``,
``ValueError`` or ``OverflowError``. A gradient table can then show nan/inf for one point
instead of crashing halfway. ``data`` and ``grad`` are stored as plain Python floats.
"""

import numpy as np


def _f64(function, *args) -> float:
    """``function(*args)`` on numpy float64 numbers with warnings off, as a Python float."""
    with np.errstate(all="ignore"):
        return float(function(*(np.float64(a) for a in args)))


def _sigmoid(a):
    # 1 / (1 + exp(-a)), arranged so that exp never sees a large positive number.
    z = np.exp(-abs(a))
    return 1 / (1 + z) if a >= 0 else z / (1 + z)


class Value:
    """A scalar in a computation graph: ``data`` (its value) and ``grad`` (d output / d self)."""

    def __init__(self, data, _children=(), _op=""):
        self.data = float(data)
        self.grad = 0.0
        self._backward = lambda: None   # adds this node's share to its children's grads
        self._prev = set(_children)
        self._op = _op

    def __add__(self, other):
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad        # += so that a node used twice (a + a) gets both shares
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out._backward = _backward
        return out

    def __pow__(self, other):
        """``a ** b``. A plain-number exponent is a constant: only the base gets a gradient."""
        exponent = other.data if isinstance(other, Value) else float(other)
        children = (self, other) if isinstance(other, Value) else (self,)
        out = Value(_f64(np.power, self.data, exponent), children, "**")

        def _backward():
            # d/da a**b = b * a**(b - 1)
            self.grad += _f64(lambda a, b, g: b * a ** (b - 1) * g, self.data, exponent, out.grad)
            if isinstance(other, Value):
                # d/db a**b = a**b * log(a), defined for a > 0. At a == 0 (b > 0) a**b stays 0
                # as b moves, so the slope is 0; for a < 0 a**b is not a real function of b.
                if self.data > 0:
                    slope = _f64(lambda y, a: y * np.log(a), out.data, self.data)
                else:
                    slope = 0.0 if (self.data == 0 and exponent > 0) else float("nan")
                other.grad += slope * out.grad
        out._backward = _backward
        return out

    def _unary(self, forward, derivative, op):
        """Node for ``op(self)``: value ``forward(a)``; ``derivative(a, y)`` gives dy/da."""
        out = Value(_f64(forward, self.data), (self,), op)

        def _backward():
            self.grad += _f64(lambda a, y, g: derivative(a, y) * g, self.data, out.data, out.grad)
        out._backward = _backward
        return out

    def exp(self): return self._unary(np.exp, lambda a, y: y, "exp")
    def log(self): return self._unary(np.log, lambda a, y: 1 / a, "log")
    def sin(self): return self._unary(np.sin, lambda a, y: np.cos(a), "sin")
    def cos(self): return self._unary(np.cos, lambda a, y: -np.sin(a), "cos")
    def tanh(self): return self._unary(np.tanh, lambda a, y: 1 - y * y, "tanh")
    def sigmoid(self): return self._unary(_sigmoid, lambda a, y: y * (1 - y), "sigmoid")

    def relu(self):
        # max(0, a); at exactly a == 0 the slope is taken as 0, as tf.nn.relu does.
        return self._unary(lambda a: np.maximum(0.0, a), lambda a, y: float(a > 0), "relu")

    # Everything else is a rewrite in terms of the operations above.
    def __neg__(self): return self * -1
    def __radd__(self, other): return self + other
    def __sub__(self, other): return self + (-other)
    def __rsub__(self, other): return (-self) + other
    def __rmul__(self, other): return self * other
    def __truediv__(self, other): return self * _as_value(other) ** -1
    def __rtruediv__(self, other): return other * self ** -1
    def __rpow__(self, other): return Value(other) ** self

    def backward(self):
        """Set ``grad`` of every node that ``self`` depends on to d self / d node.

        Grads in the graph are reset to 0 first, so a second ``backward()`` gives the same
        answer instead of doubling it. (micrograd leaves that to ``zero_grad``; we never sum
        gradients over several outputs, so resetting here is the safer choice.)
        """
        # Topological order without recursion, so a 10 000-node chain cannot hit Python's
        # recursion limit: a node is appended only after all of its children.
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((child, False) for child in node._prev if child not in visited)
        for node in order:
            node.grad = 0.0
        self.grad = 1.0
        for node in reversed(order):
            node._backward()

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"


def _as_value(x):
    return x if isinstance(x, Value) else Value(x)
