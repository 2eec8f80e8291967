"""Model builders: shapes, parameter counts, the parameter table, bad arguments."""

import numpy as np
import pytest

from dlcv_keras.models import build_linear, build_mlp, compile_model, get_builder, parameter_table
from dlcv_keras.validation import InvalidParameterError


def test_linear_mnist_has_7850_parameters_and_outputs_logits_whose_softmax_is_the_probabilities():
    from dlcv_keras.training.fit import predict_probabilities

    model = compile_model(build_linear((28, 28, 1), 10, l2=1e-3), lr=0.1)
    assert model.count_params() == 784 * 10 + 10
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    logits = model.predict(x, verbose=0)
    kernel, bias = model.get_layer("logits").get_weights()
    np.testing.assert_allclose(logits, x.reshape(3, -1) @ kernel + bias, rtol=1e-4, atol=1e-5)   # no activation
    probabilities = predict_probabilities(model, x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)
    assert model.losses  # the L2 penalty is attached to the kernel


def test_mlp_784_256_10_parameter_table_matches_the_model():
    model = build_mlp((28, 28, 1), 10, depth=1, units=256, dropout=0.2)
    assert model.count_params() == (784 * 256 + 256) + (256 * 10 + 10)
    table = parameter_table(model)
    assert sum(row["params"] for row in table) == model.count_params()
    by_name = {row["layer"]: row for row in table}
    assert by_name["dense_0"]["params"] == 784 * 256 + 256
    assert by_name["dense_0"]["output_shape"] == "(batch, 256)"
    assert by_name["dropout_0"]["type"] == "Dropout"


def test_mlp_takes_one_width_per_layer():
    model = build_mlp((8, 8, 1), 10, depth=2, units=[32, 16], activation="tanh")
    assert model.count_params() == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    with pytest.raises(ValueError, match="depth=3"):
        build_mlp((8, 8, 1), 10, depth=3, units=[32, 16])


@pytest.mark.parametrize("kwargs, message", [
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\), got 1.0"),
    ({"activation": "swish2"}, r"activation must be one of .*got 'swish2'"),
    ({"l2": -1.0}, r"l2 must be a number in \[0, inf\], got -1.0"),
    ({"depth": 0}, r"depth must be an int in \[0?1, 100\], got 0"),
])
def test_bad_builder_arguments_raise_one_line_errors(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        build_mlp((8, 8, 1), 10, **kwargs)


def test_unknown_model_and_bad_learning_rate():
    with pytest.raises(InvalidParameterError, match=r"model must be one of 'linear', 'mlp', 'cnn', 'tiny_cnn', 'resnet18', 'vgg', 'resnet18_transfer', got 'resnet'"):
        get_builder("resnet")
    with pytest.raises(InvalidParameterError, match=r"lr must be a number in \(0, inf\], got -0.1"):
        compile_model(build_linear((4, 4, 1), 3), lr=-0.1)
