"""The numpy layers, modules, optimizer and gradient checks in dlcv_keras.scratch.

Every backward pass is checked twice, in float64: against centred differences and against
TensorFlow's autodiff. The scratch classifier is checked against the Keras build_mlp model
(parameter count, table, predictions with copied weights), and the two-layer net against
the HLCV reference numbers. All data is tiny and generated here.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcv_keras.scratch import layers as L
from dlcv_keras.scratch.gradient_check import (
    eval_numerical_gradient, eval_numerical_gradient_array, finite_difference_sweep, max_gap_by_n,
    rel_error,
)
from dlcv_keras.scratch.nn import (
    INITIALIZERS, Affine, Classifier, Flatten, Sequential, Tanh, initial_weights,
)
from dlcv_keras.scratch.optim import SGD, sgd
from dlcv_keras.scratch.two_layer import (
    REFERENCE_LOSS, REFERENCE_SCORES, TwoLayerNet, check_gradients, init_toy_data, init_toy_model,
)
from dlcv_keras.validation import InvalidParameterError

TOL = 1e-7  # largest relative error accepted for float64 gradient checks


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def rng(seed=0):
    return np.random.default_rng(seed)


def tf_gradients(tf, fn, arrays, dout=None):
    """Gradients of fn(*arrays) by tf.GradientTape; ``dout`` is the upstream gradient (None for scalars)."""
    tensors = [tf.constant(a) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        out = fn(*tensors)
    upstream = None if dout is None else tf.constant(dout)
    return out.numpy(), [g.numpy() for g in tape.gradient(out, tensors, output_gradients=upstream)]


# ## Elementwise layer pairs: (forward, backward, TensorFlow version)

ELEMENTWISE = {
    "relu": (L.relu_forward, L.relu_backward, lambda tf, x: tf.nn.relu(x)),
    "sigmoid": (L.sigmoid_forward, L.sigmoid_backward, lambda tf, x: tf.sigmoid(x)),
    "tanh": (L.tanh_forward, L.tanh_backward, lambda tf, x: tf.tanh(x)),
    "leaky_relu": (lambda x: L.leaky_relu_forward(x, 0.1), L.leaky_relu_backward,
                   lambda tf, x: tf.nn.leaky_relu(x, alpha=0.1)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_backward_matches_numerical_and_tensorflow(name, tf):
    forward, backward, tf_fn = ELEMENTWISE[name]
    x = rng(1).normal(size=(4, 5))
    dout = rng(2).normal(size=(4, 5))
    out, cache = forward(x)
    dx = backward(dout, cache)

    dx_num = eval_numerical_gradient_array(lambda v: forward(v)[0], x, dout)
    assert rel_error(dx, dx_num) < TOL

    tf_out, (dx_tf,) = tf_gradients(tf, lambda t: tf_fn(tf, t), [x], dout)
    assert rel_error(out, tf_out) < TOL
    assert rel_error(dx, dx_tf) < TOL


def test_affine_backward_matches_numerical_and_tensorflow(tf):
    x = rng(1).normal(size=(4, 2, 3))  # flattened to (4, 6)
    w = rng(2).normal(size=(6, 5))
    b = rng(3).normal(size=(5,))
    dout = rng(4).normal(size=(4, 5))
    out, cache = L.affine_forward(x, w, b)
    dx, dw, db = L.affine_backward(dout, cache)
    assert out.shape == (4, 5) and dx.shape == x.shape

    assert rel_error(dx, eval_numerical_gradient_array(lambda v: L.affine_forward(v, w, b)[0], x, dout)) < TOL
    assert rel_error(dw, eval_numerical_gradient_array(lambda v: L.affine_forward(x, v, b)[0], w, dout)) < TOL
    assert rel_error(db, eval_numerical_gradient_array(lambda v: L.affine_forward(x, w, v)[0], b, dout)) < TOL

    tf_out, tf_grads = tf_gradients(tf, lambda x, w, b: tf.reshape(x, (4, -1)) @ w + b, [x, w, b], dout)
    assert rel_error(out, tf_out) < TOL
    for ours, theirs in zip((dx, dw, db), tf_grads):
        assert rel_error(ours, theirs) < TOL


def test_dropout_backward_with_a_fixed_mask_matches_numerical_and_tensorflow(tf):
    x = rng(1).normal(size=(6, 7))
    dout = rng(2).normal(size=(6, 7))
    # The same generator state gives the same mask on every call, so f is a fixed function.
    forward = lambda v: L.dropout_forward(v, 0.4, "train", rng(7))  # noqa: E731
    out, cache = forward(x)
    mask = cache[0]
    assert set(np.unique(mask)) <= {0.0, 1 / 0.6}
    dx = L.dropout_backward(dout, cache)

    assert rel_error(dx, eval_numerical_gradient_array(lambda v: forward(v)[0], x, dout)) < TOL
    tf_out, (dx_tf,) = tf_gradients(tf, lambda t: t * mask, [x], dout)
    assert rel_error(out, tf_out) < TOL
    assert rel_error(dx, dx_tf) < TOL


def test_dropout_is_the_identity_at_test_time_and_keeps_the_mean_in_training():
    x = np.ones((2000, 50))
    out, cache = L.dropout_forward(x, 0.3, "test", rng())
    assert out is x
    assert L.dropout_backward(x, cache) is x

    out, _ = L.dropout_forward(x, 0.3, "train", rng())
    assert abs(out.mean() - 1.0) < 0.01          # inverted dropout: E[out] = x
    assert abs((out == 0).mean() - 0.3) < 0.01   # rate is the fraction dropped
    with pytest.raises(ValueError, match="mode must be one of 'train', 'test', got 'eval'"):
        L.dropout_forward(x, 0.3, "eval", rng())


def test_softmax_cross_entropy_matches_numerical_and_tensorflow(tf):
    scores = rng(1).normal(size=(6, 4))
    y = np.array([0, 3, 1, 2, 2, 0])
    loss, dscores = L.softmax_cross_entropy(scores, y)

    num = eval_numerical_gradient(lambda s: L.softmax_cross_entropy(s, y)[0], scores)
    assert rel_error(dscores, num) < TOL

    def tf_loss(s):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=s))

    tf_value, (dscores_tf,) = tf_gradients(tf, tf_loss, [scores])
    assert rel_error(loss, tf_value) < TOL
    assert rel_error(dscores, dscores_tf) < TOL
    # Uniform scores give log(C).
    assert np.isclose(L.softmax_cross_entropy(np.zeros((3, 4)), np.array([0, 1, 2]))[0], np.log(4))


def test_l2_penalty_matches_numerical_tensorflow_and_keras_regularizer(tf):
    import keras

    weights = [rng(1).normal(size=(3, 4)), rng(2).normal(size=(4, 2))]
    lam = 0.03
    loss, grads = L.l2_penalty(weights, lam)
    for i, w in enumerate(weights):
        num = eval_numerical_gradient(lambda v: L.l2_penalty(weights, lam)[0], w)
        assert rel_error(grads[i], num) < TOL

    tf_value, tf_grads = tf_gradients(tf, lambda a, b: lam * (tf.reduce_sum(a * a) + tf.reduce_sum(b * b)),
                                      weights)
    assert rel_error(loss, tf_value) < TOL
    for ours, theirs in zip(grads, tf_grads):
        assert rel_error(ours, theirs) < TOL
    keras_value = sum(float(keras.regularizers.L2(lam)(w)) for w in weights)
    assert rel_error(loss, keras_value) < 1e-6  # no factor 1/2, like Keras


def test_layers_keep_float32_and_stay_finite_for_extreme_inputs():
    x32 = rng().normal(size=(3, 4)).astype(np.float32)
    w32 = rng(1).normal(size=(4, 2)).astype(np.float32)
    b32 = np.zeros(2, np.float32)
    out, cache = L.affine_forward(x32, w32, b32)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in L.affine_backward(out, cache))
    for forward, backward, _ in ELEMENTWISE.values():
        out, cache = forward(x32)
        assert out.dtype == np.float32 and backward(out, cache).dtype == np.float32
    out, cache = L.dropout_forward(x32, 0.5, "train", rng())
    assert out.dtype == np.float32 and L.dropout_backward(out, cache).dtype == np.float32
    _, dscores = L.softmax_cross_entropy(x32, np.array([0, 1, 2]))
    assert dscores.dtype == np.float32 and L.softmax(x32).dtype == np.float32
    _, grads = L.l2_penalty([w32], np.float64(0.1))
    assert grads[0].dtype == np.float32

    with np.errstate(over="raise", divide="raise", invalid="raise"):  # exp(-1000) may underflow to 0
        np.testing.assert_allclose(L.sigmoid_forward(np.array([-1000.0, 0.0, 1000.0]))[0], [0, 0.5, 1])
        probs = L.softmax(np.array([[1000.0, 0.0, -1000.0]]))
        loss, _ = L.softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    np.testing.assert_allclose(probs, [[1, 0, 0]])
    assert np.isclose(loss, 1000.0)


# ## Modules and the classifier


def test_sequential_gradients_match_numerical_and_are_keyed_by_module():
    r = rng(3)
    net = Sequential([Flatten(), Affine(6, 5, rng=r, dtype=np.float64), Tanh(),
                      Affine(5, 3, rng=r, dtype=np.float64)])
    assert list(net.parameters()) == ["dense_0.W", "dense_0.b", "dense_1.W", "dense_1.b"]
    x = rng(4).normal(size=(4, 2, 3))
    y = np.array([0, 2, 1, 1])

    def loss_of_net(_):
        scores, _ = net.forward(x)
        return L.softmax_cross_entropy(scores, y)[0]

    scores, caches = net.forward(x)
    _, dscores = L.softmax_cross_entropy(scores, y)
    dx, grads = net.backward(dscores, caches)
    assert set(grads) == set(net.parameters())
    for name, param in net.parameters().items():
        assert rel_error(grads[name], eval_numerical_gradient(loss_of_net, param)) < TOL
    assert rel_error(dx, eval_numerical_gradient(loss_of_net, x)) < TOL


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu", "linear"])
def test_classifier_gradients_with_dropout_and_l2_match_numerical(activation):
    model = Classifier((3, 2), 4, depth=2, units=[4, 3], activation=activation, dropout=0.3,
                       l2=0.02, seed=1, dtype=np.float64)
    x = rng(2).normal(size=(4, 3, 2))
    y = np.array([0, 1, 2, 3])
    # The largest relative error is set by the smallest entries: one of ~1e-5 reaches ~1e-7
    # from rounding alone, so the network stays tiny (about 1 seed in 20 of a 5-4 net lands at
    # 1e-7 to 6e-7 with a correct backward pass).
    # Zero biases put a ReLU input exactly on its kink whenever dropout empties a row;
    # a centred difference there sees half the slope, so start the check off the kinks.
    for name in ("dense_0.b", "dense_1.b", "logits.b"):
        model.params[name] = rng(3).normal(0.0, 0.1, model.params[name].shape)

    def fixed_mask_loss(_=None):
        for name in ("dropout_0", "dropout_1"):  # same generator state -> same dropout masks
            model.net.modules[name].rng = rng(9)
        return model.loss(x, y)

    loss, grads = fixed_mask_loss()
    parts = model.loss_parts
    assert parts["penalty"] > 0 and np.isclose(loss, parts["data_loss"] + parts["penalty"])
    assert set(grads) == set(model.params)
    for name, param in model.params.items():
        numeric = eval_numerical_gradient(lambda _: fixed_mask_loss()[0], param)
        assert rel_error(grads[name], numeric) < TOL, name


def test_classifier_matches_the_keras_parameter_count_and_table():
    from dlcv_keras.models.builders import build_mlp, parameter_table

    config = dict(depth=2, units=[6, 7], activation="tanh", dropout=0.2, l2=1e-3)
    ours = Classifier((4, 3), 5, **config)
    keras_model = build_mlp((4, 3), 5, **config)
    assert ours.count_params() == keras_model.count_params() == (12 * 6 + 6) + (6 * 7 + 7) + (7 * 5 + 5)

    our_rows, keras_rows = ours.parameter_table(), parameter_table(keras_model)
    assert [set(row) for row in our_rows] == [{"layer", "type", "output_shape", "params"}] * len(our_rows)
    drop_type = lambda rows: [{k: v for k, v in row.items() if k != "type"} for row in rows]  # noqa: E731
    assert drop_type(our_rows) == drop_type(keras_rows)
    assert our_rows[2] == {"layer": "dense_0", "type": "Affine", "output_shape": "(batch, 6)", "params": 78}


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "leaky_relu", "linear"])
def test_classifier_with_keras_weights_predicts_like_keras(activation):
    from dlcv_keras.models.builders import build_mlp
    from dlcv_keras.training.fit import predict_probabilities

    config = dict(depth=2, units=[8, 6], activation=activation, dropout=0.5, l2=1e-2)
    ours = Classifier((5, 4, 1), 3, **config, seed=3)
    keras_model = build_mlp((5, 4, 1), 3, **config)
    for key in ours.weight_keys:  # Dense kernels are (in, out), like our W
        layer = key.split(".")[0]
        keras_model.get_layer(layer).set_weights([ours.params[f"{layer}.W"], ours.params[f"{layer}.b"]])

    x = rng(4).normal(size=(9, 5, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(ours.logits(x, batch_size=4), keras_model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(ours.predict(x, batch_size=4), predict_probabilities(keras_model, x), atol=1e-5)
    _, penalty, _, scores = ours.loss_and_gradients(x, np.zeros(9, int), with_scores=True)
    assert np.isclose(penalty, float(sum(keras_model.losses)), rtol=1e-5)
    assert penalty == ours.penalty() and scores.shape == (9, 3)


@pytest.mark.parametrize("initializer", INITIALIZERS)
def test_initializers_follow_the_keras_formulas(initializer):
    import keras

    from dlcv_keras.models.builders import keras_initializer

    ours = initial_weights(initializer, 300, 200, rng())
    theirs = keras.ops.convert_to_numpy(keras.initializers.get(keras_initializer(initializer))(shape=(300, 200)))
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.isclose(ours.std(), theirs.std(), rtol=0.03, atol=1e-12)
    if initializer not in ("random_normal", "standard_normal"):  # the others are bounded: compare the largest |w| too
        assert np.isclose(np.abs(ours).max(), np.abs(theirs).max(), rtol=0.03, atol=1e-12)


def test_param_dict_assignment_writes_into_the_live_arrays():
    model = Classifier((4,), 3, units=5, seed=0)
    weights = model.params["dense_0.W"]
    model.params["dense_0.W"] = np.zeros((4, 5))  # cs231n's Solver does this
    assert model.params["dense_0.W"] is weights and not weights.any()
    assert model.net.modules["dense_0"].params["W"] is weights


def test_classifier_trains_with_sgd_and_predicts_probabilities():
    x = np.concatenate([rng(1).normal(-2, 1, (40, 2, 2)), rng(2).normal(2, 1, (40, 2, 2))])
    y = np.repeat([0, 1], 40)
    model = Classifier((2, 2), 2, units=8, dropout=0.1, l2=1e-4, seed=0)
    optimizer = SGD(0.5)
    losses = []
    for _ in range(30):
        loss, grads = model.loss(x, y)
        losses.append(loss)
        optimizer.step(model.parameters(), grads)
    assert losses[-1] < 0.5 * losses[0]
    probs = model.predict(x)
    assert probs.shape == (80, 2) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs, model.loss(x))  # y=None: probabilities, dropout off
    assert (probs.argmax(axis=1) == y).mean() > 0.9
    assert "Classifier(" in repr(model) and "(dense_0): Affine(4 -> 8, glorot_uniform)" in repr(model)


@pytest.mark.parametrize("kwargs, message", [
    ({"depth": 0}, r"depth must be an int in \[1, 100\], got 0"),
    ({"activation": "swish"}, r"activation must be one of .*got 'swish'"),
    ({"activation": "elu"}, r"activation must be one of .*got 'elu'"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
    ({"l2": -1.0}, r"l2 must be a number in \[0, inf\], got -1.0"),
    ({"depth": 3, "units": [4, 4]}, r"units must be one int or a list of depth=3 ints"),
    ({"initializer": "orthogonal"}, r"initializer must be one of"),
    ({"dtype": np.int32}, r"dtype must be one of 'float32', 'float64', got 'int32'"),
])
def test_bad_classifier_arguments_raise_invalid_parameter_error(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        Classifier((4, 4), 3, **kwargs)


# ## Optimizer


def test_sgd_rule_and_clipping():
    w = np.ones(3)
    next_w, config = sgd(w, np.array([1.0, 2.0, 3.0]))
    assert config["learning_rate"] == 1e-2 and next_w is w
    np.testing.assert_allclose(w, [0.99, 0.98, 0.97])

    params = {"w": np.zeros(3, np.float32)}
    SGD(0.1, clip=1.0).step(params, {"w": np.array([5.0, -5.0, 0.5], np.float32)})
    np.testing.assert_allclose(params["w"], [-0.1, 0.1, -0.05])
    assert params["w"].dtype == np.float32
    SGD(0.1).step(params, {"w": np.array([5.0, 0.0, 0.0], np.float32)})  # no clip
    np.testing.assert_allclose(params["w"], [-0.6, 0.1, -0.05], rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0.0}, r"lr must be a number in \(0, inf\], got 0.0"),
    ({"lr": -0.1}, r"lr must be a number in \(0, inf\], got -0.1"),
    ({"lr": 0.1, "clip": 0.0}, r"clip must be a number in \(0, inf\], got 0.0"),
])
def test_bad_optimizer_arguments_raise_invalid_parameter_error(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        SGD(**kwargs)


# ## Gradient checking tools


def test_rel_error_and_numerical_gradient_restore_the_input():
    assert rel_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert np.isclose(rel_error(1.0, 3.0), 0.5)
    x = rng().normal(size=(3, 2))
    before = x.copy()
    grad = eval_numerical_gradient(lambda v: np.sum(v ** 3), x)
    np.testing.assert_array_equal(x, before)
    assert rel_error(grad, 3 * x ** 2) < TOL


def test_finite_difference_gap_shrinks_as_n_grows():
    model = Classifier((3,), 3, units=4, activation="tanh", seed=2, dtype=np.float64)
    x = rng(5).normal(size=(6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    _, grads = model.loss(x, y)
    param = model.params["dense_0.W"]
    before = param.copy()
    rows = finite_difference_sweep(lambda _: model.loss(x, y)[0], param, grads["dense_0.W"],
                                   [10, 100, 1000, 10_000], count=5)
    np.testing.assert_array_equal(param, before)
    assert len(rows) == 4 * 5
    assert set(rows[0]) == {"N", "epsilon", "index", "analytic", "numeric", "abs_gap"}
    summary = max_gap_by_n(rows)
    assert [row["N"] for row in summary] == [10, 100, 1000, 10_000]
    gaps = [row["max_abs_gap"] for row in summary]
    assert gaps[-1] < gaps[0] / 100  # centred differences: error ~ epsilon**2
    assert gaps == sorted(gaps, reverse=True)


# ## The HLCV two-layer network (q6)


def test_two_layer_net_matches_the_reference_scores_and_loss():
    net = init_toy_model()
    X, y = init_toy_data()
    np.testing.assert_allclose(net.loss(X), REFERENCE_SCORES, rtol=0, atol=1e-7)
    loss, _ = net.loss(X, y, reg=0.05)
    assert abs(loss - REFERENCE_LOSS) < 1e-10
    before = np.random.get_state()[1].copy()
    TwoLayerNet(4, 10, 3)
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # global state untouched


def test_two_layer_net_gradients_check():
    X, y = init_toy_data()
    errors = check_gradients(init_toy_model(), X, y, reg=0.05)
    assert set(errors) == {"W1", "b1", "W2", "b2"}
    assert max(errors.values()) < 1e-8, errors


def test_two_layer_net_trains_the_toy_data():
    X, y = init_toy_data()
    net = init_toy_model()
    stats = net.train(X, y, X, y, learning_rate=1e-1, reg=5e-6, num_iters=100, batch_size=200)
    assert len(stats["loss_history"]) == 100
    assert stats["loss_history"][-1] < 0.02
    assert stats["train_acc_history"][-1] == 1.0
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        net.train(X, y, X, y, learning_rate=0.0)


def test_scratch_modules_import_without_keras_or_tensorflow():
    # Every module of the package, so a new one cannot slip a Keras import in unnoticed.
    code = ("import importlib, pkgutil, sys, dlcv_keras.scratch as s; "
            "names = [m.name for m in pkgutil.iter_modules(s.__path__)]; "
            "assert {'engine', 'expression', 'layers', 'nn', 'conv', 'solver'} <= set(names), names; "
            "[importlib.import_module('dlcv_keras.scratch.' + n) for n in names]; "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


def test_only_expressions_tensorflow_functions_import_tensorflow():
    # README: scratch/expression.py imports TensorFlow only inside tensorflow_ops and
    # tensorflow_gradients (q2's cross-check). Any other import of Keras, TensorFlow or JAX
    # in the package, at module level or inside a function, breaks that claim.
    import ast

    import dlcv_keras.scratch as scratch

    found = set()
    for path in sorted(Path(scratch.__path__[0]).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        enclosing = {}     # node -> name of the innermost function around it
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(function):
                    if node is not function:
                        enclosing[node] = function.name      # inner functions come later, win
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("keras", "tensorflow", "jax", "keras_tuner"):
                    found.add((path.name, enclosing.get(node, "<module>"), name))
    assert sorted(found) == [("expression.py", "tensorflow_gradients", "tensorflow"),
                             ("expression.py", "tensorflow_ops", "tensorflow")]
