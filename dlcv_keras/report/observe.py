"""Observations: sentences computed from stored numbers by rules, never canned text.

Every experiment kind's view may return ``"observations": [sentence, ...]``; the report ends the
section with them. The rules shared by every kind live here, one each:

- **Two models scored on the same test images** (each stored its predicted class per image,
  predictions.npz) are compared image by image: McNemar's exact test, or with repeated seeds the
  paired bootstrap over images and seeds (``dlcv_keras.stats``). The sentence gives the difference,
  its 95 % interval and p (``paired_words``); a run of repeats is shown as mean ± sd over its seeds.
- **Two accuracies with no per-image predictions** (validation accuracies, a training accuracy beside
  a test accuracy, two classes) differ only beyond the 95 % margin of a difference of two independent
  binomial accuracies, ``Z95 * sqrt(2 p (1 - p) / n)`` at their mean p: a two-sided two-proportion
  z-test at ``stats.ALPHA``, conservative for two models scored on the same images (``noise``,
  ``gap_words``). Smaller differences are "within noise", never a win. Runs of repeats with a
  measured spread and no predictions: the larger standard deviation.
- **A winner chosen as the best of k on validation** is never called significant on that same
  validation: ``best_of`` says it had the highest validation accuracy of the k trials and by how much;
  where the trials were also scored on the test split the view compares it with the runner-up there
  (``paired_words``).
- **A model at chance** (not above its split's most common class's share by the exact binomial test,
  ``chance_test``, as the lessons judge it) is said to be at chance first, and no winner, trend or gap is read
  from its numbers.
- **Trends** (``trend``): each step between neighbouring values is up, down or flat by the rules
  above (a paired test when the view has one per step); "rises" or "falls" only when every step does,
  otherwise the shape is said piece by piece ("rises from 1 to 2, then flat within noise to 4") with
  where it is highest.
- **Against the seed's number** (``against_seed``): one tolerance, ``SEED_TOLERANCE`` = 2 percentage
  points. "Reproduced" only when ours is within it *and* the run used the seed's settings: the
  ``full`` profile, the seed's dataset (no fallback, subset or substitute), the epochs and learning
  rate the seed's row names, and no setting the seed leaves unstated (a reference's ``"unstated"``,
  where ours are our own choice); ``known_causes`` finds what differs. Within the tolerance
  otherwise: "consistent with the seed's", followed by why it is not a reproduction. Beyond it: the gap
  and the causes the run knows about. Either way, when our number alone is less certain than the
  tolerance (a small split), the sentence says by how much.
- **Our order against the seed's** (``ranking_agreement``): "matches" or "differs" only where our two
  numbers are apart beyond noise (a paired test or the margin); otherwise the order is within noise and
  the seed's is neither confirmed nor contradicted.
- **Stale sections** (a summary an earlier run wrote, ``is_stale``) are not observed at all: their
  numbers are compared with nothing of this run's.

Pure functions of plain values: no files read, no Keras, no matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from dlcv_keras.report.format import as_number, fmt, is_finite, pct, thousands

# The one tolerance for "our number against the seed's", in percentage points (see the module's docstring:
# within it and on the seed's settings is "reproduced", within it otherwise "consistent with the seed's").
SEED_TOLERANCE = 2.0
Z95 = 1.959963984540054      # the two-sided 95 % normal quantile (stats.ALPHA = 0.05)
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class Noise:
    """How far apart two accuracies must be, in percentage points, to count as different."""
    points: float | None
    words: str            # what the margin is: "the 95 % margin of a difference of two accuracies on 1,600 ..."
    single: float | None = None   # the 95 % half-width of one accuracy on the split alone, points
    images: str = ""              # what that is measured on: "on 1,600 validation images"

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


def split_class_counts(run: Mapping[str, Any] | None, split: str) -> list[int] | None:
    """Images of each class in ``split`` (run.json's dataset "class_counts"), None when not stored."""
    counts = (((run or {}).get("dataset") or {}).get("class_counts") or {}).get(split)
    if not isinstance(counts, list) or len(counts) != class_count(run):
        return None
    numbers = [as_number(c) for c in counts]
    return [int(c) for c in numbers] if all(is_finite(c) and c >= 0 for c in numbers) and sum(numbers) else None


def split_chance(run: Mapping[str, Any] | None, split: str) -> float | None:
    """What always guessing ``split``'s most common class scores: ``stats.chance_level``'s rule, the one the
    lessons use, on run.json's per-class counts of the split (a stratified subset of it, a search's smaller
    validation split, keeps those shares). A run that stored no such counts (written before they were
    recorded, or a split run.json does not list) is judged against 1 / classes, the same on balanced labels."""
    from dlcv_keras import stats

    classes, counts = class_count(run), split_class_counts(run, split)
    if not classes:
        return None
    return 1.0 / classes if counts is None else stats.chance_of_counts(counts, classes)


def chance_test(run: Mapping[str, Any] | None, split: str, accuracy: Any, n: int | None = None):
    """``stats.against_chance`` for an accuracy (a fraction) measured on ``split`` (``n`` images, else run.json's
    size), against the split's ``split_chance``; None when a number is missing."""
    from dlcv_keras import stats

    accuracy, n, classes = as_number(accuracy), n or split_size(run, split), class_count(run)
    if not (is_finite(accuracy) and n and classes):
        return None
    return stats.against_chance(min(n, max(0, round(accuracy * n))), n, classes, split_chance(run, split))


def at_chance(who: str, run: Mapping[str, Any] | None, split: str, accuracy: Any, n: int | None = None) -> str | None:
    """"<who> is at chance on the <split> split: ..." when the accuracy is not above chance, else None."""
    test = chance_test(run, split, accuracy, n)
    if test is None or test.above_chance():
        return None
    return f"{_capital(who)} is at chance on the {SPLIT_WORDS.get(split, split)} split: {test.words()}."


# The first cause of a gap to the seed's number when the model is at chance: it did not learn, whatever else differs.
DID_NOT_LEARN = "the model did not learn (it is at chance)"


def binomial_se_points(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` independent images, in points (``stats``'s)."""
    from dlcv_keras import stats

    return stats.binomial_se_points(accuracy, n)


def noise(run: Mapping[str, Any] | None, split: str, accuracies: Iterable[Any],
          spread_points: Iterable[Any] = (), n: int | None = None) -> Noise:
    """The margin two ``accuracies`` (fractions) measured on ``split`` must differ by.

    ``spread_points`` are measured run-to-run standard deviations (points); when any is given the
    largest is the margin. Otherwise the 95 % margin of a difference of two independent binomial
    accuracies at their mean on the split's size (``n`` overrides run.json's size, e.g. for a search on
    a training fraction)."""
    spreads = [float(s) for s in spread_points if is_finite(as_number(s))]
    if spreads:
        return Noise(max(spreads), "the run-to-run standard deviation we measured")
    values = [float(a) for a in accuracies if is_finite(as_number(a))]
    n = n or split_size(run, split)
    if not values or not n:
        return Noise(None, "no measure of noise (the split size is not stored)")
    from dlcv_keras import stats

    mean = sum(values) / len(values)
    images = f"on {thousands(n)} {SPLIT_WORDS.get(split, split)} images"
    return Noise(stats.two_accuracies_margin(mean, n),
                 f"the 95 % margin of a two-proportion z-test for two accuracies {images}",
                 single=Z95 * binomial_se_points(mean, n), images=images)


def points(a: float, b: float) -> float:
    return 100 * (float(a) - float(b))


def gap_words(difference_points: float, noise_: Noise) -> str:
    """"2.50 points, beyond the 2.33-point 95 % margin ..." or "within noise: 0.40 points apart, inside ..."."""
    size = f"{abs(difference_points):.2f} points"
    if noise_.points is None:
        return f"{size} ({noise_.words})"
    if noise_.separates(difference_points):
        return f"{size}, more than {noise_.points:.2f} points, {noise_.words}"
    return f"within noise: {size} apart, not more than {noise_.points:.2f} points, {noise_.words}"


# -- two models on the same images ---------------------------------------------------------------
def accuracy_words(accuracy: float, sd: float | None = None, seeds: int = 1, say_seeds: bool = True) -> str:
    """"91.20 %" or, for a run of repeats, "91.20 ± 0.45 % (mean ± sd of 3 seeds)" (``sd`` a fraction)."""
    if seeds > 1 and sd is not None and is_finite(sd):
        return f"{pct(accuracy)} ± {100 * sd:.2f} %" + (f" (mean ± sd of {seeds} seeds)" if say_seeds else "")
    return f"{pct(accuracy)} %"


def paired_words(label_a: str, label_b: str, comparison, sd_a: float | None = None, sd_b: float | None = None,
                 split: str = "test") -> str:
    """A against B on the same images, from a ``stats.Comparison``: both accuracies (mean ± sd for repeats),
    the difference with its interval and p, and what that says ("A is ahead", "no significant difference")."""
    same = comparison.seeds_a == comparison.seeds_b > 1
    a = accuracy_words(comparison.accuracy_a, sd_a, comparison.seeds_a, not same)
    b = accuracy_words(comparison.accuracy_b, sd_b, comparison.seeds_b, not same)
    seeds = f" (mean ± sd of {comparison.seeds_a} seeds each)" if same else ""
    if comparison.significant():
        verdict = f"{label_a if comparison.difference > 0 else label_b} is ahead"
    else:
        verdict = "no significant difference"
    return (f"{label_a} {a} against {label_b} {b}{seeds} on the same {thousands(comparison.n)} "
            f"{SPLIT_WORDS.get(split, split)} images: {comparison.words()}: {verdict}")


def best_of(ranked: Sequence[tuple[str, float]], metric: str = "validation accuracy", n: int | None = None,
            noun: str = "trials") -> str | None:
    """The best of ``ranked`` (label, accuracy as a fraction; best first), chosen on the split ``metric`` is
    measured on: which had the highest, and by how much over the runner-up. Never a significance claim: the
    best of k on some images is expected to lead on those images by chance alone."""
    ranked = [(label, float(value)) for label, value in ranked if is_finite(as_number(value))]
    if not ranked:
        return None
    best_label, best = ranked[0]
    if len(ranked) == 1:     # its settings are already said above its table: a label of "" leaves them there
        return f"The only trained setting{f', {best_label},' if best_label else ''} reached {pct(best)} % {metric}."
    k = len(ranked)
    second_label, second = ranked[1]
    lead = points(best, second)
    if pct(best) == pct(second):
        return (f"{_capital(best_label)} and {second_label} tie for the highest {metric} of the {k} {noun} "
                f"({pct(best)} %).")
    images = f" ({round(lead * n / 100):,} of {thousands(n)} images)" if n else ""
    return (f"{_capital(best_label)} had the highest {metric} of the {k} {noun} ({pct(best)} %), {lead:.2f} "
            f"points{images} above the runner-up ({second_label}, {pct(second)} %). It was chosen as the best of "
            f"{k} on these same images, so its lead there is no evidence that it is better.")


def winner(ranked: Sequence[tuple[str, float]], noise_: Noise | Callable[[str], Noise],
           metric: str = "validation accuracy") -> str | None:
    """Which of several *declared* settings (not chosen among on these images) won and by how much over the
    runner-up; "no single winner" when the lead is within noise. ``ranked`` holds (label, accuracy as a
    fraction), best first. For settings scored on the same test images with stored predictions the views
    use ``paired_words`` instead; this is the rule without them.

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


# -- trends --------------------------------------------------------------------------------------
PAIRED_STEPS = "each step by a paired test on the same test images at p < 0.05"


def trend(pairs: Sequence[tuple[Any, float]], name: str, noise_: Noise, metric: str = "validation accuracy",
          steps: Sequence[Any] | None = None) -> str | None:
    """How ``metric`` moves as ``name`` grows. ``pairs`` are (value of name, accuracy), any order. Each step
    between neighbouring values is up, down or flat: by its paired comparison when ``steps`` gives one per
    step in ascending order of ``name`` (``stats.Comparison`` of the larger value against the smaller),
    else by ``noise_``. "Rises" or "falls" is said only when every step does; otherwise the shape is said
    piece by piece, with where the metric is highest."""
    pairs = sorted(((x, float(y)) for x, y in pairs if is_finite(as_number(x)) and is_finite(as_number(y))),
                   key=lambda p: p[0])
    if len(pairs) < 2:
        return None
    if steps is not None and len(steps) == len(pairs) - 1:
        signs = [0 if not s.significant() else (1 if s.difference > 0 else -1) for s in steps]
        basis = PAIRED_STEPS
    else:
        signs = [0 if not noise_.separates(points(b[1], a[1])) else (1 if b[1] > a[1] else -1)
                 for a, b in zip(pairs, pairs[1:])]
        basis = (f"a step counts when it exceeds {noise_.points:.2f} points, {noise_.words}" if noise_.points else
                 f"no step can be weighed: {noise_.words}")
    path = " → ".join(f"{fmt(x)}: {pct(y)} %" for x, y in pairs)
    metric_ = _capital(metric)
    if all(s == 0 for s in signs):
        return f"{metric_} does not change with {name} beyond noise ({path}; {basis})."
    if len(signs) > 1 and all(s == 1 for s in signs):
        return f"{metric_} rises with {name} at every step: {path} ({basis})."
    if len(signs) > 1 and all(s == -1 for s in signs):
        return f"{metric_} falls at every step as {name} grows: {path} ({basis})."
    if len(signs) == 1:        # one step: said as a step, not as a trend
        return f"{metric_} {_piece(pairs[0], pairs[1], signs[0], 1, name, None)}; {basis}."
    pieces, start = [], 0
    for i in range(1, len(signs) + 1):
        if i == len(signs) or signs[i] != signs[start]:
            pieces.append(_piece(pairs[start], pairs[i], signs[start], i - start, name,
                                 noise_ if steps is None else None))
            start = i
    (peak_x, peak_y), (next_x, next_y) = sorted(pairs, key=lambda p: -p[1])[:2]
    # A peak no further above the runner-up than the noise is no peak: both are named.
    peak = (f"it is highest at {name} = {fmt(peak_x)} ({pct(peak_y)} %)" if steps is not None
            or noise_.separates(points(peak_y, next_y)) else
            f"its highest, at {name} = {fmt(peak_x)} ({pct(peak_y)} %), is within noise of {name} = {fmt(next_x)} "
            f"({pct(next_y)} %)")
    return f"{metric_} {', then '.join(pieces)}; {peak}. {_capital(basis)}."


def _piece(first: tuple[Any, float], last: tuple[Any, float], sign: int, steps: int, name: str,
           noise_: Noise | None) -> str:
    span = f"from {name} = {fmt(first[0])} to {fmt(last[0])} ({pct(first[1])} → {pct(last[1])} %)"
    if sign > 0:
        return f"rises {span}"
    if sign < 0:
        return f"falls {span}"
    # Several steps each within noise can add up to more than it: say so rather than "flat".
    if steps > 1 and noise_ is not None and noise_.separates(points(last[1], first[1])):
        return f"drifts {'up' if last[1] > first[1] else 'down'} in steps each within noise {span}"
    return f"stays flat within noise {span}"


# -- against the seed ----------------------------------------------------------------------------
def known_causes(run: Mapping[str, Any] | None, *, epochs: Any = None, seed_epochs: Any = None,
                 lr: Any = None, seed_lr: Any = None, unstated: Iterable[str] | None = (),
                 extra: Iterable[str] = ()) -> list[str]:
    """What makes the run not the seed's setup, in words: a profile other than ``full``, a fallback or
    substitute dataset, a data subset, other epochs or another learning rate than the seed's row names,
    settings the seed does not give (``unstated``, a reference's ``"unstated"``: ours are chosen, so they
    cannot be the seed's), and ``extra`` (substitutes the experiment reports). Empty: the run is the
    seed's setup."""
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
    for ours, seed, words in ((epochs, seed_epochs, "epochs"), (lr, seed_lr, "learning rate")):
        ours, seed = as_number(ours), as_number(seed)
        if is_finite(ours) and is_finite(seed) and not math.isclose(ours, seed, rel_tol=1e-9):
            more = ("fewer" if ours < seed else "more") if words == "epochs" else "another"
            # Epochs over several seeds are a mean: one decimal, said to be one.
            ours_words = f"{ours:.1f} on average" if words == "epochs" and not float(ours).is_integer() else fmt(ours)
            causes.append(f"{more} {words} ({ours_words} against the seed's {fmt(seed)})")
    unstated = [str(name) for name in unstated or ()]
    if unstated:
        causes.append(f"settings the seed does not give ({_listing(unstated)}: ours are our own choice)")
    causes.extend(extra)
    return causes


def against_seed(what: str, ours: Any, seed: Any, run: Mapping[str, Any] | None, noise_: Noise | None = None,
                 causes: Sequence[str] | None = None) -> str | None:
    """Our accuracy beside the seed's, by the one rule (SEED_TOLERANCE): reproduced (within it, on the seed's
    settings), consistent with the seed's (within it, on other settings: the causes), or the gap and the
    causes. ``causes``: what makes the run not the seed's setup (``known_causes``; None: from run.json
    alone). ``noise_``: the split our number was measured on, to say when it alone is wider than the
    tolerance. None when either number is missing."""
    ours, seed = as_number(ours), as_number(seed)
    if not (is_finite(ours) and is_finite(seed)):
        return None
    causes = known_causes(run) if causes is None else list(causes)
    gap = points(ours, seed)
    start = f"Our {what} ({pct(ours)} %)"
    # Our number alone may be less certain than the tolerance (a small split): then "within it" says little.
    wide = ""
    if noise_ is not None and noise_.single is not None and noise_.single > SEED_TOLERANCE:
        wide = f" (our number alone is uncertain by ±{noise_.single:.2f} points, 95 %, {noise_.images})"
    if abs(gap) <= SEED_TOLERANCE:
        if not causes:
            return (f"{start} is within {SEED_TOLERANCE:g} points of the seed's ({pct(seed)} %), on the seed's "
                    f"settings: the seed's result is reproduced{wide}.")
        return (f"{start} is consistent with the seed's ({pct(seed)} %): {abs(gap):.2f} points apart, within the "
                f"{SEED_TOLERANCE:g}-point tolerance{wide}, but not a reproduction, since the run is not the seed's "
                f"setup ({'; '.join(causes)}).")
    why = ("; known causes: " + "; ".join(causes)) if causes else \
        "; the run records no cause (the seed's profile, data, epochs and learning rate): it is a real difference"
    side = "below" if gap < 0 else "above"
    return (f"{start} is {abs(gap):.2f} points {side} the seed's ({pct(seed)} %), more than the "
            f"{SEED_TOLERANCE:g}-point tolerance{wide}{why}.")


def ranking_agreement(ours: Sequence[tuple[str, float]], seed: Sequence[tuple[str, float]],
                      higher: str = "", apart: Callable[[str, str], bool] | None = None) -> str | None:
    """Whether our order of the labels the seed ranks matches the seed's. Each side is (label, number)
    pairs; the order is always read from the numbers, largest first, and written with ">" (so the sign
    follows the numbers whatever order the pairs come in). ``higher`` names what the numbers are
    ("final L2 norm") when it is not an accuracy.

    ``apart(a, b)``: whether our numbers for labels a and b differ beyond noise (a paired test on the same
    images, or the margin of two accuracies); None only for numbers with no sampling noise. A pair the seed
    orders is then confirmed or contradicted only where ours are apart; where they are not, our order there is
    within noise and says nothing about the seed's."""
    seed_value = {label: float(v) for label, v in seed if is_finite(as_number(v))}
    ours_value = {label: float(v) for label, v in ours if is_finite(as_number(v))}
    shared = [label for label in seed_value if label in ours_value]
    if len(shared) < 2:
        return None

    def order(values):
        ranked = sorted(shared, key=lambda label: -values[label])
        return "".join(label if i == 0 else f" {'=' if values[ranked[i - 1]] == values[label] else '>'} {label}"
                       for i, label in enumerate(ranked))

    mine, theirs = order(ours_value), order(seed_value)
    by = f" (by {higher}, largest first)" if higher else ""
    ranked = sorted(shared, key=lambda label: -seed_value[label])
    pairs = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1:] if seed_value[a] > seed_value[b]]
    if apart is None or not pairs:
        if mine == theirs:
            return f"Our ranking matches the seed's{by}: {mine}."
        return f"Our ranking differs from the seed's{by}: ours {mine}, the seed's {theirs}."
    separated = [(a, b) for a, b in pairs if ours_value[a] != ours_value[b] and apart(a, b)]
    against = [f"{b} > {a}" for a, b in separated if ours_value[b] > ours_value[a]]
    both = f"ours {mine}, the seed's {theirs}"
    if against:
        if len(pairs) == 1:
            return f"Our ranking differs from the seed's{by}, beyond noise: {both}."
        return f"Our ranking differs from the seed's{by}: {both}; beyond noise, ours has {_listing(against)}."
    if len(separated) == len(pairs):
        return f"Our ranking matches the seed's{by}, beyond noise: {mine}."
    if not separated:
        return (f"Our order is within noise{by}: {both}; the seed's order is neither confirmed nor "
                f"contradicted.")
    within = [f"{a} vs {b}" for a, b in pairs if (a, b) not in separated]
    return (f"Our ranking agrees with the seed's{by} where ours are apart beyond noise "
            f"({_listing([f'{a} > {b}' for a, b in separated])}); {_listing(within)} "
            f"{'is' if len(within) == 1 else 'are'} within noise: {both}.")


def is_stale(run: Mapping[str, Any] | None, summary: Mapping[str, Any] | None) -> bool:
    """A summary an earlier run wrote (its run_id is not run.json's): nothing of this run's applies to it."""
    current = (run or {}).get("run_id")
    return current is not None and (summary or {}).get("run_id") != current


STALE_WORDS = ("Not observed: these numbers are an earlier run's, so nothing here is compared with this run's "
               "settings or with the seed's.")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _listing(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


__all__ = ["Noise", "SEED_TOLERANCE", "split_size", "class_count", "chance_test", "at_chance",
           "binomial_se_points", "noise", "points", "gap_words", "accuracy_words", "paired_words", "best_of",
           "winner", "trend", "known_causes", "against_seed", "ranking_agreement", "is_stale", "STALE_WORDS",
           "DID_NOT_LEARN"]
