"""Lessons: what a question's seed teaches, as a claim in words and a check on stored numbers.

A question declares ``lessons=(Lesson(claim, check), ...)``. When its run completes, ``evaluate``
reads the run's stored results (this run's only: a summary an earlier run left is stale) and
writes ``lessons.json``, one object per lesson:

- ``claim``: the lesson in words, as the seed teaches it;
- ``verdict``: ``reproduced`` (our numbers show it, by the check's test), ``not_reproduced`` (they
  do not, or the opposite) or ``not_comparable`` (the numbers the check needs are not stored);
- ``evidence``: ``text``, the numbers and the test in one sentence, and the numbers themselves;
- ``cause``: why, measured, when not reproduced (a net at chance is said to be at chance first).

The checks are data: a check names stored numbers (``Model`` for a trained model's test predictions,
``Value`` for one stored number) and a rule (``Beats``, ``NoWorse``, ``Ranking``, ``Rises``, ``Accuracy``,
``AtChance``, ``Threshold``, ``Ordered``, ``Gap``, ``Overfits``, ``NoOverfitting``, ``LateGain``, ...).
Verdicts are computed, never typed: the statistics are ``dlcv_keras.stats``'s (paired tests on the same test
images, one significance level, one margin). Nothing here imports Keras.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dlcv_keras import stats
from dlcv_keras.results.store import PREDICTIONS

REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE = "reproduced", "not_reproduced", "not_comparable"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_COMPARABLE)
LESSONS_FILE = "lessons.json"
# A net "overfits" when its validation loss ends this much above its minimum, reached before the last epoch.
OVERFIT_RISE = 0.05


class NotComparable(Exception):
    """The numbers a check needs are not stored (not run, stale, not recorded)."""


@dataclass(frozen=True)
class Outcome:
    verdict: str
    text: str                                   # the evidence in one sentence
    numbers: Mapping[str, Any] = field(default_factory=dict)
    cause: str | None = None

    def as_dict(self, claim: str) -> dict[str, Any]:
        return {"claim": claim, "verdict": self.verdict, "evidence": {"text": self.text, **self.numbers},
                "cause": self.cause}


@dataclass(frozen=True)
class Lesson:
    claim: str
    check: "Check"


# -- what a check reads ----------------------------------------------------------------------
class Stored:
    """One run's stored results as the checks read them: run.json, and each experiment's files only if
    this run wrote them (its summary's run_id is run.json's)."""

    def __init__(self, store):
        self.store = store
        self.run = store.read_json("run.json")
        self._experiments: dict[str, dict] = {}

    @property
    def classes(self) -> int:
        names = (self.run.get("dataset") or {}).get("class_names") or []
        return max(len(names), 2)

    def split_size(self, split: str) -> int:
        """Images in ``split`` ("train", "val", "test") of the run's dataset (run.json)."""
        size = _number(((self.run.get("dataset") or {}).get("splits") or {}).get(split))
        if not (math.isfinite(size) and size > 0):
            raise NotComparable(f"run.json stores no size of the {split} split")
        return int(size)

    def experiment(self, name: str) -> dict[str, Any]:
        if name not in self._experiments:
            if not (self.store.experiment_dir(name) / "summary.json").is_file():
                raise NotComparable(f"experiment {name} is not stored")
            found = self.store.read_experiment(name)
            if found["summary"].get("run_id") not in (None, self.run.get("run_id")):
                raise NotComparable(f"experiment {name} is stale (stored by an earlier run with other settings)")
            self._experiments[name] = found
        return self._experiments[name]

    def predictions(self, name: str) -> dict[str, np.ndarray]:
        self.experiment(name)
        path = self.store.experiment_dir(name) / PREDICTIONS
        if not path.is_file():
            raise NotComparable(f"experiment {name} stored no test predictions")
        with np.load(path, allow_pickle=False) as stored:
            # trials.csv reads KerasTuner's zero-padded trial ids ("07") back as numbers: key them alike.
            return {_trial_key(k): stored[k] for k in stored.files}


@dataclass(frozen=True)
class Model:
    """A trained model's test predictions: a search's trials matching ``where`` (the best setting among
    them by validation accuracy, with every seed of it: a ``repeat`` grid's trials are one model trained
    from several seeds), or an evaluation's best model (``where`` empty)."""
    experiment: str
    label: str
    where: Mapping[str, Any] = field(default_factory=dict)

    def trials(self, stored: Stored) -> list[dict]:
        """The completed trials this model's numbers come from: one, or one per seed."""
        found = stored.experiment(self.experiment)
        rows = [r for r in found.get("trials") or [] if _matches(r, self.where)]
        if not rows:
            raise NotComparable(f"{self.experiment} has no trial with {_setting(self.where)}")
        done = [r for r in rows if r.get("status") == "completed"]
        if not done:
            raise NotComparable(f"{self.label}: no completed trial ({rows[0].get('status')}: "
                                f"{rows[0].get('stop_reason')})")
        summary = found["summary"]
        searched = [k for k in (*(summary.get("space") or {}), *(summary.get("ranges") or {})) if k != "repeat"]
        groups: dict[tuple, list[dict]] = {}
        for row in done:
            groups.setdefault(tuple(str(row.get(k)) for k in searched), []).append(row)
        return max(groups.values(), key=lambda g: sum(_number(r.get("val_accuracy")) for r in g) / len(g))

    def chance(self, stored: Stored) -> float:
        """The accuracy of always guessing the most common class of this model's test labels."""
        return stats.chance_level(stored.predictions(self.experiment)["labels"], stored.classes)

    def correctness(self, stored: Stored) -> np.ndarray:
        """(seeds, images) of 0/1: right or wrong on each test image."""
        predicted = stored.predictions(self.experiment)
        labels = predicted["labels"]
        found = stored.experiment(self.experiment)
        if found["summary"].get("kind") == "evaluation" or "trials" not in found:   # one model (scikit-learn's too)
            keys = ["test"]
        else:
            keys = [_trial_key(r["trial_id"]) for r in self.trials(stored)]
        missing = [k for k in keys if k not in predicted]
        if missing:
            raise NotComparable(f"{self.experiment} stored no test predictions for trial {missing[0]}")
        return np.stack([predicted[k] == labels for k in keys]).astype(np.float64)

    def histories(self, stored: Stored) -> list[list[dict]]:
        """The epochs of each of this model's seeds (an evaluation's one model)."""
        return [history for _, history in self.seeded_histories(stored)]

    def seeded_histories(self, stored: Stored) -> list[tuple[Any, list[dict]]]:
        """(seed, epochs) for each of this model's seeds: its ``repeat`` value (None for one model)."""
        found = stored.experiment(self.experiment)
        if found["summary"].get("kind") == "evaluation":
            groups = [(None, found.get("history") or [])]
        else:
            rows = found.get("history") or []
            groups = [(t.get("repeat"), [r for r in rows if str(r.get("trial_id")) == str(t["trial_id"])])
                      for t in self.trials(stored)]
        if not all(history for _, history in groups):
            raise NotComparable(f"{self.experiment} stored no epochs for {self.label}")
        return groups


@dataclass(frozen=True)
class Value:
    """One stored number: ``key`` of the experiment's summary (dotted for nested: "relative_errors.W1"),
    or, with ``table``, of the one row of that CSV matching ``where``."""
    experiment: str
    key: str
    label: str
    table: str | None = None
    where: Mapping[str, Any] = field(default_factory=dict)

    def read(self, stored: Stored) -> float:
        found = stored.experiment(self.experiment)
        if self.table is None:
            value: Any = found["summary"]
            for part in self.key.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
        else:
            rows = [r for r in found.get(self.table) or [] if _matches(r, self.where)]
            if len(rows) != 1:
                raise NotComparable(f"{self.experiment}/{self.table}.csv has {len(rows)} rows with "
                                    f"{_setting(self.where)}, not one")
            value = rows[0].get(self.key)
        number = _number(value)
        if value is None or (isinstance(number, float) and math.isnan(number) and str(value) != "nan"):
            raise NotComparable(f"{self.experiment} stores no {self.key}")
        return number


# A gradient "vanishes" before the input when less than this share of the output layer's mean |gradient|
# reaches the first layer (GradientShare): two orders of magnitude down.
VANISHED_SHARE = 0.01


@dataclass(frozen=True)
class GradientShare:
    """How much of the gradient reaches the input: the first kernel layer's mean |gradient| over the
    output layer's, as a search's layer probe stored them (layer_stats.csv, instrument "gradients"),
    in the trial matching ``where`` (its first seed), at ``epoch`` (0: at initialisation; None: the
    last epoch trained). A ``Value`` for ``Threshold`` and ``Ordered``."""
    experiment: str
    label: str
    where: Mapping[str, Any]
    epoch: int | None = None

    def read(self, stored: Stored) -> float:
        trial = Model(self.experiment, self.label, self.where).trials(stored)[0]
        rows = [r for r in stored.experiment(self.experiment).get("layer_stats") or []
                if _trial_key(r.get("trial_id")) == _trial_key(trial["trial_id"]) and _finite(r.get("grad_mean_abs"))]
        if not rows:
            raise NotComparable(f"{self.experiment} stored no layer gradients for {self.label}")
        epoch = max(int(r["epoch"]) for r in rows) if self.epoch is None else self.epoch
        at = {int(r["index"]): float(r["grad_mean_abs"]) for r in rows if int(r["epoch"]) == epoch}
        if 1 not in at or len(at) < 2:
            raise NotComparable(f"{self.experiment} stored no layer gradients for {self.label} at epoch {epoch}")
        output = at[max(at)]
        return at[1] / output if output > 0 else math.nan


# -- checks ------------------------------------------------------------------------------------
class Check:
    def evaluate(self, stored: Stored) -> Outcome:
        raise NotImplementedError


def _chance_test(model: Model, correct: np.ndarray, stored: Stored) -> stats.ChanceTest:
    """A model's test accuracy (mean over its seeds) against chance: always guessing the most common class
    (1 / classes on balanced test labels)."""
    return stats.against_chance(int(round(correct.mean(axis=0).sum())), correct.shape[1], stored.classes,
                                model.chance(stored))


def _chance_cause(model: Model, correct: np.ndarray, stored: Stored) -> str | None:
    """"<label> is at chance (...)" when a model's test accuracy is not above chance, else None."""
    test = _chance_test(model, correct, stored)
    return None if test.above_chance() else f"{model.label} is at chance: {test.words()}"


@dataclass(frozen=True)
class Beats(Check):
    """A's test accuracy is higher than B's, by a paired test on the same test images at ``stats.ALPHA``."""
    a: Model
    b: Model

    def evaluate(self, stored):
        a, b = self.a.correctness(stored), self.b.correctness(stored)
        found = stats.compare(a, b)
        text = f"{self.a.label} {_pct(found.accuracy_a)} % vs {self.b.label} {_pct(found.accuracy_b)} %: {found.words()}"
        numbers = {"comparison": found.as_dict()}
        if found.difference > 0 and found.significant():
            return Outcome(REPRODUCED, text, numbers)
        cause = _chance_cause(self.a, a, stored) or _chance_cause(self.b, b, stored)
        if cause is None:
            p = stats.format_p(found.p_two_sided)
            if found.difference < 0:
                cause = f"{self.b.label} is ahead, " + (f"significantly ({p})" if found.significant() else
                                                        f"within noise ({p}, not below {stats.ALPHA})")
            elif found.difference == 0:
                cause = f"{self.a.label} is not ahead"
            else:
                cause = f"the difference is within noise ({p}, not below {stats.ALPHA})"
        return Outcome(NOT_REPRODUCED, text, numbers, cause)


@dataclass(frozen=True)
class NoWorse(Check):
    """A is no worse than B: the 95 % interval of A minus B stays above -``margin`` points."""
    a: Model
    b: Model
    margin: float = stats.MARGIN_POINTS

    def evaluate(self, stored):
        a, b = self.a.correctness(stored), self.b.correctness(stored)
        found = stats.compare(a, b)
        text = (f"{self.a.label} {_pct(found.accuracy_a)} % vs {self.b.label} {_pct(found.accuracy_b)} %: "
                f"{found.words()}; margin {self.margin:g} point{'s' if self.margin != 1 else ''}")
        numbers = {"comparison": found.as_dict(), "margin_points": self.margin}
        cause = _chance_cause(self.a, a, stored)
        if cause is None and found.low > -self.margin:
            return Outcome(REPRODUCED, text, numbers)
        cause = cause or (f"the interval reaches {found.low:+.2f} points, below -{self.margin:g}: "
                          f"{self.a.label} may be worse than {self.b.label}")
        return Outcome(NOT_REPRODUCED, text, numbers, cause)


@dataclass(frozen=True)
class Ranking(Check):
    """Each model beats the next (``Beats``, pair by pair, in the order given: best first)."""
    models: tuple[Model, ...]

    def evaluate(self, stored):
        outcomes = [Beats(a, b).evaluate(stored) for a, b in zip(self.models, self.models[1:])]
        return _together(outcomes, " > ".join(m.label for m in self.models))


@dataclass(frozen=True)
class Rises(Check):
    """Accuracy rises along ``models`` (in the order of what grows: more data, more epochs): the last
    beats the first (``Beats``), and no step falls significantly (each step's paired test)."""
    models: tuple[Model, ...]

    def evaluate(self, stored):
        correct = [m.correctness(stored) for m in self.models]
        overall = Beats(self.models[-1], self.models[0]).evaluate(stored)
        falls = []
        for (m1, c1), (m2, c2) in zip(zip(self.models, correct), zip(self.models[1:], correct[1:])):
            step = stats.compare(c2, c1)
            if step.difference < 0 and step.significant():
                falls.append(f"{m2.label} is below {m1.label}: {step.words()}")
        path = " → ".join(f"{m.label} {_pct(c.mean())} %" for m, c in zip(self.models, correct))
        text = f"{path}; {overall.text}"
        numbers = {"accuracies": {m.label: float(c.mean()) for m, c in zip(self.models, correct)}, **overall.numbers}
        if overall.verdict == REPRODUCED and not falls:
            return Outcome(REPRODUCED, text, numbers)
        return Outcome(NOT_REPRODUCED, text, numbers, "; ".join(filter(None, [overall.cause, *falls])))


@dataclass(frozen=True)
class Accuracy(Check):
    """A model learns: its test accuracy is above chance (always guessing the most common class; exact
    binomial test) and, with ``at_least``, at least that (a fraction) on the mean over its seeds."""
    model: Model
    at_least: float | None = None

    def evaluate(self, stored):
        correct = self.model.correctness(stored)
        test = _chance_test(self.model, correct, stored)
        text = f"{self.model.label}: {test.words()}"
        if self.at_least is not None:
            text += f"; required at least {_pct(self.at_least)} %"
        numbers = {"chance_test": test.as_dict(), "at_least": self.at_least}
        if not test.above_chance():
            return Outcome(NOT_REPRODUCED, text, numbers, f"{self.model.label} is at chance: {test.words()}")
        if self.at_least is not None and test.accuracy < self.at_least:
            return Outcome(NOT_REPRODUCED, text, numbers,
                           f"{self.model.label} learns, but reaches {_pct(test.accuracy)} %, below {_pct(self.at_least)} %")
        return Outcome(REPRODUCED, text, numbers)


@dataclass(frozen=True)
class AtChance(Check):
    """A model does not learn: its test accuracy is not above chance (always guessing the most common
    class, which a net reaches from its output biases alone; exact binomial test)."""
    model: Model

    def evaluate(self, stored):
        correct = self.model.correctness(stored)
        test = _chance_test(self.model, correct, stored)
        text = f"{self.model.label}: {test.words()}"
        numbers = {"chance_test": test.as_dict()}
        if test.above_chance():
            return Outcome(NOT_REPRODUCED, text, numbers, f"{self.model.label} learns: above chance")
        return Outcome(REPRODUCED, text, numbers)


OPERATORS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt,
                                                        ">=": operator.ge}


@dataclass(frozen=True)
class Threshold(Check):
    """A stored number against a bound: ``Threshold(Value(...), "<=", 1e-8)``. For numbers with no
    sampling noise (gradient checks, losses of a fixed computation)."""
    value: Value
    op: str
    bound: float

    def evaluate(self, stored):
        number = self.value.read(stored)
        holds = math.isfinite(number) and OPERATORS[self.op](number, self.bound)
        text = f"{self.value.label} = {_num(number)} (required {self.op} {_num(self.bound)})"
        numbers = {"value": number, "op": self.op, "bound": self.bound}
        if holds:
            return Outcome(REPRODUCED, text, numbers)
        return Outcome(NOT_REPRODUCED, text, numbers, f"{self.value.label} is {_num(number)}, not {self.op} {_num(self.bound)}")


@dataclass(frozen=True)
class Ordered(Check):
    """Stored numbers with no sampling noise in strictly rising (``rising=True``) or falling order."""
    values: tuple[Value, ...]
    rising: bool = True

    def evaluate(self, stored):
        numbers = [v.read(stored) for v in self.values]
        sign = " < " if self.rising else " > "
        text = sign.join(f"{v.label} {_num(n)}" for v, n in zip(self.values, numbers))
        pairs = list(zip(numbers, numbers[1:]))
        holds = all(math.isfinite(a) and math.isfinite(b) and (a < b if self.rising else a > b) for a, b in pairs)
        found = {"values": {v.label: n for v, n in zip(self.values, numbers)}}
        if holds:
            return Outcome(REPRODUCED, text, found)
        broken = next(i for i, (a, b) in enumerate(pairs) if not (a < b if self.rising else a > b))
        return Outcome(NOT_REPRODUCED, text, found,
                       f"{self.values[broken].label} ({_num(numbers[broken])}) is not {sign.strip()} "
                       f"{self.values[broken + 1].label} ({_num(numbers[broken + 1])})")


@dataclass(frozen=True)
class Gap(Check):
    """A model's held-out accuracy stays within ``at_most`` points of its accuracy on its own training
    images (``train``, a stored number measured on the whole training set: no sampling noise): the upper
    end of the 95 % interval of train minus test (the test accuracy's Clopper-Pearson interval, over its
    seeds' mean) is at most ``at_most`` points."""
    train: Value
    model: Model
    at_most: float

    def evaluate(self, stored):
        train = self.train.read(stored)
        correct = self.model.correctness(stored)
        test = stats.against_chance(int(round(correct.mean(axis=0).sum())), correct.shape[1], stored.classes)
        gap, high = 100 * (train - test.accuracy), 100 * (train - test.low)
        text = (f"{self.train.label} {_pct(train)} % vs {self.model.label} {_pct(test.accuracy)} % on {test.n:,} test "
                f"images: a gap of {gap:+.2f} points (95 % CI up to {high:+.2f}; close: at most {self.at_most:g})")
        numbers = {"train_accuracy": train, "test": test.as_dict(), "gap_points": gap, "gap_high_points": high,
                   "at_most_points": self.at_most}
        cause = _chance_cause(self.model, correct, stored)
        if cause is None and math.isfinite(high) and high <= self.at_most:
            return Outcome(REPRODUCED, text, numbers)
        return Outcome(NOT_REPRODUCED, text, numbers, cause or (
            f"the gap may reach {high:.2f} points, more than {self.at_most:g}: training accuracy runs ahead"))


def _loss_rises(model: Model, stored: Stored, rise: float) -> list[dict[str, Any]]:
    """Each seed's validation loss curve, read for overfitting: where it is lowest, where it ends, by how much
    (a share of the minimum) it rose in between, and whether that is overfitting (the minimum before the last
    epoch, the end more than ``rise`` above it)."""
    found = []
    seeded = model.seeded_histories(stored)
    for seed, rows in seeded:
        history = [r for r in rows if _finite(r.get("val_loss"))]
        if len(history) < 2:
            raise NotComparable(f"{model.label} has fewer than 2 epochs with a validation loss")
        losses = [float(r["val_loss"]) for r in history]
        low = int(np.argmin(losses))
        risen = losses[-1] / losses[low] - 1 if losses[low] > 0 else math.inf
        who = f"seed {seed}: " if len(seeded) > 1 else ""
        found.append({
            "seed": seed, "min_epoch": history[low].get("epoch", low + 1), "min_val_loss": losses[low],
            "last_val_loss": losses[-1], "rise": risen, "epochs": len(history),
            "overfits": low < len(losses) - 1 and risen > rise,
            "text": (f"{who}validation loss lowest at epoch {history[low].get('epoch', low + 1)} ({losses[low]:.4f}), "
                     f"{losses[-1]:.4f} at epoch {history[-1].get('epoch', len(history))} of {len(history)} "
                     f"({100 * risen:+.1f} %)"),
            "flat": (f"{who}the validation loss is lowest at the last epoch: still falling" if low == len(losses) - 1
                     else f"{who}the validation loss rose only {100 * risen:.1f} % after its minimum"),
            "risen": f"{who}the validation loss rose {100 * risen:.1f} % after its minimum"})
    return found


def _rise_outcome(model: Model, seeds: list[dict], rise: float, judged: str, holds: bool, cause: str | None) -> Outcome:
    text = (f"{model.label}: " + "; ".join(s["text"] for s in seeds) +
            f" (overfitting: more than +{100 * rise:.0f} % at the last epoch{judged})")
    first = seeds[0]
    numbers = {**{k: first[k] for k in ("min_epoch", "min_val_loss", "last_val_loss", "rise", "epochs")},
               "seeds": [{k: v for k, v in s.items() if k not in ("text", "flat", "risen")} for s in seeds]}
    return Outcome(REPRODUCED if holds else NOT_REPRODUCED, text, numbers, None if holds else cause)


@dataclass(frozen=True)
class Overfits(Check):
    """Validation loss rises after its minimum: the minimum comes before the last epoch and the last epoch's
    validation loss is more than ``OVERFIT_RISE`` above it. ``every_seed``: in every seed of the model;
    otherwise in its first seed (every seed's curve is still shown in the evidence)."""
    model: Model
    rise: float = OVERFIT_RISE
    every_seed: bool = False

    def evaluate(self, stored):
        seeds = _loss_rises(self.model, stored, self.rise)
        judged = seeds if self.every_seed else seeds[:1]
        words = "" if len(seeds) == 1 else f"; required in every one of the {len(seeds)} seeds" if self.every_seed \
            else f"; judged on the first of the {len(seeds)} seeds"
        flat = [s["flat"] for s in judged if not s["overfits"]]
        return _rise_outcome(self.model, seeds, self.rise, words, not flat, "; ".join(flat))


@dataclass(frozen=True)
class NoOverfitting(Check):
    """The opposite of ``Overfits`` in every seed: no seed's validation loss ends more than ``OVERFIT_RISE``
    above its minimum (one lowest at the last epoch is still falling). Not a negated ``Overfits``, which
    would hold as soon as the one seed it judges did not overfit."""
    model: Model
    rise: float = OVERFIT_RISE

    def evaluate(self, stored):
        seeds = _loss_rises(self.model, stored, self.rise)
        words = f"; required in none of the {len(seeds)} seeds" if len(seeds) > 1 else ""
        risen = [f"{s['risen']} (more than {100 * self.rise:.0f} %): it overfits" for s in seeds if s["overfits"]]
        return _rise_outcome(self.model, seeds, self.rise, words, not risen, "; ".join(risen))


@dataclass(frozen=True)
class LateGain(Check):
    """Validation accuracy late in training, from the middle epoch to the last (mean over the model's seeds),
    against a threshold of ``stats.MARGIN_POINTS`` and the noise of that gain: with one seed, the margin of two
    accuracies on the validation split (``stats.two_accuracies_margin``); with several, the 95 % interval of the
    seeds' mean gain (``stats.mean_half_width``; the seeds share the validation images, so it holds the
    training's seed-to-seed spread, not another draw of those images).

    ``improving=True``: still improving, the gain exceeds both the threshold and the margin. ``improving=False``:
    levelled off (a plateau), the gain plus the margin stays within the threshold. Between the two the numbers
    cannot tell, and neither claim is reproduced."""
    model: Model
    improving: bool = True

    def evaluate(self, stored):
        curves = [[r for r in history if _finite(r.get("val_accuracy"))] for history in self.model.histories(stored)]
        if any(len(curve) < 2 for curve in curves):
            raise NotComparable(f"{self.model.label} has fewer than 2 epochs with a validation accuracy")
        middle = [curve[(len(curve) - 1) // 2] for curve in curves]
        last = [curve[-1] for curve in curves]
        at_middle, at_end = (float(np.mean([_number(r["val_accuracy"]) for r in rows])) for rows in (middle, last))
        gains = [100 * (_number(b["val_accuracy"]) - _number(a["val_accuracy"])) for a, b in zip(middle, last)]
        gain = 100 * (at_end - at_middle)
        if len(curves) > 1:
            margin = stats.mean_half_width(gains)
            noise = f"the 95 % interval of the mean gain of {len(curves)} seeds is ±{margin:.2f} points"
        else:
            n = stored.split_size("val")
            margin = stats.two_accuracies_margin((at_middle + at_end) / 2, n)
            noise = f"the 95 % margin of two accuracies on {n:,} validation images is {margin:.2f} points"
        threshold = stats.MARGIN_POINTS
        seeds = f"; mean of {len(curves)} seeds" if len(curves) > 1 else ""
        rule = (f"still improving: more than +{max(threshold, margin):.2f} points, the larger of +{threshold:g} and "
                f"the noise" if self.improving else
                f"a plateau: at most +{threshold:g} point{'s' if threshold != 1 else ''} even at the upper end, gain "
                f"plus noise")
        text = (f"{self.model.label}: validation accuracy {_pct(at_middle)} % at epoch {middle[0].get('epoch')}, "
                f"{_pct(at_end)} % at epoch {last[0].get('epoch')} ({gain:+.2f} points{seeds}; {noise}; {rule})")
        numbers = {"middle_epoch": middle[0].get("epoch"), "last_epoch": last[0].get("epoch"),
                   "val_accuracy_middle": at_middle, "val_accuracy_last": at_end, "gain_points": gain,
                   "seed_gains_points": gains, "margin_points": margin, "threshold_points": threshold,
                   "seeds": len(curves)}
        rising = gain > max(threshold, margin)
        level = gain + margin <= threshold
        if (rising if self.improving else level):
            return Outcome(REPRODUCED, text, numbers)
        if level:
            cause = (f"{self.model.label} gained only {gain:+.2f} points over the second half of training (at most "
                     f"{gain + margin:+.2f} with the noise)")
        elif rising:
            cause = f"{self.model.label} still gained {gain:+.2f} points over the second half of training"
        else:
            cause = (f"cannot tell within noise: {self.model.label} gained {gain:+.2f} ± {margin:.2f} points over the "
                     f"second half of training, neither more than +{max(threshold, margin):.2f} (still improving) nor "
                     f"at most +{threshold:g} with the noise (a plateau)")
        return Outcome(NOT_REPRODUCED, text, numbers, cause)


@dataclass(frozen=True)
class All(Check):
    """Every part holds."""
    checks: tuple[Check, ...]

    def evaluate(self, stored):
        return _together([_evaluate(check, stored) for check in self.checks], None)


@dataclass(frozen=True)
class Computed(Check):
    """A rule too particular for the checks above: ``rule(stored) -> Outcome``. Keep it a named
    module-level function, so that the declaration still reads as data."""
    rule: Callable[[Stored], Outcome]

    def evaluate(self, stored):
        return self.rule(stored)


def _together(outcomes: Sequence[Outcome], title: str | None) -> Outcome:
    text = "; ".join(o.text for o in outcomes)
    numbers = {"parts": [{"verdict": o.verdict, "text": o.text, **o.numbers} for o in outcomes]}
    if title:
        text = f"{title}: {text}"
    for verdict in (NOT_COMPARABLE, NOT_REPRODUCED):
        failed = [o for o in outcomes if o.verdict == verdict]
        if failed:
            return Outcome(verdict, text, numbers, "; ".join(o.cause for o in failed if o.cause) or None)
    return Outcome(REPRODUCED, text, numbers)


def _evaluate(check: Check, stored: Stored) -> Outcome:
    try:
        return check.evaluate(stored)
    except NotComparable as missing:
        return Outcome(NOT_COMPARABLE, str(missing), {}, str(missing))
    except (KeyError, TypeError, ValueError) as error:
        # A stored file without a number the check reads (an empty cell, a missing column): judged not
        # comparable, naming what was missing, rather than ending a finished run in a traceback.
        why = f"{type(check).__name__} could not read the stored numbers ({type(error).__name__}: {error})"
        return Outcome(NOT_COMPARABLE, why, {}, why)


# -- the same reading, for the report's observations ------------------------------------------------
class Predictions:
    """Test predictions as the lessons read them (``Model.correctness``), for a report view that compares
    models on the same test images: ``None`` where a model's are not stored (not scored on the test split,
    stale, not run), so that the view falls back to what it can say without them."""

    def __init__(self, store):
        self.stored = Stored(store)
        self._correct: dict[tuple, np.ndarray | None] = {}

    def correct(self, experiment: str, where: Mapping[str, Any] | None = None) -> np.ndarray | None:
        """(seeds, images) of 0/1 for the model ``Model(experiment, ..., where)``, or None."""
        key = (experiment, tuple(sorted((k, str(v)) for k, v in (where or {}).items())))
        if key not in self._correct:
            try:
                self._correct[key] = Model(experiment, experiment, dict(where or {})).correctness(self.stored)
            except (NotComparable, OSError, ValueError):
                self._correct[key] = None
        return self._correct[key]

    def compare(self, a: tuple[str, Mapping[str, Any] | None], b: tuple[str, Mapping[str, Any] | None]):
        """(``stats.compare`` of A against B, A's sd over seeds, B's) for two (experiment, where) models, or
        None when either's predictions are missing or they were not scored on the same images."""
        correct_a, correct_b = self.correct(*a), self.correct(*b)
        if correct_a is None or correct_b is None or not self._same_images(a[0], b[0]):
            return None
        return stats.compare(correct_a, correct_b), _seed_sd(correct_a), _seed_sd(correct_b)

    def _same_images(self, a: str, b: str) -> bool:
        if a == b:
            return True
        return bool(np.array_equal(self.stored.predictions(a)["labels"], self.stored.predictions(b)["labels"]))


def _seed_sd(correct: np.ndarray) -> float | None:
    """The sample standard deviation of a model's accuracy over its seeds (None for one seed)."""
    return stats.mean_and_sd(correct.mean(axis=1))[1]


# -- the run's lessons ----------------------------------------------------------------------------
def evaluate(store, lessons: Sequence[Lesson]) -> list[dict[str, Any]]:
    """Every lesson's verdict on the run stored in ``store``, as lessons.json holds them."""
    stored = Stored(store)
    return [_evaluate(lesson.check, stored).as_dict(lesson.claim) for lesson in lessons]


def write(store, lessons: Sequence[Lesson]) -> list[dict[str, Any]]:
    """lessons.json: every verdict, stamped with the run that judged it (a report tells an earlier run's)."""
    run_id = store.read_json("run.json").get("run_id")
    found = [{**lesson, "run_id": run_id} for lesson in evaluate(store, lessons)]
    store.write_json(LESSONS_FILE, found)
    return found


def scoreboard(found: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many lessons have each verdict."""
    return {verdict: sum(1 for lesson in found if lesson.get("verdict") == verdict) for verdict in VERDICTS}


# -- small helpers ---------------------------------------------------------------------------------
def _trial_key(trial_id: Any) -> str:
    text = str(trial_id)
    return str(int(text)) if text.isdigit() else text


def _matches(row: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    return all(_same(row.get(k), v) for k, v in where.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return str(a) == str(b)


def _setting(where: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in where.items()) or "any setting"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: Any) -> bool:
    return math.isfinite(_number(value))


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def _num(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.3g}" if (value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5)) else f"{value:.4g}"
