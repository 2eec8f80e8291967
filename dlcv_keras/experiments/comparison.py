"""The run-comparison kind (q8): several single-setting runs side by side.

Each compared run is a ``Search`` of its own (one setting, scored on the test split), so it
resumes and stores its epochs like any search; this kind gathers their stored results into
one table (test loss and accuracy, epochs run, why each stopped) and one figure with every
run's curves overlaid. The compared searches are usually declared with ``show=False``.

A compared run may repeat its setting from several seeds (a ``repeat`` list, q14): its row then
holds the mean over its completed repeats, with their sample standard deviation and count beside
it, and its curve the mean per epoch, shaded from the lowest to the highest repeat. The observations
name the winner, say whether our ranking agrees with the seed's and how far apart the runs are against
the spread we measured (or, with one run each, the binomial error on the test split).
"""

from __future__ import annotations

import statistics
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from dlcv_keras.experiments.base import Experiment, run_causes, seed_observations
from dlcv_keras.report.format import (DASH, as_number, fmt, fmt_loss, fmt_seconds, histories_by_trial, is_finite,
                                      pct, require, without_constant_columns)
from dlcv_keras.lessons import Predictions
from dlcv_keras.report.observe import (DID_NOT_LEARN, Noise, accuracy_words, at_chance, gap_words, noise,
                                       paired_words, points, winner)
from dlcv_keras.validation import InvalidParameterError

# A run's numbers in the table, in column order: for a run of repeats, the mean over its completed
# repeats, with "<key>_std" (their sample standard deviation, n - 1 in the denominator) beside it.
AVERAGED = ("epochs_run", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "seconds")
# The curves a repeated run's band spans: "<key>_min" and "<key>_max" per epoch in history.csv.
CURVES = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass(frozen=True)
class RunComparison(Experiment):
    """``runs``: (experiment name, label) pairs, in table order; each names a single-trial Search.

    A label may name what the run stored, filled in when it is compared: ``{params}`` (its model's
    parameter count), any of its hyperparameters (``{units_1}``) and ``{source}`` (where a ``Borrow``
    took its values from, in words). The seed's rows in the reference name the run by ``experiment``."""
    runs: tuple[tuple[str, str], ...] = ()

    KIND: ClassVar[str] = "run_comparison"
    VIEWS: ClassVar[tuple[str, ...]] = ("run_comparison",)
    HAS_TABLE: ClassVar[bool] = False

    def check_question(self, question, settings, space) -> None:
        for name, _ in self.runs:
            table = space.experiment(name)
            # Repeats of one setting from other seeds are still one run; any other list, or a range, is not.
            varying = sorted((set(table.choices) - {"repeat"}) | set(table.ranges))
            if varying:
                key = varying[0]
                got = table.choices[key] if key in table.choices else "a range"
                raise InvalidParameterError(f"{space.source} [{space.profile}.{name}] {key} must be a single value "
                                            f"({self.name} compares one setting of each run; only repeat may be a "
                                            f"list), got {got!r}")

    def run(self, runner) -> None:
        compare_runs(runner, self)


def compare_runs(runner, experiment: RunComparison) -> None:
    rows, history, settings = [], [], {}
    stored_runs = {name: runner.store.read_experiment(name) for name, _ in experiment.runs}
    for name, _ in experiment.runs:
        settings[name] = {k: v for k, v in (stored_runs[name]["summary"].get("best_hyperparameters") or {}).items()
                          if k != "repeat"}
    # What every run shares is said once; each row shows what sets it apart.
    shared = {k: v for k, v in settings[experiment.runs[0][0]].items()
              if all(k in s and s[k] == v for s in settings.values())}
    labels = {name: run_label(template, stored_runs[name]) for name, template in experiment.runs}
    for name, _ in experiment.runs:
        stored, label = stored_runs[name], labels[name]
        trials = stored.get("trials") or [{}]
        own = {k: v for k, v in settings[name].items() if k not in shared}
        numbers = run_summary(trials)
        rows.append({"run": label, "experiment": name, "status": numbers.pop("status"),
                     "settings": ", ".join(f"{k}={fmt(v)}" for k, v in own.items()) or "none of these", **numbers})
        history.extend(mean_history(label, trials, stored.get("history") or []))
    summary = {"kind": "run_comparison", "title": experiment.title, "runs": [labels[name] for name, _ in experiment.runs],
               "experiments": [name for name, _ in experiment.runs], "shared": shared,
               "best_test_accuracy": max((r["test_accuracy"] for r in rows if is_finite(r.get("test_accuracy"))),
                                         default=None)}
    runner.store.write_experiment(experiment.name, summary=summary, trials=rows, history=history)
    for row in rows:
        repeats = f"; mean ± standard deviation of {row['n']} repeats" if row["n"] > 1 else ""
        runner.echo(f"[{experiment.name}] {row['run']}: test loss {spread(row, 'test_loss', fmt_loss)}, "
                    f"test accuracy {spread(row, 'test_accuracy', pct)} % after {spread(row, 'epochs_run', _epochs)} "
                    f"epochs ({row['stop_reason']}{repeats})")


class _Stored(dict):
    def __missing__(self, key):
        return f"{{{key}: not stored}}"


def run_label(template: str, stored: Mapping[str, Any]) -> str:
    """``template`` with the run's stored numbers in it (``RunComparison``'s label fields)."""
    from dlcv_keras.report.format import thousands

    summary, trials = stored["summary"], stored.get("trials") or [{}]
    values = _Stored(summary.get("best_hyperparameters") or {})
    if is_finite(as_number(trials[0].get("params"))):
        values["params"] = thousands(int(trials[0]["params"]))
    if summary.get("borrowed"):
        values["source"] = summary["borrowed"].get("words")
    return template.format_map(values)


def _seed_row(seed: Mapping[str, Mapping[str, Any]], row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The seed's row for one of ours: by the compared experiment's name, else (older references) by label."""
    return seed.get(str(row.get("experiment"))) or seed.get(str(row.get("run"))) or {}


def _seed_rows(reference: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(r.get("experiment") or r.get("run")): r for r in reference.get("rows") or []}


def spread(row: Mapping[str, Any], key: str, show) -> str:
    """``row[key]`` shown by ``show``, followed by "± <its standard deviation>" for a run of repeats."""
    std = as_number(row.get(f"{key}_std"))
    return show(row.get(key)) + (f" ± {show(std)}" if is_finite(std) else "")


def _epochs(value: Any) -> str:
    """Epochs run: an int for one run, a mean over repeats to one decimal (58.3)."""
    return fmt(round(value, 1) if isinstance(value, float) else value)


def _averaged(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The repeats a run's numbers come from: the completed ones; a run none of which completed
    shows its first trial as it ended (diverged or rejected), as a single run always has."""
    return [t for t in trials if t.get("status") == "completed"] or list(trials[:1])


def run_summary(trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One run's table row from its trials (one, or one per repeat): status, n, stop reason and
    ``AVERAGED`` (a single trial's values as they are; for repeats, mean and "<key>_std")."""
    kept = _averaged(trials)
    # Seeds that stopped the same way say it once: which epoch each restored is the epochs-run column's spread.
    reasons = Counter(re.sub(r"weights of epoch \d+ restored", "its best weights restored", str(t.get("stop_reason")))
                      for t in trials)
    row = {"status": kept[0].get("status"), "n": len(kept),
           "stop_reason": next(iter(reasons)) if len(reasons) == 1 else
           "; ".join(f"{reason} ({count} of {len(trials)})" for reason, count in reasons.items())}
    for key in AVERAGED:
        values = [t[key] for t in kept if is_finite(t.get(key))]
        if len(kept) == 1:
            row[key] = kept[0].get(key)
        else:
            row[key] = statistics.fmean(values) if values else None
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
    return row


def mean_history(label: str, trials: Sequence[Mapping[str, Any]],
                 history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A run's history.csv rows, ``trial_id`` = its label: a single trial's epochs as they are; for
    repeats, per epoch the mean of every number over the completed repeats that reached it, their
    count ``n``, and ``CURVES``' lowest and highest repeat ("<key>_min", "<key>_max")."""
    kept = _averaged(trials)
    ids = {str(t.get("trial_id")) for t in kept}
    by_trial = {tid: rows for tid, rows in histories_by_trial(history).items() if tid in ids}
    if len(kept) == 1:
        return [{**row, "trial_id": label} for rows in by_trial.values() for row in rows]
    by_epoch: dict[Any, list[Mapping[str, Any]]] = {}
    for rows in by_trial.values():
        for row in rows:
            by_epoch.setdefault(row.get("epoch"), []).append(row)
    out = []
    for epoch, rows in sorted(by_epoch.items(), key=lambda item: item[0] if is_finite(item[0]) else 0):
        mean = {"trial_id": label, "epoch": epoch, "n": len(rows)}
        for key in dict.fromkeys(k for row in rows for k in row if k not in ("trial_id", "epoch")):
            values = [row[key] for row in rows if is_finite(row.get(key))]
            if values:
                mean[key] = statistics.fmean(values)
                if key in CURVES:
                    mean[f"{key}_min"], mean[f"{key}_max"] = min(values), max(values)
        out.append(mean)
    return out


# -- report view ------------------------------------------------------------------------------
def _run_comparison(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    trials = require(experiment, "trials", store, section["experiment"], "trials.csv", section["title"])
    by_run = histories_by_trial(experiment.get("history") or [])
    seed = _seed_rows(reference)
    # Runs of repeats get the n, train accuracy and time columns; single runs keep q8's table.
    repeated = any(is_finite(row.get("n")) and row["n"] > 1 for row in trials)
    columns = [("run", lambda row, ref: fmt(row.get("run"))),
               ("its own settings", lambda row, ref: fmt(row.get("settings"))),
               *([("n", lambda row, ref: fmt(row.get("n")))] if repeated else []),
               ("test loss", lambda row, ref: spread(row, "test_loss", fmt_loss)),
               ("seed test loss", lambda row, ref: fmt_loss(ref.get("test_loss"))),
               ("test acc. (%)", lambda row, ref: spread(row, "test_accuracy", pct)),
               ("seed test acc. (%)", lambda row, ref: pct(as_number(ref.get("test_accuracy")))),
               ("val acc. (%)", lambda row, ref: spread(row, "val_accuracy", pct)),
               *([("train acc. (%)", lambda row, ref: spread(row, "accuracy", pct))] if repeated else []),
               ("epochs run", lambda row, ref: spread(row, "epochs_run", _epochs)),
               ("seed epochs", lambda row, ref: fmt(ref.get("epochs_run"))),
               *([("time", lambda row, ref: spread(row, "seconds", fmt_seconds))] if repeated else []),
               ("stop reason", lambda row, ref: fmt(row.get("stop_reason")))]
    rows = [{"cells": [cell(row, _seed_row(seed, row)) for _, cell in columns],
             "diverged": row.get("status") != "completed"} for row in trials]
    # The settings every run shares (the summary's), then the columns every row has alike, said once above.
    table = without_constant_columns({"headers": [name for name, _ in columns], "rows": rows}, noun="run",
                                     settings=list((experiment["summary"].get("shared") or {}).items()))
    curves = {str(row.get("run")): by_run[str(row.get("run"))] for row in trials
              if str(row.get("run")) in by_run and row.get("status") == "completed"}
    return {"table": table, "repeated": repeated, "penalised": _penalised(store, trials),
            "figure": figures.data_uri(figures.learning_curves(curves)) if curves else None,
            "note": str(reference.get("note") or DASH),
            "observations": _observations(store, trials, reference, section, run)}


def _penalised(store, trials: Sequence[Mapping[str, Any]]) -> str | None:
    """Which runs' loss holds an L1 or L2 penalty (a coefficient above 0 in their stored settings), in words
    ("the L2 run's loss includes its penalty"); None when no run has one, so the note says it only when true."""
    names = []
    for row in trials:
        name = row.get("experiment")
        if not isinstance(name, str) or not (store.experiment_dir(name) / "summary.json").is_file():
            continue
        settings = store.read_experiment(name)["summary"].get("best_hyperparameters") or {}
        if any(is_finite(as_number(settings.get(key))) and settings[key] > 0 for key in PENALTIES):
            names.append(str(row.get("run")))
    if not names:
        return None
    listed = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
    return (f"the {listed} run's loss includes its penalty" if len(names) == 1 else
            f"the {listed} runs' losses include their penalties")


PENALTIES = ("l1", "l2")     # the hyperparameters that add a weight penalty to the loss (models/options.py)


def _ranked_runs(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The completed runs with a test accuracy, best (mean) first."""
    return sorted((row for row in trials if row.get("status") == "completed" and is_finite(row.get("test_accuracy"))),
                  key=lambda row: -row["test_accuracy"])


def _stds(*rows: Mapping[str, Any]) -> list[float]:
    """The runs' measured test-accuracy standard deviations, in points (none for single runs)."""
    return [100 * as_number(row.get("test_accuracy_std")) for row in rows
            if is_finite(as_number(row.get("test_accuracy_std")))]


def _noise(run, *rows: Mapping[str, Any]) -> Noise:
    """Run-to-run spread we measured among ``rows`` (repeats), else the binomial error on the test split."""
    return noise(run, "test", [row["test_accuracy"] for row in rows], spread_points=_stds(*rows))


def _observations(store, trials, reference, section, run) -> list[str]:
    """The runs at chance first; the winner by test accuracy (paired tests on the runs' stored test
    predictions), the ranking against the seed's, each run against the seed's number."""
    ranked = _ranked_runs(trials)
    predictions = Predictions(store)

    def compare(upper, lower):
        """A paired comparison of two compared runs on the same test images, or None without predictions."""
        if not isinstance(upper.get("experiment"), str) or not isinstance(lower.get("experiment"), str):
            return None
        return predictions.compare((upper["experiment"], None), (lower["experiment"], None))

    chance = [words for row in ranked if (words := at_chance(str(row["run"]), run, "test", row["test_accuracy"]))]
    sentences = list(chance)
    if ranked and len(chance) < len(ranked):
        sentences.append(_winner(ranked, compare, run))
    elif ranked:
        sentences.append("Every run is at chance: none wins, and their order below is noise.")
    ranking = ranking_words(trials, _seed_ranking(reference, section), run, compare)
    if ranking:
        sentences.append(f"Ranking by test accuracy, ours: {ranking['ours']}; the seed's: {ranking['seed']}. "
                         f"{ranking['agreement']}")
        sentences.extend(ranking["gaps"])
    seed = _seed_rows(reference)
    items = []
    for row in ranked:
        ref = _seed_row(seed, row)
        stuck = [DID_NOT_LEARN] if at_chance("it", run, "test", row["test_accuracy"]) else []
        causes = stuck + run_causes(store, run, epochs=row.get("epochs_run"), seed_epochs=ref.get("epochs_run"),
                                    lr=_setting(store, row, "lr") if "lr" in ref else None, seed_lr=ref.get("lr"),
                                    unstated=ref.get("unstated", reference.get("unstated")))
        items.append((f"test accuracy with {row['run']}", row["test_accuracy"], ref.get("test_accuracy"),
                      _noise(run, row, {"test_accuracy": as_number(ref.get("test_accuracy"))}), causes))
    return [s for s in sentences if s] + seed_observations(items, run)


def _setting(store, row: Mapping[str, Any], key: str) -> Any:
    """A compared run's own value of ``key`` (its search's best hyperparameters), None when not stored."""
    name = row.get("experiment")
    if not isinstance(name, str) or not (store.experiment_dir(name) / "summary.json").is_file():
        return None
    return (store.read_experiment(name)["summary"].get("best_hyperparameters") or {}).get(key)


def _winner(ranked, compare, run) -> str | None:
    """The run with the highest (mean) test accuracy and whether it is ahead of every other run by a paired
    test on the same test images (each at stats.ALPHA: all must hold, so no correction is needed); without
    stored predictions, observe.winner's margin of two binomial accuracies (or the measured spread)."""
    best = ranked[0]
    level = [str(row["run"]) for row in ranked if pct(row["test_accuracy"]) == pct(best["test_accuracy"])]
    if len(level) > 1:
        return (f"No single winner: {', '.join(level[:-1])} and {level[-1]} tie for the highest test accuracy "
                f"({pct(best['test_accuracy'])} %).")
    found = [(row, compare(best, row)) for row in ranked[1:]]
    if not found or any(paired is None for _, paired in found):
        by_label = {str(row["run"]): row for row in ranked}
        return winner([(str(row["run"]), row["test_accuracy"]) for row in ranked],
                      lambda label: _noise(run, ranked[0], by_label[label]), "test accuracy")
    tied = [(row, paired) for row, paired in found if not (paired[0].difference > 0 and paired[0].significant())]
    if not tied:
        second, (comparison, sd_a, sd_b) = found[0]
        return (f"{_capital(str(best['run']))} has the highest test accuracy and is ahead of each other run by a "
                f"paired test on the same test images; against the runner-up: "
                f"{paired_words(str(best['run']), str(second['run']), comparison, sd_a, sd_b)}.")
    row, (comparison, sd_a, sd_b) = tied[0]
    names = [str(r["run"]) for r, _ in tied]
    others = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return (f"No single winner: {best['run']} has the highest test accuracy, "
            f"{accuracy_words(comparison.accuracy_a, sd_a, comparison.seeds_a)}, but it is not significantly "
            f"ahead of {others} on the same test images; against {row['run']}: "
            f"{paired_words(str(best['run']), str(row['run']), comparison, sd_a, sd_b)}.")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _seed_ranking(reference: Mapping[str, Any], section: Mapping[str, Any]) -> list[str] | None:
    ranking = reference.get("ranking")
    if ranking is None:
        return None
    if not isinstance(ranking, list) or not all(isinstance(label, str) for label in ranking):
        raise InvalidParameterError(f"section {section['title']!r}: the reference's ranking must be a list of run "
                                    f"labels, best first, got {ranking!r}")
    return ranking


def ranking_words(trials: Sequence[Mapping[str, Any]], seed_ranking: Sequence[str] | None,
                  run: Mapping[str, Any] | None = None, compare=None) -> dict[str, Any] | None:
    """Our ranking by (mean) test accuracy beside the seed's, in words computed from the stored rows.

    Returns None without a seed ranking, else {"ours", "seed", "agreement", "gaps"}: "ours" is
    "a > b = c" (= for equal means); "agreement" says whether every pair of runs the seed orders is
    in the same order here, which pairs swap and which tie; "gaps" gives, for each neighbouring pair
    of the seed's ranking (the claims it makes), our difference of the means: by a paired test on the same
    test images when ``compare(upper_row, lower_row)`` gives one, else against the noise (``_gap``).
    """
    if seed_ranking is None:
        return None
    ranked = _ranked_runs(trials)
    ours = str(ranked[0]["run"]) if ranked else DASH
    for upper, lower in zip(ranked, ranked[1:]):
        ours += f" {_order(upper, lower)} {lower['run']}"
    by_label = {str(row["run"]): row for row in ranked}
    claimed = [by_label[label] for label in seed_ranking if label in by_label]
    return {"ours": ours, "seed": " > ".join(seed_ranking),
            "agreement": _agreement({label: row["test_accuracy"] for label, row in by_label.items()}, seed_ranking),
            "gaps": [_gap(upper, lower, run, compare(upper, lower) if compare else None)
                     for upper, lower in zip(claimed, claimed[1:])]}


def _order(upper: Mapping[str, Any], lower: Mapping[str, Any]) -> str:
    if upper["test_accuracy"] == lower["test_accuracy"]:
        return "="
    return ">" if upper["test_accuracy"] > lower["test_accuracy"] else "<"


def _agreement(mean: Mapping[str, float], seed_ranking: Sequence[str]) -> str:
    """Whether each pair the seed orders (best first) is in that order by our means: agrees, swaps, ties."""
    shared = [label for label in seed_ranking if label in mean]
    pairs = [(a, b) for i, a in enumerate(shared) for b in shared[i + 1:]]
    swapped = [(a, b) for a, b in pairs if mean[a] < mean[b]]
    tied = [(a, b) for a, b in pairs if mean[a] == mean[b]]
    if not pairs:
        words = "Nothing to compare: fewer than two of the seed's runs have a test accuracy here."
    elif len(swapped) == len(pairs):
        words = "Our ranking reverses the seed's."
    elif not swapped:
        words = "Our ranking agrees with the seed's" + (" wherever the means differ." if tied else ".")
    else:
        words = "Our ranking agrees with the seed's in part: " + "; ".join(
            f"the seed puts {a} above {b}, we find {b} above {a}" for a, b in swapped) + "."
    if tied:
        words += " Tied here: " + "; ".join(f"{a} and {b}" for a, b in tied) + "."
    missing = [label for label in seed_ranking if label not in mean]
    if missing:
        words += f" Not ranked here (no completed run with a test accuracy): {', '.join(missing)}."
    return words


def _gap(upper: Mapping[str, Any], lower: Mapping[str, Any], run: Mapping[str, Any] | None,
         paired=None) -> str:
    """"The seed ranks dropout above L2; ours: dropout 71.20 ± 1.30 % ... against L2 ...: +1.40 points (95 % CI
    ...), paired bootstrap ... p = 0.21: no significant difference": two runs the seed ranks ``upper`` above
    ``lower``, by ``paired`` (observe.paired_words) when their test predictions are stored; otherwise our
    difference of the means against the larger of their measured standard deviations, or with one run each
    the margin of two binomial accuracies on the test split."""
    if paired is not None:
        comparison, sd_a, sd_b = paired
        return (f"The seed ranks {upper['run']} above {lower['run']}; ours: "
                f"{paired_words(str(upper['run']), str(lower['run']), comparison, sd_a, sd_b)}.")
    difference = points(upper["test_accuracy"], lower["test_accuracy"])
    noise_ = _noise(run, upper, lower)
    ours = (f"The seed ranks {upper['run']} above {lower['run']}; ours: {upper['run']} "
            f"{spread(upper, 'test_accuracy', pct)} %, {lower['run']} {spread(lower, 'test_accuracy', pct)} %")
    if not noise_.separates(difference):
        return f"{ours}: {gap_words(difference, noise_)}."
    side = "above" if difference > 0 else "below"
    return f"{ours}, {upper['run']} {side} by {gap_words(difference, noise_)}."


VIEWS = {"run_comparison": _run_comparison}
REQUIRED_FILES = {"run_comparison": ("trials.csv", "history.csv")}
