"""The fast path (training/scanned.py) computes what model.fit computes, on JAX and against TensorFlow."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from dlcv_keras.models import build_mlp, classification_loss, compile_model
from dlcv_keras.training import scanned
from dlcv_keras.training.fit import evaluate_classifier, fit_and_log

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the scanned path is the JAX backend's")

SHAPE = (4, 4, 1)


def problem(n=230, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.5, (n, *SHAPE)).astype("float32")
    x[np.arange(n), y, 0, 0] += 1.0
    return x, y


def model_with(weights=None, lr=0.2, l2=1e-2, **kwargs):
    keras.utils.set_random_seed(3)
    model = compile_model(build_mlp(SHAPE, 3, units=8, l2=l2, **kwargs), lr=lr)
    if weights is not None:
        model.set_weights(weights)
    return model


def history_array(history):
    return np.array([[row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")] for row in history])


def test_scanned_epochs_equal_model_fit_including_the_partial_last_batch():
    x, y = problem()            # 200 training rows at batch 16: 12 full batches and one of 8
    start = model_with().get_weights()
    ours = model_with(start)
    result = fit_and_log(ours, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=3, shuffle=False)
    reference = model_with(start)
    fitted = reference.fit(x[:200], y[:200], validation_data=(x[200:], y[200:]), batch_size=16, epochs=3,
                           shuffle=False, verbose=0).history
    expected = np.array([fitted[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")]).T
    np.testing.assert_allclose(history_array(result.history), expected, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(ours.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert int(ours.optimizer.iterations) == int(reference.optimizer.iterations) == 3 * 13


def test_the_same_seed_gives_the_same_metrics_and_shuffling_changes_the_order():
    x, y = problem()

    def run(seed):
        model = model_with(dropout=0.2)
        np.random.seed(seed)
        return history_array(fit_and_log(model, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=3).history)

    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_compiled_loop_is_shared_by_models_that_differ_only_in_values():
    x, y = problem()
    key = scanned.structure_key
    assert key(model_with(lr=0.2)) == key(model_with(lr=0.05))
    assert key(model_with(l2=1e-2)) != key(model_with(l2=1e-3))        # a penalty is part of the traced step

    def train_lr_005():
        np.random.seed(0)
        return history_array(fit_and_log(model_with(lr=0.05), x[:200], y[:200], x[200:], y[200:],
                                         batch_size=16, epochs=2).history)

    scanned._compiled.clear()
    fit_and_log(model_with(lr=0.2), x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=1)
    assert len(scanned._compiled) == 1
    shared = train_lr_005()                    # runs the loop traced with the lr=0.2 model
    assert len(scanned._compiled) == 1
    scanned._compiled.clear()
    alone = train_lr_005()                     # traced with itself
    np.testing.assert_allclose(shared, alone, rtol=1e-6)


def test_predictions_equal_model_predict_and_the_interrupt_check_runs_between_calls(monkeypatch):
    x, y = problem(n=700)
    model = model_with()
    np.testing.assert_allclose(scanned.predict(model, x, batch_size=256), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-7)
    assert evaluate_classifier(model, x, y, 3)["accuracy"] == np.mean(np.argmax(model.predict(x, verbose=0), 1) == y)

    monkeypatch.setattr(scanned, "STEPS_PER_CALL", 4)
    seen = []

    class StopAfterTwoCalls(keras.callbacks.Callback):
        runs_between_calls = True           # as the tuner's interrupt check: keeps the fast path

        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, logs))
            if len(seen) == 2:
                raise KeyboardInterrupt

    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(KeyboardInterrupt):
        fit_and_log(model, x, y, x[:50], y[:50], batch_size=16, epochs=5, callbacks=[StopAfterTwoCalls()])
    assert [batch for batch, _ in seen] == [3, 7]        # after batches 4 and 8 of the first epoch
    assert all(np.isfinite(logs["loss"]) for _, logs in seen)
    # The weights it had reached are written back to the model (8 steps were taken).
    assert int(model.optimizer.iterations) == 8
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


TENSORFLOW_RUN = textwrap.dedent("""
    import json, sys
    import numpy as np
    from dlcv_keras.models import build_mlp, compile_model
    from dlcv_keras.training.fit import fit_and_log
    import keras
    data = np.load(sys.argv[1])
    model = compile_model(build_mlp((4, 4, 1), 3, units=8, l2=1e-2), lr=0.2)
    model.set_weights([data[f"w{i}"] for i in range(len(model.get_weights()))])
    result = fit_and_log(model, data["x"][:200], data["y"][:200], data["x"][200:], data["y"][200:],
                         batch_size=16, epochs=3, shuffle=False)
    print(json.dumps({"backend": keras.backend.backend(), "history": result.history}))
""")


@pytest.mark.slow
def test_the_jax_fast_path_matches_model_fit_on_tensorflow(tmp_path):
    x, y = problem()
    start = model_with().get_weights()
    np.savez(tmp_path / "start.npz", x=x, y=y, **{f"w{i}": w for i, w in enumerate(start)})
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", TENSORFLOW_RUN, str(tmp_path / "start.npz")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tensorflow = json.loads(done.stdout.strip().splitlines()[-1])
    assert tensorflow["backend"] == "tensorflow"
    ours = fit_and_log(model_with(start), x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=3,
                       shuffle=False)
    np.testing.assert_allclose(history_array(ours.history), history_array(tensorflow["history"]),
                               rtol=1e-4, atol=1e-5)


def test_what_callbacks_set_trains_and_stays_as_with_model_fit():
    x, y = problem()
    start = model_with().get_weights()

    class LearningRateZeroAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.optimizer.learning_rate.assign(0.0)

    class ZeroWeightsAtStartAndShrinkAtTheEnd(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])

        def on_epoch_end(self, epoch, logs=None):
            self.model.set_weights([w * 0.5 for w in self.model.get_weights()])

    for callback in (LearningRateZeroAfterFirstEpoch, ZeroWeightsAtStartAndShrinkAtTheEnd):
        ours, reference = model_with(start), model_with(start)
        fit_and_log(ours, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=3, shuffle=False,
                    callbacks=[callback()])
        reference.fit(x[:200], y[:200], validation_data=(x[200:], y[200:]), batch_size=16, epochs=3,
                      shuffle=False, verbose=0, callbacks=[callback()])
        for mine, theirs in zip(ours.get_weights(), reference.get_weights()):
            np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6, err_msg=callback.__name__)


def test_an_uncompiled_model_predicts_through_the_fast_path_and_shares_no_loop_with_a_compiled_one():
    x, _ = problem(n=50)
    uncompiled = build_mlp(SHAPE, 3, units=8)           # as load_trained_model gives a stored model back
    np.testing.assert_allclose(scanned.predict(uncompiled, x), uncompiled.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    compiled = compile_model(build_mlp(SHAPE, 3, units=8), lr=0.1)
    assert scanned.structure_key(uncompiled) != scanned.structure_key(compiled)


def test_models_compiled_differently_do_not_share_a_loop():
    plain = model_with()
    weighted = model_with()
    weighted.compile(optimizer=keras.optimizers.SGD(0.2), loss=classification_loss(),
                     metrics=["accuracy"], loss_weights=10.0)
    other_metric = model_with()
    other_metric.compile(optimizer=keras.optimizers.SGD(0.2), loss=classification_loss(),
                         metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=2)])
    keys = {scanned.structure_key(m) for m in (plain, weighted, other_metric)}
    assert len(keys) == 3


def test_a_search_ends_by_releasing_the_compiled_loops_and_the_models_they_hold():
    from dlcv_keras.training.fit import release_compiled

    x, y = problem()
    fit_and_log(model_with(), x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=1)
    assert scanned._compiled and scanned._on_device
    release_compiled()
    assert not scanned._compiled and not scanned._on_device


def fit_reference(model, x, y, *, epochs, shuffle=False, callbacks=None):
    """model.fit on the same split and batch size as the fast-path runs here."""
    return model.fit(x[:200], y[:200], validation_data=(x[200:], y[200:]), batch_size=16, epochs=epochs,
                     shuffle=shuffle, verbose=0, callbacks=callbacks).history


def assert_same_weights(mine, theirs, **message):
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, **message)


def model_with_schedule(weights, initial_rate, **kwargs):
    model = model_with(weights, **kwargs)
    schedule = keras.optimizers.schedules.ExponentialDecay(initial_rate, decay_steps=5, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss=classification_loss(),
                  metrics=["accuracy"])
    return model


def test_models_whose_learning_rate_schedules_differ_do_not_share_a_loop_and_each_trains_as_model_fit():
    x, y = problem()
    start = model_with().get_weights()
    key = scanned.structure_key
    assert key(model_with_schedule(start, 0.2)) == key(model_with_schedule(start, 0.2))
    assert key(model_with_schedule(start, 0.2)) != key(model_with_schedule(start, 0.05))
    scanned._compiled.clear()
    for rate in (0.2, 0.05):        # the second would run the first's loop if the key left the schedule out
        ours, reference = model_with_schedule(start, rate), model_with_schedule(start, rate)
        fit_and_log(ours, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=2, shuffle=False)
        fit_reference(reference, x, y, epochs=2)
        assert_same_weights(ours, reference, err_msg=f"initial rate {rate}")


class LearningRateDecayEveryBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        rate = self.model.optimizer.learning_rate
        rate.assign(rate * 0.8)


def test_a_callback_that_sets_the_learning_rate_every_batch_trains_as_with_model_fit():
    x, y = problem()
    start = model_with().get_weights()
    ours, reference = model_with(start), model_with(start)
    scanned._compiled.clear()
    fit_and_log(ours, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=2, shuffle=False,
                callbacks=[LearningRateDecayEveryBatch()])
    fit_reference(reference, x, y, epochs=2, callbacks=[LearningRateDecayEveryBatch()])
    assert_same_weights(ours, reference)
    np.testing.assert_allclose(float(ours.optimizer.learning_rate), 0.2 * 0.8 ** 26, rtol=1e-5)
    assert not scanned._compiled            # declined by the fast path: model.fit ran it


def test_only_callbacks_with_batch_hooks_leave_the_fast_path():
    from dlcv_keras.training.callbacks import EpochLog, SeedEarlyStopping, needs_every_batch
    from dlcv_keras.tuning.search import _StopOnInterrupt

    class EpochOnly(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class OldStyleBatchHook(keras.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            pass

    assert needs_every_batch(LearningRateDecayEveryBatch()) and needs_every_batch(OldStyleBatchHook())
    assert needs_every_batch(keras.callbacks.TerminateOnNaN())
    assert not any(needs_every_batch(c) for c in (EpochOnly(), EpochLog(), SeedEarlyStopping(2, 0.0),
                                                   keras.callbacks.EarlyStopping()))
    assert not needs_every_batch(_StopOnInterrupt(tuner=None))      # it runs between compiled calls


@pytest.mark.parametrize("case", ["shuffled", "dropout", "schedule"])
def test_scanned_epochs_equal_model_fit_with_shuffling_dropout_or_a_schedule(case):
    x, y = problem()
    start = model_with(dropout=0.3).get_weights()
    settings = {"shuffled": dict(shuffle=True), "dropout": dict(shuffle=False, dropout=0.3),
                "schedule": dict(shuffle=True, dropout=0.3, schedule=0.3)}[case]
    shuffle, schedule = settings.pop("shuffle"), settings.pop("schedule", None)

    def make():
        model = model_with_schedule(start, schedule, **settings) if schedule else model_with(start, **settings)
        # model.fit draws one extra shuffle while it builds a never-built model: build first, so that
        # both runs take their permutations from the same point of the seeded generator.
        model._symbolic_build(data_batch=(x[:1], y[:1]))
        return model

    ours, reference = make(), make()
    np.random.seed(7)
    result = fit_and_log(ours, x[:200], y[:200], x[200:], y[200:], batch_size=16, epochs=3, shuffle=shuffle)
    np.random.seed(7)
    fitted = fit_reference(reference, x, y, epochs=3, shuffle=shuffle)
    expected = np.array([fitted[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")]).T
    np.testing.assert_allclose(history_array(result.history), expected, rtol=1e-5, atol=1e-6)
    assert_same_weights(ours, reference)
    assert int(ours.optimizer.iterations) == int(reference.optimizer.iterations) == 3 * 13
