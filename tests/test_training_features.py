"""The seeds' PyTorch training features in Keras: OneCycle, coupled weight decay, per-layer rates,
clipping, the plateau callback; and the progress line.

The optimizer checks are one script (CHECKS) run twice: in this process (JAX, tests/conftest.py) and
in a subprocess with KERAS_BACKEND=tensorflow, the main target (Keras fixes its backend at import).
"""

import io
import json
import math
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from dlcv_keras.training.schedules import OneCycle, one_cycle_closed_form
from dlcv_keras.validation import InvalidParameterError

CHECKS = textwrap.dedent('''
    import math
    import keras
    import numpy as np
    from keras import layers
    from dlcv_keras.models import compile_model
    from dlcv_keras.training.optimizers import CoupledAdam, CoupledSGD, make_optimizer, plateau_callback
    from dlcv_keras.training.schedules import OneCycle, one_cycle_closed_form
    from dlcv_keras.validation import InvalidParameterError


    def apply_once(optimizer, w0, g, steps=1):
        variable = keras.Variable(np.array(w0, "float32"), name="w")
        for _ in range(steps):
            optimizer.apply([keras.ops.convert_to_tensor(np.array(g, "float32"))], [variable])
        return np.asarray(variable).tolist()


    def two_layer_model():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,), name="image")
        x = layers.Dense(3, activation="tanh", name="early_dense")(inputs)
        outputs = layers.Dense(2, name="logits")(x)          # logits, as compile_model's loss expects
        return keras.Model(inputs, outputs)


    def run_checks(folder):
        out = {"backend": keras.backend.backend()}
        w0, g = [1.0, -2.0, 3.0], [0.5, 0.1, -0.3]
        out["sgd_wd"] = apply_once(make_optimizer("sgd", 0.1, weight_decay=0.01), w0, g)
        out["sgd_wd_momentum_2"] = apply_once(make_optimizer("sgd", 0.1, momentum=0.9, weight_decay=0.01), w0, g, 2)
        out["adam_wd"] = apply_once(make_optimizer("adam", 0.01, weight_decay=0.1), w0, g)
        out["clipvalue"] = apply_once(make_optimizer("sgd", 1.0, clipvalue=0.2), w0, g)
        # clipping comes first, then the decay: PyTorch's clip_grad_value_ then optimizer.step()
        out["clip_then_decay"] = apply_once(make_optimizer("sgd", 1.0, clipvalue=0.2, weight_decay=0.5), w0, g)

        # a factor of 0.1 on the early layer: its first step is 10x smaller, the rest unchanged
        x = np.random.default_rng(0).random((16, 4)).astype("float32")
        y = (x[:, 0] > 0.5).astype("int32")
        moves = {}
        for factor in (None, 0.1):
            model = compile_model(two_layer_model(), lr=0.5, early_lr_factor=factor, early_layers=["early"])
            before = {v.path: np.asarray(v).copy() for v in model.trainable_variables}
            model.train_on_batch(x, y)
            moves[factor] = {v.path: float(np.abs(np.asarray(v) - before[v.path]).sum()) for v in model.trainable_variables}
        out["paths"] = sorted(moves[None])
        out["moves"] = {path: [moves[None][path], moves[0.1][path]] for path in moves[None]}

        # OneCycle inside model.fit: after n batches the rate is the closed form at step n
        model = compile_model(two_layer_model(), lr=1.0, schedule="one_cycle", max_lr=0.1, total_steps=20,
                              weight_decay=5e-4, grad_clip=0.1, early_lr_factor=0.5, early_layers=["early"])
        model.fit(x, y, batch_size=4, epochs=2, verbose=0)          # 8 batches
        out["one_cycle_rate"] = [float(model.optimizer.learning_rate), one_cycle_closed_form(8, 0.1, 20)]

        # saving and loading: weights, and the optimizer's settings (compile=True)
        path = f"{folder}/model.keras"
        model.save(path)
        expected = np.asarray(model.predict(x, verbose=0))
        loaded = keras.saving.load_model(path, compile=False)
        out["loaded_same_predictions"] = bool(np.allclose(np.asarray(loaded.predict(x, verbose=0)), expected, atol=1e-6))
        compiled = keras.saving.load_model(path)
        config = compiled.optimizer.get_config()
        out["loaded_optimizer"] = [type(compiled.optimizer).__name__, config["weight_decay"], config["lr_multipliers"],
                                   config["clipvalue"], type(compiled.optimizer._learning_rate).__name__]
        adam = CoupledAdam.from_config(make_optimizer("adam", 0.01, weight_decay=0.2, lr_multipliers={"a": 2.0}).get_config())
        out["adam_config"] = [adam.coupled_weight_decay, adam.lr_multipliers, adam.weight_decay]

        # ReduceLROnPlateau sets the rate of a constant-rate optimizer; refuses a schedule
        # (a rate so small that val_loss cannot improve by Keras's min_delta, 1e-4: a plateau)
        model = compile_model(two_layer_model(), lr=1e-6, weight_decay=1e-3)
        model.fit(x, y, validation_data=(x, y), batch_size=16, epochs=3, verbose=0,
                  callbacks=[plateau_callback(factor=0.5, patience=0, min_lr=0.0)])
        out["plateau_rate"] = float(model.optimizer.learning_rate)
        model = compile_model(two_layer_model(), lr=0.1, schedule="one_cycle", max_lr=0.1, total_steps=10)
        try:
            model.fit(x, y, validation_data=(x, y), batch_size=16, epochs=1, verbose=0, callbacks=[plateau_callback()])
            out["plateau_schedule_error"] = None
        except InvalidParameterError as error:
            out["plateau_schedule_error"] = str(error)
        return out
''')


def check_results(out):
    w0, g = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.1, -0.3])
    # PyTorch SGD(weight_decay=wd): d = g + wd * w; w -= lr * d
    np.testing.assert_allclose(out["sgd_wd"], w0 - 0.1 * (g + 0.01 * w0), rtol=1e-6)
    # with momentum 0.9: buf = d0; then buf = 0.9 buf + d1; w -= lr * buf
    d0 = g + 0.01 * w0
    w1 = w0 - 0.1 * d0
    np.testing.assert_allclose(out["sgd_wd_momentum_2"], w1 - 0.1 * (0.9 * d0 + g + 0.01 * w1), rtol=1e-5)
    # Adam(weight_decay=0.1), first step, Keras's epsilon-hat form
    d = g + 0.1 * w0
    m, v = 0.1 * d, 0.001 * d ** 2
    alpha = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(out["adam_wd"], w0 - alpha * m / (np.sqrt(v) + 1e-7), rtol=1e-5)
    np.testing.assert_allclose(out["clipvalue"], w0 - np.clip(g, -0.2, 0.2), rtol=1e-6)
    np.testing.assert_allclose(out["clip_then_decay"], w0 - (np.clip(g, -0.2, 0.2) + 0.5 * w0), rtol=1e-6)

    assert out["paths"] == ["early_dense/bias", "early_dense/kernel", "logits/bias", "logits/kernel"]
    for path, (plain, slowed) in out["moves"].items():
        assert plain > 0
        expected = 0.1 * plain if path.startswith("early") else plain
        assert slowed == pytest.approx(expected, rel=1e-4), path

    rate, closed = out["one_cycle_rate"]
    assert rate == pytest.approx(closed, rel=1e-5)
    assert out["loaded_same_predictions"]
    assert out["loaded_optimizer"] == ["CoupledSGD", 5e-4, {"early": 0.5}, 0.1, "OneCycle"]
    assert out["adam_config"] == [0.2, {"a": 2.0}, None]        # Keras's own (decoupled) decay stays off
    assert out["plateau_rate"] == pytest.approx(1e-6 * 0.5 * 0.5)      # halved after epochs 2 and 3
    assert out["plateau_schedule_error"] == ("a learning-rate plateau callback must go with a constant "
                                             "learning rate, got a OneCycle schedule")


def test_optimizers_on_the_in_process_backend(tmp_path):
    namespace = {}
    exec(CHECKS, namespace)
    out = namespace["run_checks"](str(tmp_path))
    assert out["backend"] == keras.backend.backend()
    check_results(out)


def test_optimizers_on_tensorflow(tmp_path):
    script = CHECKS + "\nimport json, sys\nprint(json.dumps(run_checks(sys.argv[1])))\n"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["backend"] == "tensorflow"
    check_results(out)


# --- OneCycle -------------------------------------------------------------------------------------

def test_one_cycle_matches_pytorchs_closed_form():
    schedule = OneCycle(max_lr=0.1, total_steps=100)
    rates = [float(schedule(step)) for step in range(100)]
    assert rates[0] == pytest.approx(0.1 / 25, rel=1e-6)              # initial = max_lr / div_factor
    assert max(rates) == pytest.approx(0.1, rel=1e-6)
    assert int(np.argmax(rates)) == 29                                 # pct_start * total - 1, as PyTorch
    assert rates[29] == pytest.approx(0.1, rel=1e-6)
    assert rates[30] == pytest.approx(one_cycle_closed_form(30, 0.1, 100), rel=1e-5)
    assert rates[99] == pytest.approx(0.1 / 25 / 1e4, rel=1e-3)         # min = initial / final_div_factor
    assert float(schedule(500)) == pytest.approx(rates[99], rel=1e-6)  # stays at the minimum after the end
    assert all(a < b for a, b in zip(rates[:29], rates[1:30]))
    assert all(a > b for a, b in zip(rates[29:-1], rates[30:]))
    for step in range(0, 100, 7):
        # float32: the cosine near the end is exact to ~1e-7 of max_lr
        assert rates[step] == pytest.approx(one_cycle_closed_form(step, 0.1, 100), rel=1e-5, abs=1e-8)
    # half-way up the cosine, the rate is half-way between initial and max
    assert one_cycle_closed_form(14.5, 0.1, 100) == pytest.approx((0.004 + 0.1) / 2)


def test_one_cycle_serializes_and_validates():
    schedule = OneCycle(max_lr=0.06, total_steps=1000, pct_start=0.25)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(again, OneCycle) and again.get_config() == schedule.get_config()
    assert float(again(123)) == pytest.approx(float(schedule(123)))
    with pytest.raises(InvalidParameterError, match=r"max_lr must be a number in \(0, inf\], got -1"):
        OneCycle(max_lr=-1, total_steps=10)
    with pytest.raises(InvalidParameterError, match=r"total_steps must be an int in \[2, inf\], got 1"):
        OneCycle(max_lr=0.1, total_steps=1)


# --- compile_model's checks -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"schedule": "cosine"}, r"schedule must be one of 'constant', 'one_cycle', got 'cosine'"),
    ({"schedule": "one_cycle"}, r"schedule 'one_cycle' must have max_lr and total_steps, got max_lr=None, total_steps=None"),
    ({"schedule": "one_cycle", "max_lr": 0.1, "total_steps": 1.5}, r"total_steps must be an int in \[2, inf\], got 1.5"),
    ({"weight_decay": -1e-4}, r"weight_decay must be a number in \[0, inf\], got -0.0001"),
    ({"grad_clip": -0.1}, r"grad_clip must be a number in \[0, inf\], got -0.1"),
    ({"grad_clip": 0.1, "clipnorm": 1.0}, r"grad_clip and clipnorm must not both be set"),
    ({"early_lr_factor": 0.1}, r"early_layers must be a non-empty list of layer-name prefixes when early_lr_factor is set, got \(\)"),
    ({"early_lr_factor": 0.1, "early_layers": ["nope"]}, r"early_layers must name layers of model 'tiny_cnn', got 'nope'"),
    ({"early_lr_factor": 0.0, "early_layers": ["conv_0"]}, r"early_lr_factor must be a number in \(0, inf\], got 0.0"),
    ({"momentum": 1.0}, r"momentum must be a number in \[0, 1\), got 1.0"),
])
def test_compile_model_one_line_errors(kwargs, message):
    from dlcv_keras.models import build_tiny_cnn, compile_model

    with pytest.raises(InvalidParameterError, match=message) as caught:
        compile_model(build_tiny_cnn((28, 28, 1), 10), lr=0.1, **kwargs)
    assert "\n" not in str(caught.value)


def test_compile_model_keeps_the_old_call_and_zero_means_off():
    from dlcv_keras.models import build_tiny_cnn, compile_model

    model = compile_model(build_tiny_cnn((28, 28, 1), 10), lr=0.05, optimizer="sgd", momentum=0.9, steps_per_execution=4)
    config = model.optimizer.get_config()
    assert (config["momentum"], config["weight_decay"], config["lr_multipliers"], config["clipvalue"]) == (0.9, 0.0, {}, None)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05)
    model = compile_model(build_tiny_cnn((28, 28, 1), 10), lr=0.001, optimizer="adam", grad_clip=0.0, clipnorm=2.0,
                          early_lr_factor=1.0, early_layers=["conv_0"])
    config = model.optimizer.get_config()
    assert type(model.optimizer).__name__ == "CoupledAdam"
    assert (config["clipvalue"], config["clipnorm"], config["lr_multipliers"]) == (None, 2.0, {})


# --- EpochProgress --------------------------------------------------------------------------------

class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def tiny_fit(callback, epochs=3):
    from dlcv_keras.models import build_mlp, compile_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4, 4, 1)).astype("float32"), rng.integers(0, 3, 64)
    model = compile_model(build_mlp((4, 4, 1), 3, units=8), lr=0.1)
    model.fit(x, y, validation_data=(x[:16], y[:16]), batch_size=16, epochs=epochs, verbose=0, callbacks=[callback])
    return model


def test_progress_in_a_log_file_is_one_plain_line_per_epoch():
    from dlcv_keras.training.progress import EpochProgress

    stream = io.StringIO()
    seen = []

    def search_left(trial_left):
        seen.append(trial_left)
        return None if trial_left is None else trial_left + 600

    tiny_fit(EpochProgress("q18 lr_batch", stream=stream, trial=(3, 10), search_seconds_left=search_left,
                           min_interval=0.0))
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"q18 lr_batch trial 3 of 10 | epoch {epoch}/3 | loss ")
        assert " acc " in line and "| left " in line and ", search 10m 0" in line and len(line) <= 100
    assert lines[-1].split("| left ")[1].startswith("0s")              # no epochs left after the last
    assert seen and all(s is not None for s in seen)


def test_progress_in_a_log_shows_short_epochs_at_most_once_a_second_first_and_last_always():
    """Epochs of milliseconds (q1's fast path) would write thousands of lines a trial."""
    from dlcv_keras.training.progress import EpochProgress

    stream = io.StringIO()
    tiny_fit(EpochProgress("q1 base", stream=stream, trial=(1, 4), min_interval=3600.0))
    lines = stream.getvalue().splitlines()
    assert [line.split(" | ")[1] for line in lines] == ["epoch 1/3", "epoch 3/3"]


def test_progress_on_a_terminal_rewrites_one_line():
    from dlcv_keras.training.progress import EpochProgress

    stream = FakeTerminal()
    tiny_fit(EpochProgress("a fairly long label " * 6, stream=stream, trial=(1, 2), min_interval=0.0))
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.startswith("\r")
    updates = text.rstrip("\n").split("\r")[1:]
    assert len(updates) >= 3 * 4                                       # every batch (min_interval 0) and epoch end
    assert any(" 25%" in u for u in updates) and "epoch 3/3 |" in updates[-1]
    assert all(len(u.rstrip()) <= 100 and "~ trial 1 of 2 | epoch" in u for u in updates)


def test_progress_throttles_batch_updates_and_formats_seconds():
    from dlcv_keras.training.progress import EpochProgress, format_seconds

    stream = FakeTerminal()
    tiny_fit(EpochProgress("x", stream=stream, min_interval=3600.0))
    updates = stream.getvalue().rstrip("\n").split("\r")[1:]
    assert sum("%" in u for u in updates) == 1                         # the first batch only; then epoch ends
    assert len(updates) == 1 + 3
    assert [format_seconds(s) for s in (0.2, 7, 80, 3725, None)] == ["0s", "7s", "1m 20s", "1h 02m", "?"]
    assert EpochProgress.runs_between_calls is True
