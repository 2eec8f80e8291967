"""Training: q3's early-stopping rule, divergence handling, evaluation, a search that survives a blow-up."""

import math

import numpy as np
import pytest

from dlcv_keras.models import build_linear, compile_model
from dlcv_keras.training.callbacks import SeedEarlyStopping
from dlcv_keras.training.fit import evaluate_classifier, fit_and_log


class _FakeModel:
    stop_training = False


def _feed(callback, val_losses):
    callback.set_model(_FakeModel())
    for epoch, loss in enumerate(val_losses):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        if callback.model.stop_training:
            return epoch + 1
    return None


def test_seed_rule_waits_for_min_epochs_then_stops_when_val_loss_rises():
    # Rises at epoch 3 (ignored: before min_epochs=4), then at epoch 6.
    stopped = _feed(SeedEarlyStopping(min_epochs=4, min_delta=1e-6), [1.0, 0.9, 0.95, 0.8, 0.7, 0.75, 0.6])
    assert stopped == 6
    assert _feed(SeedEarlyStopping(min_epochs=4, min_delta=1e-6), [1.0, 0.9, 0.95, 0.8, 0.7]) is None


def test_seed_rule_stops_when_the_change_is_tiny():
    callback = SeedEarlyStopping(min_epochs=2, min_delta=0.01)
    assert _feed(callback, [1.0, 0.5, 0.2, 0.195, 0.1]) == 4
    assert "less than 0.01" in callback.reason


def _tiny_problem(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 4, 4, 1)).astype("float32")
    x[np.arange(n), y, 0, 0] += 2.0       # class signal in one pixel each
    return x, y


def test_fit_keeps_every_epoch_and_learns_a_separable_problem():
    x, y = _tiny_problem()
    model = compile_model(build_linear((4, 4, 1), 3), lr=0.5)
    result = fit_and_log(model, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=5)
    assert result.status == "completed" and result.epochs_run == 5
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4, 5]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(result.history[0])
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    evaluation = evaluate_classifier(model, x[200:], y[200:], 3)
    assert evaluation["accuracy"] > 0.9
    confusion = np.array(evaluation["confusion_matrix"])
    assert confusion.sum() == 40 and confusion.trace() == round(evaluation["accuracy"] * 40)
    per_class = np.diag(confusion) / confusion.sum(axis=1)
    np.testing.assert_allclose(evaluation["per_class_accuracy"], per_class)


def test_a_blow_up_ends_the_run_as_diverged_instead_of_crashing():
    x, y = _tiny_problem()
    # lr * 2 * l2 >> 2: each step multiplies the weights by about -(2 * lr * l2), so they overflow to
    # inf within an epoch.
    model = compile_model(build_linear((4, 4, 1), 3, l2=10.0), lr=10.0)
    result = fit_and_log(model, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=20)
    assert result.status == "diverged"
    assert result.epochs_run < 20
    assert not math.isfinite(result.last["loss"]) or not math.isfinite(result.last["val_loss"])
    assert result.stop_reason.startswith("diverged at epoch")


def test_a_class_missing_from_the_evaluation_set_has_no_accuracy_rather_than_zero():
    x, y = _tiny_problem()
    model = compile_model(build_linear((4, 4, 1), 3), lr=0.5)
    fit_and_log(model, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=3)
    keep = y[200:] != 2
    evaluation = evaluate_classifier(model, x[200:][keep], y[200:][keep], 3)
    assert evaluation["per_class_accuracy"][2] is None
    # A separable problem: both present classes are learned, and each accuracy is its confusion row's.
    confusion = np.array(evaluation["confusion_matrix"])
    for k in (0, 1):
        assert evaluation["per_class_accuracy"][k] == confusion[k, k] / confusion[k].sum() > 0.8


def test_the_test_loss_is_what_model_evaluate_reports_penalty_included_nothing_clipped():
    import keras

    from dlcv_keras.models import build_mlp
    from dlcv_keras.training.fit import predict_probabilities, regularisation_penalty

    x, y = _tiny_problem()
    keras.utils.set_random_seed(0)
    model = compile_model(build_mlp((4, 4, 1), 3, units=8, l1=1e-3, l2=1e-2), lr=0.5)
    fit_and_log(model, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=2)
    evaluation = evaluate_classifier(model, x, y, 3)
    np.testing.assert_allclose(evaluation["loss"], model.evaluate(x, y, verbose=0)[0], rtol=1e-5)
    assert "penalty" in evaluation["loss_includes"] and "logits" in evaluation["loss_includes"]

    # Huge weights and wrong labels: confidently wrong rows, whose probability of the labelled class lies
    # far below 1e-7. From the logits nothing is clipped: the data part of the loss exceeds -log(1e-7), the
    # most a row could add if probabilities were clipped to [1e-7, 1 - 1e-7].
    model.set_weights([w * 50 for w in model.get_weights()])
    wrong = (y + 1) % 3
    assert (predict_probabilities(model, x)[np.arange(len(y)), wrong] < 1e-9).any()
    loss = evaluate_classifier(model, x, wrong, 3)["loss"]
    np.testing.assert_allclose(loss, model.evaluate(x, wrong, verbose=0)[0], rtol=1e-5)
    assert loss - regularisation_penalty(model) > -np.log(1e-7)


def test_the_scratch_classifiers_test_loss_includes_its_l2_penalty_as_its_training_loss_does():
    from dlcv_keras.scratch.nn import Classifier

    x, y = _tiny_problem()
    classifier = Classifier((4, 4, 1), 3, units=8, l2=0.05, seed=1)
    total, _ = classifier.loss(x, y)          # data loss + l2 * sum(W**2)
    assert classifier.loss_parts["penalty"] > 0.01
    evaluation = evaluate_classifier(classifier, x, y, 3)
    np.testing.assert_allclose(evaluation["loss"], total, rtol=1e-5)
