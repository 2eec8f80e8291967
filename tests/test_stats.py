"""dlcv_keras.stats: paired tests on the same test images, and accuracies against chance.

Each test states the number by another route (the binomial distribution written out, a
permutation of the images) or moves the inputs and checks that the answer moves with them."""

import math

import numpy as np
import pytest

from dlcv_keras import stats


def _pair(only_a: int, only_b: int, both: int, neither: int):
    """Correctness vectors with exactly these counts of (A right, B wrong), (A wrong, B right), ..."""
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    return np.array(a), np.array(b)


def _binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), written out."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_images():
    a, b = _pair(only_a=30, only_b=12, both=900, neither=58)
    found = stats.compare(a, b)
    assert found.test == "McNemar's exact test"
    assert (found.only_a, found.only_b, found.n) == (30, 12, 1000)
    assert found.p_better == pytest.approx(_binomial_tail(30, 42), rel=1e-9)
    assert found.p_two_sided == pytest.approx(2 * _binomial_tail(30, 42), rel=1e-9)
    assert found.difference == pytest.approx(1.8)
    assert found.low < 1.8 < found.high
    assert found.significant()


def test_only_the_discordant_images_count():
    """Images both models get right (or wrong) carry no evidence: adding them leaves p unchanged."""
    few = stats.compare(*_pair(20, 8, 100, 10))
    many = stats.compare(*_pair(20, 8, 5000, 400))
    assert few.p_two_sided == pytest.approx(many.p_two_sided)
    assert many.high - many.low < few.high - few.low      # the difference itself is pinned down better


def test_the_verdict_moves_with_the_numbers():
    """A lead of 30 to 12 discordant images is significant; 22 to 20 is not; 12 to 30 is the other way."""
    assert stats.compare(*_pair(30, 12, 900, 58)).significant()
    tie = stats.compare(*_pair(22, 20, 900, 58))
    assert not tie.significant() and tie.p_two_sided > 0.5
    reversed_ = stats.compare(*_pair(12, 30, 900, 58))
    assert reversed_.significant() and reversed_.difference < 0 and reversed_.p_worse < stats.ALPHA


def test_identical_models_are_not_different():
    a = np.array([1, 0, 1, 1, 0, 1])
    found = stats.compare(a, a)
    assert found.difference == 0 and found.p_two_sided == 1.0 and not found.significant()


def test_repeated_seeds_go_through_the_paired_bootstrap():
    rng = np.random.default_rng(1)
    truth = rng.random(3000)
    a = (rng.random((3, 3000)) < 0.5 + 0.45 * truth).astype(float)       # the better model, three seeds
    b = (rng.random((3, 3000)) < 0.45 + 0.45 * truth).astype(float)
    found = stats.compare(a, b, replicates=2000)
    assert found.test.startswith("paired bootstrap")
    assert (found.seeds_a, found.seeds_b) == (3, 3)
    assert found.difference == pytest.approx(100 * (a.mean() - b.mean()))
    assert found.low < found.difference < found.high
    assert found.significant() and found.p_better < stats.ALPHA
    # Swapping the sides mirrors the answer.
    mirrored = stats.compare(b, a, replicates=2000)
    assert mirrored.difference == pytest.approx(-found.difference)
    assert not (mirrored.difference > 0 and mirrored.significant())


def test_the_bootstrap_counts_the_spread_between_seeds():
    """Two seeds of A that disagree wildly make the interval wider than two seeds that agree."""
    rng = np.random.default_rng(2)
    b = (rng.random((2, 2000)) < 0.8).astype(float)
    steady = np.stack([(rng.random(2000) < 0.85)] * 2).astype(float)
    shaky = np.stack([rng.random(2000) < 0.95, rng.random(2000) < 0.75]).astype(float)
    narrow = stats.compare(steady, b, replicates=2000)
    wide = stats.compare(shaky, b, replicates=2000)
    assert (wide.high - wide.low) > 1.5 * (narrow.high - narrow.low)


def test_models_must_be_scored_on_the_same_images():
    with pytest.raises(ValueError, match="same images"):
        stats.compare(np.ones(10), np.ones(11))


def test_against_chance_is_the_exact_binomial_test():
    found = stats.against_chance(correct=60, n=100, classes=2)
    assert found.p_above == pytest.approx(sum(math.comb(100, i) for i in range(60, 101)) / 2 ** 100)
    assert found.above_chance()
    assert found.low < 0.6 < found.high
    at_chance = stats.against_chance(correct=52, n=100, classes=2)
    assert not at_chance.above_chance()
    ten_classes = stats.against_chance(correct=15, n=100, classes=10)
    assert ten_classes.chance == pytest.approx(0.1) and ten_classes.above_chance() is False
    assert stats.against_chance(correct=25, n=100, classes=10).above_chance()


@pytest.mark.parametrize("p, words", [(0.5, "p = 0.50"), (0.032, "p = 0.032"), (2.5e-4, "p = 2.5e-04"),
                                      (1e-9, "p < 1e-6")])
def test_p_values_read_as_a_reader_wants_them(p, words):
    assert stats.format_p(p) == words


def test_the_margins_of_a_gain_are_the_z_test_margin_and_the_t_interval_of_the_seeds():
    from scipy.stats import norm, t

    # Two accuracies near 80 % on 1,335 images: a difference counts beyond the two-proportion z-test's 95 % margin.
    margin = stats.two_accuracies_margin(0.8, 1335)
    assert margin == pytest.approx(100 * norm.ppf(0.975) * math.sqrt(2 * 0.8 * 0.2 / 1335))
    assert stats.two_accuracies_margin(0.8, 4 * 1335) == pytest.approx(margin / 2)      # four times the images
    # Three seeds' gains: the 95 % interval of their mean, as scipy's t interval states it.
    gains = [2.92, 3.52, 2.17]
    low, high = t.interval(0.95, len(gains) - 1, loc=np.mean(gains), scale=np.std(gains, ddof=1) / math.sqrt(3))
    assert stats.mean_half_width(gains) == pytest.approx((high - low) / 2)
    assert stats.mean_half_width([2.92, 2.92, 2.92]) == 0.0 and stats.mean_half_width([2.92]) is None
    assert stats.mean_half_width([1.0, 9.0]) > stats.mean_half_width([4.9, 5.1])      # the seeds disagree more
