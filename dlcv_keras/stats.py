"""Statistics for comparing classifiers on the same test images, and for accuracies against chance.

Two models scored on the same images are compared image by image (a paired test), never as two
independent accuracies: most images are right (or wrong) for both, and only the images they
disagree on carry evidence.

- One model against one model: McNemar's exact test. Of the ``b`` images only A gets right and the
  ``c`` only B gets right, under "no difference" each is equally likely to fall either way, so
  ``b ~ Binomial(b + c, 1/2)``. The interval for the difference in accuracy is the Wald interval for
  paired proportions (Agresti, *Categorical Data Analysis*, 10.1).
- Runs repeated from several seeds: a paired bootstrap that resamples the images and, inside each
  replicate, each side's seeds; so the interval holds both the test set's sampling and the
  seed-to-seed spread of training.
- One accuracy against chance: an exact one-sided binomial test and a Clopper-Pearson interval.

``ALPHA`` is the one significance level every verdict uses; ``MARGIN_POINTS`` the one margin a
"no worse than" claim allows. Pure functions of arrays: numpy and scipy only, no Keras.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

ALPHA = 0.05            # two-sided: "A beats B" needs A ahead and p < ALPHA
CONFIDENCE = 0.95       # every interval we print (1 - ALPHA)
MARGIN_POINTS = 1.0     # "A is no worse than B": the interval's lower end stays above -1 point
BOOTSTRAP_REPLICATES = 10_000
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of A against B on ``n`` images; differences in percentage points, A minus B."""
    test: str               # "McNemar's exact test" or "paired bootstrap (images and seeds)"
    n: int                  # images
    accuracy_a: float       # fractions (a mean over seeds for repeated runs)
    accuracy_b: float
    difference: float       # points
    low: float              # the 95 % interval of the difference, points
    high: float
    p_better: float         # one-sided p of "A is better than B"
    p_worse: float          # one-sided p of "A is worse than B"
    only_a: int | None = None   # McNemar: images only A got right
    only_b: int | None = None
    seeds_a: int = 1
    seeds_b: int = 1

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_better, self.p_worse))

    def significant(self) -> bool:
        """A and B differ at ``ALPHA`` (two-sided)."""
        return self.p_two_sided < ALPHA

    def as_dict(self) -> dict:
        return {**asdict(self), "p_two_sided": self.p_two_sided}

    def words(self) -> str:
        """"+1.50 points (95 % CI +0.61 to +2.39), McNemar's exact test p = 0.0012; 60 vs 30 images only one of
        them got right, of 2,000" (p two-sided)."""
        detail = (f"; {self.only_a} vs {self.only_b} images only one of them got right, of {self.n:,}"
                  if self.only_a is not None else f"; {self.n:,} images, {self.seeds_a} vs {self.seeds_b} seeds")
        return (f"{self.difference:+.2f} points (95 % CI {self.low:+.2f} to {self.high:+.2f}), {self.test} "
                f"{format_p(self.p_two_sided)}{detail}")


def format_p(p: float) -> str:
    """"p = 0.032", "p = 1.2e-04", "p < 1e-6" (an exact test's tiny p is not worth more digits)."""
    if not math.isfinite(p):
        return "p not computed"
    if p < 1e-6:
        return "p < 1e-6"
    if p < 0.001:
        return f"p = {p:.1e}"
    return f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _as_matrix(correct) -> np.ndarray:
    """Correctness as (seeds, images) of 0/1: one model's vector is one row."""
    matrix = np.asarray(correct, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[1] == 0 or matrix.shape[0] == 0:
        raise ValueError(f"correctness must be a non-empty vector or (seeds, images) matrix, got shape {matrix.shape}")
    return matrix


def compare(correct_a, correct_b, *, seed: int = 0, replicates: int = BOOTSTRAP_REPLICATES) -> Comparison:
    """A against B on the same images. ``correct_*``: 0/1 per image, one row per seed for repeated runs.

    One model a side: McNemar's exact test; several seeds on either side: the paired bootstrap."""
    a, b = _as_matrix(correct_a), _as_matrix(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A and B must be scored on the same images, got {a.shape[1]} and {b.shape[1]}")
    if a.shape[0] == 1 and b.shape[0] == 1:
        return mcnemar(a[0], b[0])
    return paired_bootstrap(a, b, seed=seed, replicates=replicates)


def mcnemar(correct_a, correct_b) -> Comparison:
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n = len(a)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    discordant = only_a + only_b
    if discordant:
        p_better = binomtest(only_a, discordant, 0.5, alternative="greater").pvalue
        p_worse = binomtest(only_a, discordant, 0.5, alternative="less").pvalue
    else:
        p_better = p_worse = 1.0
    difference = (only_a - only_b) / n
    se = math.sqrt(max(discordant - (only_a - only_b) ** 2 / n, 0.0)) / n
    return Comparison("McNemar's exact test", n, float(a.mean()), float(b.mean()), 100 * difference,
                      100 * (difference - Z95 * se), 100 * (difference + Z95 * se), float(p_better), float(p_worse),
                      only_a=only_a, only_b=only_b)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, seed: int = 0,
                     replicates: int = BOOTSTRAP_REPLICATES) -> Comparison:
    """Resample images (the same ones for both sides) and each side's seeds, ``replicates`` times.

    The one-sided p of "A better" is the share of replicates in which A is not ahead (with the
    usual +1 so that it is never 0)."""
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    observed = a.mean() - b.mean()
    differences = np.empty(replicates)
    for i in range(replicates):
        images = rng.integers(0, n, n)
        rows_a = rng.integers(0, a.shape[0], a.shape[0])
        rows_b = rng.integers(0, b.shape[0], b.shape[0])
        per_image = a[rows_a].mean(axis=0) - b[rows_b].mean(axis=0)
        differences[i] = per_image[images].mean()
    low, high = np.quantile(differences, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    p_better = (np.sum(differences <= 0) + 1) / (replicates + 1)
    p_worse = (np.sum(differences >= 0) + 1) / (replicates + 1)
    return Comparison("paired bootstrap over images and seeds", n, float(a.mean()), float(b.mean()),
                      100 * float(observed), 100 * float(low), 100 * float(high), float(p_better), float(p_worse),
                      seeds_a=a.shape[0], seeds_b=b.shape[0])


@dataclass(frozen=True)
class ChanceTest:
    """An accuracy against chance on ``n`` images (``chance``: what guessing without looking at an image scores,
    ``against_chance``)."""
    n: int
    correct: int
    chance: float
    low: float              # Clopper-Pearson 95 % interval of the accuracy, fraction
    high: float
    p_above: float          # one-sided exact binomial p of "better than chance"

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def above_chance(self) -> bool:
        return self.p_above < ALPHA

    def as_dict(self) -> dict:
        return {**asdict(self), "accuracy": self.accuracy}

    def words(self) -> str:
        return (f"{100 * self.accuracy:.2f} % of {self.n:,} images (95 % CI {100 * self.low:.2f} to "
                f"{100 * self.high:.2f} %; chance {100 * self.chance:.2f} %, exact binomial test {format_p(self.p_above)})")


def against_chance(correct: int, n: int, classes: int, chance: float | None = None) -> ChanceTest:
    """``chance``: the accuracy of a classifier that does not look at the image; 1 / ``classes`` unless
    given (the most common class's share of unbalanced test labels, ``chance_level``)."""
    from scipy.stats import binomtest

    if n <= 0 or not 0 <= correct <= n or classes < 2:
        raise ValueError(f"need 0 <= correct <= n, n > 0 and classes >= 2, got correct={correct}, n={n}, "
                         f"classes={classes}")
    chance = 1.0 / classes if chance is None else chance
    if not 0 < chance < 1:
        raise ValueError(f"chance must be in (0, 1), got {chance!r}")
    result = binomtest(int(correct), int(n), chance, alternative="greater")
    interval = binomtest(int(correct), int(n), chance).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return ChanceTest(int(n), int(correct), chance, float(interval.low), float(interval.high), float(result.pvalue))


def chance_level(labels, classes: int) -> float:
    """What always guessing the most common class scores on ``labels`` (at least 1 / ``classes``): a net
    that learned only the class frequencies (its output biases) reaches it without looking at an image."""
    return chance_of_counts(np.bincount(np.asarray(labels, np.int64).ravel(), minlength=classes), classes)


def chance_of_counts(counts: Sequence[int], classes: int) -> float:
    """``chance_level`` from the images of each class (run.json's per-class split counts)."""
    counts = [int(c) for c in counts]
    return max(1.0 / classes, max(counts, default=0) / max(sum(counts), 1))


def binomial_se_points(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` independent images, in points."""
    p = min(max(float(accuracy), 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / n)


def two_accuracies_margin(accuracy: float, n: int) -> float:
    """How far apart, in points, two accuracies measured on ``n`` images each (near ``accuracy``) must be to
    differ at ``ALPHA``: the 95 % margin of a two-sided two-proportion z-test, ``Z95 * sqrt(2 p (1 - p) / n)``.
    Conservative for two models (or two epochs) scored on the same images, whose errors overlap."""
    return Z95 * math.sqrt(2) * binomial_se_points(accuracy, n)


def mean_half_width(values: Sequence[float]) -> float | None:
    """The half-width of the 95 % interval of the mean of ``values`` (one per seed): Student's t with
    k - 1 degrees of freedom times the standard error; None for fewer than two values."""
    from scipy.stats import t

    mean, sd = mean_and_sd(values)
    if sd is None:
        return None
    k = len(values)
    return float(t.ppf((1 + CONFIDENCE) / 2, k - 1)) * sd / math.sqrt(k)


def mean_and_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for one value)."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
