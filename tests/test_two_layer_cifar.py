"""The HLCV two-layer network on images (``two_layer.TwoLayerClassifier``), its solver and its searches.

The numbers: gradients through the mean-image and PCA inputs against central differences,
the solver's per-epoch learning-rate decay, iteration counting, patience and flips. Then the
path q7 will take: a ``Search(model="two_layer", implementation="scratch")`` beside a Keras
one in a question declared here (q7 itself is declared elsewhere), run through the command
line on the offline CIFAR-10 copy (DLCV_DATA_DIR, else /work/shared/datasets; skipped
without it), and bad settings refused in one line before anything is written.
"""

from __future__ import annotations

import csv
import json

import keras_tuner
import numpy as np
import pytest

from dlcv_keras.experiments import EvaluateBest, Search
from dlcv_keras.questions import QUESTIONS, Question
from dlcv_keras.run import main
from dlcv_keras.scratch.gradient_check import eval_numerical_gradient, rel_error
from dlcv_keras.scratch.nn import Classifier
from dlcv_keras.scratch.solver import flip_images, train
from dlcv_keras.scratch.two_layer import TwoLayerClassifier
from dlcv_keras.tuning.hypermodel import ClassifierHyperModel
from dlcv_keras.validation import InvalidParameterError
from test_cli import assert_one_line_error
from real_runs import offline_data

SHAPE = (4, 4, 3)           # small images: 48 input features, so central differences stay cheap


def images(n, seed=0, shape=SHAPE):
    """n images in [0, 1] (as load_dataset returns them) and labels of 3 classes."""
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)), rng.integers(0, 3, n)


# -- the model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pca", [0, 10])
def test_gradients_through_the_mean_image_and_pca_match_numerical(pca):
    x, y = images(30)
    model = TwoLayerClassifier(SHAPE, 3, units=7, l2=0.1, std=0.05, pca=pca, seed=1, dtype=np.float64).adapt(x)
    inputs = model.features(x)
    assert inputs.shape == (30, pca or 48)
    data_loss, penalty, grads = model.loss_and_gradients(inputs, y)
    for name, param in model.parameters().items():
        # Inputs on the 0-255 scale move a hidden unit by ~100 h when a W1 entry moves by h: a small step
        # keeps it off the ReLU's kink. Over 8 seeds of data and weights the worst error was 6e-7.
        numeric = eval_numerical_gradient(lambda _: sum(model.loss_and_gradients(inputs, y)[:2]), param, h=1e-6)
        assert rel_error(numeric, grads[name]) < 2e-6, name
    # predict() takes images through the same transform the training loss saw.
    probabilities = model.predict(x, batch_size=7)
    assert data_loss == pytest.approx(-np.mean(np.log(probabilities[np.arange(30), y])), rel=1e-12)
    assert penalty == pytest.approx(0.1 * sum(np.sum(model.parameters()[k] ** 2) for k in ("W1", "W2")))


def test_inputs_are_0_255_pixels_minus_the_training_mean_image():
    x, _ = images(20)
    model = TwoLayerClassifier(SHAPE, 3, dtype=np.float64).adapt(x)
    np.testing.assert_allclose(model.mean, 255 * x.reshape(20, -1).mean(axis=0))
    other, _ = images(5, seed=9)
    np.testing.assert_allclose(model.features(other), 255 * other.reshape(5, -1) - model.mean)
    uint8 = (255 * other).round().astype(np.uint8)      # images kept as uint8 are on that scale already
    np.testing.assert_allclose(model.features(uint8), uint8.reshape(5, -1) - model.mean)
    # The exercise's counts: W1, b1, W2, b2 only (the mean image is a statistic, not trained).
    assert model.count_params() == 48 * 50 + 50 + 50 * 3 + 3
    assert sum(row["params"] for row in model.parameter_table()) == model.count_params()
    assert model.parameter_table()[1] == {"layer": "centre", "type": "MeanImage", "output_shape": "(batch, 48)",
                                          "params": 0}


def test_pca_is_fitted_on_the_training_rows_only_and_applied_at_predict():
    x, y = images(60)
    val_a, val_b = images(20, seed=1), images(20, seed=2)
    models = []
    for x_val, y_val in (val_a, val_b):
        model = TwoLayerClassifier(SHAPE, 3, units=5, pca=6, dtype=np.float64)
        train(model, x, y, x_val, y_val, lr=1e-5, batch_size=20, epochs=2)
        models.append(model)
    # Other validation rows change nothing the transform learned, nor what training did.
    np.testing.assert_array_equal(models[0].axes, models[1].axes)
    np.testing.assert_array_equal(models[0].parameters()["W1"], models[1].parameters()["W1"])
    # The axes are the training split's first right singular vectors (up to sign), largest first.
    centred = 255 * x.reshape(60, -1) - 255 * x.reshape(60, -1).mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(models[0].axes * vt[:6].T, axis=0)), 1.0, atol=1e-8)
    # predict projects new images with those axes: ((255 x - training mean) @ axes) through the net.
    test_x, _ = images(8, seed=3)
    projected = (255 * test_x.reshape(8, -1) - models[0].mean) @ models[0].axes
    np.testing.assert_allclose(models[0].predict(test_x), models[0].net.loss(projected))


def test_pca_beyond_the_features_or_the_training_rows_is_one_line():
    with pytest.raises(InvalidParameterError, match=r"^pca must be an int in \[0, 48\], got 49$"):
        TwoLayerClassifier(SHAPE, 3, pca=49)
    x, _ = images(10)
    with pytest.raises(InvalidParameterError,
                       match=r"^pca must be an int in \[0, 10\] \(at most the number of training rows\), got 12$"):
        TwoLayerClassifier(SHAPE, 3, pca=12).adapt(x)


# -- the solver -----------------------------------------------------------------------------------

def test_lr_decay_scales_each_epochs_updates():
    x, y = images(40)
    params = []
    for epochs in (1, 2, 3):          # full-batch steps, one per epoch: the update is exactly -rate * gradient
        model = TwoLayerClassifier(SHAPE, 3, units=6, std=0.01, dtype=np.float64)
        outcome = train(model, x, y, x, y, lr=1e-5, lr_decay=0.5, batch_size=40, epochs=epochs)
        params.append({k: v.copy() for k, v in model.parameters().items()})
    assert [row["learning_rate"] for row in outcome["history"]] == [1e-5, 5e-6, 2.5e-6]
    for before, after, rate in ((params[0], params[1], 5e-6), (params[1], params[2], 2.5e-6)):
        model.parameters().update({k: v.copy() for k, v in before.items()})
        _, _, grads = model.loss_and_gradients(model.features(x), y)
        for name in grads:
            np.testing.assert_allclose(after[name] - before[name], -rate * grads[name], rtol=1e-6, atol=1e-16)
    assert "learning_rate" not in train(model, x, y, x, y, lr=1e-5, batch_size=40, epochs=1)["history"][0]


def _record_batches(model) -> list[np.ndarray]:
    """Wrap ``model.loss_and_gradients`` to keep every training batch it is given."""
    batches, inner = [], model.loss_and_gradients

    def recording(inputs, y, **kwargs):
        batches.append(inputs.copy())
        return inner(inputs, y, **kwargs)

    model.loss_and_gradients = recording
    return batches


def test_iterations_count_sgd_steps_and_epochs_hold_n_over_batch_steps():
    x, y = images(50)
    model = TwoLayerClassifier(SHAPE, 3, units=4)
    batches = _record_batches(model)
    outcome = train(model, x, y, x, y, lr=1e-6, batch_size=8, iterations=20)
    # An epoch is 50 // 8 = 6 full batches, as TwoLayerNet.train counts: 6 + 6 + 6 + 2 steps.
    assert outcome["steps"] == 20 and [len(b) for b in batches] == [8] * 20
    assert [row["epoch"] for row in outcome["history"]] == [1, 2, 3, 4]
    batches.clear()
    outcome = train(model, x, y, x, y, lr=1e-6, batch_size=100, iterations=3)    # batch > N: the whole set
    assert [len(b) for b in batches] == [50, 50, 50] and len(outcome["history"]) == 3
    batches.clear()
    outcome = train(model, x, y, x, y, lr=1e-6, batch_size=8, epochs=2)          # epochs: every row once
    assert [len(b) for b in batches] == ([8] * 6 + [2]) * 2 and outcome["steps"] == 14
    for lengths in ({}, {"epochs": 2, "iterations": 20}):
        with pytest.raises(InvalidParameterError, match="train must be given epochs or iterations"):
            train(model, x, y, x, y, lr=1e-6, batch_size=8, **lengths)


def test_patience_stops_and_puts_the_best_epochs_parameters_back():
    x, y = images(80)
    hp = keras_tuner.HyperParameters()
    for name, value in {"units": 64, "std": 1e-3, "l2": 0.0, "lr": 1e-3, "batch_size": 10, "epochs": 12,
                        "patience": 2}.items():
        hp.Fixed(name, value)
    hypermodel = ClassifierHyperModel("two_layer", SHAPE, 3, implementation="scratch")
    stopped = hypermodel.build(hp)
    result = hypermodel.fit(hp, stopped, x[:40], y[:40], validation_data=(x[40:], y[40:]))
    val_losses = [row["val_loss"] for row in result.history]
    best = int(np.argmin(val_losses)) + 1
    assert result.epochs_run == best + 2 < 12 and result.restored_epoch == best
    assert result.stop_reason == f"early stopping: val_loss did not improve for 2 epochs; weights of epoch {best} restored"
    assert result.last == result.history[best - 1]                 # the record shows the restored epoch
    # The same run stopped at that epoch ends with the same parameters, so predicts the same.
    again = TwoLayerClassifier(SHAPE, 3, units=64, std=1e-3)
    train(again, x[:40], y[:40], x[40:], y[40:], lr=1e-3, batch_size=10, epochs=best)
    np.testing.assert_array_equal(stopped.predict(x[40:]), again.predict(x[40:]))
    # Out of epochs before patience ran out: the best epoch is put back too, as Keras's EarlyStopping does.
    ended = TwoLayerClassifier(SHAPE, 3, units=64, std=1e-3)
    outcome = train(ended, x[:40], y[:40], x[40:], y[40:], lr=1e-3, batch_size=10, epochs=best + 1, patience=5)
    assert outcome["restored_epoch"] == best and outcome["stop_reason"] == f"max epochs; weights of epoch {best} restored"
    np.testing.assert_array_equal(ended.predict(x[40:]), again.predict(x[40:]))


def test_both_mlps_report_the_epoch_whose_weights_they_end_with():
    from dlcv_keras.training.fit import evaluate_classifier

    x, y = images(80)
    x = x.astype(np.float32)
    hp = keras_tuner.HyperParameters()
    for name, value in {"depth": 1, "units": 64, "lr": 0.5, "batch_size": 10, "epochs": 6, "patience": 5}.items():
        hp.Fixed(name, value)
    for implementation in ("keras", "scratch"):
        hypermodel = ClassifierHyperModel("mlp", SHAPE, 3, implementation=implementation)
        model = hypermodel.build(hp)
        result = hypermodel.fit(hp, model, x[:40], y[:40], validation_data=(x[40:], y[40:]))
        best = int(np.argmin([row["val_loss"] for row in result.history])) + 1
        assert best < result.epochs_run == 6, implementation       # out of epochs before patience ran out
        # Keras's EarlyStopping puts the best weights back even so; the record must show that epoch.
        assert result.restored_epoch == best and result.last == result.history[best - 1], implementation
        assert result.stop_reason == f"max epochs; weights of epoch {best} restored"
        assert evaluate_classifier(model, x[40:], y[40:], 3)["loss"] == pytest.approx(result.last["val_loss"], rel=1e-5)


def test_patience_works_for_q3s_classifier_too():
    x, y = images(80)
    model = Classifier(SHAPE, 3, units=64, seed=0)
    outcome = train(model, x[:40], y[:40], x[40:], y[40:], lr=0.5, batch_size=10, epochs=30, patience=1)
    best = int(np.argmin([row["val_loss"] for row in outcome["history"]])) + 1
    assert len(outcome["history"]) == best + 1 < 30 and outcome["restored_epoch"] == best


def test_flip_mirrors_about_half_of_each_batch_and_is_seeded():
    x, y = images(64)
    mirrored = flip_images(x, SHAPE)
    np.testing.assert_array_equal(mirrored[:, :, 0, :], x[:, :, -1, :])
    np.testing.assert_array_equal(flip_images(x.reshape(64, -1), SHAPE), mirrored.reshape(64, -1))
    seen = []
    for _ in range(2):
        model = TwoLayerClassifier(SHAPE, 3, units=4, dtype=np.float64)
        batches = _record_batches(model)
        train(model, x, y, x, y, lr=1e-6, batch_size=16, epochs=5, augment=("flip",), seed=3)
        seen.append(np.concatenate(batches))
    np.testing.assert_array_equal(seen[0], seen[1])
    plain, flipped = model.features(x), model.features(mirrored)
    is_flipped = [any(np.array_equal(row, f) for f in flipped) for row in seen[0]]
    is_plain = [any(np.array_equal(row, p) for p in plain) for row in seen[0]]
    assert all(a != b for a, b in zip(is_flipped, is_plain))       # each row is one or the other
    assert 0.4 < np.mean(is_flipped) < 0.6                          # 320 draws of probability 0.5
    with pytest.raises(InvalidParameterError, match=r"augment 'flip' must be used with images of shape \(H, W, C\)"):
        train(Classifier((6,), 3, units=4), x.reshape(64, -1)[:, :6], y, x.reshape(64, -1)[:, :6], y,
              lr=0.1, batch_size=8, epochs=1, augment=("flip",))


# -- q7's path: a numpy search beside a Keras one, through the command line -------------------------

def question(*experiments) -> Question:
    """A question shaped like q7 (whose declaration is not made here)."""
    return Question(name="q7", title="Two-layer network on CIFAR-10", seed_writeup="HLCV Exercise 2 (test)",
                    dataset="cifar10", model="mlp", experiments=experiments)


TWO_LAYER = Search("two_layer", "Two-layer net: lr x iterations", model="two_layer", implementation="scratch",
                   template="effect")
MLP = Search("mlp", "Keras MLP", template="curves")
SPACE = """\
[smoke]
max_train = 500
max_test = 200

[smoke.two_layer]
units = 20
std = 1e-4
l2 = 0.25
lr = [2e-4, 1e-3]
lr_decay = 0.95
batch_size = 100
iterations = [20, 40]
augment = "flip"

[smoke.mlp]
depth = 1
units = 16
lr = 0.05
batch_size = 64
epochs = 2
"""
WITHOUT_MLP = SPACE.split("\n[smoke.mlp]")[0]


@pytest.fixture
def q7(monkeypatch, tmp_path):
    """Runs the q7-like question through ``main`` with a space file made from SPACE."""
    def run(space_text=SPACE, *, experiments=(TWO_LAYER, MLP), data_dir=None, extra=()):
        monkeypatch.setitem(QUESTIONS, "q7", question(*experiments))
        space = tmp_path / "q7.toml"
        space.write_text(space_text)
        data = data_dir or offline_data("cifar10")
        return main(["q7", "--profile", "smoke", "--space", str(space), "--data-dir", str(data), "--no-download",
                     "--results", str(tmp_path / "results"), *extra])
    return run


def test_a_question_with_a_two_layer_search_picks_its_backend_from_its_keras_models():
    from dlcv_keras.backends import DEFAULT, fastest_for

    assert question(TWO_LAYER, MLP).models() == ["two_layer", "mlp"] and fastest_for(["two_layer", "mlp"]) == "jax"
    assert fastest_for(question(TWO_LAYER).models()) == DEFAULT


@pytest.mark.slow
def test_a_grid_search_over_the_two_layer_net_runs_beside_a_keras_search_and_is_reported(q7, tmp_path):
    from dlcv_keras.report import build_report

    assert q7(extra=["--report", "html"]) == 0
    root = tmp_path / "results" / "q7" / "smoke"
    folder = root / "experiments" / "two_layer"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["implementation"] == "scratch" and summary["model"] == "two_layer" and summary["n_trials"] == 4
    assert json.loads((root / "experiments" / "mlp" / "summary.json").read_text())["implementation"] == "keras"
    trials = list(csv.DictReader((folder / "trials.csv").open()))
    assert sorted((float(t["lr"]), int(t["iterations"])) for t in trials) == [(2e-4, 20), (2e-4, 40), (1e-3, 20),
                                                                               (1e-3, 40)]
    history = list(csv.DictReader((folder / "history.csv").open()))
    for trial in trials:
        assert trial["status"] == "completed" and trial["augment"] == "flip"
        assert int(trial["params"]) == 3072 * 20 + 20 + 20 * 10 + 10
        rows = [row for row in history if row["trial_id"] == trial["trial_id"]]
        # 400 training images, batch 100: 4 steps an epoch.
        assert len(rows) == int(trial["epochs_run"]) == int(trial["iterations"]) // 4
        rates = [float(row["learning_rate"]) for row in rows]
        np.testing.assert_allclose(rates, float(trial["lr"]) * 0.95 ** np.arange(len(rows)))
        assert 0.0 <= float(trial["val_accuracy"]) <= 1.0
    assert summary["best_val_accuracy"] == max(float(t["val_accuracy"]) for t in trials)
    (html,) = build_report(tmp_path / "results", ["q7"], "smoke")
    text = html.read_text()
    assert "Two-layer net: lr x iterations" in text and "Keras MLP" in text


@pytest.mark.slow
def test_the_best_two_layer_setting_is_retrained_and_evaluated_as_numpy(q7, tmp_path):
    space = WITHOUT_MLP.replace("lr = [2e-4, 1e-3]", "lr = 1e-3").replace("iterations = [20, 40]", "iterations = 20")
    best = EvaluateBest("best", "Best two-layer net", source="two_layer")
    assert q7(space, experiments=(TWO_LAYER, best), extra=["--report", "none"]) == 0
    root = tmp_path / "results" / "q7" / "smoke" / "experiments"
    search = list(csv.DictReader((root / "two_layer" / "trials.csv").open()))[0]
    evaluation = json.loads((root / "best" / "summary.json").read_text())
    assert evaluation["val_accuracy"] == pytest.approx(float(search["val_accuracy"]))   # same numpy run again
    assert 0.0 <= evaluation["test_accuracy"] <= 1.0


# -- bad settings: one line, exit 2, nothing written --------------------------------------------------

@pytest.mark.parametrize("old, new, fragments", [
    ("augment = \"flip\"\n", "augment = \"flip\"\npca = 4000\n",
     ["[smoke.two_layer] pca must be an int in [0, 3072]", "cifar10 images have 32x32x3 = 3072 input features",
      "got 4000"]),
    ("augment = \"flip\"\n", "augment = \"flip\"\npca = [640, 3073]\n", ["pca must be an int in [0, 3072]", "got 3073"]),
    ("augment = \"flip\"\n", "augment = \"flip\"\noptimizer = \"adam\"\n",
     ["[smoke.two_layer] optimizer must be one of the names this experiment reads", "got 'optimizer' = 'adam'"]),
    ("augment = \"flip\"\n", "augment = \"flip\"\nmomentum = 0.9\n", ["momentum", "got 'momentum' = 0.9"]),
    ("augment = \"flip\"\n", "augment = \"flip\"\ndropout = 0.5\n", ["got 'dropout' = 0.5"]),
    ("augment = \"flip\"\n", "augment = \"flip\"\nschedule = \"one_cycle\"\n", ["got 'schedule' = 'one_cycle'"]),
    ("augment = \"flip\"\n", "augment = \"crop+flip\"\n",
     ["[smoke.two_layer] augment must be one of 'none', 'flip'", "got 'crop+flip'"]),
    ("iterations = [20, 40]\n", "iterations = [20, 40]\nepochs = 3\n",
     ["[smoke.two_layer] must set epochs or iterations, not both", "epochs=[3], iterations=[20, 40]"]),
    ("std = 1e-4\n", "std = 0.0\n", ["[smoke.two_layer] std must be a number in (0, 10], got 0.0"]),
    ("lr_decay = 0.95\n", "lr_decay = 1.5\n", ["[smoke.two_layer] lr_decay must be a number in (0, 1], got 1.5"]),
])
def test_bad_two_layer_settings_stop_before_any_data_loads(old, new, fragments, q7, tmp_path, capsys):
    assert old in SPACE
    empty = tmp_path / "no-data"            # nothing to load: an error about the data would mean the check came late
    empty.mkdir()
    code = q7(SPACE.replace(old, new, 1), data_dir=empty)
    assert_one_line_error(capsys, code, *fragments)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("declared, fragments", [
    (Search("two_layer", "Two-layer net", model="two_layer"),
     ["[smoke.two_layer] trains 'two_layer', a numpy model", "implementation='scratch', got 'keras'"]),
    (Search("two_layer", "Two-layer net", model="two_layer", implementation="scratch", keep_models=True),
     ["[smoke.two_layer] keeps its trials' models", "keep_models=False, got True"]),
])
def test_a_two_layer_search_is_declared_as_numpy(declared, fragments, q7, tmp_path, capsys):
    code = q7(experiments=(declared, MLP), data_dir=tmp_path)
    assert_one_line_error(capsys, code, *fragments)
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_pca_beyond_the_training_rows_is_one_line_once_the_data_is_loaded(q7, capsys, tmp_path):
    space = WITHOUT_MLP.replace("max_train = 500", "max_train = 100").replace("augment = \"flip\"", "pca = 200")
    err = assert_one_line_error(capsys, q7(space, experiments=(TWO_LAYER,), extra=["--report", "none"]),
                                "pca must be an int in [0, 80] (at most the 80 training rows it is fitted on), got 200")
    assert "[smoke.two_layer]" in err
    assert not (tmp_path / "results").exists()          # checked before anything is written
