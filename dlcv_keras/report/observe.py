"""Observations: sentences computed from stored numbers by rules, never canned text.

Every experiment kind's view may return ``"observations": [sentence, ...]``; the report ends the
section with them. The rules shared by every kind live here:

- a difference between two accuracies counts only when it is larger than the noise: the
  run-to-run spread we measured (sample std of repeats), or with one run the binomial standard
  error of the accuracy on the split it was measured on, sqrt(p (1 - p) / n). Smaller
  differences are called "within noise", never a win;
- our number differs from the seed's when it is more than ``SEED_TOLERANCE`` points away (or
  more than the noise, whichever is larger), and the sentence names the causes the run knows
  about (profile, data subset, digits fallback, fewer epochs, substitutes the experiment reports).

Pure functions of plain values: no files read, no Keras, no matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from dlcv_keras.report.format import as_number, fmt, is_finite, pct, thousands

SEED_TOLERANCE = 2.0   # points: a reproduction on another framework, split and seed lands about this close
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class Noise:
    """How far apart two accuracies must be, in percentage points, to count as different."""
    points: float | None
    words: str            # what the noise is: "the binomial standard error on 1,600 validation images"

    def separates(self, difference_points: float) -> bool:
        return self.points is None or abs(difference_points) > self.points


def split_size(run: Mapping[str, Any] | None, split: str) -> int | None:
    """Rows in ``split`` ("train", "val", "test") of the run's dataset, from run.json."""
    splits = ((run or {}).get("dataset") or {}).get("splits") or {}
    size = as_number(splits.get(split))
    return int(size) if is_finite(size) and size > 0 else None


def class_count(run: Mapping[str, Any] | None) -> int | None:
    """How many classes the run's dataset has (run.json's class names), None when not stored."""
    names = ((run or {}).get("dataset") or {}).get("class_names") or []
    return len(names) if len(names) >= 2 else None


def chance_test(run: Mapping[str, Any] | None, split: str, accuracy: Any, n: int | None = None):
    """``stats.against_chance`` for an accuracy (a fraction) measured on ``split`` (``n`` images, else run.json's
    size), against 1 / the run's classes; None when a number is missing."""
    from dlcv_keras import stats

    accuracy, n, classes = as_number(accuracy), n or split_size(run, split), class_count(run)
    if not (is_finite(accuracy) and n and classes):
        return None
    return stats.against_chance(min(n, max(0, round(accuracy * n))), n, classes)


def binomial_se_points(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` independent images, in points."""
    p = min(max(float(accuracy), 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / n)


def noise(run: Mapping[str, Any] | None, split: str, accuracies: Iterable[Any],
          spread_points: Iterable[Any] = (), n: int | None = None) -> Noise:
    """The noise for comparing ``accuracies`` (fractions) measured on ``split``.

    ``spread_points`` are measured run-to-run standard deviations (points); when any is given the
    largest is the noise. Otherwise the binomial standard error at the mean accuracy on the split's
    size (``n`` overrides run.json's size, e.g. for a search on a training fraction)."""
    spreads = [float(s) for s in spread_points if is_finite(as_number(s))]
    if spreads:
        return Noise(max(spreads), "the run-to-run standard deviation we measured")
    values = [float(a) for a in accuracies if is_finite(as_number(a))]
    n = n or split_size(run, split)
    if not values or not n:
        return Noise(None, "no measure of noise (the split size is not stored)")
    mean = sum(values) / len(values)
    return Noise(binomial_se_points(mean, n),
                 f"the binomial standard error on {thousands(n)} {SPLIT_WORDS.get(split, split)} images")


def points(a: float, b: float) -> float:
    return 100 * (float(a) - float(b))


def gap_words(difference_points: float, noise_: Noise) -> str:
    """"1.25 points, more than the 0.61-point binomial standard error on ..." or "within noise: ..."."""
    size = f"{abs(difference_points):.2f} points"
    if noise_.points is None:
        return f"{size} ({noise_.words})"
    if noise_.separates(difference_points):
        return f"{size}, more than {noise_.points:.2f} points, {noise_.words}"
    return f"within noise: {size} apart, not more than {noise_.points:.2f} points, {noise_.words}"


def winner(ranked: Sequence[tuple[str, float]], noise_: Noise | Callable[[str], Noise],
           metric: str = "validation accuracy") -> str | None:
    """Which labelled setting won and by how much over the runner-up; "within noise" when the lead is
    not larger than the noise. ``ranked`` holds (label, accuracy as a fraction), best first.

    ``noise_`` is one Noise for every comparison, or a function of the other label giving the noise of
    the best against it (runs with their own measured spreads: the larger of the pair's)."""
    ranked = [(label, float(value)) for label, value in ranked if is_finite(as_number(value))]
    if not ranked:
        return None
    against = noise_ if callable(noise_) else (lambda label: noise_)
    best_label, best = ranked[0]
    if len(ranked) == 1:
        return f"The only setting, {best_label}, reached {pct(best)} % {metric}."
    second_label, second = ranked[1]
    lead = points(best, second)
    # A win needs every other label clear of the best by its own noise, not only the runner-up.
    tied = [(label, points(best, value)) for label, value in ranked[1:]
            if not against(label).separates(points(best, value))]
    if not tied:
        return (f"{_capital(best_label)} won with {pct(best)} % {metric}, ahead of the runner-up "
                f"({second_label}, {pct(second)} %) by {gap_words(lead, against(second_label))}.")
    if len(tied) == 1:
        label, gap = tied[0]
        return (f"No single winner: {best_label} reached the highest {metric} ({pct(best)} %), but "
                f"{label} is {gap_words(gap, against(label))}.")
    farthest_label, farthest = tied[-1]
    noise_words = max((against(label) for label, _ in tied), key=lambda n: n.points or 0.0)
    return (f"No single winner: {best_label} reached the highest {metric} ({pct(best)} %), but "
            f"{_listing([label for label, _ in tied])} are within noise of it: at most {farthest:.2f} points "
            f"below, not more than {noise_words.points:.2f} points, {noise_words.words}.")


def trend(pairs: Sequence[tuple[Any, float]], name: str, noise_: Noise, metric: str = "validation accuracy") -> str | None:
    """Whether ``metric`` rises or falls with ``name`` at every step (a step counts only when it is
    larger than the noise), or where it peaks. ``pairs`` are (value of name, accuracy), any order."""
    pairs = sorted(((x, float(y)) for x, y in pairs if is_finite(as_number(x)) and is_finite(as_number(y))),
                   key=lambda p: p[0])
    if len(pairs) < 2:
        return None
    steps = [points(b[1], a[1]) for a, b in zip(pairs, pairs[1:])]
    signs = [0 if not noise_.separates(s) else (1 if s > 0 else -1) for s in steps]
    path = " → ".join(f"{fmt(x)}: {pct(y)} %" for x, y in pairs)
    if all(s == 0 for s in signs):
        return f"{_capital(metric)} does not change with {name} beyond noise ({path}; {noise_.words})."
    if all(s >= 0 for s in signs):
        flat = " (some steps within noise)" if 0 in signs else ""
        return f"{_capital(metric)} rises with {name}{flat}: {path}."
    if all(s <= 0 for s in signs):
        flat = " (some steps within noise)" if 0 in signs else ""
        return f"{_capital(metric)} falls as {name} grows{flat}: {path}."
    peak_x, peak_y = max(pairs, key=lambda p: p[1])
    return f"The effect of {name} is not monotonic: {metric} peaks at {name} = {fmt(peak_x)} ({pct(peak_y)} %); {path}."


def known_causes(run: Mapping[str, Any] | None, *, epochs: Any = None, seed_epochs: Any = None,
                 extra: Iterable[str] = ()) -> list[str]:
    """What the run knows makes its numbers differ from the seed's, in words."""
    run = run or {}
    dataset = run.get("dataset") or {}
    causes = []
    profile = run.get("profile")
    if profile and profile != "full":
        causes.append(f"the {profile} profile (its own data sizes, epochs and grids, not the seed's settings)")
    if dataset.get("requested") and dataset.get("name") and dataset["requested"] != dataset["name"]:
        causes.append(f"the {dataset['name']} fallback (ran on {dataset['name']}, not {dataset['requested']})")
    elif dataset.get("fallback_banner"):      # same data, a substitute elsewhere (q10's offline weights)
        causes.append(str(dataset["fallback_banner"]).rstrip("."))
    notes = " ".join(str(n) for n in dataset.get("notes") or [])
    train = split_size(run, "train")
    if train and any(word in notes for word in ("subset", "missing", "built from", "first ", "capped")):
        causes.append(f"a data subset ({thousands(train)} training images)")
    ours, seed = as_number(epochs), as_number(seed_epochs)
    if is_finite(ours) and is_finite(seed) and ours < seed:
        causes.append(f"fewer epochs ({fmt(ours)} against the seed's {fmt(seed)})")
    causes.extend(extra)
    return causes


def against_seed(what: str, ours: Any, seed: Any, run: Mapping[str, Any] | None, noise_: Noise | None = None,
                 causes: Sequence[str] | None = None) -> str | None:
    """Our accuracy beside the seed's: close (within SEED_TOLERANCE points or the noise) or not, and then
    the causes the run knows about. None when either number is missing."""
    ours, seed = as_number(ours), as_number(seed)
    if not (is_finite(ours) and is_finite(seed)):
        return None
    gap = points(ours, seed)
    tolerance = max(SEED_TOLERANCE, noise_.points or 0.0) if noise_ else SEED_TOLERANCE
    if abs(gap) <= tolerance:
        return (f"Our {what} ({pct(ours)} %) is within {tolerance:.2f} points of the seed's ({pct(seed)} %): "
                f"the seed's result is reproduced.")
    causes = known_causes(run) if causes is None else list(causes)
    why = ("; known causes: " + "; ".join(causes)) if causes else \
        "; the run records no cause (same profile, data and epochs as the seed's): it is a real difference"
    side = "below" if gap < 0 else "above"
    return (f"Our {what} ({pct(ours)} %) is {abs(gap):.2f} points {side} the seed's ({pct(seed)} %), more than the "
            f"{tolerance:.2f}-point tolerance{why}.")


def ranking_agreement(ours: Sequence[str], seed: Sequence[str]) -> str | None:
    """Whether our order (best first) of the labels the seed ranks matches the seed's order."""
    shared = [label for label in seed if label in ours]
    if len(shared) < 2:
        return None
    mine = [label for label in ours if label in shared]
    if mine == shared:
        return f"Our ranking matches the seed's: {' > '.join(mine)}."
    return f"Our ranking differs from the seed's: ours {' > '.join(mine)}, the seed's {' > '.join(shared)}."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listing(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


__all__ = ["Noise", "SEED_TOLERANCE", "split_size", "binomial_se_points", "noise", "points", "gap_words",
           "winner", "trend", "known_causes", "against_seed", "ranking_agreement"]
