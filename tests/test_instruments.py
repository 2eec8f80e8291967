"""training.instruments.LayerProbe: what it measures, checked against independent arithmetic, on
the JAX fast path, through model.fit, and on TensorFlow (a subprocess: Keras fixes its backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from dlcv_keras.models import compile_model
from dlcv_keras.models.builders import build_mlp
from dlcv_keras.training.fit import fit_and_log
from dlcv_keras.training.instruments import LayerProbe, probe_rows
from real_runs import REPO

RNG = np.random.default_rng(3)
X = RNG.normal(size=(96, 4, 2, 1)).astype("float32")
Y = RNG.integers(0, 3, 96)


def tiny(initializer="glorot_uniform", activation="tanh", l2=0.0):
    keras.utils.set_random_seed(7)
    return compile_model(build_mlp((4, 2, 1), 3, depth=2, units=5, activation=activation,
                                   initializer=initializer, l2=l2), lr=0.1)


def numpy_forward(model, x):
    """The tiny MLP's layers by hand: the (kernel, bias) of each dense layer, and its output after its
    activation (tanh; the output layer has none: its logits)."""
    kernels = [(layer.get_weights()[0], layer.get_weights()[1]) for layer in model.layers if hasattr(layer, "kernel")]
    h, found = x.reshape(len(x), -1).astype(np.float64), []
    for i, (w, b) in enumerate(kernels):
        z = h @ w + b
        h = np.tanh(z) if i < len(kernels) - 1 else z
        found.append(h)
    return kernels, found


def numpy_loss(model, x, y, kernels, l2):
    h = x.reshape(len(x), -1).astype(np.float64)
    for i, (w, b) in enumerate(kernels):
        z = h @ w + b
        h = np.tanh(z) if i < len(kernels) - 1 else z
    z = h - h.max(1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean() + l2 * sum((w ** 2).sum() for w, _ in kernels)


def central_gradients(model, x, y, l2, step=1e-5):
    kernels, _ = numpy_forward(model, x)
    kernels = [(w.astype(np.float64), b.astype(np.float64)) for w, b in kernels]
    grads = []
    for w, _ in kernels:
        g = np.zeros_like(w)
        for index in np.ndindex(w.shape):
            saved = w[index]
            w[index] = saved + step
            up = numpy_loss(model, x, y, kernels, l2)
            w[index] = saved - step
            down = numpy_loss(model, x, y, kernels, l2)
            w[index] = saved
            g[index] = (up - down) / (2 * step)
        grads.append(g)
    return grads


def test_probe_measures_what_independent_arithmetic_gives():
    model = tiny(l2=0.01)
    x, y = probe_rows(X, Y, seed=0, rows=64)
    probe = LayerProbe(x, y)
    probe.set_model(model)
    probe.on_train_begin()
    rows = probe.rows
    assert [r["layer"] for r in rows] == ["dense_0", "dense_1", "logits"] and {r["epoch"] for r in rows} == {0}
    assert [r["index"] for r in rows] == [1, 2, 3]
    kernels, activations = numpy_forward(model, x)
    grads = central_gradients(model, x, y, l2=0.01)
    for row, (w, _), h, g in zip(rows, kernels, activations, grads):
        assert row["weight_mean_abs"] == pytest.approx(np.abs(w).mean(), rel=1e-6)
        pairs = max(np.abs(w[:, i] - w[:, j]).max() for i in range(w.shape[1]) for j in range(w.shape[1]))
        assert row["unit_spread"] == pytest.approx(pairs, rel=1e-6)
        assert row["act_mean"] == pytest.approx(h.mean(), abs=1e-5)
        assert row["act_std"] == pytest.approx(h.std(), rel=1e-4)
        assert row["grad_mean_abs"] == pytest.approx(np.abs(g).mean(), rel=2e-3)
    assert len({r["probe_seconds"] for r in rows}) == 1


def test_probe_rows_are_seeded_and_scale_uint8_images():
    images = RNG.integers(0, 256, (50, 4, 4, 1)).astype(np.uint8)
    labels = RNG.integers(0, 3, 50)
    x, y = probe_rows(images, labels, seed=1, rows=20)
    again, _ = probe_rows(images, labels, seed=1, rows=20)
    other, _ = probe_rows(images, labels, seed=2, rows=20)
    assert x.dtype == np.float32 and x.max() <= 1.0 and len(y) == 20
    assert np.array_equal(x, again) and not np.array_equal(x, other)
    picked = [i for i in range(50) if any(np.allclose(images[i] / 255.0, row, atol=1e-6) for row in x)]
    assert len(picked) == 20
    assert len(probe_rows(images, labels, seed=1, rows=500)[1]) == 50


class _EveryBatch(keras.callbacks.Callback):
    """Overrides a batch hook: fit_and_log then trains through model.fit instead of the fast path."""

    def on_train_batch_end(self, batch, logs=None):
        pass


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="compares the JAX fast path with model.fit")
def test_fast_path_and_model_fit_measure_the_same_training():
    found = []
    for extra in ([], [_EveryBatch()]):
        model = tiny()
        keras.utils.set_random_seed(11)
        probe = LayerProbe(*probe_rows(X, Y, seed=0), instruments=("gradients", "weights"))
        result = fit_and_log(model, X, Y, X[:32], Y[:32], batch_size=16, epochs=3, callbacks=[probe, *extra])
        assert result.epochs_run == 3
        found.append(probe.rows)
    fast, fitted = found
    assert [(r["epoch"], r["layer"]) for r in fast] == [(e, n) for e in range(4) for n in ("dense_0", "dense_1", "logits")]
    assert [(r["epoch"], r["layer"]) for r in fast] == [(r["epoch"], r["layer"]) for r in fitted]
    for a, b in zip(fast, fitted):
        # Same initial weights and batch order; float32 sums in another order drift slightly apart.
        close = 1e-6 if a["epoch"] == 0 else 2e-3
        assert a["weight_mean_abs"] == pytest.approx(b["weight_mean_abs"], rel=close)
        assert a["grad_mean_abs"] == pytest.approx(b["grad_mean_abs"], rel=10 * close)
    # It trained: the weights after epoch 3 are not those at initialisation.
    assert fast[-1]["weight_mean_abs"] != fast[2]["weight_mean_abs"]


def test_zero_initialisation_keeps_units_identical_and_gradients_zero():
    model = tiny(initializer="zeros", activation="relu")
    probe = LayerProbe(*probe_rows(X, Y, seed=0))
    fit_and_log(model, X, Y, X[:32], Y[:32], batch_size=16, epochs=2, callbacks=[probe])
    assert {r["unit_spread"] for r in probe.rows} == {0.0}
    assert {r["grad_mean_abs"] for r in probe.rows} == {0.0}      # every kernel: the output's sees zero inputs
    assert {r["act_std"] for r in probe.rows if r["layer"] != "logits"} == {0.0}


def test_unknown_instrument_is_refused():
    with pytest.raises(ValueError, match="instruments must be names from"):
        LayerProbe(X, Y, instruments=("gradients", "curvature"))


@pytest.mark.slow
def test_tensorflow_measures_the_same_numbers_as_jax(tmp_path):
    """The same weights and probe rows on TensorFlow (a subprocess) give the same measurements."""
    model = tiny(l2=0.01)
    weights = tmp_path / "tiny.weights.h5"
    model.save_weights(weights)
    probe = LayerProbe(*probe_rows(X, Y, seed=0))
    probe.set_model(model)
    probe.on_train_begin()
    np.savez(tmp_path / "data.npz", x=X, y=Y)
    script = f"""
import json, numpy as np, keras, sys
sys.path.insert(0, {str(REPO / 'tests')!r})
from test_instruments import tiny
from dlcv_keras.training.instruments import LayerProbe, probe_rows
data = np.load({str(tmp_path / 'data.npz')!r})
model = tiny(l2=0.01)
model.load_weights({str(weights)!r})
probe = LayerProbe(*probe_rows(data["x"], data["y"], seed=0))
probe.set_model(model)
probe.on_train_begin()
print(json.dumps([keras.backend.backend(), probe.rows]))
"""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    backend, rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert backend == "tensorflow"
    for theirs, ours in zip(rows, probe.rows, strict=True):
        assert theirs["layer"] == ours["layer"]
        for key in ("weight_mean_abs", "unit_spread", "act_mean", "act_std", "grad_mean_abs"):
            assert theirs[key] == pytest.approx(ours[key], rel=1e-4, abs=1e-7), key
