"""The toy-training kind (q6): train the exercise's two-layer net on its toy data to a target loss."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dlcv_keras.experiments.base import Experiment, pick, table_values
from dlcv_keras.report.format import (DASH, as_number, fmt, fmt_sig, histories_by_trial, is_finite, pct, require,
                                      settings_rows)


@dataclass(frozen=True)
class ToyTraining(Experiment):
    KIND: ClassVar[str] = "toy_training"
    VIEWS: ClassVar[tuple[str, ...]] = ("toy_training",)
    SETTINGS: ClassVar = pick("lr", "iterations", "batch_size", "lr_decay", "l2")
    REQUIRED: ClassVar[tuple[str, ...]] = ("lr", "iterations", "batch_size")

    def run(self, runner) -> None:
        toy_training(runner, self)


def toy_training(runner, experiment: ToyTraining) -> None:
    from dlcv_keras.scratch import two_layer

    values = table_values(runner, experiment)
    started = time.perf_counter()
    net = two_layer.init_toy_model()       # --seed only changes the minibatch draws
    x, y = two_layer.init_toy_data()
    lr_decay, reg = values.get("lr_decay", 0.95), values.get("l2", 5e-6)
    stats = net.train(x, y, x, y, learning_rate=values["lr"], learning_rate_decay=lr_decay,
                      reg=reg, num_iters=values["iterations"], batch_size=values["batch_size"],
                      seed=runner.settings.seed)
    losses = [float(v) for v in stats["loss_history"]]
    target = 0.02
    summary = {
        "kind": "toy_training", "title": experiment.title, "lr": values["lr"], "reg": reg,
        "lr_decay": lr_decay, "iterations": values["iterations"],
        "batch_size": values["batch_size"], "final_loss": losses[-1], "target_loss": target,
        "reached_target": losses[-1] < target, "train_accuracy": float(np.mean(net.predict(x) == y)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    history = [{"trial_id": "toy", "epoch": i, "loss": v} for i, v in enumerate(losses, start=1)]
    runner.store.write_experiment(experiment.name, summary=summary, history=history)
    runner.echo(f"[{experiment.name}] final training loss {losses[-1]:.4f} after {len(losses)} iterations "
                f"({'below' if losses[-1] < target else 'NOT below'} the {target} target)")


# -- report view ------------------------------------------------------------------------------
def _yes_no(value: Any) -> str:
    return DASH if value is None else ("yes" if value else "no")


def _toy_training(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    history = require(experiment, "history", store, section["experiment"], "history.csv", section["title"])
    rows = next(iter(histories_by_trial(history).values()), [])
    target = as_number(summary.get("target_loss"))
    final = as_number(summary.get("final_loss", rows[-1].get("loss") if rows else None))
    reached = summary.get("reached_target")
    if reached is None and is_finite(final) and is_finite(target):
        reached = final <= target
    seed_final = as_number(reference.get("final_loss"))
    seed_reached = reference.get("reached_target")
    if seed_reached is None and is_finite(seed_final) and is_finite(target):
        seed_reached = seed_final <= target
    return {
        "settings": settings_rows(summary, {"lr": "lr", "lr_decay": "lr decay", "reg": "reg", "iterations": "iterations",
                                        "batch_size": "batch size", "seconds": "time"}),
        "target": fmt(target),
        "figure": figures.data_uri(figures.loss_vs_iteration(rows, target=target)) if rows else None,
        "comparison": [
            {"metric": "final loss", "ours": fmt_sig(final, 4), "seed": fmt_sig(seed_final, 4)},
            {"metric": f"reached the target loss {fmt(target)}", "ours": _yes_no(reached), "seed": _yes_no(seed_reached)},
            {"metric": "train accuracy (%)", "ours": pct(as_number(summary.get("train_accuracy"))),
             "seed": pct(as_number(reference.get("train_accuracy")))},
            {"metric": "iterations", "ours": fmt(summary.get("iterations")), "seed": fmt(reference.get("iterations"))},
        ],
        "observations": _observations(rows, final, target, seed_final, summary.get("train_accuracy")),
    }


def _observations(rows, final, target, seed_final, accuracy) -> list[str]:
    """When the loss first fell below the target, where it ended, and the seed's final loss beside it."""
    if not (is_finite(final) and is_finite(target)):
        return []
    first = next((row.get("epoch") for row in rows if is_finite(row.get("loss")) and row["loss"] < target), None)
    ended = f"ended at {fmt_sig(final, 4)} after {len(rows) or DASH} iterations"
    if first is None:
        sentence = f"The training loss never fell below the {fmt(target)} target: it {ended}."
    elif final < target:
        sentence = f"The training loss first fell below the {fmt(target)} target at iteration {fmt(first)} and {ended}."
    else:
        sentence = (f"The training loss first fell below the {fmt(target)} target at iteration {fmt(first)}, but "
                    f"{ended}, above it again.")
    if is_finite(as_number(accuracy)):
        sentence = sentence[:-1] + f", with {pct(as_number(accuracy))} % training accuracy."
    sentences = [sentence]
    if is_finite(seed_final):
        side = "below" if seed_final < target else "not below"
        sentences.append(f"The seed's final loss was {fmt_sig(seed_final, 4)}, {side} the target; ours is "
                         f"{abs(final - seed_final):.2g} {'lower' if final < seed_final else 'higher'}.")
    return sentences


VIEWS = {"toy_training": _toy_training}
REQUIRED_FILES = {"toy_training": ("history.csv",)}
