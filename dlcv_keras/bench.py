"""python -m dlcv_keras.bench: how fast our training path is, on synthetic data of the real shapes.

One run measures, in samples per second:
- our training path (``compile_model`` + ``fit_and_log``, what every question uses) and plain
  ``model.fit`` with Keras's default compile, for the linear model (784 -> 10, batch 32), the
  MLP (784-256-10, batch 32), q17's CNN (batch 64) and a ResNet-18 CIFAR step (batch 128);
- the matrix-multiply bound of the MLP epoch: numpy doing only its five matmuls per batch;
- a tuning trial's cost outside training, and peak resident memory after 3 and after 30
  trials of one search;
- the input pipeline: images/s of ``dlcv_keras.data.images.image_batches`` with every
  augmentation on CIFAR-shaped uint8 data (batch 128), iterated without training, beside the
  training images/s of the ResNet-18 it feeds (``model.fit`` on that dataset, same
  augmentations); the pipeline should be at least ``PIPELINE_MARGIN`` times faster, else a
  warning line is printed;
- the cost of q13's gradient instrument: one epoch of its deepest MLP (1024 -> 256 x 10 -> 10,
  sigmoid, Adam, batch 1024) through our path with ``training.instruments.LayerProbe`` measuring
  gradients and weights, as a ratio to the same epoch without it (target: at most
  ``INSTRUMENT_TARGET``), and the probe's first measurement, which compiles;
- ResNet-18 against its FLOP bound: the machine's convolution FLOP/s (forward and backward of a
  3x3, 128-channel Conv2D on 32x32 batches, FLOPs counted analytically) divided by the
  model's training FLOPs per image (2 Hout Wout k k Cin Cout per convolution, 2 in out per
  dense layer, times 3 for forward plus backward), beside ``model.fit`` through
  ``image_batches`` and plain ``model.fit`` on float32 numpy arrays;
- where PyTorch is installed (never a dependency), the same ResNet-18 in PyTorch
  (``torch_resnet18``) beside plain ``model.fit``, epochs alternating: a plain training loop,
  SGD 0.01, the same batches.
Whether TensorFlow's oneDNN kernels were on, and who decided (dlcv_keras/backends.py), heads the
output. It prints a table and, with ``--json PATH``, writes the numbers with their ratios.
``--q1-full`` also times q1's whole ``full`` grid (36 trainings) on MNIST-sized data.

Keras fixes its backend at import, so every measurement runs in a child process: ours on
the backend the questions pick for that model (``FASTEST_BACKEND``), plain on TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlcv_keras import backends
from dlcv_keras.models.options import FASTEST_BACKEND
from dlcv_keras.results import atomic_write_text

# name -> input shape, batch size, samples per timed epoch (full, quick), timed epochs (best kept;
# one fewer, at least one, with --quick)
WORKLOADS = {
    "linear": ((28, 28, 1), 32, (60_000, 12_000), 5),
    "mlp": ((28, 28, 1), 32, (60_000, 12_000), 5),
    "cnn": ((28, 28, 1), 64, (12_800, 3_200), 3),
    "resnet18": ((32, 32, 3), 128, (1_280, 512), 2),
}
SEARCH_TRIALS = 30
PIPELINE_SAMPLES = (51_200, 5_120)      # images per timed pass of the input pipeline (full, quick)
PIPELINE_BATCH = 128
PIPELINE_MARGIN = 3.0                   # the pipeline should outrun the training it feeds this many times
CONV_PROBE = {"batch": 32, "size": 32, "channels": 128, "kernel": 3, "steps": (10, 3)}
Q1_FULL_SAMPLES = (48_000, 12_000)      # MNIST's 60k training images, split 80/20 as q1 does
# q13's deepest network and its training set (40k grayscale CIFAR-10 images in full), for the cost of
# the gradient instrument: input shape, batch size, samples (full, quick), timed rounds.
INSTRUMENT_WORKLOAD = ((32, 32, 1), 1024, (40_000, 8_000), 3)
INSTRUMENT_TARGET = 1.3                 # an instrumented epoch should cost at most this many plain ones


def synthetic(shape, samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((samples, *shape), dtype=np.float32), rng.integers(0, 10, samples)


def build(name: str, shape):
    from dlcv_keras.models import get_builder

    kwargs = {"mlp": {"depth": 1, "units": 256}}.get(name, {})
    return get_builder(name)(shape, 10, **kwargs)


def ours_epoch(name: str, x, y, batch: int):
    """A function that trains one epoch through the path the questions use and returns its seconds."""
    from dlcv_keras.models import compile_model
    from dlcv_keras.training.fit import STEPS_PER_EXECUTION, fit_and_log

    model = compile_model(build(name, x.shape[1:]), lr=0.01, steps_per_execution=STEPS_PER_EXECUTION)
    return lambda: fit_and_log(model, x, y, x[:batch], y[:batch], batch_size=batch, epochs=1).history[0]["seconds"]


def plain_epoch(name: str, x, y, batch: int):
    """The same for ``model.fit`` with Keras's default compile, timed from epoch start to end as ours is."""
    return _plain_fit_epoch(name, x.shape[1:], x, y, batch_size=batch, validation_data=(x[:batch], y[:batch]))


def images_epoch(name: str, x, y, batch: int):
    """Plain ``model.fit`` (compiled as ``plain_epoch``) on ``image_batches`` over uint8 images, with
    every augmentation: one epoch's seconds, timed from epoch start to end."""
    from dlcv_keras.data.augment import AUGMENTATIONS
    from dlcv_keras.data.images import image_batches

    x_uint8 = to_uint8(x)
    train = image_batches(x_uint8, y, batch_size=batch, augment=AUGMENTATIONS, seed=0)
    val = image_batches(x_uint8[:batch], y[:batch], batch_size=batch, shuffle=False)
    return _plain_fit_epoch(name, x.shape[1:], train, validation_data=val, shuffle=False)


def _plain_fit_epoch(name: str, shape, *fit_args, **fit_kwargs):
    """A function training ``name`` (a plain model.compile: SGD 0.01, our loss) for one epoch of
    ``model.fit(*fit_args, **fit_kwargs)`` and returning that epoch's seconds, start to end."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    from dlcv_keras.models import classification_loss

    model = build(name, shape)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=classification_loss(), metrics=["accuracy"])
    timer = EpochTimer()

    def epoch() -> float:
        model.fit(*fit_args, epochs=1, verbose=0, callbacks=[timer], **fit_kwargs)
        return timer.seconds
    return epoch


def torch_resnet18(width: float = 1.0, num_classes: int = 10):
    """``models.builders.build_resnet18`` in PyTorch, for the side-by-side timing: a 3x3 stem, no max
    pooling, four stages of two basic blocks of 64-128-256-512 filters x ``width``, batch norm, a
    1x1 projection (+ batch norm) where a block changes shape, global average pooling, a dense layer
    (logits). At width 1: 11,173,962 parameters, as the Keras model's trainable ones."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = nn.Sequential(*conv_bn(cin, cout, stride), nn.ReLU())
            self.b = nn.Sequential(*conv_bn(cout, cout, 1))
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return torch.relu(self.b(self.a(x)) + self.shortcut(x))

    widths = [max(1, int(round(base * width))) for base in (64, 128, 256, 512)]
    stack, cin = [*conv_bn(3, widths[0], 1), nn.ReLU()], widths[0]
    for stage, cout in enumerate(widths):
        for block in range(2):
            stack.append(Block(cin, cout, 2 if stage > 0 and block == 0 else 1))
            cin = cout
    return nn.Sequential(*stack, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_epoch(name: str, x, y, batch: int):
    """A function training ``torch_resnet18`` for one epoch as ``plain_epoch`` trains the Keras one
    (SGD 0.01, cross-entropy, ``batch``-sized batches in a new shuffled order each epoch), returning
    its seconds. PyTorch's defaults otherwise: NCHW tensors, its own thread count."""
    import torch

    if name != "resnet18":
        raise ValueError(f"the PyTorch side-by-side is ResNet-18's alone, got {name!r}")
    torch.manual_seed(0)
    model = torch_resnet18(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_of = torch.nn.CrossEntropyLoss()
    images = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(y).long()
    model.train()

    def epoch() -> float:
        started = time.perf_counter()
        for rows in torch.randperm(len(images)).split(batch):
            optimizer.zero_grad(set_to_none=True)
            loss_of(model(images[rows]), labels[rows]).backward()
            optimizer.step()
        return time.perf_counter() - started
    return epoch


def instrument_costs(quick: bool) -> dict:
    """One epoch of q13's deepest MLP without and with the layer probe (gradients and weights):
    the same model, epochs alternating, best of ``rounds`` each after a warm-up round."""
    from dlcv_keras.models import compile_model
    from dlcv_keras.models.builders import build_mlp
    from dlcv_keras.training.fit import STEPS_PER_EXECUTION, fit_and_log
    from dlcv_keras.training.instruments import LayerProbe, probe_rows

    shape, batch, sizes, rounds = INSTRUMENT_WORKLOAD
    samples = sizes[1] if quick else sizes[0]
    x, y = synthetic(shape, samples)
    model = compile_model(build_mlp(shape, 10, depth=10, units=256, activation="sigmoid"), optimizer="adam",
                          lr=1e-3, steps_per_execution=STEPS_PER_EXECUTION)
    probe = LayerProbe(*probe_rows(x, y, 0), instruments=("gradients", "weights"))
    started = time.perf_counter()
    probe.set_model(model)
    probe.on_train_begin()              # the first measurement compiles the gradient function
    first = time.perf_counter() - started

    def epoch(callbacks):
        # history's epoch time spans on_epoch_begin to on_epoch_end: one probe measurement per epoch.
        return lambda: fit_and_log(model, x, y, x[:batch], y[:batch], batch_size=batch, epochs=1,
                                   callbacks=callbacks).history[0]["seconds"]

    plain, probed = best_epochs([epoch([]), epoch([probe])], max(1, rounds - 1) if quick else rounds)
    return {"samples": samples, "batch_size": batch, "plain_seconds": plain, "probed_seconds": probed,
            "first_probe_seconds": round(first, 3), "probe_rows": len(probe.y)}


def to_uint8(x: np.ndarray) -> np.ndarray:
    return (x * 255).astype(np.uint8)


def pipeline_seconds(samples: int, batch: int = PIPELINE_BATCH, repeats: int = 3) -> float:
    """Best seconds of one pass over ``samples`` CIFAR-shaped uint8 images through ``image_batches``
    with every augmentation, batches consumed and dropped (no training), after a warm-up pass."""
    from dlcv_keras.data.augment import AUGMENTATIONS
    from dlcv_keras.data.images import image_batches

    x, y = synthetic((32, 32, 3), samples)
    dataset = image_batches(to_uint8(x), y, batch_size=batch, augment=AUGMENTATIONS, seed=0)
    best = float("inf")
    for round_ in range(repeats + 1):
        started = time.perf_counter()
        for _ in dataset:
            pass
        if round_:
            best = min(best, time.perf_counter() - started)
    return best


def training_flops_per_image(model) -> int:
    """Forward-plus-backward FLOPs of one image through ``model``'s Conv2D and Dense layers:
    3 x (2 Hout Wout k_h k_w Cin Cout) per convolution and 3 x (2 in out) per dense layer
    (the backward pass computes the input and the weight gradients, each as costly as the
    forward pass). Batch norm, activations, pooling and the first layer's unneeded input
    gradient are left out: a slight over-count of the work that matters, so a generous bound."""
    import keras

    forward = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            _, hout, wout, cout = layer.output.shape
            forward += 2 * hout * wout * kh * kw * layer.input.shape[-1] * cout
        elif isinstance(layer, keras.layers.Dense):
            forward += 2 * layer.input.shape[-1] * layer.units
    return 3 * int(forward)


def conv_flops_per_s(quick: bool) -> dict:
    """FLOP/s of TensorFlow's forward and backward pass of one 3x3, 128-channel convolution on 32x32
    inputs (``CONV_PROBE``), the best of a few steps after a warm-up step; FLOPs counted as in
    ``training_flops_per_image``."""
    import tensorflow as tf

    probe = CONV_PROBE
    b, n, c, k = probe["batch"], probe["size"], probe["channels"], probe["kernel"]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((b, n, n, c), dtype=np.float32))
    w = tf.Variable(rng.standard_normal((k, k, c, c), dtype=np.float32) * 0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, w, strides=1, padding="SAME")
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [x, w])

    step()
    best = float("inf")
    for _ in range(probe["steps"][1 if quick else 0]):
        started = time.perf_counter()
        grads = step()
        grads[0].numpy()
        best = min(best, time.perf_counter() - started)
    flops = 3 * 2 * b * n * n * k * k * c * c
    return {"flops_per_step": flops, "seconds": best, "flops_per_s": flops / best, **{key: probe[key] for key in
            ("batch", "size", "channels", "kernel")}}


def best_epochs(epochs: list, repeats: int) -> list[float]:
    """Each epoch function's best time over ``repeats`` rounds, after a warm-up round that compiles.
    A round runs every function once, so that a slow spell on a shared machine hits them alike."""
    for epoch in epochs:
        epoch()
    best = [float("inf")] * len(epochs)
    for _ in range(repeats):
        for i, epoch in enumerate(epochs):
            best[i] = min(best[i], epoch())
    return best


def matmul_bound(samples: int, batch: int = 32, hidden: int = 256) -> float:
    """Seconds numpy needs for the MLP epoch's matmuls alone: 2 forward, 3 backward per batch."""
    rng = np.random.default_rng(0)
    x, w1 = rng.random((batch, 784), dtype=np.float32), rng.random((784, hidden), dtype=np.float32)
    w2, d2 = rng.random((hidden, 10), dtype=np.float32), rng.random((batch, 10), dtype=np.float32)
    d1 = rng.random((batch, hidden), dtype=np.float32)

    def step():
        h = x @ w1
        h @ w2
        d2 @ w2.T
        h.T @ d2
        x.T @ d1

    for _ in range(50):
        step()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(samples // batch):
            step()
        best = min(best, time.perf_counter() - started)
    return best


def resident_mb() -> float:
    """Resident memory now (Linux /proc); elsewhere the process's peak so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux reports KiB


def search_costs(trials: int = SEARCH_TRIALS) -> dict:
    """A grid search of ``trials`` tiny MLP trials through our tuner: time outside training per
    trial, and the highest resident memory seen up to the 3rd and up to the last trial
    (sampled at each trial's end, in a process of its own)."""
    import keras_tuner

    x, y = synthetic((28, 28, 1), 128)
    hp = keras_tuner.HyperParameters()
    hp.Choice("lr", [round(0.001 * (i + 1), 6) for i in range(trials)])
    for name, value in {"depth": 1, "units": 32, "activation": "relu", "l2": 0.0, "batch_size": 32, "epochs": 1}.items():
        hp.Fixed(name, value)
    found = timed_search("mlp", hp, trials, x[:96], y[:96], x[96:], y[96:])
    found["overhead_per_trial_s"] = round((found["wall_seconds"] - found["training_seconds"]) / trials, 3)
    return found


def q1_full_grid() -> dict:
    """q1's ``full`` grid (lr x L2 x epochs x batch, 36 trainings of 50 or 100 epochs) through the
    same tuner, on MNIST-sized synthetic data."""
    from dlcv_keras.resources import packaged_dir
    from dlcv_keras.tuning.search import count_trials, hyperparameters_for
    from dlcv_keras.tuning.spaces import load_space

    space = load_space(packaged_dir("tuners") / "q1.toml", "full").experiment("full_grid")
    train, val = Q1_FULL_SAMPLES
    x, y = synthetic((28, 28, 1), train + val)
    trials = count_trials(space, "grid", 0)
    found = timed_search("linear", hyperparameters_for(space), trials, x[:train], y[:train], x[train:], y[train:])
    found["epochs"] = found.pop("epochs_run")
    return found


def timed_search(model: str, hp, trials: int, x, y, x_val, y_val) -> dict:
    from dlcv_keras.tuning.hypermodel import ClassifierHyperModel
    from dlcv_keras.tuning.search import make_tuner

    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        tuner = make_tuner("grid", ClassifierHyperModel(model, x.shape[1:], 10), hp, directory=Path(folder),
                           project_name="bench", total=trials, seed=0, label="bench", num_classes=10,
                           echo=lambda *a, **k: None)
        finished = tuner.on_trial_end

        def on_trial_end(trial):
            finished(trial)
            peaks[len(peaks) + 1] = max([resident_mb(), *peaks.values()])

        tuner.on_trial_end = on_trial_end
        started = time.perf_counter()
        tuner.search(x, y, validation_data=(x_val, y_val), verbose=0)
        wall = time.perf_counter() - started
        records = tuner.records()
    return {"trials": len(records), "wall_seconds": round(wall, 2),
            "training_seconds": round(sum(r.get("seconds") or 0.0 for r in records), 2),
            "epochs_run": sum(r.get("epochs_run") or 0 for r in records),
            "peak_rss_mb_after_3": round(peaks.get(3, float("nan")), 1),
            "peak_rss_mb_after_last": round(peaks.get(trials, float("nan")), 1)}


def distributed_grid(workers: int = 2, echo=print) -> dict:
    """q1's ``quick`` full grid (36 trials) as ``python -m dlcv_keras.run q1`` runs it: in one process,
    then on a chief and ``workers`` local workers, then in one process again; the faster one-process
    time counts (the first run fills JAX's compile cache for the others). Each time is the search's
    own ("[full_grid] finished in X s"); the calls come from the chief's and the workers' last lines."""
    import re
    import tempfile

    def q1(*extra: str) -> str:
        with tempfile.TemporaryDirectory() as results:
            command = [sys.executable, "-m", "dlcv_keras.run", "q1", "--profile", "quick", "--report", "none",
                       "--results", results, *extra]
            done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[2:])} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        return done.stdout

    def search_seconds(output: str) -> float:
        return float(re.search(r"^\[full_grid\] finished in ([0-9.]+) s$", output, flags=re.M).group(1))

    alone = [search_seconds(q1())]
    echo(f"          q1 quick full grid in one process: {alone[0]:.1f} s")
    shared = q1("--workers", str(workers))
    alone.append(search_seconds(q1()))
    chief = re.search(r"^chief: (\d+) calls served for (\d+) trials .*?, ([0-9.]+) ms each", shared, flags=re.M)
    trips = [float(ms) for ms in re.findall(r"median round trip ([0-9.]+) ms$", shared, flags=re.M)]
    calls, trials = int(chief.group(1)), int(chief.group(2))
    found = {"workers": workers, "one_process_seconds": min(alone), "one_process_runs": alone,
             "workers_seconds": search_seconds(shared), "chief_calls": calls, "trials": trials,
             "calls_per_trial": round(calls / trials, 1), "chief_ms_per_call": float(chief.group(3)),
             "worker_median_round_trip_ms": trips}
    found["speedup"] = round(found["one_process_seconds"] / found["workers_seconds"], 2)
    return found


def measure(tasks: list[str], quick: bool) -> dict:
    """Measurements in this process, in order: "ours:NAME", "plain:NAME", "images:NAME" (plain fit
    through ``image_batches``), "torch:NAME" (the same net in PyTorch), "both:NAME" (ours and plain),
    kinds joined by "+" (their epochs alternate, when they run on this backend;
    "both+images:resnet18"), "pipeline" (the input
    pipeline alone), "conv-flops" (convolution FLOP/s and ResNet-18's training FLOPs per
    image), "search" or "q1-full". Also whether TensorFlow's oneDNN kernels were on ("onednn")."""
    import keras

    found = {"onednn": backends.onednn_state()}
    backend = keras.backend.backend()
    makers = {"ours": ours_epoch, "plain": plain_epoch, "images": images_epoch, "torch": torch_epoch}
    for task in tasks:
        kind, _, name = task.partition(":")
        kinds = [k for part in kind.split("+") for k in (("ours", "plain") if part == "both" else (part,))]
        if name and all(k in makers for k in kinds):
            shape, batch, sizes, repeats = WORKLOADS[name]
            samples = sizes[1] if quick else sizes[0]
            repeats = max(1, repeats - 1) if quick else repeats
            x, y = synthetic(shape, samples)
            seconds = best_epochs([makers[k](name, x, y, batch) for k in kinds], repeats)
            for k, value in zip(kinds, seconds):
                found[f"{k}:{name}"] = {"seconds": value, "samples": samples, "backend": backend}
            if "torch" in kinds:
                import torch
                found[f"torch:{name}"].update(backend="torch", torch_version=torch.__version__,
                                              threads=torch.get_num_threads())
        elif kind == "pipeline":
            samples = PIPELINE_SAMPLES[1 if quick else 0]
            found[task] = {"seconds": pipeline_seconds(samples), "samples": samples,
                           "batch_size": PIPELINE_BATCH, "backend": backend}
        elif kind == "conv-flops":
            found[task] = {**conv_flops_per_s(quick), "backend": backend,
                           "resnet18_training_flops_per_image": training_flops_per_image(
                               build("resnet18", WORKLOADS["resnet18"][0]))}
        elif kind == "search":
            found[task] = {**search_costs(), "backend": backend}
        elif kind == "instrument":
            found[task] = {**instrument_costs(quick), "backend": backend}
        elif kind == "q1-full":
            found[task] = {**q1_full_grid(), "backend": backend}
        else:
            raise ValueError(f"unknown benchmark step {task!r}")
    return found


def in_child(tasks: list[str], backend: str, quick: bool) -> dict:
    """``measure`` in a fresh process on ``backend`` (Keras cannot switch backends once imported)."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, "-m", "dlcv_keras.bench", "--measure", ",".join(tasks)] + (["--quick"] if quick else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"benchmark steps {tasks} on {backend} failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plan(q1_full: bool, torch: bool = False) -> dict[str, list[str]]:
    """Steps grouped by backend, one child process each; the search first, before big workloads raise memory.
    With ``torch``, ResNet-18's step also trains it in PyTorch, its epochs alternating with Keras's."""
    groups: dict[str, list[str]] = {FASTEST_BACKEND["mlp"]: ["search", "instrument"]}
    for name in WORKLOADS:
        # ResNet-18 is also trained through image_batches (a tf.data pipeline: TensorFlow).
        extra = ("+images" + ("+torch" if torch else "")) if name == "resnet18" else ""
        if FASTEST_BACKEND[name] == "tensorflow":
            groups.setdefault("tensorflow", []).append(f"both{extra}:{name}")
        else:
            groups.setdefault(FASTEST_BACKEND[name], []).append(f"ours:{name}")
            groups.setdefault("tensorflow", []).append(f"plain{extra}:{name}")
    groups["tensorflow"] += ["pipeline", "conv-flops"]
    if q1_full:
        groups.setdefault(FASTEST_BACKEND["linear"], []).append("q1-full")
    return groups


def run(quick: bool, q1_full: bool = False, echo=print, workers_grid: bool = False) -> dict:
    results: dict = {"quick": quick, "cpu_count": os.cpu_count(), "workloads": {}}
    measured: dict = {}
    torch = torch_available()
    for backend, tasks in plan(q1_full, torch).items():
        found = in_child(tasks, backend, quick)
        if backend == "tensorflow":               # the child whose convolutions oneDNN runs
            results["onednn"] = found["onednn"]
        measured.update(found)
    onednn = results["onednn"]
    echo(f"TensorFlow oneDNN {({True: 'on', False: 'off'}).get(onednn['on'], 'unknown')} "
         f"(decided by {onednn['decided_by']}; export TF_ENABLE_ONEDNN_OPTS=0 or 1 to choose)")
    search = measured["search"]
    for name, (shape, batch, sizes, repeats) in WORKLOADS.items():
        ours, plain = measured[f"ours:{name}"], measured[f"plain:{name}"]
        samples = ours["samples"]
        row = {"batch_size": batch, "samples": samples, "ours_backend": ours["backend"],
               "ours_samples_per_s": round(samples / ours["seconds"], 1),
               "plain_samples_per_s": round(samples / plain["seconds"], 1),
               "speedup_vs_plain": round(plain["seconds"] / ours["seconds"], 2)}   # target: MLP >= 4, CNN >= 1
        if name == "mlp":
            bound = matmul_bound(samples, batch)
            row["matmul_bound_samples_per_s"] = round(samples / bound, 1)
            row["ours_vs_bound"] = round(ours["seconds"] / bound, 2)            # target: <= 1.5
            row["epoch_60k_seconds"] = {"ours": round(ours["seconds"] * 60_000 / samples, 2),
                                        "plain": round(plain["seconds"] * 60_000 / samples, 2),
                                        "matmul_bound": round(bound * 60_000 / samples, 2)}
        results["workloads"][name] = row
        echo(f"{name:<9} batch {batch:<4} ours ({row['ours_backend']}) {row['ours_samples_per_s']:>9.0f} samples/s   "
             f"plain Keras/TF {row['plain_samples_per_s']:>9.0f} samples/s   x{row['speedup_vs_plain']:.2f}"
             + (f"   matmul bound {row['matmul_bound_samples_per_s']:.0f} samples/s (ours at "
                f"{row['ours_vs_bound']:.2f}x the bound)" if name == "mlp" else ""))
    search["peak_rss_growth"] = round(search["peak_rss_mb_after_last"] / search["peak_rss_mb_after_3"] - 1, 3)
    results["search"] = search
    echo(f"search    {search['trials']} trials ({search['backend']}): {search['overhead_per_trial_s']:.3f} s per trial "
         f"outside training; peak memory {search['peak_rss_mb_after_3']:.0f} MB after 3 trials, "
         f"{search['peak_rss_mb_after_last']:.0f} MB after {search['trials']} ({100 * search['peak_rss_growth']:+.1f} %)")
    results["instrument"] = instrument_row(measured, echo)
    results["input_pipeline"] = pipeline_row(measured, echo)
    results["resnet18_flop_bound"] = flop_bound_row(measured, echo)
    results["resnet18_pytorch"] = pytorch_row(measured, echo)
    if workers_grid:
        shared = results["q1_quick_grid_on_workers"] = distributed_grid(echo=echo)
        echo(f"workers   q1 quick full grid ({shared['trials']} trials): one process {shared['one_process_seconds']:.1f} s, "
             f"a chief and {shared['workers']} workers {shared['workers_seconds']:.1f} s: x{shared['speedup']:.2f}; "
             f"{shared['calls_per_trial']:.1f} calls to the chief a trial, {shared['chief_ms_per_call']:.2f} ms each in "
             f"the chief, median round trip {', '.join(f'{ms:.1f}' for ms in shared['worker_median_round_trip_ms'])} ms")
    if q1_full:
        grid = results["q1_full_grid"] = measured["q1-full"]
        echo(f"q1 full   {grid['trials']} trainings, {grid['epochs']} epochs on {sum(Q1_FULL_SAMPLES)} images "
             f"({grid['backend']}): {grid['wall_seconds'] / 60:.1f} min")
    return results


def instrument_row(measured: dict, echo) -> dict:
    cost = measured["instrument"]
    row = {"samples": cost["samples"], "batch_size": cost["batch_size"], "backend": cost["backend"],
           "epoch_seconds": round(cost["plain_seconds"], 3), "instrumented_epoch_seconds": round(cost["probed_seconds"], 3),
           "ratio": round(cost["probed_seconds"] / cost["plain_seconds"], 3),
           "first_probe_seconds": cost["first_probe_seconds"], "probe_rows": cost["probe_rows"]}
    echo(f"probe     q13's 10-layer MLP, {row['samples']} images ({row['backend']}): epoch {row['epoch_seconds']:.2f} s, "
         f"with gradients and weights measured {row['instrumented_epoch_seconds']:.2f} s: x{row['ratio']:.2f} "
         f"(first measurement, compiling: {row['first_probe_seconds']:.2f} s)")
    if row["ratio"] > INSTRUMENT_TARGET:
        echo(f"warning: the gradient instrument makes an epoch {row['ratio']:.2f}x as long (expected at most "
             f"{INSTRUMENT_TARGET:g}x)")
    return row


def pipeline_row(measured: dict, echo) -> dict:
    pipe, fed = measured["pipeline"], measured["images:resnet18"]
    row = {"batch_size": pipe["batch_size"], "samples": pipe["samples"],
           "augmentations": "full",
           "pipeline_images_per_s": round(pipe["samples"] / pipe["seconds"], 1),
           "resnet18_training_images_per_s": round(fed["samples"] / fed["seconds"], 1)}
    row["pipeline_vs_training"] = round(row["pipeline_images_per_s"] / row["resnet18_training_images_per_s"], 2)
    echo(f"pipeline  batch {row['batch_size']:<4} image_batches, every augmentation: "
         f"{row['pipeline_images_per_s']:>9.0f} images/s   ResNet-18 training on it "
         f"{row['resnet18_training_images_per_s']:>6.0f} images/s   x{row['pipeline_vs_training']:.1f}")
    if row["pipeline_vs_training"] < PIPELINE_MARGIN:
        echo(f"warning: the input pipeline is only {row['pipeline_vs_training']:.1f}x as fast as the "
             f"training it feeds (expected at least {PIPELINE_MARGIN:g}x): it may slow training down")
    return row


def flop_bound_row(measured: dict, echo) -> dict:
    conv = measured["conv-flops"]
    per_image = conv["resnet18_training_flops_per_image"]
    bound = conv["flops_per_s"] / per_image
    speeds = {path: measured[f"{path}:resnet18"]["samples"] / measured[f"{path}:resnet18"]["seconds"]
              for path in ("images", "plain", "ours")}
    row = {"conv_flops_per_s": round(conv["flops_per_s"], 0),
           "conv_probe": {key: conv[key] for key in ("batch", "size", "channels", "kernel")},
           "training_flops_per_image": per_image,
           "bound_images_per_s": round(bound, 1),
           "image_batches_fit_images_per_s": round(speeds["images"], 1),
           "plain_numpy_fit_images_per_s": round(speeds["plain"], 1),
           "ours_numpy_images_per_s": round(speeds["ours"], 1),
           "image_batches_fit_vs_bound": round(speeds["images"] / bound, 3),
           "plain_numpy_fit_vs_bound": round(speeds["plain"] / bound, 3),
           "image_batches_fit_vs_plain": round(speeds["images"] / speeds["plain"], 2)}
    echo(f"resnet18  convolution {row['conv_flops_per_s'] / 1e9:.1f} GFLOP/s, "
         f"{per_image / 1e9:.2f} GFLOP per training image: bound {bound:.0f} images/s;   "
         f"model.fit on image_batches {speeds['images']:.0f} ({row['image_batches_fit_vs_bound']:.0%} of the bound)   "
         f"plain model.fit on numpy {speeds['plain']:.0f} ({row['plain_numpy_fit_vs_bound']:.0%})")
    return row


def pytorch_row(measured: dict, echo) -> dict:
    """ResNet-18 in PyTorch beside plain ``model.fit`` on the same numpy data, or why it was not timed."""
    if "torch:resnet18" not in measured:
        echo("pytorch   ResNet-18 in PyTorch not timed: torch is not installed (optional; pip install torch)")
        return {"skipped": "torch is not installed"}
    torch, keras = measured["torch:resnet18"], measured["plain:resnet18"]
    row = {"batch_size": WORKLOADS["resnet18"][1], "samples": torch["samples"],
           "torch_version": torch["torch_version"], "torch_threads": torch["threads"],
           "torch_images_per_s": round(torch["samples"] / torch["seconds"], 1),
           "keras_plain_fit_images_per_s": round(keras["samples"] / keras["seconds"], 1)}
    row["keras_vs_torch"] = round(torch["seconds"] / keras["seconds"], 2)
    echo(f"pytorch   ResNet-18, batch {row['batch_size']}: PyTorch {row['torch_version']} "
         f"({row['torch_threads']} threads) {row['torch_images_per_s']:.0f} images/s   plain model.fit "
         f"({keras['backend']}) {row['keras_plain_fit_images_per_s']:.0f} images/s   x{row['keras_vs_torch']:.2f}")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcv_keras.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples per workload and one timed epoch fewer (about 4 minutes on 2 cores)")
    parser.add_argument("--q1-full", action="store_true",
                        help="also time q1's whole full grid (36 trainings) on MNIST-sized data (minutes)")
    parser.add_argument("--workers-grid", action="store_true",
                        help="also time q1's quick full grid through `run q1` in one process and with --workers 2, "
                             "and the chief's calls per trial (a few minutes; uses DLCV_DATA_DIR's MNIST if set)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)     # one step, run in a child process
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        print(f"error: --json must be a path in an existing folder, got {str(args.json)!r}", file=sys.stderr)
        return 2
    if args.measure:
        backends.choose([])
        from dlcv_keras.backends import import_tensorflow_quietly

        import_tensorflow_quietly()
        print(json.dumps(measure(args.measure.split(","), args.quick)))
        return 0
    try:
        results = run(args.quick, args.q1_full, workers_grid=args.workers_grid)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
