"""python -m dlcv_keras.bench: how fast our training path is, on synthetic data of the real shapes.

One run measures, in samples per second:
- our training path (``compile_model`` + ``fit_and_log``, what every question uses) and plain
  ``model.fit`` with Keras's default compile, for the linear model (784 -> 10, batch 32), the
  MLP (784-256-10, batch 32), q17's CNN (batch 64) and a ResNet-18 CIFAR step (batch 128);
- the matrix-multiply bound of the MLP epoch: numpy doing only its five matmuls per batch;
- a tuning trial's cost outside training, and peak resident memory after 3 and after 30
  trials of one search.
It prints a table and, with ``--json PATH``, writes the numbers with their ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlcv_keras.results import atomic_write_text

# name -> input shape, batch size, samples per timed epoch (full, quick), timed epochs (best kept)
WORKLOADS = {
    "linear": ((28, 28, 1), 32, (60_000, 12_000), 3),
    "mlp": ((28, 28, 1), 32, (60_000, 12_000), 3),
    "cnn": ((28, 28, 1), 64, (12_800, 3_200), 2),
    "resnet18": ((32, 32, 3), 128, (1_280, 512), 1),
}
SEARCH_TRIALS = 30


def synthetic(shape, samples: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((samples, *shape), dtype=np.float32), rng.integers(0, 10, samples)


def build(name: str, shape):
    from dlcv_keras.models import get_builder

    kwargs = {"mlp": {"depth": 1, "units": 256}}.get(name, {})
    return get_builder(name)(shape, 10, **kwargs)


def time_ours(name: str, x, y, batch: int, repeats: int = 1) -> float:
    """Seconds for one epoch through the path the questions use: the best of ``repeats`` epochs,
    after a warm-up that compiles."""
    from dlcv_keras.models import compile_model
    from dlcv_keras.training.fit import STEPS_PER_EXECUTION, fit_and_log

    model = compile_model(build(name, x.shape[1:]), lr=0.01, steps_per_execution=STEPS_PER_EXECUTION)
    warm = min(len(x), batch * STEPS_PER_EXECUTION * 2)
    fit_and_log(model, x[:warm], y[:warm], x[:batch], y[:batch], batch_size=batch, epochs=1)
    return min(fit_and_log(model, x, y, x[:batch], y[:batch], batch_size=batch, epochs=1).seconds
               for _ in range(repeats))


def time_plain(name: str, x, y, batch: int, repeats: int = 1) -> float:
    """Seconds for one epoch of ``model.fit`` with Keras's default compile (best of ``repeats``)."""
    import keras

    model = build(name, x.shape[1:])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    warm = min(len(x), batch * 4)
    model.fit(x[:warm], y[:warm], batch_size=batch, epochs=1, verbose=0, validation_data=(x[:batch], y[:batch]))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, validation_data=(x[:batch], y[:batch]))
        best = min(best, time.perf_counter() - started)
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
    for _ in range(3):
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
    (sampled at each trial's end; run it before the big workloads, whose peak would hide it)."""
    import keras_tuner

    from dlcv_keras.tuning.hypermodel import ClassifierHyperModel
    from dlcv_keras.tuning.search import make_tuner

    x, y = synthetic((28, 28, 1), 128)
    hp = keras_tuner.HyperParameters()
    hp.Choice("lr", [round(0.001 * (i + 1), 6) for i in range(trials)])
    for name, value in {"depth": 1, "units": 32, "activation": "relu", "l2": 0.0, "batch_size": 32, "epochs": 1}.items():
        hp.Fixed(name, value)
    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        tuner = make_tuner("grid", ClassifierHyperModel("mlp", (28, 28, 1), 10), hp, directory=Path(folder),
                           project_name="bench", total=trials, seed=0, label="bench", num_classes=10,
                           echo=lambda *a, **k: None)
        finished = tuner.on_trial_end

        def on_trial_end(trial):
            finished(trial)
            peaks[len(peaks) + 1] = max([resident_mb(), *peaks.values()])

        tuner.on_trial_end = on_trial_end
        started = time.perf_counter()
        tuner.search(x[:96], y[:96], validation_data=(x[96:], y[96:]), verbose=0)
        wall = time.perf_counter() - started
        training = sum(record.get("seconds") or 0.0 for record in tuner.records())
    return {"trials": trials, "wall_seconds": round(wall, 2), "training_seconds": round(training, 2),
            "overhead_per_trial_s": round((wall - training) / trials, 3),
            "peak_rss_mb_after_3": round(peaks.get(3, float("nan")), 1),
            "peak_rss_mb_after_last": round(peaks.get(trials, float("nan")), 1)}


def run(quick: bool, echo=print) -> dict:
    import keras

    results: dict = {"backend": keras.backend.backend(), "quick": quick, "workloads": {}}
    search = search_costs()       # first: the workloads below would raise the memory baseline
    for name, (shape, batch, sizes, repeats) in WORKLOADS.items():
        samples = sizes[1] if quick else sizes[0]
        x, y = synthetic(shape, samples)
        ours, plain = time_ours(name, x, y, batch, repeats), time_plain(name, x, y, batch, repeats)
        row = {"batch_size": batch, "samples": samples, "ours_samples_per_s": round(samples / ours, 1),
               "plain_samples_per_s": round(samples / plain, 1), "speedup_vs_plain": round(plain / ours, 2)}
        if name == "mlp":
            bound = matmul_bound(samples, batch)
            row["matmul_bound_samples_per_s"] = round(samples / bound, 1)
            row["ours_vs_bound"] = round(ours / bound, 2)          # target: <= 1.5
            row["epoch_60k_seconds"] = {"ours": round(ours * 60_000 / samples, 2),
                                        "plain": round(plain * 60_000 / samples, 2),
                                        "matmul_bound": round(bound * 60_000 / samples, 2)}
        results["workloads"][name] = row
        echo(f"{name:<9} batch {batch:<4} ours {row['ours_samples_per_s']:>10.0f} samples/s   plain Keras "
             f"{row['plain_samples_per_s']:>10.0f} samples/s   x{row['speedup_vs_plain']:.2f}"
             + (f"   matmul bound {row['matmul_bound_samples_per_s']:.0f} samples/s (ours at "
                f"{row['ours_vs_bound']:.2f}x the bound)" if name == "mlp" else ""))
    results["search"] = search
    search["peak_rss_growth"] = round(search["peak_rss_mb_after_last"] / search["peak_rss_mb_after_3"] - 1, 3)
    echo(f"search    {search['trials']} trials: {search['overhead_per_trial_s']:.3f} s per trial outside training; "
         f"peak memory {search['peak_rss_mb_after_3']:.0f} MB after 3 trials, "
         f"{search['peak_rss_mb_after_last']:.0f} MB after {search['trials']} ({100 * search['peak_rss_growth']:+.1f} %)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlcv_keras.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples per workload (a couple of minutes)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        print(f"error: --json must be a path in an existing folder, got {str(args.json)!r}", file=sys.stderr)
        return 2
    from dlcv_keras.pipeline import import_tensorflow_quietly

    import_tensorflow_quietly()
    results = run(args.quick)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
