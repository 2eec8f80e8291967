"""The scalar engine and the expression parser, checked against tf.GradientTape (float64)
and against central differences."""

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dlcv_keras  # noqa: F401  (quiets TensorFlow's C++ logging before it is imported)
from dlcv_keras.scratch.engine import Value
from dlcv_keras.scratch.expression import (
    DEFAULT_EXPRESSION, DEFAULT_POINTS, FLOAT64_OPS, VARIABLES, central_difference_gradients,
    gradient_table, parse_expression, parse_points, relative_difference, tensorflow_gradients,
    value_gradients)
from dlcv_keras.validation import InvalidParameterError

# (name, engine version, TensorFlow version, points (a, b)). Each function takes two inputs;
# ops that ignore b must give b a gradient of 0 (the tape says None).
ANY_SIGN = [(1.5, -0.7), (-2.0, 3.0), (0.3, 0.2), (4.0, 2.5), (30.0, -30.0)]
POSITIVE_A = [(1.5, -0.7), (0.3, 2.0), (4.0, 2.5), (30.0, 0.1)]
OPS = [
    ("add", lambda a, b: a + b, lambda tf, a, b: a + b, ANY_SIGN),
    ("radd", lambda a, b: 2.5 + a, lambda tf, a, b: 2.5 + a, ANY_SIGN),
    ("sub", lambda a, b: a - b, lambda tf, a, b: a - b, ANY_SIGN),
    ("rsub", lambda a, b: 2.5 - a, lambda tf, a, b: 2.5 - a, ANY_SIGN),
    ("mul", lambda a, b: a * b, lambda tf, a, b: a * b, ANY_SIGN),
    ("rmul", lambda a, b: 2.5 * a, lambda tf, a, b: 2.5 * a, ANY_SIGN),
    ("neg", lambda a, b: -a, lambda tf, a, b: -a, ANY_SIGN),
    ("truediv", lambda a, b: a / b, lambda tf, a, b: a / b, ANY_SIGN),
    ("rtruediv", lambda a, b: 2.5 / a, lambda tf, a, b: 2.5 / a, ANY_SIGN),
    ("pow_int", lambda a, b: a ** 3, lambda tf, a, b: a ** 3, ANY_SIGN),
    ("pow_fraction", lambda a, b: a ** 0.5, lambda tf, a, b: a ** 0.5, POSITIVE_A),
    ("pow_value", lambda a, b: a ** b, lambda tf, a, b: a ** b, POSITIVE_A),
    ("rpow", lambda a, b: 2.5 ** a, lambda tf, a, b: tf.pow(tf.constant(2.5, tf.float64), a),
     ANY_SIGN),
    ("exp", lambda a, b: a.exp(), lambda tf, a, b: tf.exp(a), ANY_SIGN),
    ("log", lambda a, b: a.log(), lambda tf, a, b: tf.math.log(a), POSITIVE_A),
    ("sin", lambda a, b: a.sin(), lambda tf, a, b: tf.sin(a), ANY_SIGN),
    ("cos", lambda a, b: a.cos(), lambda tf, a, b: tf.cos(a), ANY_SIGN),
    ("tanh", lambda a, b: a.tanh(), lambda tf, a, b: tf.tanh(a), ANY_SIGN),
    ("sigmoid", lambda a, b: a.sigmoid(), lambda tf, a, b: tf.sigmoid(a), ANY_SIGN),
    ("relu", lambda a, b: a.relu(), lambda tf, a, b: tf.nn.relu(a), ANY_SIGN + [(0.0, 1.0)]),
    ("mixed", lambda a, b: (a * b).sin() + (b - a).tanh() * a.exp(),
     lambda tf, a, b: tf.sin(a * b) + tf.tanh(b - a) * tf.exp(a), ANY_SIGN),
]
CASES = [pytest.param(engine_fn, tf_fn, point, id=f"{name}-{point}")
         for name, engine_fn, tf_fn, points in OPS for point in points]


def _tape(tf_fn, point):
    import tensorflow as tf

    a, b = (tf.constant(v, dtype=tf.float64) for v in point)
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        out = tf_fn(tf, a, b)
    grads = tape.gradient(out, [a, b])
    return float(out), [0.0 if g is None else float(g) for g in grads]


@pytest.mark.parametrize("engine_fn, tf_fn, point", CASES)
def test_each_op_matches_tensorflow_in_value_and_gradient(engine_fn, tf_fn, point):
    a, b = Value(point[0]), Value(point[1])
    out = engine_fn(a, b)
    out.backward()
    tf_value, tf_grads = _tape(tf_fn, point)
    np.testing.assert_allclose([out.data, a.grad, b.grad], [tf_value, *tf_grads],
                               rtol=1e-12, atol=1e-15)


def test_a_node_used_twice_accumulates_its_gradient():
    a = Value(3.0)
    square = a * a
    square.backward()
    assert a.grad == 6.0                  # d(a*a)/da = 2a, not a
    b = a + a
    c = b * b
    c.backward()
    assert (b.grad, a.grad) == (12.0, 24.0)   # dc/db = 2b; dc/da = 2b * 2 = 8a


def test_backward_twice_gives_the_same_gradients_not_double():
    a, b = Value(2.0), Value(-3.0)
    out = a * b + a.exp()
    out.backward()
    first = (a.grad, b.grad)
    out.backward()
    assert (a.grad, b.grad) == first == (-3.0 + math.exp(2.0), 2.0)


def test_a_deep_chain_does_not_hit_the_recursion_limit():
    start = Value(1.0)
    out = start
    for _ in range(10_000):
        out = out + 1
    out.backward()
    assert out.data == 10_001.0 and start.grad == 1.0


def test_bad_points_give_numpy_style_inf_and_nan_without_raising_or_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zero, minus_one = Value(0.0), Value(-1.0)
        results = [1 / zero, zero ** -1, zero.log(), minus_one.log(), Value(1000.0).exp(),
                   Value(-8.0) ** (1 / 3), Value(1e200) ** 2]
        assert [r.data for r in results] == pytest.approx(
            [math.inf, math.inf, -math.inf, math.nan, math.inf, math.nan, math.inf], nan_ok=True)
        with np.errstate(all="ignore"):   # the same numbers numpy gives
            assert zero.log().data == np.log(0.0) and math.isnan(np.log(-1.0))
        out = zero.log()
        out.backward()
        assert zero.grad == math.inf      # d log(a)/da = 1/a


def test_sigmoid_is_stable_far_from_zero():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        low, high = Value(-1000.0).sigmoid(), Value(1000.0).sigmoid()
    assert (low.data, high.data) == (0.0, 1.0)
    assert Value(-40.0).sigmoid().data == pytest.approx(math.exp(-40.0), rel=1e-12, abs=0)
    # 1 / (1 + exp(720)) would overflow to 1/inf = 0; exp(-720) / (1 + exp(-720)) keeps the
    # tiny (subnormal) answer.
    assert Value(-720.0).sigmoid().data == pytest.approx(math.exp(-720.0), rel=1e-6, abs=0)


def test_pow_gradients_for_constant_and_value_exponents():
    base = Value(2.0)
    out = base ** 3
    assert out._prev == {base}            # a plain-number exponent gets no node of its own
    out.backward()
    assert base.grad == 12.0
    for a, expected_exponent_grad in [(0.0, 0.0), (-2.0, math.nan)]:
        base, exponent = Value(a), Value(2.0)
        (base ** exponent).backward()
        assert base.grad == 2 * a
        assert exponent.grad == pytest.approx(expected_exponent_grad, abs=0, nan_ok=True)


def test_relu_has_slope_zero_at_zero_and_repr_shows_data_and_grad():
    a = Value(0.0)
    out = a.relu()
    out.backward()
    assert (out.data, a.grad) == (0.0, 0.0)
    assert repr(Value(2)) == "Value(data=2.0, grad=0.0)"


def test_default_expression_is_finite_at_the_default_points():
    expr = parse_expression(DEFAULT_EXPRESSION)
    assert expr.variables == VARIABLES == ("x", "y", "z")
    for x, y, z in DEFAULT_POINTS:
        value, grads = value_gradients(expr, (x, y, z))
        assert all(math.isfinite(v) for v in [value, *grads])
        with np.errstate(all="raise"):
            float64_value = expr.evaluate([np.float64(v) for v in (x, y, z)], FLOAT64_OPS)
        assert float64_value == pytest.approx(value, rel=1e-14)


def test_default_gradient_table_agrees_with_tensorflow_and_central_differences():
    expr = parse_expression(DEFAULT_EXPRESSION)
    rows = gradient_table(expr, DEFAULT_POINTS)
    assert [row["point"] for row in rows] == ["(2, 4, 1)", "(9, 14, 3)", "(128, 42, 666)",
                                              "(52, 14, 28)"]
    assert list(rows[0]) == [
        "point", "x", "y", "z", "value", "df_dx", "df_dy", "df_dz", "tf_value", "tf_df_dx",
        "tf_df_dy", "tf_df_dz", "numeric_df_dx", "numeric_df_dy", "numeric_df_dz",
        "max_abs_diff_tf", "max_rel_diff_tf", "max_abs_diff_numeric", "max_rel_diff_numeric"]
    for row in rows:
        ours = [row["value"]] + [row[f"df_d{v}"] for v in VARIABLES]
        tf_side = [row["tf_value"]] + [row[f"tf_df_d{v}"] for v in VARIABLES]
        numeric = [row[f"numeric_df_d{v}"] for v in VARIABLES]
        # Derivatives that are 0 in exact arithmetic (df/dx at a whole x) are rounding noise: 1e-15 from the
        # engine and TensorFlow, 1e-10 from central differences. Each agrees to the point's scale.
        np.testing.assert_allclose(ours, tf_side, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(ours[1:], numeric, rtol=1e-5, atol=1e-9)
        assert row["max_rel_diff_tf"] <= 1e-12 and row["max_rel_diff_numeric"] <= 1e-8
        assert row["max_rel_diff_numeric"] == relative_difference(ours[1:], numeric)
        assert row["max_abs_diff_tf"] == max(abs(a - b) for a, b in zip(ours, tf_side))
        assert row["max_abs_diff_numeric"] == max(abs(a - b) for a, b in zip(ours[1:], numeric))


def test_central_differences_use_a_step_relative_to_the_coordinate():
    expr = parse_expression("x**3")
    # At x = 1e4 a fixed step of 1e-6 loses ~8 digits to rounding; the relative step does not.
    (slope, _, _) = central_difference_gradients(expr, (1e4, 0, 0))
    assert slope == pytest.approx(3e8, rel=1e-9)


def test_custom_expressions_with_a_value_exponent_and_rpow_match_tensorflow():
    x, y, z = 1.7, 2.3, -0.4
    rows = gradient_table(parse_expression("x**y + z"), [(x, y, z)])
    row = rows[0]
    assert row["value"] == pytest.approx(x ** y + z, rel=1e-14)
    assert row["df_dx"] == pytest.approx(y * x ** (y - 1), rel=1e-14)
    assert row["df_dy"] == pytest.approx(x ** y * math.log(x), rel=1e-14)
    assert row["df_dz"] == 1.0
    assert row["max_rel_diff_tf"] <= 1e-12 and row["max_rel_diff_numeric"] <= 1e-6

    expr = parse_expression("2**x")
    value, grads = value_gradients(expr, (x, y, z))
    tf_value, tf_grads = tensorflow_gradients(expr, (x, y, z))
    assert value == pytest.approx(2 ** x, rel=1e-14)
    assert grads[0] == pytest.approx(2 ** x * math.log(2), rel=1e-14)
    assert grads[1:] == tf_grads[1:] == [0.0, 0.0]   # absent variables: gradient 0 on both sides
    np.testing.assert_allclose([value, *grads], [tf_value, *tf_grads], rtol=1e-12)


def test_other_variable_names_name_the_columns():
    expr = parse_expression("a * b", variables=("a", "b"))
    (row,) = gradient_table(expr, [(3.0, -2.0)])
    assert (row["point"], row["a"], row["df_da"], row["df_db"], row["tf_df_db"]) == (
        "(3, -2)", 3.0, -2.0, 3.0, 3.0)


@pytest.mark.parametrize("text, found", [
    ("foo(x)", "unknown name 'foo'"),
    ("x + w", "unknown name 'w'"),
    ("x.__class__", "attribute access 'x.__class__'"),
    ("__import__('os')", "unknown name '__import__'"),
    ("'abc'", "constant \"'abc'\""),
    ("sin(x, base=2)", "'sin(x, base=2)'"),
    ("sin(x, y)", "'sin(x, y)'"),
    ("x ^ 2", "use ** for powers"),
    ("x if y else z", "if/else 'x if y else z'"),
    ("x +", "got 'x +' (syntax error at column 3)"),
    ("", "got ''"),
    ("   ", "got '   '"),
    ("x" * 501, "at most 500 characters"),
])
def test_parse_expression_rejects_anything_outside_the_whitelist_in_one_line(text, found):
    with pytest.raises(InvalidParameterError) as error:
        parse_expression(text)
    message = str(error.value)
    assert message.startswith("--expr must ") and found in message and "\n" not in message


def test_parse_expression_messages_have_the_documented_shape():
    with pytest.raises(InvalidParameterError, match=r"^--expr must use only x, y, z, numbers, pi, "
                       r"\+ - \* / \*\* and exp, log, sin, cos, tanh, sigmoid, relu; "
                       r"got unknown name 'foo' in 'foo\(x\)'$"):
        parse_expression("foo(x)")
    with pytest.raises(InvalidParameterError, match=r"^--expr must be a valid expression in "
                       r"x, y, z, got 'x \+' \(syntax error at column 3\)$"):
        parse_expression("x +")


def test_parse_expression_keeps_text_and_allows_unused_variables():
    expr = parse_expression("  -x + 1.5 ")
    assert (expr.text, expr.variables) == ("-x + 1.5", ("x", "y", "z"))
    assert value_gradients(expr, (2.0, 5.0, 7.0)) == (-0.5, [-1.0, 0.0, 0.0])


def test_parse_points_reads_points_with_spaces():
    assert parse_points(" 2, 4 ,1 ; 9,14,3") == ((2.0, 4.0, 1.0), (9.0, 14.0, 3.0))
    assert parse_points("1,-2.5", arity=2) == ((1.0, -2.5),)


@pytest.mark.parametrize("text, found", [
    ("1,2", "got '1,2' with 2 numbers"),
    ("1,2,3;4,5", "got '4,5' with 2 numbers"),
    ("1,a,3", "got 'a', which is not a number, in '1,a,3'"),
    ("nan,1,2", "got 'nan', which is not finite"),
    ("1,2,inf", "got 'inf', which is not finite"),
    ("", "got ''"),
    ("1,2,3;", "an empty point in '1,2,3;'"),
    (";".join(["1,2,3"] * 101), "at most 100 points, got 101"),
])
def test_parse_points_rejects_bad_text_in_one_line(text, found):
    with pytest.raises(InvalidParameterError) as error:
        parse_points(text)
    message = str(error.value)
    assert message.startswith("--points must ") and found in message and "\n" not in message


def test_wrong_arity_message_has_the_documented_shape():
    with pytest.raises(InvalidParameterError, match=r"^--points must be points of 3 numbers "
                       r"separated by ';' \(e\.g\. '2,4,1;9,14,3'\), got '1,2' with 2 numbers$"):
        parse_points("1,2")


def test_importing_the_parser_does_not_import_tensorflow():
    code = ("import sys, dlcv_keras.scratch.expression; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    package_parent = os.path.dirname(os.path.dirname(dlcv_keras.__file__))
    env = {**os.environ, "PYTHONPATH": package_parent}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_the_default_f_is_the_seeds_its_table_to_rounding():
    """q2's reference holds the seed's table as printed; the default f reproduces every row to float64
    rounding (cells the seed cut at 14 digits included), and a one-sign change of f does not."""
    from dlcv_keras.questions import QUESTIONS

    rows = QUESTIONS["q2"].reference["gradients"]["rows"]
    assert [(r["x"], r["y"], r["z"]) for r in rows] == list(DEFAULT_POINTS)
    keys = ("value", "df_dx", "df_dy", "df_dz")
    ours = parse_expression(DEFAULT_EXPRESSION)
    other = parse_expression(DEFAULT_EXPRESSION.replace("+ sin", "- sin"))
    worst_ours, worst_other = 0.0, 0.0
    for row in rows:
        seed = [row[k] for k in keys]
        value, grads = value_gradients(ours, (row["x"], row["y"], row["z"]))
        worst_ours = max(worst_ours, relative_difference([value, *grads], seed))
        value, grads = value_gradients(other, (row["x"], row["y"], row["z"]))
        worst_other = max(worst_other, relative_difference([value, *grads], seed))
    assert worst_ours <= 1e-14
    assert worst_other > 0.1


def test_pi_is_a_constant_and_not_a_variable_name():
    value, (slope,) = value_gradients(parse_expression("sin(pi*x/2)", ("x",)), (1.0,))
    assert value == pytest.approx(1.0, abs=1e-15) and slope == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(InvalidParameterError, match="distinct names other than the function and constant names"):
        parse_expression("pi", ("pi",))
    with pytest.raises(InvalidParameterError, match=r"got call of 'pi'|unknown name 'pi'"):
        parse_expression("pi(x)")


def test_relative_difference_is_the_points_as_a_whole():
    # A derivative that is 0 in exact arithmetic: rounding noise against another rounding noise.
    assert relative_difference([1.0, 1e-15], [1.0, 1e-10]) == pytest.approx(1e-10 / 2, rel=1e-3)
    assert relative_difference([1.0, -2.0], [1.0, -2.0]) == 0.0
    assert relative_difference([1.0, math.nan], [1.0, math.nan]) == 0.0
    assert relative_difference([1.0, math.inf], [1.0, 2.0]) == math.inf
