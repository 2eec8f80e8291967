"""The convolutional builders: the seeds' parameter counts, stable layer names, input normalisation."""

import numpy as np
import pytest

from dlcv_keras.models import (BUILDERS, build_cnn, build_resnet18, build_tiny_cnn, build_vgg, get_builder,
                               parameter_table)
from dlcv_keras.models.options import COMPILE_KEYS, FASTEST_BACKEND, MODEL_KEYS, MODELS, SCRATCH_MODELS, SOLVER_KEYS
from dlcv_keras.tuning.spaces import SEARCH_DOMAINS
from dlcv_keras.validation import InvalidParameterError


def trainable(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_q17_cnns_have_the_seeds_counts():
    assert build_cnn((28, 28, 1), 10).count_params() == 570_436
    tiny = build_tiny_cnn((28, 28, 1), 10)
    assert tiny.count_params() == trainable(tiny) == 2_066
    # conv_0 (3*3*1*2 + 2), conv_1 (3*3*2*4 + 4), logits (7*7*4*10 + 10), as the docstring says
    rows = {row["layer"]: row["params"] for row in parameter_table(tiny)}
    assert (rows["conv_0"], rows["conv_1"], rows["logits"]) == (20, 76, 1_970)


@pytest.mark.parametrize("width, count", [(1.0, 11_173_962), (0.5, 2_797_610), (0.25, 701_466), (0.125, 176_402)])
def test_resnet18_trainable_parameters_by_width(width, count):
    model = build_resnet18((32, 32, 3), 10, width=width)
    assert trainable(model) == count
    assert sum(row["params"] for row in parameter_table(model)) == model.count_params()


def test_resnet18_names_dropouts_and_features():
    model = build_resnet18((32, 32, 3), 10, width=0.125, dropout_first=0.2, dropout_head=0.6)
    names = [layer.name for layer in model.layers]
    assert names[:5] == ["image", "stem_conv", "stem_bn", "stem_relu", "stem_dropout"]
    assert names[-3:] == ["pool", "head_dropout", "logits"]
    assert model.get_layer("stem_conv").kernel.shape == (3, 3, 3, 8)
    assert tuple(model.get_layer("pool").output.shape) == (None, 64)
    assert "stage3_block0_proj" in names and "stage0_block1_b_bn" in names
    assert model.get_layer("stem_dropout").rate == 0.2 and model.get_layer("head_dropout").rate == 0.6
    # no dropout layers when the rates are 0; dropout adds no parameters
    plain = build_resnet18((32, 32, 3), 10, width=0.125)
    assert not any("dropout" in layer.name for layer in plain.layers)
    assert plain.count_params() == model.count_params()


def test_vgg_counts_and_layout():
    model = build_vgg((64, 64, 3), 2)
    assert model.count_params() == 34_402_690
    dense = [model.get_layer(n).units for n in ("dense_0", "dense_1", "logits")]
    assert dense == [4096, 4096, 2]
    assert tuple(model.get_layer("flatten").output.shape) == (None, 2 * 2 * 512)
    assert [l.name for l in model.layers if l.name.startswith("dropout")] == ["dropout_0", "dropout_1", "dropout_2"]
    small = build_vgg((64, 64, 3), 2, width=0.125)
    assert small.count_params() == 539_826
    assert small.get_layer("dense_0").units == 512 and small.get_layer("block0_conv0").filters == 8
    assert not any(l.name.startswith("dropout") for l in build_vgg((64, 64, 3), 2, width=0.125, dropout=0.0).layers)


@pytest.mark.parametrize("name, shape", [("cnn", (28, 28, 1)), ("tiny_cnn", (28, 28, 1)),
                                         ("resnet18", (32, 32, 3)), ("vgg", (64, 64, 3))])
def test_every_conv_builder_can_standardise_its_input(name, shape):
    channels = shape[-1]
    mean, variance = [0.5] * channels, [0.04] * channels
    kwargs = {"width": 0.125} if name in ("resnet18", "vgg") else {}
    model = get_builder(name)(shape, 2, input_mean=mean, input_variance=variance, **kwargs)
    assert model.layers[1].name == "normalize"
    normalized = model.get_layer("normalize")(np.full((1, *shape), 0.7, "float32"))
    np.testing.assert_allclose(np.asarray(normalized), 1.0, rtol=1e-5)      # (0.7 - 0.5) / 0.2
    plain = get_builder(name)(shape, 2, **kwargs)
    assert plain.count_params() == model.count_params()      # constants, not weights
    assert "normalize" not in [layer.name for layer in plain.layers]


@pytest.mark.parametrize("kwargs, message", [
    ({"input_mean": [0.5, 0.5, 0.5]}, r"input_mean and input_variance must be given together"),
    ({"input_mean": [0.5], "input_variance": [0.1]}, r"input_mean must be a list of 3 per-channel numbers, got \[0.5\]"),
    ({"input_mean": [0.5] * 3, "input_variance": [0.1, -1.0, 0.1]}, r"input_variance must be a number in \[0, inf\], got -1.0"),
    ({"width": 0}, r"width must be a number in \(0, 16\], got 0"),
    ({"dropout_first": 1.0}, r"dropout_first must be a number in \[0, 1\), got 1.0"),
    ({"dropout_head": -0.1}, r"dropout_head must be a number in \[0, 1\), got -0.1"),
])
def test_bad_resnet_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message) as caught:
        build_resnet18((32, 32, 3), 10, **kwargs)
    assert "\n" not in str(caught.value)


def test_bad_vgg_and_tiny_arguments():
    with pytest.raises(InvalidParameterError, match=r"dense_units must be an int in \[1, inf\], got 0"):
        build_vgg((64, 64, 3), 2, dense_units=0)
    with pytest.raises(InvalidParameterError, match=r"dropout must be a number in \[0, 1\), got 1.5"):
        build_tiny_cnn((28, 28, 1), 10, dropout=1.5)


def test_options_builders_and_search_domains_agree():
    # numpy models (SCRATCH_MODELS) have their keys but no Keras builder and no backend
    assert set(BUILDERS) == set(MODELS) == set(MODEL_KEYS) - set(SCRATCH_MODELS) == set(FASTEST_BACKEND)
    assert all(FASTEST_BACKEND[name] == "tensorflow" for name in ("cnn", "tiny_cnn", "resnet18", "vgg"))
    for keys in (*MODEL_KEYS.values(), COMPILE_KEYS, SOLVER_KEYS):
        assert set(keys) <= set(SEARCH_DOMAINS), set(keys) - set(SEARCH_DOMAINS)
    assert not any("input_" in key for keys in MODEL_KEYS.values() for key in keys)
    # every tunable model key is a keyword argument of its builder
    import inspect
    for name in BUILDERS:
        keys = MODEL_KEYS[name]
        accepted = inspect.signature(BUILDERS[name]).parameters
        assert set(keys) - {k for k in keys if k.startswith("units_")} <= set(accepted), name
