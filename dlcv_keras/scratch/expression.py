"""A user's f(x, y, z), parsed safely and differentiated three ways (q2).

The text is read with ``ast.parse`` and every node is checked against a short whitelist
(numbers, the constant ``pi``, the variable names, + - * / **, and calls of exp, log, sin, cos,
tanh, sigmoid, relu), so nothing the user types is ever run by Python's ``eval``. The checked tree can then
be evaluated with three "ops" backends that give each operator the same meaning:

- ``VALUE_OPS``: our scalar engine (``engine.Value``), for reverse-mode gradients;
- ``FLOAT64_OPS``: plain numpy float64 numbers, for central differences;
- TensorFlow (imported only when asked for), for gradients from ``tf.GradientTape``.

``gradient_table`` puts the three side by side, one row per point.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dlcv_keras.scratch.engine import Value
from dlcv_keras.validation import InvalidParameterError, check_int

VARIABLES = ("x", "y", "z")
FUNCTIONS = ("exp", "log", "sin", "cos", "tanh", "sigmoid", "relu")
CONSTANTS = {"pi": math.pi}
# The seed's f (DS-265 Assignment 1, section 2). Its write-up prints the table, not the formula; this f
# reproduces every number of the table to the last digit or two (questions/q2.py's reference): the forward
# value log(sigmoid(1)) at the last two points, df/dy = -pi/2 (1 - sigmoid(1)) there, df/dx at rounding
# level (cos(pi x) is flat at whole x) and df/dz exactly 0 where tanh(z**2) is 1.0 in float64.
DEFAULT_EXPRESSION = "log(sigmoid((cos(pi*x) + sin(pi*y/2)) / tanh(z**2)))"
DEFAULT_POINTS = ((2, 4, 1), (9, 14, 3), (128, 42, 666), (52, 14, 28))
MAX_EXPRESSION_CHARACTERS = 500
MAX_POINTS = 100

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: lambda v: v, ast.USub: operator.neg}
# Names for the syntax people most often try, so an error says what was found.
_KINDS = {ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Compare: "comparison",
          ast.BoolOp: "and/or", ast.Lambda: "lambda", ast.IfExp: "if/else"}


@dataclass(frozen=True)
class Ops:
    """How to evaluate a tree: turn a number into a backend constant, and apply each function.

    + - * / ** and unary minus use the backend's own Python operators.
    """

    name: str
    constant: Callable
    functions: dict


VALUE_OPS = Ops("engine", Value, {name: operator.methodcaller(name) for name in FUNCTIONS})
# Evaluate under np.errstate(all="ignore"): 1/0 -> inf and log(-1) -> nan, as in the engine.
FLOAT64_OPS = Ops("float64", np.float64, {
    "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "sigmoid": lambda v: 1 / (1 + np.exp(-v)),  # exp(-v) = inf just gives 0, the right limit
    "relu": lambda v: np.maximum(0.0, v),
})


def tensorflow_ops() -> Ops:
    """The TensorFlow backend (float64 tensors); TensorFlow is imported only here."""
    import tensorflow as tf

    return Ops("tensorflow", lambda c: tf.constant(c, dtype=tf.float64), {
        "exp": tf.exp, "log": tf.math.log, "sin": tf.sin, "cos": tf.cos, "tanh": tf.tanh,
        "sigmoid": tf.sigmoid, "relu": tf.nn.relu,  # tf.nn.relu has slope 0 at 0, like ours
    })


@dataclass(frozen=True)
class Expression:
    """A checked expression: the user's ``text``, its ``variables`` and the validated tree."""

    text: str
    variables: tuple
    tree: ast.expr = field(repr=False, compare=False)

    def evaluate(self, point: Sequence, ops: Ops):
        """f at ``point``: one backend number per variable, in ``variables`` order.

        Returns a backend number (a ``Value``, a numpy float64 or a tf.Tensor).
        """
        if len(point) != len(self.variables):
            raise InvalidParameterError(
                f"point must have {len(self.variables)} coordinates, got {len(point)}")
        return _evaluate(self.tree, dict(zip(self.variables, point)), ops)


def _evaluate(node, values: dict, ops: Ops):
    # The tree was validated by parse_expression, so only these four kinds of node remain.
    if isinstance(node, ast.Constant):
        return ops.constant(float(node.value))
    if isinstance(node, ast.Name):
        return values[node.id] if node.id in values else ops.constant(CONSTANTS[node.id])
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, values, ops))
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values, ops), _evaluate(node.right, values, ops)
        return _BINARY[type(node.op)](left, right)
    return ops.functions[node.func.id](_evaluate(node.args[0], values, ops))


def parse_expression(text: str, variables: Sequence[str] = VARIABLES, *,
                     name: str = "--expr") -> Expression:
    """Check ``text`` and return it as an ``Expression``; raise InvalidParameterError otherwise.

    Variables that do not appear in the text are allowed: their gradient is 0.
    """
    variables = tuple(variables)
    if (not variables or len(set(variables)) != len(variables)
            or not all(isinstance(v, str) and v.isidentifier() for v in variables)
            or set(variables) & {*FUNCTIONS, *CONSTANTS, "point", "value"}):
        raise InvalidParameterError("variables must be distinct names other than the function "
                                    f"and constant names, 'point' and 'value', got {variables!r}")
    in_variables = ", ".join(variables)
    if not isinstance(text, str):
        raise InvalidParameterError(f"{name} must be a string, got {text!r}")
    if len(text) > MAX_EXPRESSION_CHARACTERS:
        raise InvalidParameterError(f"{name} must be at most {MAX_EXPRESSION_CHARACTERS} "
                                    f"characters, got {text[:40]!r}... ({len(text)} characters)")
    if not text.strip():
        raise InvalidParameterError(f"{name} must be an expression in {in_variables}, got {text!r}")
    text = text.strip()   # ast.parse rejects leading spaces ("unexpected indent")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as error:
        raise InvalidParameterError(f"{name} must be a valid expression in {in_variables}, "
                                    f"got {text!r} ({_syntax_error_place(error, text)})") from None
    allowed = f"{in_variables}, numbers, {', '.join(CONSTANTS)}, + - * / ** and {', '.join(FUNCTIONS)}"

    def reject(found: str):
        raise InvalidParameterError(f"{name} must use only {allowed}; got {found} in {text!r}")

    _check(tree, variables, text, reject)
    return Expression(text, variables, tree)


def _check(node, variables: tuple, text: str, reject: Callable) -> None:
    """Walk the tree like ``_evaluate`` does and ``reject`` the first node it could not handle."""
    piece = ast.get_source_segment(text, node) or ast.unparse(node)
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float) or not _is_finite(node.value):
            reject(f"constant {piece!r}")   # strings, True, 1j, 1e999, ...
    elif isinstance(node, ast.Name):
        if node.id not in variables and node.id not in CONSTANTS:
            reject(f"{'function' if node.id in FUNCTIONS else 'unknown'} name {node.id!r}")
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        _check(node.operand, variables, text, reject)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, variables, text, reject)
        _check(node.right, variables, text, reject)
    elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
        hint = " (use ** for powers)" if isinstance(node.op, ast.BitXor) else ""
        reject(f"operator in {piece!r}{hint}")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            reject(f"call of {ast.get_source_segment(text, node.func)!r}")
        if node.func.id not in FUNCTIONS:
            kind = "call of variable" if node.func.id in variables else "unknown name"
            reject(f"{kind} {node.func.id!r}")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            reject(f"{piece!r} (functions take exactly one argument, no keywords)")
        _check(node.args[0], variables, text, reject)
    else:
        reject(f"{_KINDS.get(type(node), 'unsupported syntax')} {piece!r}")


def _is_finite(number) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:   # an integer literal too large for a float
        return False


def _syntax_error_place(error: SyntaxError, text: str) -> str:
    """Where the parser stopped, e.g. "syntax error at column 3"."""
    if not error.lineno:
        return f"syntax error: {error.msg}"
    line = text.splitlines()[error.lineno - 1] if text.splitlines() else ""
    # Python 3.11 reports offset 0 when the text ends too early: point at its last character.
    column = error.offset if error.offset and error.offset >= 1 else len(line)
    where = f"line {error.lineno}, column {column}" if error.lineno > 1 else f"column {column}"
    detail = "" if error.msg == "invalid syntax" else f": {error.msg}"
    return f"syntax error at {where}{detail}"


def parse_points(text: str, arity: int = 3, *, name: str = "--points") -> tuple:
    """Read "2,4,1;9,14,3" as ((2.0, 4.0, 1.0), (9.0, 14.0, 3.0)).

    Points are separated by ';' and coordinates by ','; spaces are allowed. Returns a tuple of
    tuples of ``arity`` finite floats; raises InvalidParameterError naming the bad piece.
    """
    check_int("arity", arity, low=1)
    example = ";".join(",".join(str(p[i % 3]) for i in range(arity)) for p in DEFAULT_POINTS[:2])
    expected = f"{name} must be points of {arity} numbers separated by ';' (e.g. {example!r})"
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameterError(f"{expected}, got {text!r}")
    pieces = text.split(";")
    if len(pieces) > MAX_POINTS:
        raise InvalidParameterError(f"{name} must be at most {MAX_POINTS} points, "
                                    f"got {len(pieces)} points")
    points = []
    for piece in pieces:
        if not piece.strip():
            raise InvalidParameterError(f"{expected}, got an empty point in {text!r}")
        coordinates = piece.split(",")
        if len(coordinates) != arity:
            count = f"{len(coordinates)} number" + ("" if len(coordinates) == 1 else "s")
            raise InvalidParameterError(f"{expected}, got {piece.strip()!r} with {count}")
        point = []
        for coordinate in coordinates:
            try:
                number = float(coordinate)
            except ValueError:
                raise InvalidParameterError(f"{expected}, got {coordinate.strip()!r}, which is "
                                            f"not a number, in {piece.strip()!r}") from None
            if not math.isfinite(number):
                raise InvalidParameterError(f"{expected}, got {coordinate.strip()!r}, which is "
                                            f"not finite, in {piece.strip()!r}")
            point.append(number)
        points.append(tuple(point))
    return tuple(points)


def value_gradients(expr: Expression, point: Sequence[float]) -> tuple[float, list[float]]:
    """f and its gradient at ``point`` from the scalar engine: ``(value, [df/dvar, ...])``."""
    inputs = [Value(v) for v in point]
    output = expr.evaluate(inputs, VALUE_OPS)
    output.backward()
    return output.data, [v.grad for v in inputs]


def tensorflow_gradients(expr: Expression, point: Sequence[float]) -> tuple[float, list[float]]:
    """f and its gradient at ``point`` from ``tf.GradientTape`` in float64: ``(value, grads)``."""
    import tensorflow as tf

    inputs = [tf.constant(float(v), dtype=tf.float64) for v in point]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = expr.evaluate(inputs, tensorflow_ops())
    grads = tape.gradient(output, inputs)
    # The tape answers None for a variable the output does not depend on: its gradient is 0.
    return float(output), [0.0 if g is None else float(g) for g in grads]


def central_difference_gradients(expr: Expression, point: Sequence[float],
                                 h: float = 1e-6) -> list[float]:
    """[df/dvar, ...] at ``point`` from (f(v + s) - f(v - s)) / 2s, in numpy float64.

    The step is relative, s = h * max(1, |v|): next to a coordinate like 666 a fixed step of
    1e-6 would be a change of only 1.5e-9, so rounding v + s would eat most of its digits.
    We divide by the distance between the two points actually evaluated, not by 2s, so the
    rounding of v + s and v - s does not bias the result.
    """
    point = [float(v) for v in point]
    grads = []
    with np.errstate(all="ignore"):
        for i, v in enumerate(point):
            step = h * max(1.0, abs(v))
            up, down = list(point), list(point)
            up[i], down[i] = v + step, v - step
            rise = (expr.evaluate([np.float64(c) for c in up], FLOAT64_OPS)
                    - expr.evaluate([np.float64(c) for c in down], FLOAT64_OPS))
            grads.append(float(rise / (up[i] - down[i])))
    return grads


def gradient_table(expr: Expression, points: Sequence[Sequence[float]],
                   h: float = 1e-6) -> list[dict]:
    """One row per point comparing the engine's f and gradient with TensorFlow and with
    central differences.

    Keys (for variables x, y, z): point ("(2, 4, 1)"), x, y, z, value, df_dx.., tf_value,
    tf_df_dx.., numeric_df_dx.., max_abs_diff_tf and max_rel_diff_tf (over value and
    gradients), max_abs_diff_numeric and max_rel_diff_numeric (over gradients). The relative
    difference is the point's as a whole, ``relative_difference``: a derivative that is 0 in
    exact arithmetic (df/dx of cos(pi x) at a whole x) comes out as rounding noise, 1e-15 from
    our engine and 1e-10 from central differences, and would be "100 % apart" on its own.
    """
    rows = []
    for point in points:
        value, grads = value_gradients(expr, point)
        tf_value, tf_grads = tensorflow_gradients(expr, point)
        numeric = central_difference_gradients(expr, point, h)
        row = {"point": "(" + ", ".join(_format_number(v) for v in point) + ")"}
        row.update(zip(expr.variables, (float(v) for v in point)))
        row["value"] = value
        row.update((f"df_d{var}", g) for var, g in zip(expr.variables, grads))
        row["tf_value"] = tf_value
        row.update((f"tf_df_d{var}", g) for var, g in zip(expr.variables, tf_grads))
        row.update((f"numeric_df_d{var}", g) for var, g in zip(expr.variables, numeric))
        ours, theirs = [value, *grads], [tf_value, *tf_grads]
        row["max_abs_diff_tf"] = max(map(_abs_diff, ours, theirs))
        row["max_rel_diff_tf"] = relative_difference(ours, theirs)
        row["max_abs_diff_numeric"] = max(map(_abs_diff, grads, numeric))
        row["max_rel_diff_numeric"] = relative_difference(grads, numeric)
        rows.append(row)
    return rows


def _format_number(v) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _abs_diff(a: float, b: float) -> float:
    """|a - b|, where equal infinities or two nans agree (0) and a lone nan disagrees (inf)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    diff = abs(a - b)
    return math.inf if math.isnan(diff) else diff


def relative_difference(a: Sequence[float], b: Sequence[float]) -> float:
    """||a - b|| / (||a|| + ||b||) (Euclidean norms) of two vectors of the same quantities (f and its
    gradient at one point): 0 when they are equal, inf when one has a nan or inf the other lacks."""
    diffs = [_abs_diff(x, y) for x, y in zip(a, b)]
    if math.inf in diffs:
        return math.inf
    gap = math.hypot(*diffs)
    return 0.0 if gap == 0 else gap / (math.hypot(*a) + math.hypot(*b))
