"""python -m dlcv_keras.bench: how fast our training path is, on synthetic data of the real shapes.

One run measures, in samples per second:
- our training path (``compile_model`` + ``fit_and_log``, what every question uses) and plain
  ``model.fit`` with Keras's default compile, for the linear model (784 -> 10, batch 32), the
  MLP (784-256-10, batch 32), q17's CNN (batch 64) and a ResNet-18 CIFAR step (batch 128);
- the matrix-multiply bound of the MLP epoch: numpy doing only its five matmuls per batch;
- a tuning trial's cost outside training, and peak resident memory after 3 and after 30
  trials of one search.
It prints a table and, with ``--json PATH``, writes the numbers with their ratios.
``--q1-full`` also times q1's whole ``full`` grid (36 trainings) on MNIST-sized data.

Keras fixes its backend at import, so every measurement runs in a child process: ours on
the backend the questions pick for that model (``FASTEST_BACKEND``), plain on TensorFlow.
"""

from __future__ import annotations

import argparse
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

# name -> input shape, batch size, samples per timed epoch (full, quick), timed epochs (best kept)
WORKLOADS = {
    "linear": ((28, 28, 1), 32, (60_000, 12_000), 5),
    "mlp": ((28, 28, 1), 32, (60_000, 12_000), 5),
    "cnn": ((28, 28, 1), 64, (12_800, 3_200), 3),
    "resnet18": ((32, 32, 3), 128, (1_280, 512), 2),
}
SEARCH_TRIALS = 30
Q1_FULL_SAMPLES = (48_000, 12_000)      # MNIST's 60k training images, split 80/20 as q1 does


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
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.started

    model = build(name, x.shape[1:])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()

    def epoch() -> float:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, validation_data=(x[:batch], y[:batch]),
                  callbacks=[timer])
        return timer.seconds
    return epoch


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


def measure(tasks: list[str], quick: bool) -> dict:
    """Measurements in this process, in order: "ours:NAME", "plain:NAME", "both:NAME" (ours and plain
    in alternating epochs, when both run on this backend), "search" or "q1-full"."""
    import keras

    found = {}
    backend = keras.backend.backend()
    for task in tasks:
        kind, _, name = task.partition(":")
        if kind in ("ours", "plain", "both"):
            shape, batch, sizes, repeats = WORKLOADS[name]
            samples = sizes[1] if quick else sizes[0]
            x, y = synthetic(shape, samples)
            kinds = ("ours", "plain") if kind == "both" else (kind,)
            makers = {"ours": ours_epoch, "plain": plain_epoch}
            seconds = best_epochs([makers[k](name, x, y, batch) for k in kinds], repeats)
            for k, value in zip(kinds, seconds):
                found[f"{k}:{name}"] = {"seconds": value, "samples": samples, "backend": backend}
        elif kind == "search":
            found[task] = {**search_costs(), "backend": backend}
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


def plan(q1_full: bool) -> dict[str, list[str]]:
    """Steps grouped by backend, one child process each; the search first, before big workloads raise memory."""
    groups: dict[str, list[str]] = {FASTEST_BACKEND["mlp"]: ["search"]}
    for name in WORKLOADS:
        if FASTEST_BACKEND[name] == "tensorflow":
            groups.setdefault("tensorflow", []).append(f"both:{name}")
        else:
            groups.setdefault(FASTEST_BACKEND[name], []).append(f"ours:{name}")
            groups.setdefault("tensorflow", []).append(f"plain:{name}")
    if q1_full:
        groups.setdefault(FASTEST_BACKEND["linear"], []).append("q1-full")
    return groups


def run(quick: bool, q1_full: bool = False, echo=print) -> dict:
    results: dict = {"quick": quick, "cpu_count": os.cpu_count(), "workloads": {}}
    measured: dict = {}
    for backend, tasks in plan(q1_full).items():
        measured.update(in_child(tasks, backend, quick))
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
    if q1_full:
        grid = results["q1_full_grid"] = measured["q1-full"]
        echo(f"q1 full   {grid['trials']} trainings, {grid['epochs']} epochs on {sum(Q1_FULL_SAMPLES)} images "
             f"({grid['backend']}): {grid['wall_seconds'] / 60:.1f} min")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcv_keras.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples per workload (under 3 minutes)")
    parser.add_argument("--q1-full", action="store_true",
                        help="also time q1's whole full grid (36 trainings) on MNIST-sized data (minutes)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)     # one step, run in a child process
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        print(f"error: --json must be a path in an existing folder, got {str(args.json)!r}", file=sys.stderr)
        return 2
    if args.measure:
        backends.choose([])
        from dlcv_keras.pipeline import import_tensorflow_quietly

        import_tensorflow_quietly()
        print(json.dumps(measure(args.measure.split(","), args.quick)))
        return 0
    try:
        results = run(args.quick, args.q1_full)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
