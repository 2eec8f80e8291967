"""The observation rules (report/observe.py): each sentence follows the numbers it is given."""

import math

from dlcv_keras.report import observe

RUN = {"profile": "quick", "dataset": {"name": "mnist", "requested": "mnist", "splits": {"train": 6400, "val": 1600, "test": 2000},
                                       "notes": ["train images missing in local IDX files: built from the test split"]}}


def test_binomial_noise_uses_the_split_size_and_mean_accuracy():
    n = observe.noise(RUN, "val", [0.9, 0.8])
    assert math.isclose(n.points, 100 * math.sqrt(0.85 * 0.15 / 1600))
    assert "1,600 validation images" in n.words
    assert observe.noise(RUN, "val", [0.9], spread_points=[0.4, 1.5]).points == 1.5
    assert observe.noise({}, "val", [0.9]).points is None


def test_winner_names_the_best_and_changes_when_the_numbers_swap():
    wide = observe.Noise(0.5, "test noise")
    first = observe.winner([("lr=0.1", 0.95), ("lr=0.01", 0.90)], wide)
    assert first.startswith("Lr=0.1 won with 95.00 %") and "5.00 points" in first
    swapped = observe.winner([("lr=0.01", 0.95), ("lr=0.1", 0.90)], wide)
    assert swapped.startswith("Lr=0.01 won") and "(lr=0.1, 90.00 %)" in swapped


def test_a_lead_smaller_than_the_noise_is_not_a_win():
    words = observe.winner([("a", 0.901), ("b", 0.899), ("c", 0.80)], observe.Noise(0.5, "noise words"))
    assert words.startswith("No single winner") and "within noise" in words and "b" in words and "c" not in words.split("but")[1]


def test_trend_rises_falls_and_peaks():
    n = observe.Noise(0.1, "n")
    assert "rises with lr" in observe.trend([(0.001, 0.8), (0.01, 0.85), (0.1, 0.9)], "lr", n)
    assert "falls as lr grows" in observe.trend([(0.1, 0.8), (0.01, 0.85), (0.001, 0.9)], "lr", n)
    peaked = observe.trend([(0.001, 0.8), (0.01, 0.9), (0.1, 0.85)], "lr", n)
    assert "not monotonic" in peaked and "peaks at lr = 0.01 (90.00 %)" in peaked
    assert "does not change" in observe.trend([(1, 0.8), (2, 0.8005)], "depth", observe.Noise(1.0, "n"))


def test_against_seed_hedges_within_tolerance_and_names_causes_beyond_it():
    close = observe.against_seed("test accuracy", 0.905, 0.915, RUN)
    assert "within 2.00 points" in close
    far = observe.against_seed("test accuracy", 0.85, 0.915, RUN, causes=observe.known_causes(RUN, epochs=10, seed_epochs=100))
    assert "6.50 points below" in far and "the quick profile" in far and "fewer epochs (10 against the seed's 100)" in far
    assert "a data subset (6,400 training images)" in far
    full = {**RUN, "profile": "full", "dataset": {**RUN["dataset"], "notes": []}}
    assert "records no cause" in observe.against_seed("val accuracy", 0.80, 0.90, full)
    assert observe.against_seed("x", None, 0.9, RUN) is None


def test_fallback_is_a_known_cause():
    run = {"profile": "full", "dataset": {"name": "digits", "requested": "mnist", "fallback_banner": "MNIST unavailable"}}
    assert observe.known_causes(run) == ["the digits fallback (ran on digits, not mnist)"]


def test_ranking_agreement():
    assert observe.ranking_agreement(["a", "b", "c"], ["a", "c"]) == "Our ranking matches the seed's: a > c."
    assert "differs" in observe.ranking_agreement(["c", "a"], ["a", "c"])
    assert observe.ranking_agreement(["a"], ["a", "b"]) is None


def test_several_ties_give_the_farthest_gap_and_pair_noise_is_per_pair():
    words = observe.winner([("a", 0.900), ("b", 0.899), ("c", 0.896), ("d", 0.80)], observe.Noise(0.5, "n"))
    assert words == ("No single winner: a reached the highest validation accuracy (90.00 %), but b and c are within "
                     "noise of it: at most 0.40 points below, not more than 0.50 points, n.")
    spreads = {"b": observe.Noise(0.1, "b's spread"), "c": observe.Noise(3.0, "c's spread")}
    # b is clearly behind by its own spread, but c's spread still covers its 2 points: no winner
    words = observe.winner([("a", 0.90), ("b", 0.89), ("c", 0.88)], spreads.get)
    assert words == ("No single winner: a reached the highest validation accuracy (90.00 %), but c is within noise: "
                     "2.00 points apart, not more than 3.00 points, c's spread.")
    spreads["c"] = observe.Noise(1.0, "c's spread")        # now each is clear of a by its own spread
    assert observe.winner([("a", 0.90), ("b", 0.89), ("c", 0.88)], spreads.get).startswith(
        "A won with 90.00 % validation accuracy, ahead of the runner-up (b, 89.00 %) by 1.00 points, more than 0.10 points, b's spread.")
