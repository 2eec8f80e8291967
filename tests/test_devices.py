"""Data-parallel trials (--devices, dlcv_keras/training/devices.py): the same model trained on 1 and on
2 logical CPU devices ends with the same weights on both backends, bad --devices values are one-line
errors, and a q1 smoke run on 2 devices completes and records them.

The backend and its devices are fixed when Keras is imported, so every training here runs in a
fresh process (tests/devices_probe.py, or the command line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import dlcv_keras
from dlcv_keras.training import devices
from dlcv_keras.validation import InvalidParameterError

PROBE = Path(__file__).resolve().parent / "devices_probe.py"
PACKAGE_PARENT = str(Path(dlcv_keras.__file__).resolve().parent.parent)

# Same global batch on 1 and 2 devices: the arithmetic is the same but for the order of the sums
# (each device sums the gradient over its half of the batch, then the halves are added; XLA and
# TensorFlow also block their reductions differently per shape). float32 rounding of those sums
# (~1e-7 relative) compounds over 4 epochs x 10 batches of SGD with momentum: measured here at
# 2.4e-7 (both backends). A wrong split is far outside: TensorFlow's uneven last batch (mean of
# per-replica means) moved the same weights by 6e-2, a replica training on half the data by more.
WEIGHT_ATOL = 1e-5
LOSS_RTOL = 1e-5


def child_env(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS", "DLCV_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def probe(backend: str, rows: int, *extra: str) -> dict:
    done = subprocess.run([sys.executable, str(PROBE), backend, "2", str(rows), *extra], capture_output=True,
                          text=True, timeout=600, env=child_env(), cwd=tempfile.gettempdir())
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_same_training(one: dict, two: dict) -> None:
    weights_1, weights_2 = np.array(one["weights"]), np.array(two["weights"])
    assert weights_1.shape == weights_2.shape and np.abs(weights_1).max() > 0.1      # trained, not all zero
    np.testing.assert_allclose(weights_2, weights_1, rtol=0, atol=WEIGHT_ATOL)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=LOSS_RTOL)
    assert one["loss"][-1] < 0.5 * one["loss"][0]                                   # it learned


def assert_two_replicas(run: dict) -> None:
    # Not vacuous: the fit ran under a 2-replica strategy / a 2-device mesh, and the weights are
    # held on 2 devices (TensorFlow's mirrored copies, JAX's replicated shards).
    assert run["replicas"] == 2 and run["variable_devices"] == 2, run


@pytest.mark.slow
def test_jax_data_parallel_training_matches_one_device():
    # 301 rows in batches of 32 leave a last batch of 13: XLA pads it across the 2 devices and the
    # mean stays over its own 13 rows, so even the uneven batch trains as on one device.
    runs = probe("jax", 301)
    assert runs["1"]["replicas"] == 1 and runs["1"]["variable_devices"] == 1
    assert_two_replicas(runs["2"])
    assert_same_training(runs["1"], runs["2"])


@pytest.mark.slow
def test_tensorflow_mirrored_training_matches_one_device_also_in_a_trial_process():
    # 300 rows: the last batch of 12 splits evenly (MirroredStrategy averages an uneven one per
    # replica, as Keras does; README "Data-parallel trials"). --isolated: the same 2-device trial
    # in a trial's own process (tuning/isolation.py), which must set its devices up itself.
    runs = probe("tensorflow", 300, "--isolated")
    assert runs["1"]["replicas"] == 1 and runs["1"]["variable_devices"] == 1
    assert_two_replicas(runs["2"])
    assert_same_training(runs["1"], runs["2"])
    isolated = runs["isolated"]
    assert_two_replicas(isolated)
    np.testing.assert_allclose(isolated["loss"], runs["1"]["loss"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(isolated["val_loss"], runs["1"]["val_loss"], rtol=LOSS_RTOL)


# ResNet-18's 20 batch normalisation layers, one epoch of 4 batches of 32 (16 rows a replica): measured
# 9e-7 (TensorFlow, synchronised) and 3e-7 (JAX) from one device's weights and moving statistics. Each
# replica normalising its 16 rows by their own statistics (Keras's default under MirroredStrategy)
# moved the weights by 6e-2 and the moving variances by 8e-2.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_batch_normalisation_on_two_devices_uses_the_global_batch_as_on_one(backend):
    runs = probe(backend, 128, "--model", "resnet18")
    one, two = runs["1"], runs["2"]
    assert one["replicas"] == 1 and one["synchronized"] == 0
    assert_two_replicas(two)
    # TensorFlow synchronises every layer's statistics across the replicas; on JAX a step is one program
    # over the whole sharded batch, which needs (and allows) no such flag.
    assert two["synchronized"] == (20 if backend == "tensorflow" else 0)
    assert len(one["moving"]) == 2 * 300           # a moving mean and variance per channel, 300 channels
    assert one["moving_change"] > 0.1              # not vacuous: the statistics followed the batches
    np.testing.assert_allclose(two["moving"], one["moving"], rtol=0, atol=WEIGHT_ATOL)
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=0, atol=WEIGHT_ATOL)
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], rtol=LOSS_RTOL)


def test_batch_normalisation_layers_are_found_inside_nested_models():
    # q10's keras-hub backbone is a model inside the model: its layers are not the outer model's.
    import keras

    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.BatchNormalization()])
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inner(inputs)))
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 1
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in devices._nested_layers(model)) == 2


JAX_IMAGES = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
from dlcv_keras.training import devices
devices.prepare(2)
devices.resolve(2)
import keras_tuner, numpy as np
from dlcv_keras.tuning.hypermodel import ClassifierHyperModel
rows = int(sys.argv[1])
x = np.random.default_rng(0).integers(0, 256, (rows, 16, 16, 1), dtype=np.uint8)
y = np.arange(rows) % 10
hp = keras_tuner.HyperParameters()
for name, value in {"lr": 0.01, "batch_size": 32, "epochs": 1}.items():
    hp.Fixed(name, value)
hypermodel = ClassifierHyperModel("tiny_cnn", x.shape[1:], 10, devices=2)
print(hypermodel.fit(hp, hypermodel.build(hp), x, y, validation_data=(x[:64], y[:64])).history[-1]["loss"])
"""


@pytest.mark.slow
def test_jax_model_fit_on_two_devices_takes_even_batches_and_names_an_odd_one():
    # uint8 images train through model.fit, which places each batch split evenly across the mesh.
    def run(rows):
        return subprocess.run([sys.executable, "-c", JAX_IMAGES, str(rows)], capture_output=True, text=True,
                              timeout=600, env=child_env(), cwd=tempfile.gettempdir())

    even = run(250)              # last batch 26 = 13 + 13
    assert even.returncode == 0 and np.isfinite(float(even.stdout.split()[-1])), even.stderr[-2000:]
    odd = run(251)               # last batch 27
    assert odd.returncode == 1
    assert odd.stderr.strip().splitlines()[-1] == (
        "dlcv_keras.validation.InvalidParameterError: --devices 2 on the JAX backend must split every model.fit "
        "batch evenly (image data, or a callback with batch hooks), got a last training batch of 27 rows, not "
        "divisible by 2; use KERAS_BACKEND=tensorflow, whose MirroredStrategy splits unevenly, or other sizes")


# -- the option ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("1", 1), ("2", 2), (" 4 ", 4), ("all", "all"), ("ALL", "all")])
def test_devices_values_parse(text, expected):
    assert devices.parse(text) == expected


def run_cli(args, env_extra=None):
    return subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], capture_output=True, text=True,
                          timeout=600, env=child_env(env_extra), cwd=tempfile.gettempdir())


EXPECTED = "--devices must be 'all' or an int >= 1 (GPUs, or logical CPU devices on a machine without a GPU)"


@pytest.mark.parametrize("args, message", [
    (["q1", "--devices", "0"], f"{EXPECTED}, got '0'"),
    (["q1", "--devices", "-2"], f"{EXPECTED}, got '-2'"),
    (["q1", "--devices=1.5"], f"{EXPECTED}, got '1.5'"),
    (["q1", "--devices", "two"], f"{EXPECTED}, got 'two'"),
    (["q1", "--devices", ""], f"{EXPECTED}, got ''"),
    (["q2", "--devices", "2"], "--devices applies to the questions training Keras models (q1, q3, q7, q8, q9, "
                               "q10, q11, q12, q13, q14, q15, q16, q17, q18) only, got it with q2"),
    (["q3", "--impl", "scratch", "--devices", "2"],
     "--devices must be 1 with --impl scratch (hand-written numpy modules train on one CPU), got '2'"),
])
def test_bad_devices_values_are_one_line_errors(args, message, tmp_path):
    done = run_cli([*args, "--profile", "smoke", "--results", str(tmp_path / "r")])
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == f"error: {message}"
    assert not (tmp_path / "r").exists()


def test_more_devices_than_the_machine_has_is_a_one_line_error(tmp_path):
    # No GPU in this test's world (CUDA hidden): the bound is one logical CPU device per core.
    cores = devices.cpu_cores()
    done = run_cli(["q1", "--devices", str(cores + 1), "--profile", "smoke", "--dataset", "digits",
                    "--results", str(tmp_path / "r")], {"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (f"error: --devices must be 'all' or an int in [1, {cores}] (this machine has no "
                                   f"GPU and {cores} CPU core(s), one logical CPU device per core at most), "
                                   f"got {cores + 1}")
    assert not (tmp_path / "r").exists()


def test_a_scratch_hypermodel_refuses_several_devices():
    from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

    with pytest.raises(InvalidParameterError, match="--devices must be 1 for the scratch implementation"):
        ClassifierHyperModel("mlp", (8, 8, 1), 10, implementation="scratch", devices=2)


def test_help_explains_devices():
    from dlcv_keras.run import build_parser

    text = " ".join(build_parser().format_help().split())
    for words in ("--devices N|all", "N GPUs", "logical CPU devices", "one logical CPU device per core",
                  "The batch size stays the global one, split across the devices"):
        assert words in text, words


# -- end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", [None, "tensorflow"])     # None: q1's own choice, JAX
def test_q1_smoke_on_two_devices_completes_and_records_them(backend, tmp_path):
    results = tmp_path / "results"
    done = run_cli(["q1", "--profile", "smoke", "--dataset", "digits", "--devices", "2", "--report", "none",
                    "--results", str(results)], {"KERAS_BACKEND": backend} if backend else None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    run = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["environment"]["devices"] == 2
    assert run["environment"]["keras_backend"] == (backend or "jax")
    best = json.loads((results / "q1" / "smoke" / "experiments" / "best" / "summary.json").read_text())
    assert best["status"] == "completed" and best["test_accuracy"] > 0.2, best     # chance is 0.1


def test_several_questions_pass_devices_only_to_those_training_keras_models():
    from dlcv_keras.run import build_parser, child_options

    parser = build_parser()
    args = parser.parse_args(["q1", "q2", "--devices", "2", "--profile", "smoke"])
    assert child_options(parser, args, "q1") == ["--profile=smoke", "--devices=2"]
    assert child_options(parser, args, "q2") == ["--profile=smoke"]
    assert child_options(parser, parser.parse_args(["q1", "q2"]), "q1") == []        # the default passes nothing
