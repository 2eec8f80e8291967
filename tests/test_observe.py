"""The observation rules (report/observe.py) on adversarial plain values: a tie, a gap of one standard error,
a net at chance, a non-monotonic trend, an order the wrong way round, a stale section. Each verdict is
computed, so each test also perturbs the numbers and sees the sentence change. Expected values are computed
here (scipy's tests, the binomial standard error written out), not read from the module."""

import math

import numpy as np
from scipy.stats import binomtest, norm

from dlcv_keras import stats
from dlcv_keras.report import observe

RUN = {"profile": "quick", "dataset": {"name": "mnist", "requested": "mnist", "splits": {"train": 6400, "val": 1600, "test": 2000},
                                       "class_names": [str(k) for k in range(10)],
                                       "notes": ["train images missing in local IDX files: built from the test split"]}}
# The seed's setup: the full profile on the seed's dataset, whole.
FULL = {"profile": "full", "dataset": {"name": "mnist", "requested": "mnist", "splits": {"train": 48000, "val": 12000, "test": 10000},
                                       "class_names": [str(k) for k in range(10)], "notes": []}}


def se(p, n):
    """The binomial standard error of an accuracy p on n images, in points."""
    return 100 * math.sqrt(p * (1 - p) / n)


def z_test_p(a, b, n):
    """Two-sided p of a two-proportion z-test of accuracies a and b on n images each (variance at their mean)."""
    p = (a + b) / 2
    return 2 * norm.sf(abs(a - b) / math.sqrt(2 * p * (1 - p) / n))


# -- noise: the margin of a difference, not the error of one accuracy ---------------------------------
def test_the_margin_is_the_95_percent_margin_of_a_difference_of_two_accuracies():
    margin = observe.noise(RUN, "val", [0.9, 0.8])
    assert math.isclose(margin.points, 1.959963984540054 * math.sqrt(2) * se(0.85, 1600))
    assert "1,600 validation images" in margin.words and "two-proportion z-test" in margin.words
    assert observe.noise(RUN, "val", [0.9], spread_points=[0.4, 1.5]).points == 1.5
    assert observe.noise({}, "val", [0.9]).points is None
    # Separated exactly when the z-test's p is below 0.05: just inside and just outside the margin.
    for a, b in ((0.85, 0.85 - margin.points / 100 * 0.99), (0.85, 0.85 - margin.points / 100 * 1.01)):
        gap = observe.noise(RUN, "val", [a, b])
        assert gap.separates(100 * (a - b)) == (z_test_p(a, b, 1600) < stats.ALPHA)


def test_a_gap_of_one_standard_error_is_not_a_win_and_three_are():
    one = se(0.9, 2000) / 100
    words = observe.winner([("dropout", 0.9 + one / 2), ("L2", 0.9 - one / 2)],
                           observe.noise(RUN, "test", [0.9]), "test accuracy")
    assert words.startswith("No single winner: dropout reached the highest test accuracy") and "within noise" in words
    three = 3 * one
    words = observe.winner([("dropout", 0.9 + three / 2), ("L2", 0.9 - three / 2)],
                           observe.noise(RUN, "test", [0.9]), "test accuracy")
    assert words.startswith("Dropout won with") and "within noise" not in words


def test_winner_names_the_best_and_changes_when_the_numbers_swap():
    wide = observe.Noise(0.5, "test noise")
    first = observe.winner([("lr=0.1", 0.95), ("lr=0.01", 0.90)], wide)
    assert first.startswith("Lr=0.1 won with 95.00 %") and "5.00 points" in first
    swapped = observe.winner([("lr=0.01", 0.95), ("lr=0.1", 0.90)], wide)
    assert swapped.startswith("Lr=0.01 won") and "(lr=0.1, 90.00 %)" in swapped


def test_several_ties_give_the_farthest_gap_and_pair_noise_is_per_pair():
    words = observe.winner([("a", 0.900), ("b", 0.899), ("c", 0.896), ("d", 0.80)], observe.Noise(0.5, "n"))
    assert words == ("No single winner: a reached the highest validation accuracy (90.00 %), but b and c are within "
                     "noise of it: at most 0.40 points below, not more than 0.50 points, n.")
    spreads = {"b": observe.Noise(0.1, "b's spread"), "c": observe.Noise(3.0, "c's spread")}
    words = observe.winner([("a", 0.90), ("b", 0.89), ("c", 0.88)], spreads.get)
    assert words == ("No single winner: a reached the highest validation accuracy (90.00 %), but c is within noise: "
                     "2.00 points apart, not more than 3.00 points, c's spread.")


# -- a best of k chosen on validation ---------------------------------------------------------------
def test_best_of_k_says_by_how_much_and_never_that_it_won():
    ranked = [("the setting lr=0.01", 0.8737), ("the setting lr=0.1", 0.8581), ("the setting lr=0.001", 0.70)]
    words = observe.best_of(ranked, n=1600)
    assert words == ("The setting lr=0.01 had the highest validation accuracy of the 3 trials (87.37 %), 1.56 points "
                     "(25 of 1,600 images) above the runner-up (the setting lr=0.1, 85.81 %). It was chosen as the "
                     "best of 3 on these same images, so its lead there is no evidence that it is better.")
    assert "won" not in words and "significant" not in words
    # A lead of twenty points is still not called a win on the images it was chosen on.
    far = observe.best_of([("a", 0.95), ("b", 0.75)], n=1600)
    assert "20.00 points (320 of 1,600 images)" in far and "won" not in far


def test_a_tie_is_a_tie():
    assert observe.best_of([("a", 0.9), ("b", 0.9), ("c", 0.8)]) == \
        "A and b tie for the highest validation accuracy of the 3 trials (90.00 %)."
    assert observe.best_of([("a", 0.9001), ("b", 0.9)]).startswith("A had the highest")   # 90.01 against 90.00
    words = observe.winner([("a", 0.9), ("b", 0.9)], observe.noise(RUN, "test", [0.9]), "test accuracy")
    assert words.startswith("No single winner") and "0.00 points apart" in words


# -- two models on the same images: the paired test ---------------------------------------------------
def _pair(only_a, only_b, both=800, neither=200):
    """Correctness of A and B on the same images: ``only_a`` right only for A, ``only_b`` only for B."""
    a = np.r_[np.ones(both), np.ones(only_a), np.zeros(only_b), np.zeros(neither)]
    b = np.r_[np.ones(both), np.zeros(only_a), np.ones(only_b), np.zeros(neither)]
    return a, b


def test_paired_words_state_the_test_its_p_and_follow_the_discordant_images():
    a, b = _pair(60, 30)
    words = observe.paired_words("dropout", "L2", stats.compare(a, b))
    p = binomtest(60, 90, 0.5).pvalue          # two-sided McNemar, exact
    assert words.startswith(f"dropout {100 * a.mean():.2f} % against L2 {100 * b.mean():.2f} % on the same 1,090 test images: +2.75 points")
    assert "McNemar's exact test" in words and stats.format_p(p) in words and words.endswith("dropout is ahead")
    # The same accuracies reached with fewer disagreements on both sides: closer to a tie, p above 0.05.
    a, b = _pair(20, 12)
    p = binomtest(20, 32, 0.5).pvalue
    assert p > stats.ALPHA and observe.paired_words("dropout", "L2", stats.compare(a, b)).endswith("no significant difference")
    # Reversed: B is ahead.
    a, b = _pair(30, 60)
    assert observe.paired_words("dropout", "L2", stats.compare(a, b)).endswith("L2 is ahead")


def test_repeated_seeds_show_mean_and_sd_and_use_the_bootstrap():
    rng = np.random.default_rng(1)
    a = (rng.random((3, 500)) < 0.9).astype(float)
    b = (rng.random((3, 500)) < 0.8).astype(float)
    found = stats.compare(a, b)
    sd_a, sd_b = (stats.mean_and_sd(m.mean(axis=1))[1] for m in (a, b))
    words = observe.paired_words("dropout", "baseline", found, sd_a, sd_b)
    assert f"dropout {100 * a.mean():.2f} ± {100 * sd_a:.2f} % against baseline {100 * b.mean():.2f} ± " \
           f"{100 * sd_b:.2f} % (mean ± sd of 3 seeds each)" in words
    assert "paired bootstrap over images and seeds" in words and words.endswith("dropout is ahead")


# -- a net at chance -------------------------------------------------------------------------------
def test_a_net_at_chance_is_said_to_be_at_chance():
    words = observe.at_chance("the model", RUN, "test", 0.105)
    assert words.startswith("The model is at chance on the test split: 10.50 % of 2,000 images")
    assert stats.format_p(binomtest(210, 2000, 0.1, alternative="greater").pvalue) in words
    # A few points above chance on 2,000 images is not at chance.
    assert observe.at_chance("the model", RUN, "test", 0.125) is None
    assert observe.at_chance("the model", {}, "test", 0.1) is None          # no split size or classes: no test


def test_chance_is_the_most_common_class_share_of_the_split_as_the_lessons_take_it():
    """70 of 100 test images are cats: always saying "cat" scores 70 %. 72 % is far above 1 / 2 but not above
    that share, so the report says the model is at chance, as the lesson does (stats.chance_level on the test
    labels); run.json's per-class counts carry the share to the report."""
    run = {"dataset": {"class_names": ["cat", "dog"], "splits": {"train": 80, "val": 20, "test": 100},
                       "class_counts": {"train": [40, 40], "val": [10, 10], "test": [70, 30]}}}
    labels = np.array([0] * 70 + [1] * 30)
    assert observe.chance_test(run, "test", 0.72).chance == stats.chance_level(labels, 2) == 0.7
    assert stats.against_chance(72, 100, 2).above_chance()                     # 1 / classes would say it learned
    assert observe.at_chance("the model", run, "test", 0.72) == (
        f"The model is at chance on the test split: {stats.against_chance(72, 100, 2, 0.7).words()}.")
    assert observe.at_chance("the model", run, "test", 0.85) is None           # above the share: learned
    assert observe.chance_test(run, "val", 0.6).chance == 0.5                   # each split its own share
    # A run stored before the per-class counts were recorded, or counts that do not fit its classes: 1 / classes.
    older = {"dataset": {k: v for k, v in run["dataset"].items() if k != "class_counts"}}
    misfit = {"dataset": {**run["dataset"], "class_counts": {"test": [60, 30, 10]}}}
    for other in (older, misfit):
        assert observe.chance_test(other, "test", 0.72).chance == 0.5
        assert observe.at_chance("the model", other, "test", 0.72) is None


# -- trends ---------------------------------------------------------------------------------------------
def test_a_rise_then_a_plateau_is_not_called_a_rise():
    # The depth study: 33.7 -> 36.6 -> 36.1 -> 36.0, here on 10,000 validation images.
    pairs = [(1, 0.337), (2, 0.366), (3, 0.361), (4, 0.360)]
    margin = observe.noise(FULL, "test", [y for _, y in pairs])
    assert margin.separates(2.9) and not margin.separates(0.5)
    words = observe.trend(pairs, "depth", margin)
    assert "rises with depth" not in words
    # On 1,600 images even the first step is within the margin: no change is claimed at all.
    assert "does not change with depth beyond noise" in observe.trend(pairs, "depth", observe.noise(RUN, "val", [0.36]))
    assert words.startswith("Validation accuracy rises from depth = 1 to 2 (33.70 → 36.60 %), then stays flat within "
                            "noise from depth = 2 to 4 (36.60 → 36.00 %); its highest, at depth = 2 (36.60 %), is "
                            "within noise of depth = 3 (36.10 %).")
    # Every step beyond the margin: now it rises with depth.
    steep = [(1, 0.30), (2, 0.34), (3, 0.38), (4, 0.42)]
    assert observe.trend(steep, "depth", observe.noise(FULL, "test", [0.36])).startswith(
        "Validation accuracy rises with depth at every step: 1: 30.00 % → 2: 34.00 %")


def test_a_non_monotonic_trend_says_where_it_peaks():
    n = observe.Noise(1.0, "n")
    words = observe.trend([(0.001, 0.80), (0.01, 0.90), (0.1, 0.85)], "lr", n)
    assert words.startswith("Validation accuracy rises from lr = 0.001 to 0.01 (80.00 → 90.00 %), then falls from "
                            "lr = 0.01 to 0.1 (90.00 → 85.00 %); it is highest at lr = 0.01 (90.00 %).")
    assert "falls at every step" in observe.trend([(0.1, 0.8), (0.01, 0.85), (0.001, 0.9)], "lr", n)
    assert "does not change with depth beyond noise" in observe.trend([(1, 0.8), (2, 0.8005)], "depth", n)
    # One step is said as a step, not as a trend "at every step".
    assert observe.trend([(0.01, 0.2667), (0.1, 0.65)], "lr", n) == (
        "Validation accuracy rises from lr = 0.01 to 0.1 (26.67 → 65.00 %); a step counts when it exceeds 1.00 points, n.")
    # Small steps, each within the margin, that add up to more than it.
    drift = observe.trend([(1, 0.80), (2, 0.808), (3, 0.816), (4, 0.824), (5, 0.90)], "depth", n)
    assert drift.startswith("Validation accuracy drifts up in steps each within noise from depth = 1 to 4")


def test_trend_steps_by_paired_tests():
    a, b = _pair(60, 30)            # a step up, significant
    c, d = _pair(31, 30)            # a step up of one image, not
    up, flat = stats.compare(a, b), stats.compare(c, d)
    words = observe.trend([(0.1, b.mean()), (0.2, a.mean()), (0.5, a.mean() + 0.0009)], "train_fraction",
                          observe.Noise(None, "n"), "test accuracy", steps=[up, flat])
    assert words.startswith("Test accuracy rises from train_fraction = 0.1 to 0.2") and "then stays flat within noise" in words
    assert words.endswith("Each step by a paired test on the same test images at p < 0.05.")
    assert "rises with train_fraction at every step" in observe.trend(
        [(0.1, b.mean()), (0.2, a.mean()), (0.5, a.mean() + 0.03)], "train_fraction", observe.Noise(None, "n"),
        "test accuracy", steps=[up, up])


# -- orders ----------------------------------------------------------------------------------------------
def test_a_ranking_sign_follows_the_numbers():
    # q5's final L2 norms grow with the batch size: the largest is first, written with ">".
    norms = [("batch size 1", 60083.95), ("batch size 4", 101916.72), ("batch size 8", 208828.50)]
    seed = [("batch size 1", 1.2), ("batch size 4", 1.5), ("batch size 8", 1.7)]
    words = observe.ranking_agreement(norms, seed, "final L2 norm")
    assert words == ("Our ranking matches the seed's (by final L2 norm, largest first): batch size 8 > batch size 4 > "
                     "batch size 1.")
    assert "batch size 1 > batch size 4" not in words
    # The seed's order reversed: the sentence says they differ, each in its own order.
    reversed_seed = [(label, -value) for label, value in seed]
    assert observe.ranking_agreement(norms, reversed_seed, "final L2 norm") == (
        "Our ranking differs from the seed's (by final L2 norm, largest first): ours batch size 8 > batch size 4 > "
        "batch size 1, the seed's batch size 1 > batch size 4 > batch size 8.")
    assert observe.ranking_agreement([("a", 0.9), ("b", 0.9)], [("a", 0.9), ("b", 0.8)]) == \
        "Our ranking differs from the seed's: ours a = b, the seed's a > b."
    assert observe.ranking_agreement([("a", 0.9)], [("a", 0.9), ("b", 0.8)]) is None


def test_an_order_within_noise_neither_confirms_nor_contradicts_the_seeds():
    seed = [("a", 0.92), ("b", 0.90), ("c", 0.80)]
    n = 1600

    def apart(values):
        """Our two accuracies apart beyond the 95 % margin of a two-proportion z-test on n images (computed here)."""
        return lambda x, y: z_test_p(values[x], values[y], n) < stats.ALPHA

    # a and b 0.3 points apart (within noise on 1,600 images), c far below: a partial agreement, said as such.
    ours = {"a": 0.903, "b": 0.900, "c": 0.80}
    words = observe.ranking_agreement(list(ours.items()), seed, apart=apart(ours))
    assert words == ("Our ranking agrees with the seed's where ours are apart beyond noise (a > c and b > c); a vs b "
                     "is within noise: ours a > b > c, the seed's a > b > c.")
    # b now 0.3 points ahead of a: the same words for the pair, not "differs".
    ours = {"a": 0.900, "b": 0.903, "c": 0.80}
    words = observe.ranking_agreement(list(ours.items()), seed, apart=apart(ours))
    assert words.startswith("Our ranking agrees with the seed's where ours are apart") and "differs" not in words
    # Every pair within noise.
    ours = {"a": 0.900, "b": 0.903, "c": 0.905}
    assert observe.ranking_agreement(list(ours.items()), seed, apart=apart(ours)) == (
        "Our order is within noise: ours c > b > a, the seed's a > b > c; the seed's order is neither confirmed nor "
        "contradicted.")
    # b 6 points ahead of a, beyond the margin: contradicted; every pair apart in the seed's order: matches.
    ours = {"a": 0.86, "b": 0.92, "c": 0.80}
    words = observe.ranking_agreement(list(ours.items()), seed, apart=apart(ours))
    assert words == ("Our ranking differs from the seed's: ours b > a > c, the seed's a > b > c; beyond noise, ours "
                     "has b > a.")
    ours = {"a": 0.95, "b": 0.90, "c": 0.80}
    assert observe.ranking_agreement(list(ours.items()), seed, apart=apart(ours)) == \
        "Our ranking matches the seed's, beyond noise: a > b > c."
    # Two labels: one pair.
    two = {"a": 0.86, "b": 0.92}
    assert observe.ranking_agreement(list(two.items()), seed[:2], apart=apart(two)) == \
        "Our ranking differs from the seed's, beyond noise: ours b > a, the seed's a > b."


# -- against the seed: one tolerance, the seed's settings ------------------------------------------------------
def test_reproduced_only_within_the_one_tolerance_and_on_the_seeds_settings():
    tolerance = observe.SEED_TOLERANCE
    assert tolerance == 2.0
    on_seed = observe.against_seed("test accuracy", 0.9181 - 0.0199, 0.9181, FULL, causes=[])
    assert on_seed == ("Our test accuracy (89.82 %) is within 2 points of the seed's (91.81 %), on the seed's settings: "
                       "the seed's result is reproduced.")
    # One point more and it is beyond the tolerance, whatever the noise.
    far = observe.against_seed("test accuracy", 0.9181 - 0.0201, 0.9181, FULL, observe.noise(FULL, "test", [0.9]), causes=[])
    assert far.startswith("Our test accuracy (89.80 %) is 2.01 points below the seed's (91.81 %), more than the "
                          "2-point tolerance; the run records no cause")
    # The same number on the quick profile: consistent, not reproduced, with the causes.
    quick = observe.against_seed("test accuracy", 0.905, 0.9181, RUN)
    assert quick.startswith("Our test accuracy (90.50 %) is consistent with the seed's (91.81 %): 1.31 points apart, "
                            "within the 2-point tolerance, but not a reproduction, since the run is not the seed's setup "
                            "(the quick profile")
    assert "reproduced" not in quick


def test_within_the_tolerance_a_number_less_certain_than_it_says_so():
    # 178 test images (q14): one accuracy near 90 % is uncertain by about ±4.4 points, more than the 2-point tolerance.
    small = {**FULL, "dataset": {**FULL["dataset"], "splits": {"train": 900, "val": 100, "test": 178}}}
    clause = (f" (our number alone is uncertain by ±{1.959963984540054 * se(0.905, 178):.2f} points, 95 %, on 178 "
              f"test images)")
    assert 1.959963984540054 * se(0.905, 178) > observe.SEED_TOLERANCE
    on_seed = observe.against_seed("test accuracy", 0.905, 0.9181, small, observe.noise(small, "test", [0.905]), causes=[])
    assert on_seed == ("Our test accuracy (90.50 %) is within 2 points of the seed's (91.81 %), on the seed's settings: "
                       f"the seed's result is reproduced{clause}.")
    quick = observe.against_seed("test accuracy", 0.905, 0.9181, small, observe.noise(small, "test", [0.905]),
                                 causes=["the quick profile"])
    assert quick.startswith("Our test accuracy (90.50 %) is consistent with the seed's (91.81 %): 1.31 points apart, "
                            f"within the 2-point tolerance{clause}, but not a reproduction")
    # On the seed's 10,000 test images the same number is certain to ±0.57 points: no clause.
    for words in (observe.against_seed("test accuracy", 0.905, 0.9181, FULL, observe.noise(FULL, "test", [0.905]),
                                       causes=causes) for causes in ([], ["the quick profile"])):
        assert "uncertain" not in words


def test_settings_the_seed_does_not_give_are_never_the_seeds():
    # q8 and q17: the seed gives no optimizer or learning rate, so ours are our own choice.
    causes = observe.known_causes(FULL, unstated=["optimizer", "learning rate"])
    assert causes == ["settings the seed does not give (optimizer and learning rate: ours are our own choice)"]
    words = observe.against_seed("test accuracy", 0.91, 0.9181, FULL, causes=causes)
    assert words.startswith("Our test accuracy (91.00 %) is consistent with the seed's (91.81 %)")
    assert causes[0] in words and "reproduced" not in words
    assert observe.known_causes(FULL, unstated=[]) == observe.known_causes(FULL, unstated=None) == []
    assert "reproduced" in observe.against_seed("test accuracy", 0.91, 0.9181, FULL, causes=observe.known_causes(FULL))


def test_other_epochs_a_learning_rate_or_a_fallback_are_not_the_seeds_settings():
    for causes, expected in ((observe.known_causes(FULL, epochs=10, seed_epochs=100), "fewer epochs (10 against the seed's 100)"),
                             (observe.known_causes(FULL, epochs=200, seed_epochs=100), "more epochs (200 against the seed's 100)"),
                             (observe.known_causes(FULL, lr=0.1, seed_lr=0.01), "another learning rate (0.1 against the seed's 0.01)")):
        assert causes == [expected]
        words = observe.against_seed("test accuracy", 0.91, 0.9181, FULL, causes=causes)
        assert "consistent with the seed's" in words and expected in words and "reproduced" not in words
    assert observe.known_causes(FULL, epochs=100, seed_epochs=100, lr=0.01, seed_lr=0.01) == []
    fallback = {"profile": "full", "dataset": {"name": "digits", "requested": "mnist", "fallback_banner": "MNIST unavailable"}}
    assert observe.known_causes(fallback) == ["the digits fallback (ran on digits, not mnist)"]
    assert "not a reproduction" in observe.against_seed("test accuracy", 0.9181, 0.9181, fallback)


def test_a_number_beyond_the_tolerance_names_its_causes_and_its_own_uncertainty():
    small = {**RUN, "dataset": {**RUN["dataset"], "splits": {"train": 900, "val": 100, "test": 178}}}
    far = observe.against_seed("test accuracy", 0.85, 0.915, small, observe.noise(small, "test", [0.85]),
                               causes=observe.known_causes(small, epochs=10, seed_epochs=100))
    assert far.startswith("Our test accuracy (85.00 %) is 6.50 points below the seed's (91.50 %), more than the 2-point "
                          f"tolerance (our number alone is uncertain by ±{1.959963984540054 * se(0.85, 178):.2f} points, "
                          f"95 %, on 178 test images); known causes: the quick profile")
    assert "fewer epochs (10 against the seed's 100)" in far and "a data subset (900 training images)" in far
    assert observe.against_seed("x", None, 0.9, RUN) is None


# -- stale sections ------------------------------------------------------------------------------------------------
def test_a_summary_of_an_earlier_run_is_stale():
    run = {"run_id": "new"}
    assert observe.is_stale(run, {"run_id": "old"}) and observe.is_stale(run, {})
    assert not observe.is_stale(run, {"run_id": "new"}) and not observe.is_stale({}, {"run_id": "old"})
