"""The conv-regression kind (q5): a student conv layer learns a fixed conv layer's output under an
L2 loss. Run A shows the loss exploding to inf and NaN; run B (``compare_batch_sizes``) clips the
gradients and runs once per ``batch_size`` listed in the profile table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from dlcv_keras.experiments.base import Experiment, already_done, experiment_fingerprint, pick, table_values
from dlcv_keras.report.format import (DASH, as_number, diverged_rows, fixed_decimals, fmt, fmt_seconds, fmt_sig,
                                      histories_by_trial, is_diverged, is_finite, reference_match, require,
                                      settings_rows, trial_key, without_constant_columns)


@dataclass(frozen=True)
class ConvRegression(Experiment):
    compare_batch_sizes: bool = False

    KIND: ClassVar[str] = "conv_regression"
    VIEWS: ClassVar[tuple[str, ...]] = ("conv_l2_batches", "conv_l2_divergence")
    SETTINGS: ClassVar = pick("lr", "epochs", "batch_size", "images", "kernel_size", "filters", "pixel_scale",
                              "reduction", "l2", "clip")
    REQUIRED: ClassVar[tuple[str, ...]] = ("lr", "epochs", "batch_size")

    def listable(self) -> tuple[str, ...]:
        return ("batch_size",) if self.compare_batch_sizes else ()

    def run(self, runner) -> None:
        conv_regression(runner, self)


def conv_regression(runner, experiment: ConvRegression) -> None:
    from dlcv_keras.scratch import conv

    values = table_values(runner, experiment)
    batch_sizes = values["batch_size"] if isinstance(values["batch_size"], list) else [values["batch_size"]]
    compare = experiment.compare_batch_sizes
    fingerprint = experiment_fingerprint(runner, experiment, values)
    if already_done(runner, experiment, fingerprint):
        return
    pixel_scale = values.get("pixel_scale", 255.0)
    x = runner.data.x_train[:values.get("images", 100)].astype(np.float64) * pixel_scale
    size, filters = values.get("kernel_size", 5), values.get("filters", 5)
    # The fixed model the student must reproduce: a conv layer of the same shape, weights
    # also uniform in [-1, 1], from another seed than the student's.
    target_rng = np.random.default_rng(runner.settings.seed + 1)
    target_w = target_rng.uniform(-1, 1, size=(size, size, x.shape[-1], filters))
    target_b = target_rng.uniform(-1, 1, size=filters)
    settings = dict(lr=values["lr"], epochs=values["epochs"], l2=values.get("l2", 1e-3), clip=values.get("clip"),
                    reduction=values.get("reduction", "mean"))
    runner.echo(f"[{experiment.name}] student conv {size}x{size}x{x.shape[-1]}->{filters} on {len(x)} images "
                f"(pixels x{pixel_scale:g}), lr {settings['lr']:g}, clip {settings['clip']}, "
                f"batch size {', '.join(map(str, batch_sizes))}")
    trials, history, outcomes = [], [], {}
    for batch_size in batch_sizes:
        label = f"batch_{batch_size}" if compare else "A"

        shown = {"last": None}

        def on_epoch(row, label=label, shown=shown):
            # The first epoch, every 10th, and each change of kind (finite -> inf -> nan).
            kind = "nan" if np.isnan(row["loss"]) else "inf" if np.isinf(row["loss"]) else "finite"
            if row["epoch"] == 1 or row["epoch"] % 10 == 0 or kind != shown["last"]:
                shown["last"] = kind
                runner.echo(f"[{experiment.name}] {label} epoch {row['epoch']}: loss {row['loss']:.4g}, "
                            f"L2 norm {row['l2_norm']:.4g}")

        result = conv.conv_regression(x, target_w, target_b, batch_size=batch_size, seed=runner.settings.seed,
                                      on_epoch=on_epoch, **settings)
        outcomes[batch_size] = result
        last = result["history"][-1]
        trials.append({"trial_id": label, "status": result["status"], "batch_size": batch_size,
                       "epochs_run": len(result["history"]), "loss": last["loss"],
                       "initial_l2_norm": result["initial_l2_norm"], "l2_norm": result["final_l2_norm"],
                       "seconds": round(sum(r["seconds"] for r in result["history"]), 3),
                       "stop_reason": result["stop_reason"]})
        history.extend({"trial_id": label, **row} for row in result["history"])
        runner.echo(f"[{experiment.name}] {label}: {result['status']} ({result['stop_reason']}), "
                    f"final L2 norm {result['final_l2_norm']:.6g}")
    common = {"title": experiment.title, "lr": settings["lr"], "epochs": settings["epochs"], "l2": settings["l2"],
              "clip": settings["clip"], "images": len(x), "kernel_size": size, "filters": filters,
              "pixel_scale": pixel_scale, "reduction": settings["reduction"],
              "fingerprint": fingerprint,
              "seconds": round(sum(t["seconds"] for t in trials), 3)}
    if not compare:
        result = outcomes[batch_sizes[0]]
        summary = {"kind": "conv_regression", **common, "batch_size": batch_sizes[0], "status": result["status"],
                   "stop_reason": result["stop_reason"], "first_inf_epoch": result["first_inf_epoch"],
                   "first_nan_epoch": result["first_nan_epoch"], "epochs_run": len(result["history"]),
                   "initial_l2_norm": result["initial_l2_norm"], "final_l2_norm": result["final_l2_norm"]}
        runner.store.write_experiment(experiment.name, summary=summary, history=history)
    else:
        summary = {"kind": "conv_regression", **common, "batch_sizes": batch_sizes,
                   "final_l2_norm": {str(b): outcomes[b]["final_l2_norm"] for b in batch_sizes}}
        runner.store.write_experiment(experiment.name, summary=summary, trials=trials, history=history)


# -- report views ------------------------------------------------------------------------------
LOG_LINES = 40  # a longer loss log shows its first and last lines


def _first_epoch(rows: Sequence[Mapping[str, Any]], test: Callable[[float], bool]) -> Any:
    for row in rows:
        loss = row.get("loss")
        if isinstance(loss, float) and test(loss):
            return row.get("epoch")
    return None


def _seed_loss(value: Any) -> str:
    """A loss the way the seed printed it: 1.41e+30, inf, nan."""
    value = as_number(value)
    if is_finite(value):
        return f"{value:.3g}"
    return DASH if value is None or value == "" else str(value)


def _conv_l2_divergence(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    history = require(experiment, "history", store, section["experiment"], "history.csv", section["title"])
    by_trial = histories_by_trial(history)
    rows = next(iter(by_trial.values()), [])
    derived = {"first_inf_epoch": _first_epoch(rows, math.isinf), "first_nan_epoch": _first_epoch(rows, math.isnan)}
    ours = {key: summary[key] if key in summary else value for key, value in derived.items()}
    log = [f"epoch = {fmt(row.get('epoch'))}, loss = {_seed_loss(row.get('loss'))}" for row in rows]
    if len(log) > LOG_LINES:
        head, tail = LOG_LINES * 2 // 3, LOG_LINES // 4
        log = log[:head] + [f"... ({len(log) - head - tail} epochs not shown)"] + log[-tail:]
    first_loss = rows[0].get("loss") if rows else None

    def epoch(value: Any) -> str:
        return "none" if value is None else fmt(value)

    comparison = [
        {"metric": "loss after the first epoch", "ours": _seed_loss(first_loss), "seed": _seed_loss(reference.get("first_loss"))},
        {"metric": "first epoch with loss = inf", "ours": epoch(ours["first_inf_epoch"]),
         "seed": fmt(reference.get("first_inf_epoch"))},
        {"metric": "first epoch with loss = nan", "ours": epoch(ours["first_nan_epoch"]),
         "seed": fmt(reference.get("first_nan_epoch"))},
        {"metric": "epochs run", "ours": fmt(summary.get("epochs_run", len(rows) or None)), "seed": fmt(reference.get("epochs_run"))},
        {"metric": "final L2 norm between the outputs", "ours": _seed_loss(summary.get("final_l2_norm")),
         "seed": _seed_loss(reference.get("final_l2_norm"))},
        {"metric": "status", "ours": fmt(summary.get("status")), "seed": fmt(reference.get("status"))},
        {"metric": "stop reason", "ours": fmt(summary.get("stop_reason")), "seed": fmt(reference.get("stop_reason"))},
    ]
    return {
        "settings": settings_rows(summary, {"lr": "lr", "batch_size": "batch size", "epochs": "epochs", "l2": "l2",
                                        "clip": "gradient clipping", "images": "images", "kernel_size": "kernel size",
                                        "filters": "filters", "pixel_scale": "pixel scale", "seconds": "time"}),
        "log": log,
        "figure": figures.data_uri(figures.divergence_plot(rows, first_inf=ours["first_inf_epoch"],
                                                           first_nan=ours["first_nan_epoch"])) if rows else None,
        "comparison": comparison,
        "reference_note": str(reference.get("note") or ""),
        "observations": _divergence_observations(ours, first_loss, summary.get("epochs_run", len(rows) or None),
                                                 reference),
    }


def _divergence_observations(ours: Mapping[str, Any], first_loss: Any, epochs_run: Any,
                             reference: Mapping[str, Any]) -> list[str]:
    """When our loss became inf and NaN against the seed's epochs (both counted from 1), and how far
    apart the losses after the first epoch are."""
    parts, compared = [], False
    for key, word in (("first_inf_epoch", "inf"), ("first_nan_epoch", "NaN")):
        value, theirs = as_number(ours.get(key)), as_number(reference.get(key))
        compared = compared or is_finite(theirs)
        seed_words = f"the seed's (epoch {fmt(theirs)})"
        if is_finite(value):
            part = f"{word} from epoch {fmt(value)}"
            if is_finite(theirs):
                later = value - theirs
                part += (f", as {seed_words}" if not later else
                         f", {abs(later):g} epoch{'s' if abs(later) != 1 else ''} "
                         f"{'after' if later > 0 else 'before'} {seed_words}")
            parts.append(part)
        elif is_finite(theirs):
            parts.append(f"never {word} in {fmt(epochs_run)} epochs, where the seed's was from epoch {fmt(theirs)}")
    sentences = []
    if parts:
        blew = any(is_finite(as_number(ours.get(key))) for key in ("first_inf_epoch", "first_nan_epoch"))
        sentences.append(("The loss blew up: " if blew else "The loss stayed finite: ") + "; ".join(parts)
                         + ("; epochs counted from 1 in both." if compared else "."))
    else:
        sentences.append(f"The loss stayed finite for all {fmt(epochs_run)} epochs.")
    ours_first, seed_first = as_number(first_loss), as_number(reference.get("first_loss"))
    if is_finite(ours_first) and is_finite(seed_first) and seed_first > 0 and ours_first > 0:
        ratio = ours_first / seed_first
        sentences.append(f"After the first epoch our loss was {_seed_loss(ours_first)}, "
                         + (f"{ratio:.3g} times the seed's {_seed_loss(seed_first)}." if ratio >= 1 else
                            f"{1 / ratio:.3g} times smaller than the seed's {_seed_loss(seed_first)}."))
    return sentences


def _conv_l2_batches(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    name, title = section["experiment"], section["title"]
    trials = require(experiment, "trials", store, name, "trials.csv", title)
    by_trial = histories_by_trial(require(experiment, "history", store, name, "history.csv", title))
    trials = sorted(trials, key=lambda r: r.get("batch_size") if is_finite(r.get("batch_size")) else math.inf)
    final_l2 = summary.get("final_l2_norm") or {}
    reference_rows = reference.get("rows") or []
    table, ours_points, curves = [], [], {}
    for row in trials:
        size = row.get("batch_size")
        l2_norm = as_number(row.get("l2_norm"))
        if l2_norm is None and isinstance(final_l2, Mapping):
            l2_norm = as_number(final_l2.get(fmt(size)))
        ref = reference_match(row, reference_rows, ["batch_size"])
        table.append({"cells": [fmt(size), fmt(row.get("status")), fixed_decimals(l2_norm),
                                fixed_decimals(as_number(ref.get("l2_norm"))) if ref else DASH,
                                fmt_sig(row.get("loss"), 6), fmt(row.get("epochs_run")), fmt_seconds(row.get("seconds"))],
                      "diverged": is_diverged(row)})
        if not is_diverged(row):
            ours_points.append((size, l2_norm))
            if by_trial.get(trial_key(row)):
                curves[f"batch size {fmt(size)}"] = by_trial[trial_key(row)]
    seed_points = [(as_number(r.get("batch_size")), as_number(r.get("l2_norm"))) for r in reference_rows]
    panels = [("loss", "loss"), ("l2_norm", "L2 norm between the outputs")]
    return {
        "settings": settings_rows(summary, {"lr": "lr", "epochs": "epochs", "l2": "l2", "clip": "gradient clipping",
                                        "images": "images", "seconds": "time"}),
        "curves": figures.data_uri(figures.per_epoch_lines(curves, panels)) if curves else None,
        "plot": figures.data_uri(figures.value_vs_batch_size(ours_points, seed_points)) if ours_points else None,
        # A column every batch size shares ("completed", the epochs) is said once above the table.
        "table": without_constant_columns({"headers": ["batch size", "status", "our final L2 norm", "seed L2 norm",
                                                       "final loss", "epochs", "seconds"], "rows": table},
                                          noun="batch size"),
        "diverged": diverged_rows(trials, ["batch_size"]),
        "observations": _batch_observations(ours_points, seed_points,
                                            [row["cells"][0] for row in table if row["diverged"]]),
    }


def _batch_observations(ours: Sequence[tuple[Any, Any]], seed: Sequence[tuple[Any, Any]],
                        diverged: Sequence[str]) -> list[str]:
    """The final L2 norms ordered over batch sizes (smallest, the closest fit, first) against the seed's
    order, and the largest over the smallest, ours and the seed's."""
    def ordered(pairs):
        return sorted(((size, norm) for size, norm in pairs if is_finite(size) and is_finite(norm)), key=lambda p: p[1])

    ours, seed = ordered(ours), ordered(seed)
    sentences = []
    if diverged:
        sentences.append(f"Batch size {', '.join(diverged)} diverged: left out of the order below.")
    if len(ours) >= 2:
        sentences.append("Final L2 norm, smallest (the closest fit) first: "
                         + ", ".join(f"batch size {fmt(size)}: {fixed_decimals(norm)}" for size, norm in ours) + ".")
        trend, seed_trend = _batch_trend(ours), _batch_trend(seed) if len(seed) >= 2 else None
        # One trained run per batch size: an order of this run's numbers, not a trend measured over seeds.
        said = f"In this run (one seed per batch size), our final L2 norm {trend}"
        if seed_trend is not None:
            said += (f", as the seed's does ({_by_batch_size(seed)})" if seed_trend == trend else
                     f"; the seed's {seed_trend} ({_by_batch_size(seed)})")
        sentences.append(f"{said}.")
        if ours[0][1] > 0:
            ratio = f"The largest final L2 norm is {ours[-1][1] / ours[0][1]:.2f} times the smallest"
            if len(seed) >= 2 and seed[0][1] > 0:
                ratio += f" (the seed's: {seed[-1][1] / seed[0][1]:.2f} times)"
            sentences.append(ratio + ".")
    return sentences


def _by_batch_size(pairs: Sequence[tuple[Any, Any]]) -> str:
    return ", ".join(f"batch size {fmt(size)}: {fixed_decimals(norm)}" for size, norm in sorted(pairs))


def _batch_trend(pairs: Sequence[tuple[Any, Any]]) -> str:
    """How the final L2 norm moves as the batch size grows: every step up, every step down, or neither.
    (One run per batch size, no noise to weigh: the numbers as they are.)"""
    norms = [norm for _, norm in sorted(pairs)]
    steps = [b - a for a, b in zip(norms, norms[1:])]
    if all(step > 0 for step in steps):
        return "rises with the batch size"
    if all(step < 0 for step in steps):
        return "falls as the batch size grows"
    return "does not move one way with the batch size"


VIEWS = {"conv_l2_batches": _conv_l2_batches, "conv_l2_divergence": _conv_l2_divergence}
REQUIRED_FILES = {"conv_l2_divergence": ("history.csv",), "conv_l2_batches": ("trials.csv", "history.csv")}
