"""Report views of a search over depth or initialisation, with what its instruments measured.

A ``Search`` declared with ``instruments`` stores layer_stats.csv: per trial, epoch (0 = at
initialisation) and kernel layer (``index`` 1 = nearest the input), the numbers
``training.instruments.LayerProbe`` measured. These views read it beside trials.csv and
history.csv:

- ``depth_study`` (q7, q13): final loss and accuracy against depth, one line per setting of the
  other varied values; how validation accuracy moves with depth and which trained settings stayed
  at chance (observations); and, when gradients and weights
  were measured, each layer's mean |gradient| and |weight| over training, per depth, with the
  first layer's gradient relative to the output layer's, the number that shows gradients vanish.
- ``init_study`` (q15): curves per initialiser; each layer's activation mean and spread at
  initialisation against depth; which setting won and whether the units of a layer stayed
  identical (symmetry), as observations.

Every sentence is computed from the stored numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Mapping, Sequence

from dlcv_keras.experiments.search import REPEAT, _on_test, _search_common, _search_meta, _seeds, _setting_means
from dlcv_keras.lessons import Predictions
from dlcv_keras.report.format import (DASH, fmt, fmt_sci, histories_by_trial, id_width, is_finite, is_trained, pct,
                                      reference_table, require, trial_key, trial_table, varying_columns)
from dlcv_keras.report.observe import at_chance, best_of, chance_test, noise, split_size, trend
from dlcv_keras.validation import InvalidParameterError

IDENTICAL = 1e-9     # a unit spread below this is identical units (zero initialisation gives exactly 0)


def _group_label(row: Mapping[str, Any], groups: Sequence[str]) -> str:
    return ", ".join(f"{g}={fmt(row.get(g))}" for g in groups) or "every trial"


def _values_label(row: Mapping[str, Any], groups: Sequence[str]) -> str:
    """The shorter label, for legends and column heads captioned with the names: "tanh, he_normal"."""
    return ", ".join(fmt(row.get(g)) for g in groups) or "every trial"


def _layer_rows(experiment: Mapping[str, Any], store, section) -> dict[str, list[dict]]:
    """layer_stats.csv by trial; a search whose summary lists instruments must have it."""
    rows = experiment.get("layer_stats") or []
    if experiment["summary"].get("instruments"):
        rows = require(experiment, "layer_stats", store, section["experiment"], "layer_stats.csv", section["title"])
    found: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        found[str(row.get("trial_id"))].append(row)
    return found


def _series(rows: Sequence[Mapping[str, Any]], key: str) -> dict[int, list[tuple[float, float]]]:
    """{layer index: [(epoch, value), ...]} for one trial's layer rows."""
    found: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if is_finite(row.get(key)):
            found[int(row["index"])].append((row["epoch"], row[key]))
    return {index: sorted(points) for index, points in found.items()}


def _at(rows: Sequence[Mapping[str, Any]], epoch: int, index: int, key: str) -> Any:
    for row in rows:
        if row.get("epoch") == epoch and row.get("index") == index:
            return row.get(key)
    return None


def _num_classes(run: Mapping[str, Any] | None) -> int | None:
    names = ((run or {}).get("dataset") or {}).get("class_names")
    return len(names) if names else None


# -- depth ------------------------------------------------------------------------------------
def _depth_study(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary, trials, columns = _search_common(store, section, experiment)
    if "depth" not in columns:
        raise InvalidParameterError(f"{store.experiment_dir(section['experiment']) / 'trials.csv'} has no depth "
                                    f"column (a depth study varies depth), got columns {columns!r}")
    varying = varying_columns(trials, columns)
    # Seeds of one setting (a repeat grid) are one line: its mean per depth, its first seed's layer probe.
    groups = [c for c in varying if c not in ("depth", REPEAT)]
    ok = sorted((r for r in trials if is_trained(r)), key=lambda r: (_group_label(r, groups), r["depth"]))
    lines: dict[str, list] = {}
    for row in ok:
        lines.setdefault(_group_label(row, groups), []).append(row)
    lines = {label: _depth_means(members) for label, members in lines.items()}
    first_seed = min((r.get(REPEAT) or 0 for r in ok), default=0)
    reference_rows = reference.get("rows") or []
    by_trial = _layer_rows(experiment, store, section)
    chance = _at_chance(ok, groups, run)
    val_noise = noise(run, "val", [r.get("val_accuracy") for r in ok])
    stuck = (" " + "; ".join(chance["stuck"]) + ".") if chance["stuck"] else ""
    # Which settings stayed at chance is said first: a trend that ends at chance says so by its numbers.
    observations = [chance["words"] + stuck]
    observations += [trend([(r["depth"], r.get("val_accuracy")) for r in members], "depth", val_noise,
                           "validation accuracy" + _seeds(members[0]) + (f" ({label})" if groups else ""))
                     for label, members in lines.items()]
    observations += [_seed_at_chance(reference_rows, ok, _num_classes(run)),
                     _why(ok, chance["stuck_rows"], groups, by_trial)]
    return {
        "meta": _search_meta(summary, trials),
        "figure": figures.data_uri(figures.depth_study(lines)) if lines else None,
        "table": trial_table(trials, varying or columns, reference_rows, id_width(summary), match_columns=columns),
        "reference": reference_table(reference_rows) if reference_rows else None,
        "note": str(reference.get("note") or ""),
        "observations": [sentence for sentence in observations if sentence],
        **_gradient_views(by_trial, [r for r in ok if (r.get(REPEAT) or 0) == first_seed], groups, figures),
    }


def _depth_means(members: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per depth: the first seed's, with the accuracies and losses averaged over the depth's seeds
    and their number in "seeds" (a row of one seed as it is)."""
    by_depth: dict[Any, list[Mapping[str, Any]]] = {}
    for row in members:
        by_depth.setdefault(row["depth"], []).append(row)
    means = []
    for rows in by_depth.values():
        mean = dict(rows[0], seeds=len(rows))
        for key in ("accuracy", "val_accuracy", "loss", "val_loss", "test_accuracy"):
            values = [float(r[key]) for r in rows if is_finite(r.get(key))]
            if values:
                mean[key] = sum(values) / len(values)
        means.append(mean)
    return means


def _at_chance(rows: Sequence[Mapping[str, Any]], groups: Sequence[str], run: Mapping[str, Any] | None) -> dict[str, Any]:
    """Which trained settings ended no better than guessing: validation accuracy not above 1 / classes by
    the exact binomial test (observe.chance_test). A network that learns nothing predicts one class at
    loss ln(classes)."""
    classes = _num_classes(run)
    tests = {trial_key(r): chance_test(run, "val", r.get("val_accuracy")) for r in rows}
    if not classes or not rows or any(test is None for test in tests.values()):
        return {"stuck": [], "stuck_rows": [], "words": ""}
    stuck = [r for r in rows if not tests[trial_key(r)].above_chance()]
    listed = [f"{_group_label(r, groups)}, depth {r['depth']}: val {pct(r['val_accuracy'])} %, train "
              f"{pct(r.get('accuracy'))} %, loss {r['loss']:.3f}" if is_finite(r.get("loss")) else
              f"{_group_label(r, groups)}, depth {r['depth']}: val {pct(r['val_accuracy'])} %" for r in stuck]
    n = split_size(run, "val")
    if stuck:
        words = (f"{len(stuck)} of {len(rows)} trained settings stayed at chance (validation accuracy not above "
                 f"{100 / classes:.0f} % by the exact binomial test on {n:,} images; an untrained loss is "
                 f"ln {classes} = {math.log(classes):.3f}).")
    else:
        best_deepest = max(rows, key=lambda r: (r["depth"], r.get("accuracy") or 0))
        words = (f"No trained setting stayed at chance (each validation accuracy is above {100 / classes:.0f} % by the "
                 f"exact binomial test on {n:,} images): the deepest, {_group_label(best_deepest, groups)}, depth "
                 f"{best_deepest['depth']}, reached {pct(best_deepest.get('accuracy'))} % train and "
                 f"{pct(best_deepest.get('val_accuracy'))} % val.")
    return {"stuck": listed, "stuck_rows": stuck, "words": words}


def _seed_at_chance(reference_rows, rows, classes: int | None) -> str:
    """The seed's settings that fell to chance beside what ours did at the same depths."""
    if not classes:
        return ""
    bound = 1.5 / classes
    fell = [r for r in reference_rows if is_finite(r.get("val_accuracy")) and r["val_accuracy"] < bound]
    if not fell:
        return ""
    depths = sorted({r["depth"] for r in fell if isinstance(r.get("depth"), int)})
    ours = [r for r in rows if r.get("depth") in depths]
    seed_words = ", ".join(f"depth {r['depth']} ({fmt(r.get('units'))} units) {pct(r['val_accuracy'])} %" for r in fell)
    if not ours:
        return f"The seed's nets fell to chance at {seed_words} validation accuracy; we did not train those depths."
    ours_stuck = [r for r in ours if is_finite(r.get("accuracy")) and r["accuracy"] < bound]
    lowest = min(ours, key=lambda r: r.get("val_accuracy") or 0)
    if ours_stuck:
        return (f"The seed's nets fell to chance at {seed_words} validation accuracy; so did {len(ours_stuck)} of "
                f"our {len(ours)} settings at those depths.")
    return (f"The seed's nets fell to chance at {seed_words} validation accuracy; ours did not: at those depths our "
            f"lowest validation accuracy was {pct(lowest.get('val_accuracy'))} % (depth {lowest['depth']}).")


def _first_over_output(layers: Sequence[Mapping[str, Any]], epoch: int) -> float | None:
    """The first layer's mean |gradient| over the output layer's at ``epoch``."""
    output = max((row["index"] for row in layers), default=0)
    first, out = _at(layers, epoch, 1, "grad_mean_abs"), _at(layers, epoch, output, "grad_mean_abs")
    return first / out if is_finite(first) and is_finite(out) and out > 0 else None


def _why(rows, stuck, groups, by_trial) -> str:
    """Whether the gradients measured explain who stayed at chance: the first layer's share of the
    output layer's mean |gradient| after training, in the settings at chance and in the others. A
    setting whose output layer got no gradient at all is said first."""
    def last(row):
        layers = by_trial.get(trial_key(row), [])
        return layers, max((r["epoch"] for r in layers), default=0)

    def output_gradient(row):
        layers, epoch = last(row)
        return _at(layers, epoch, max((r["index"] for r in layers), default=0), "grad_mean_abs")

    def named(item):
        row, value = item
        return f"{fmt_sci(value, 1)} ({_group_label(row, groups)}, depth {row['depth']})"

    def span(items):
        return named(items[0]) if len(items) == 1 else f"from {named(items[0])} to {named(items[-1])}"

    words = []
    silent = [r for r in rows if by_trial.get(trial_key(r)) and output_gradient(r) == 0]
    if silent:
        words.append(f"No gradient reached any layer in {len(silent)} setting{'s' if len(silent) > 1 else ''} "
                     f"(the output layer's mean |gradient| after training was 0): "
                     + "; ".join(f"{_group_label(r, groups)}, depth {r['depth']}" for r in silent) + ".")
    measured = [(r, _first_over_output(*last(r))) for r in rows if r not in silent and by_trial.get(trial_key(r))]
    measured = [(r, v) for r, v in measured if v is not None]
    stuck_ids = {trial_key(r) for r in stuck}
    at_chance = sorted(((r, v) for r, v in measured if trial_key(r) in stuck_ids), key=lambda item: item[1])
    learning = sorted(((r, v) for r, v in measured if trial_key(r) not in stuck_ids), key=lambda item: item[1])
    share = "the first layer's share of the output layer's mean |gradient| after training"
    every = "every other setting" if silent else "every setting"
    if learning and not at_chance:
        words.append(f"Gradients reached the input in {every}: {share} was at least {named(learning[0])}.")
    elif at_chance and not learning:
        words.append(f"In {every} {share} was at most {named(at_chance[-1])}.")
    elif at_chance and at_chance[-1][1] < learning[0][1]:
        words.append(f"The settings at chance are exactly those whose first layer received the least gradient: "
                     f"{share} was at most {named(at_chance[-1])} there, against at least {named(learning[0])} "
                     f"where the network learned. The gradient vanished before it reached the layers near the input.")
    elif at_chance:
        below = sum(v < learning[0][1] for _, v in at_chance)
        words.append(f"The gradient alone does not separate them: {share} was {span(at_chance)} in the settings at "
                     f"chance, and {span(learning)} in those that learned"
                     + (f"; all {below} settings with a share below {fmt_sci(learning[0][1], 1)} stayed at chance."
                        if below else "."))
    return " ".join(words)


def _gradient_views(by_trial, rows, groups, figures) -> dict[str, Any]:
    """Per group, small multiples of each layer's mean |gradient| and |weight| over training, one
    panel per depth; the first layer's gradient over the output layer's against depth; their table."""
    measured = [r for r in rows if by_trial.get(trial_key(r))]
    if not measured:
        return {"layer_groups": [], "ratio_figure": None, "ratio_table": None}
    layer_groups, ratios, table = [], {}, []
    for label in dict.fromkeys(_group_label(r, groups) for r in measured):
        members = [r for r in measured if _group_label(r, groups) == label]
        figures_here = {}
        for key, name in (("grad_mean_abs", "mean |gradient|"), ("weight_mean_abs", "mean |weight|")):
            panels = [(f"depth {r['depth']}", _series(by_trial[trial_key(r)], key)) for r in members]
            if any(panel for _, panel in panels):
                figures_here[key] = figures.data_uri(figures.layer_lines_grid(panels, y_label=name))
        layer_groups.append({"label": label, "gradients": figures_here.get("grad_mean_abs"),
                             "weights": figures_here.get("weight_mean_abs")})
        for r in members:
            layers = by_trial[trial_key(r)]
            last_epoch = max(row["epoch"] for row in layers)
            moments = {}
            for moment, epoch in (("at initialisation", 0), ("after training", last_epoch)):
                moments[moment] = _first_over_output(layers, epoch)
                ratios.setdefault(label, {}).setdefault(moment, []).append((r["depth"], moments[moment]))
            table.append({"group": label, "depth": r["depth"],
                          "ratio": f"{fmt_sci(moments['at initialisation'], 1)} / {fmt_sci(moments['after training'], 1)}"})
    # One row per depth, one column per group: the ratio at initialisation / after training.
    labels = list(dict.fromkeys(row["group"] for row in table))
    cells = {(row["depth"], row["group"]): row["ratio"] for row in table}
    pivot = {"groups": labels, "rows": [{"depth": depth, "cells": [cells.get((depth, g), DASH) for g in labels]}
                                        for depth in sorted({row["depth"] for row in table})]}
    ratio_lines = {label: {m: [p for p in points if p[1] is not None] for m, points in moments.items()}
                   for label, moments in ratios.items()}
    has_ratio = any(points for moments in ratio_lines.values() for points in moments.values())
    return {"layer_groups": layer_groups, "ratio_table": pivot,
            "ratio_figure": figures.data_uri(figures.ratio_vs_depth(
                ratio_lines, y_label="first layer / output layer mean |gradient|")) if has_ratio else None}


# -- initialisation ---------------------------------------------------------------------------
def _init_study(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary, trials, columns = _search_common(store, section, experiment)
    varying = varying_columns(trials, columns)
    # A repeat grid trains each setting from several seeds: the figures show each setting's first seed,
    # the winner is the best mean, and the trial table lists every seed.
    settings = [c for c in varying if c != REPEAT]
    seeds = _by_setting(trials, settings)
    first = [group[0] for group in seeds.values()]
    ok = [r for r in first if is_trained(r)]
    history = histories_by_trial(experiment.get("history") or [])
    curves = {_values_label(r, settings): history[trial_key(r)] for r in ok if trial_key(r) in history}
    by_trial = _layer_rows(experiment, store, section)
    # Activations of the hidden layers at initialisation (the output layer's are its logits).
    at_init = {}
    for r in first:
        layers = [row for row in by_trial.get(trial_key(r), []) if row.get("epoch") == 0]
        output = max((row["index"] for row in layers), default=0)
        hidden = [row for row in layers if row["index"] < output and is_finite(row.get("act_std"))]
        if hidden:
            at_init[_values_label(r, settings)] = hidden
    reference_rows = reference.get("rows") or []
    symmetry = _symmetry(trials, settings, by_trial)
    observations = _init_observations(store, section, summary, run, [r for r in trials if is_trained(r)], varying)
    return {
        "meta": _search_meta(summary, trials),
        "columns": ", ".join(settings) + (" (the first seed of each)" if len(first) < len(trials) else ""),
        "curves": figures.data_uri(figures.learning_curves(curves)) if curves else None,
        "table": trial_table(trials, varying or columns, reference_rows, id_width(summary), match_columns=columns),
        "statistics": figures.data_uri(figures.statistics_vs_layer(at_init)) if at_init else None,
        "statistics_table": _statistics_table(at_init),
        "has_gradients": any(is_finite(row.get("grad_mean_abs")) for rows in at_init.values() for row in rows),
        "symmetry": symmetry,
        "seeds": max((len(group) for group in seeds.values()), default=1),
        "note": str(reference.get("note") or ""),
        "observations": [sentence for sentence in observations if sentence] + symmetry["identical"],
    }


def _init_observations(store, section, summary, run, ok, varying) -> list[str | None]:
    """Initialisations at chance first; then the one with the highest validation accuracy and by how much
    (the best of k, chosen on those images: no significance claimed there) and, when the trials were scored
    on the test split, it against the runner-up there by a paired test on the same test images."""
    settings = [c for c in varying if c != REPEAT]
    means = _setting_means([r for r in ok if is_finite(r.get("val_accuracy"))], settings)
    chance = [at_chance(f"the setting {_values_label(r, settings)}{_seeds(r)}", run, "val", r["val_accuracy"])
              for r in means]
    learned = [r for r, words in zip(means, chance) if words is None]
    observations: list[str | None] = [words for words in chance if words]
    if len(learned) < len(means) and len(learned) <= 1:
        # Nothing to rank: the one that learned (if any) is the only one above chance.
        return observations + ([f"Only {_values_label(learned[0], settings)} learned ({pct(learned[0]['val_accuracy'])} "
                                f"% validation accuracy)." if learned else
                                f"None of the {len(means)} settings learned: no winner."])
    observations.append(best_of([(_values_label(r, settings) + _seeds(r), r["val_accuracy"]) for r in means],
                                n=split_size(run, "val"), noun="settings"))
    if summary.get("evaluates_test") and len(means) > 1:
        observations.append(_on_test((Predictions(store), section["experiment"]), means[0], means[1], settings,
                                     "the runner-up"))
    return observations


def _by_setting(trials: Sequence[Mapping[str, Any]], settings: Sequence[str]) -> dict[str, list[Mapping[str, Any]]]:
    """Trials grouped by their values of ``settings`` (every seed of a setting together), first seed first."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in sorted(trials, key=lambda r: r.get(REPEAT) or 0):
        groups.setdefault(_group_label(row, settings), []).append(row)
    return groups


def _statistics_table(at_init: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """One row per layer, one column per initialisation: "mean / std" (" / mean |gradient|" when measured)."""
    def cell(row):
        parts = [row.get("act_mean"), row.get("act_std")] + ([row["grad_mean_abs"]] if "grad_mean_abs" in row else [])
        return " / ".join(fmt_sci(value, 2) for value in parts)

    groups = list(at_init)
    cells = {(row["index"], label): cell(row) for label, rows in at_init.items() for row in rows}
    names = {row["index"]: row["layer"] for rows in at_init.values() for row in rows}
    return {"groups": groups, "rows": [{"layer": f"{index}: {names[index]}",
                                        "cells": [cells.get((index, g), DASH) for g in groups]}
                                       for index in sorted(names)]}


def _symmetry(trials, varying, by_trial) -> dict[str, Any]:
    """Per trial and layer: the largest difference between two units' incoming weights at
    initialisation, at the end, and its largest value in between; which trials kept every layer's
    units identical throughout."""
    rows, identical = [], []
    for label, group in _by_setting(trials, varying).items():
        measured = [[row for row in by_trial.get(trial_key(r), []) if is_finite(row.get("unit_spread"))]
                    for r in group]
        measured = [spreads for spreads in measured if spreads]
        if not measured:
            continue
        spreads = measured[0]              # the table: the setting's first seed
        last_epoch = max(row["epoch"] for row in spreads)
        for index in sorted({row["index"] for row in spreads}):
            mine = [row for row in spreads if row["index"] == index]
            rows.append({"group": label, "layer": mine[0]["layer"],
                         "init": fmt_sci(_at(mine, 0, index, "unit_spread"), 2),
                         "end": fmt_sci(_at(mine, last_epoch, index, "unit_spread"), 2),
                         "largest": fmt_sci(max(row["unit_spread"] for row in mine), 2)})
        largest = max(row["unit_spread"] for spreads in measured for row in spreads)
        if largest < IDENTICAL:
            seeds = f" (each of its {len(measured)} seeds)" if len(measured) > 1 else ""
            identical.append(f"{label}: every unit of every layer kept the same incoming weights from initialisation "
                             f"to epoch {last_epoch}{seeds} (largest difference {largest:g}).")
    return {"rows": rows, "identical": identical}


VIEWS = {"depth_study": _depth_study, "init_study": _init_study}
REQUIRED_FILES = {"depth_study": ("trials.csv", "history.csv"), "init_study": ("trials.csv", "history.csv")}
