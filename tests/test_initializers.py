"""standard_normal, IFT6135's "Normal" initialisation (q15): N(0, 1) in the Keras builders and in the
scratch Classifier, beside Keras's own random_normal, which stays N(0, 0.05^2)."""

import numpy as np
import pytest

from dlcv_keras.models.builders import build_linear, build_mlp
from dlcv_keras.scratch.nn import Classifier, initial_weights


def test_standard_normal_draws_unit_variance_weights_in_keras():
    model = build_mlp((28, 28, 1), 10, depth=3, units=300, initializer="standard_normal")
    kernels = [model.get_layer(f"dense_{i}").get_weights()[0] for i in range(3)]
    for kernel in kernels:
        assert abs(kernel.mean()) < 0.01 and kernel.std() == pytest.approx(1.0, abs=0.01)
    # A RandomNormal of its own per layer: two layers of one shape are not drawn alike.
    assert kernels[1].shape == kernels[2].shape and not np.array_equal(kernels[1], kernels[2])
    small = build_linear((28, 28, 1), 10, initializer="random_normal").get_layer("logits").get_weights()[0]
    assert small.std() == pytest.approx(0.05, rel=0.05)


def test_standard_normal_draws_unit_variance_weights_in_the_scratch_classifier():
    weights = initial_weights("standard_normal", 784, 300, np.random.default_rng(0))
    assert weights.dtype == np.float32 and weights.std() == pytest.approx(1.0, abs=0.01)
    model = Classifier((28, 28, 1), 10, units=300, initializer="standard_normal", seed=0)
    assert model.params["dense_0.W"].std() == pytest.approx(1.0, abs=0.01)
    assert "Affine(784 -> 300, standard_normal)" in repr(model)
