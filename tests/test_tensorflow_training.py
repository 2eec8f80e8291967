"""Real training on the TensorFlow backend, in the fast suite.

The test process runs JAX (tests/conftest.py), and Keras fixes its backend at its first import, so
the TensorFlow runs happen in one subprocess with KERAS_BACKEND=tensorflow: fit_and_log through
model.fit (early stopping, the divergence rule), evaluate_classifier, and a small CNN, so that
convolution training on TensorFlow is covered. The data are sklearn's 8x8 digits (10 classes).
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import json, sys, time
    started = time.perf_counter()
    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from dlcv_keras.models import build_cnn, build_linear, build_mlp, compile_model
    from dlcv_keras.training.fit import evaluate_classifier, fit_and_log, softmax

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]          # (1797, 8, 8, 1)
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    train, val, test = slice(0, 1200), slice(1200, 1500), slice(1500, None)
    out = {"backend": keras.backend.backend()}

    def run(model, **kwargs):
        result = fit_and_log(model, x[train], y[train], x[val], y[val], batch_size=32, **kwargs)
        return {"history": result.history, "status": result.status, "stop_reason": result.stop_reason,
                "epochs_run": result.epochs_run}

    keras.utils.set_random_seed(0)
    mlp = compile_model(build_mlp((8, 8, 1), 10, units=32, l2=1e-3), lr=0.1, momentum=0.9)
    out["mlp"] = run(mlp, epochs=8, early_stopping={"min_epochs": 3, "min_delta": 1e-4})
    evaluation = evaluate_classifier(mlp, x[test], y[test], 10)
    out["evaluation"] = evaluation
    out["evaluate_loss"] = float(mlp.evaluate(x[test], y[test], verbose=0)[0])

    keras.utils.set_random_seed(0)
    flat = compile_model(build_mlp((8, 8, 1), 10, units=32), lr=0.05)
    out["stopped"] = run(flat, epochs=10, early_stopping={"min_epochs": 2, "min_delta": 100.0})

    keras.utils.set_random_seed(0)
    # lr * 2 * l2 >> 2: every step multiplies the weights by about -(2 * lr * l2) until they overflow.
    blow_up = compile_model(build_linear((8, 8, 1), 10, l2=10.0), lr=10.0)
    out["diverged"] = run(blow_up, epochs=20)

    keras.utils.set_random_seed(0)
    cnn = compile_model(build_cnn((8, 8, 1), 10, filters=(4, 8), pool_after=(0,), dense_units=16),
                        lr=0.05, momentum=0.9)
    out["cnn"] = run(cnn, epochs=4)
    out["cnn_test_accuracy"] = evaluate_classifier(cnn, x[test], y[test], 10)["accuracy"]
    out["conv_layers"] = sum(type(layer).__name__ == "Conv2D" for layer in cnn.layers)

    # q15's network with N(0, 1) weights on noise (tests/test_logits.py: saturated_mlp): its softmax saturates.
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    xs = rng.random((64, 28, 28, 1), dtype=np.float32)
    ys = rng.integers(0, 10, 64).astype(np.int32)
    saturated = compile_model(build_mlp((28, 28, 1), 10, depth=2, units=512, initializer="standard_normal"), lr=0.01)
    picked = softmax(np.asarray(saturated(xs)))[np.arange(len(ys)), ys]     # eager: no predict loop to trace
    keep = (picked < 1e-7) | (picked > 1 - 1e-7)       # rows a clipped probability would pass nothing through
    xs, ys = xs[keep], ys[keep]
    with tf.GradientTape() as tape:       # the compiled loss, as Keras's train_step takes it
        loss = saturated.compute_loss(xs, ys, saturated(xs, training=True))
    kernel = saturated.get_layer("dense_0").kernel
    gradient = tape.gradient(loss, [kernel])[0].numpy()
    out["saturated"] = {"rows": int(keep.sum()), "finite": bool(np.isfinite(gradient).all()),
                        "largest": float(np.abs(gradient).max())}

    out["fast_path_imported"] = "dlcv_keras.training.scanned" in sys.modules
    out["seconds"] = time.perf_counter() - started
    print(json.dumps(out, allow_nan=True, default=lambda array: array.tolist()))   # numpy arrays (predictions) as lists
""")


@pytest.fixture(scope="module")
def tensorflow_runs():
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - started
    return out


def test_the_runs_trained_on_tensorflow_through_model_fit(tensorflow_runs):
    assert tensorflow_runs["backend"] == "tensorflow"
    assert not tensorflow_runs["fast_path_imported"]        # the JAX fast path stays out of a TensorFlow run


def test_fit_and_log_keeps_one_row_per_epoch_and_learns_digits(tensorflow_runs):
    mlp = tensorflow_runs["mlp"]
    history = mlp["history"]
    assert mlp["status"] == "completed"
    assert [row["epoch"] for row in history] == list(range(1, mlp["epochs_run"] + 1))
    assert mlp["epochs_run"] >= 3                           # the rule waits for min_epochs
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(history[0])
    losses = [row["loss"] for row in history]
    assert losses[-1] < 0.5 * losses[0] and losses[1] < losses[0]
    assert history[-1]["val_accuracy"] > 0.85               # chance is 0.1


def test_early_stopping_ends_a_tensorflow_run_at_the_seed_rule(tensorflow_runs):
    stopped = tensorflow_runs["stopped"]
    assert stopped["status"] == "completed"
    assert stopped["epochs_run"] == 2                       # min_epochs=2; any change is below min_delta=100
    assert "less than 100" in stopped["stop_reason"]
    assert len(stopped["history"]) == 2


def test_a_tensorflow_blow_up_ends_as_diverged(tensorflow_runs):
    diverged = tensorflow_runs["diverged"]
    assert diverged["status"] == "diverged"
    assert diverged["epochs_run"] < 20
    assert diverged["stop_reason"].startswith("diverged at epoch")
    last = diverged["history"][-1]
    assert not (np.isfinite(last["loss"]) and np.isfinite(last["val_loss"]))


def test_evaluate_classifier_on_tensorflow(tensorflow_runs):
    evaluation = tensorflow_runs["evaluation"]
    confusion = np.array(evaluation["confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 297
    assert evaluation["accuracy"] > 0.85
    assert confusion.trace() == round(evaluation["accuracy"] * 297)
    # Both are the cross-entropy from the model's logits plus the L2 penalty.
    np.testing.assert_allclose(evaluation["loss"], tensorflow_runs["evaluate_loss"], rtol=1e-5)
    assert "penalty" in evaluation["loss_includes"]


def test_a_saturated_softmax_still_passes_a_gradient_to_the_first_layer_on_tensorflow(tensorflow_runs):
    saturated = tensorflow_runs["saturated"]
    # Nearly all 64 rows saturated, and only those kept: from probabilities clipped to [1e-7, 1 - 1e-7]
    # none of them would pass a gradient.
    assert saturated["rows"] >= 48
    assert saturated["finite"] and saturated["largest"] > 0


def test_a_small_cnn_trains_on_tensorflow(tensorflow_runs):
    cnn = tensorflow_runs["cnn"]
    assert tensorflow_runs["conv_layers"] == 2
    assert cnn["status"] == "completed" and cnn["epochs_run"] == 4
    losses = [row["loss"] for row in cnn["history"]]
    assert losses[-1] < losses[0]
    assert tensorflow_runs["cnn_test_accuracy"] > 0.5      # chance is 0.1
