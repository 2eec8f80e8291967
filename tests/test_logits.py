"""Every classifier outputs logits and trains on the cross-entropy computed from them
(models/builders.py, models/compile.py), so a saturated softmax still passes a gradient: q15's
network with N(0, 1) weights learns. Here on the JAX backend, in this process and through the fast
path (training/scanned.py); the same check on TensorFlow is in tests/test_tensorflow_training.py."""

import keras
import numpy as np
import pytest

from dlcv_keras.models import compile_model, get_builder
from dlcv_keras.models.builders import OUTPUT_LAYER, build_mlp
from dlcv_keras.training import scanned
from dlcv_keras.training.fit import evaluate_classifier, fit_and_log, predict_probabilities
from dlcv_keras.validation import InvalidParameterError

# Every builder the questions use, small (the transfer head: tests/test_pretrained.py).
BUILDS = {
    "linear": ((28, 28, 1), {}),
    "mlp": ((28, 28, 1), {"depth": 2, "units": 16}),
    "cnn": ((28, 28, 1), {"filters": (4, 8), "pool_after": (0,), "dense_units": 16}),
    "tiny_cnn": ((28, 28, 1), {}),
    "resnet18": ((32, 32, 3), {"width": 0.0625}),
    "vgg": ((32, 32, 3), {"width": 0.0625}),
}


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_builder_ends_in_a_logits_layer_and_compiles_with_the_cross_entropy_from_logits(name):
    shape, kwargs = BUILDS[name]
    model = compile_model(get_builder(name)(shape, 10, **kwargs), lr=0.1)
    output = model.layers[-1]
    assert output.name == OUTPUT_LAYER == "logits" and output.activation is keras.activations.linear
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True


def saturated_mlp():
    """q15's network (784-512-512-10, ReLU, SGD 0.01) with N(0, 1) weights, and rows of uniform noise
    in [0, 1] with random labels: its logits are in the thousands, so its softmax saturates. Only the
    rows whose probability of their label is below 1e-7 or above 1 - 1e-7 are kept (nearly all): on
    them a cross-entropy computed from probabilities clipped to [1e-7, 1 - 1e-7] (Keras's on JAX)
    would pass no gradient at all."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64).astype(np.int32)
    model = compile_model(build_mlp((28, 28, 1), 10, depth=2, units=512, initializer="standard_normal"), lr=0.01)
    keep = saturated_rows(model, x, y)
    assert keep.sum() >= 48, keep.sum()
    return model, x[keep], y[keep]


def saturated_rows(model, x, y) -> np.ndarray:
    picked = predict_probabilities(model, x)[np.arange(len(y)), y]
    return (picked < 1e-7) | (picked > 1 - 1e-7)


def first_kernel(model) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(model.get_layer("dense_0").kernel))


def test_a_saturated_softmax_still_passes_a_gradient_to_the_first_layer_on_jax():
    import jax

    assert keras.backend.backend() == "jax"
    model, x, y = saturated_mlp()
    model._symbolic_build(data_batch=(x[:1], y[:1]))        # the loss's and metrics' variables, as fit makes them
    values = [[v.value for v in variables] for variables in
              (model.trainable_variables, model.non_trainable_variables, model.metrics_variables)]
    # The gradient of the compiled loss, as Keras's own train_step takes it.
    gradients, _ = jax.grad(model.compute_loss_and_updates, has_aux=True)(*values, x, y, None)
    assert model.trainable_variables[0].path == "dense_0/kernel"
    first = np.asarray(gradients[0])
    assert np.isfinite(first).all() and np.abs(first).max() > 0


def test_one_fast_path_step_moves_the_saturated_networks_first_layer():
    model, x, y = saturated_mlp()
    before = first_kernel(model)
    scanned.forget()
    result = fit_and_log(model, x, y, x, y, batch_size=len(x), epochs=1, shuffle=False)   # one batch: one step
    assert scanned._compiled                                   # it went through the fast path
    after = first_kernel(model)
    assert np.isfinite(after).all() and np.abs(after - before).max() > 0
    assert np.isfinite(result.history[0]["loss"])


def test_on_the_saturated_network_the_test_loss_and_accuracy_are_what_model_evaluate_reports():
    model, x, y = saturated_mlp()
    ours = evaluate_classifier(model, x, y, 10)
    theirs = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)
    assert ours["loss"] > -np.log(1e-7)                        # unclipped: far above what clipping allows
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])   # the metric reads the logits' arg max
    probabilities = predict_probabilities(model, x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(probabilities.argmax(axis=1), np.asarray(model.predict(x, verbose=0)).argmax(axis=1))


def test_a_model_that_ends_in_a_softmax_is_refused_rather_than_read_as_logits():
    inputs = keras.Input((4,))
    legacy = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="softmax")(inputs), name="legacy")
    with pytest.raises(InvalidParameterError, match=r"^model 'legacy' must output logits .* got an output "
                                                    r"layer 'softmax' with a softmax"):
        evaluate_classifier(legacy, np.zeros((2, 4), np.float32), np.zeros(2, np.int64), 3)


def test_the_gallery_ranks_saturated_mistakes_by_how_little_the_true_class_got(tmp_path):
    """Three mistakes whose predicted class has probability 1 to float64 precision, one mild mistake and
    one right answer: the saturated ones come first, ordered by the true class's log-probability (read
    from the logits), then the mild one; the stored probabilities are the softmax of the logits."""
    import csv
    from types import SimpleNamespace

    from dlcv_keras.experiments.misclassified import MisclassifiedGallery
    from dlcv_keras.results import ResultsStore

    logits = np.array([[400, 0, 100], [400, 0, 300], [400, -700, 0], [1, 0.5, 0], [0, 9, 0]], np.float32)
    truth = np.array([1, 2, 1, 1, 1])                 # log p(true): -400, -100, -1100, about -1.1; the last is right
    inputs = keras.Input((3,))
    identity = keras.layers.Dense(3, use_bias=False, kernel_initializer="identity", name="logits")
    model = keras.Model(inputs, identity(inputs))     # the logits are the inputs
    store = ResultsStore(tmp_path, "q18", "smoke")
    runner = SimpleNamespace(
        data=SimpleNamespace(x_test=logits, y_test=truth, class_names=["a", "b", "c"]), models={"best": model},
        space=SimpleNamespace(experiment=lambda name: SimpleNamespace(fixed={"count": 10}, choices={})),
        store=store, echo=lambda *_: None)
    MisclassifiedGallery("gallery", "Misclassified", source="best").run(runner)
    with open(store.experiment_dir("gallery") / "gallery.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["test_index"]) for row in rows] == [2, 0, 1, 3]
    assert float(rows[0]["p_a"]) == 1.0 and float(rows[0]["p_b"]) == 0.0 and 0 < float(rows[0]["p_c"]) < 1e-170
    mild = np.exp(logits[3] - logits[3].max()) / np.exp(logits[3] - logits[3].max()).sum()
    np.testing.assert_allclose([float(rows[3][f"p_{n}"]) for n in "abc"], mild, rtol=1e-6)
