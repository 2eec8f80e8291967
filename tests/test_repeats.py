"""Repeated runs: the ``repeat`` hyperparameter moves a trial's seed, and a RunComparison of repeats
stores and reports each run's mean and spread over its seeds.

The seeding tests train tiny models in this process on every path a trial may take: the JAX fast
path, model.fit (forced by a callback with a batch hook), the uint8 image pipeline with
augmentation, and the hand-written scratch Classifier. The comparison tests run q8 with a space
file that repeats each compared run three times, on the offline MNIST copy (slow).
"""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

SETTING = {"depth": 1, "units": 8, "activation": "relu", "dropout": 0.3, "lr": 0.1, "batch_size": 8, "epochs": 2}


class _EveryBatch(keras.callbacks.Callback):
    """A batch hook: the run goes through model.fit instead of the fast path (callbacks.needs_every_batch)."""

    def on_train_batch_begin(self, batch, logs=None):
        pass


def _weights(model) -> list[np.ndarray]:
    if hasattr(model, "get_weights"):
        return [np.array(w) for w in model.get_weights()]
    return [np.array(w) for w in model.params.values()]      # the scratch Classifier


def _trained(repeat: int, *, implementation="keras", callbacks=(), augment=None, seed=5):
    """(initial weights, trained weights) of one trial of SETTING with this ``repeat``."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 48)
    if augment:
        x = rng.integers(0, 256, (48, 6, 6, 1), dtype=np.uint8)        # the image pipeline's input
    else:
        x = rng.normal(0, 1, (48, 6, 6, 1)).astype(np.float32)
    hp = keras_tuner.HyperParameters()
    for name, value in {**SETTING, "repeat": repeat, **({"augment": augment} if augment else {})}.items():
        hp.Fixed(name, value)
    hypermodel = ClassifierHyperModel("mlp", (6, 6, 1), 3, seed=seed, implementation=implementation)
    model = hypermodel.build(hp)
    initial = _weights(model)
    result = hypermodel.fit(hp, model, x[:40], y[:40], validation_data=(x[40:], y[40:]), callbacks=list(callbacks))
    assert result.status == "completed" and result.epochs_run == 2
    return initial, _weights(model)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("path", ["fast path", "model.fit", "augmented images", "scratch"])
def test_repeats_start_from_their_own_seed_and_each_runs_again_exactly(path):
    options = {"fast path": {}, "model.fit": {"callbacks": [_EveryBatch()]}, "augmented images": {"augment": "flip"},
               "scratch": {"implementation": "scratch"}}[path]
    first_init, first = _trained(0, **options)
    again_init, again = _trained(0, **options)
    other_init, other = _trained(1, **options)
    assert _same(first_init, again_init) and _same(first, again)
    assert not _same(first_init, other_init) and not _same(first, other)


def test_repeat_k_starts_where_seed_plus_k_does():
    # --seed 5, repeat 2 is the run --seed 7 makes: the repeat only moves the seed.
    assert _same(_trained(2, seed=5)[1], _trained(0, seed=7)[1])


def test_every_search_takes_repeat_whatever_its_model():
    from dlcv_keras.experiments import Search
    from dlcv_keras.models.options import MODELS

    for model in MODELS:
        assert Search("s", "a search", model=model).accepted(None)["repeat"] == ("int", 0, 1_000_000, "both")



def test_ranking_words_for_ties_missing_runs_and_single_runs():
    from dlcv_keras.experiments.comparison import ranking_words

    rows = [{"run": "L1", "status": "completed", "test_accuracy": 0.70, "test_accuracy_std": 0.01},
            {"run": "L2", "status": "completed", "test_accuracy": 0.70, "test_accuracy_std": 0.0},
            {"run": "dropout", "status": "diverged", "test_accuracy": None}]
    words = ranking_words(rows, ["dropout", "L2", "L1"])
    assert words["ours"] == "L1 = L2" and words["seed"] == "dropout > L2 > L1"
    assert words["agreement"] == ("Our ranking agrees with the seed's wherever the means differ. Tied here: L2 "
                                  "and L1. Not ranked here (no completed run with a test accuracy): dropout.")
    # The seed's neighbouring pairs with both runs here: L2 above L1 (dropout has no test accuracy).
    assert words["gaps"] == ["The seed ranks L2 above L1; ours: L2 70.00 ± 0.00 %, L1 70.00 ± 1.00 %: within noise: "
                             "0.00 points apart, not more than 1.00 points, the run-to-run standard deviation we measured."]
    # One run each, no stored predictions: the 95 % margin of a difference of two binomial accuracies on the run's
    # test split, 1.96 * sqrt(2 * 0.85 * 0.15 / 400).
    single = [{"run": "a", "status": "completed", "test_accuracy": 0.9}, {"run": "b", "status": "completed",
                                                                          "test_accuracy": 0.8}]
    run = {"dataset": {"splits": {"test": 400}}}
    assert ranking_words(single, ["b", "a"], run)["gaps"] == [
        f"The seed ranks b above a; ours: b 80.00 %, a 90.00 %, b below by 10.00 points, more than "
        f"{196 * (2 * 0.85 * 0.15 / 400) ** 0.5:.2f} points, the 95 % margin of a two-proportion z-test for two "
        f"accuracies on 400 test images."]
    assert "within noise: 10.00 points apart" in ranking_words(single, ["a", "b"], {"dataset": {"splits": {"test": 4}}})["gaps"][0]
    assert ranking_words(single, None) is None

# -- a comparison of repeated runs, from a real smoke run of q8 -----------------------------------
RUNS = ("none", "l2", "dropout", "early_stop")


def _repeating_space(folder) -> "Path":
    """tuners/q8.toml's smoke profile, each compared run repeated from three seeds. L2 is made strong
    enough (0.01), and early stopping's rate higher (0.03), to set their runs apart from the
    unregularised one: in 3 epochs they would end with its test accuracy."""
    from real_runs import REPO

    text = (REPO / "tuners" / "q8.toml").read_text().split("\n[quick]")[0]
    for name in RUNS:
        text = text.replace(f"[smoke.{name}]\n", f"[smoke.{name}]\nrepeat = [0, 1, 2]\n")
    path = folder / "q8-repeats.toml"
    early = "lr = 0.01\nbatch_size = 32\nepochs = 3\npatience = 1"
    assert early in text
    path.write_text(text.replace("l2 = 0.0001", "l2 = 0.01").replace(early, early.replace("0.01", "0.03")))
    return path


@pytest.fixture(scope="module")
def repeated(tmp_path_factory):
    """q8's comparison over 3 repeats a run, on the offline MNIST copy's test split (600 training images)."""
    from real_runs import offline_data

    from dlcv_keras.results import ResultsStore
    from dlcv_keras.run import main

    data = offline_data("mnist")
    folder = tmp_path_factory.mktemp("repeats")
    results = folder / "results"
    assert main(["q8", "--profile", "smoke", "--space", str(_repeating_space(folder)), "--data-dir", str(data),
                 "--no-download", "--results", str(results), "--report", "none", "-q"]) == 0
    store = ResultsStore(results, "q8", "smoke")
    return results, store, store.read_experiment("compare")


@pytest.mark.slow
def test_a_run_of_repeats_stores_the_mean_and_sample_std_of_its_repeats(repeated):
    from dlcv_keras.experiments.comparison import AVERAGED

    _, store, compare = repeated
    rows = {row["experiment"]: row for row in compare["trials"]}
    for name in RUNS:
        trials = store.read_experiment(name)["trials"]
        assert sorted(t["repeat"] for t in trials) == [0, 1, 2] and {t["status"] for t in trials} == {"completed"}
        assert len({t["val_loss"] for t in trials}) == 3           # each repeat trained from its own seed
        row = rows[name]
        assert row["n"] == 3 and row["status"] == "completed" and "repeat" not in row["settings"]
        for key in AVERAGED:
            values = np.array([t[key] for t in trials], dtype=float)
            assert row[key] == pytest.approx(values.mean(), rel=1e-12)
            assert row[f"{key}_std"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)


@pytest.mark.slow
def test_a_run_of_repeats_stores_its_mean_curve_and_band(repeated):
    _, store, compare = repeated
    label = dict(zip(compare["summary"]["experiments"], compare["summary"]["runs"]))["dropout"]
    history = store.read_experiment("dropout")["history"]
    mean_rows = [row for row in compare["history"] if row["trial_id"] == label]
    assert [row["epoch"] for row in mean_rows] == [1, 2, 3]
    for row in mean_rows:
        epoch = [r for r in history if r["epoch"] == row["epoch"]]
        assert row["n"] == len(epoch) == 3
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            values = np.array([r[key] for r in epoch])
            assert row[key] == pytest.approx(values.mean(), rel=1e-12)
            assert (row[f"{key}_min"], row[f"{key}_max"]) == (values.min(), values.max())


def _ranked(compare) -> list[dict]:
    """The compared runs by mean test accuracy, best first, each with a mean no other run shares."""
    rows = sorted(compare["trials"], key=lambda row: -row["test_accuracy"])
    means = [row["test_accuracy"] for row in rows]
    distinct = [row for row in rows if means.count(row["test_accuracy"]) == 1]
    assert len(distinct) >= 3, means
    return distinct


def _gap_words(upper: dict, lower: dict) -> str:
    """The seed's claim that ``upper`` beats ``lower`` against our means and the larger measured spread."""
    points = 100 * (upper["test_accuracy"] - lower["test_accuracy"])
    largest = 100 * max(upper["test_accuracy_std"], lower["test_accuracy_std"])
    ours = (f"The seed ranks {upper['run']} above {lower['run']}; ours: {upper['run']} {100 * upper['test_accuracy']:.2f} "
            f"± {100 * upper['test_accuracy_std']:.2f} %, {lower['run']} {100 * lower['test_accuracy']:.2f} ± "
            f"{100 * lower['test_accuracy_std']:.2f} %")
    spread = f"{largest:.2f} points, the run-to-run standard deviation we measured."
    if abs(points) <= largest:
        return f"{ours}: within noise: {abs(points):.2f} points apart, not more than {spread}"
    return f"{ours}, {upper['run']} {'above' if points > 0 else 'below'} by {abs(points):.2f} points, more than {spread}"


@pytest.mark.slow
def test_the_ranking_words_follow_the_stored_means(repeated):
    from dlcv_keras.experiments.comparison import ranking_words

    _, _, compare = repeated
    best, second, third = (row["run"] for row in _ranked(compare)[:3])
    agrees = ranking_words(compare["trials"], [best, second, third])
    assert agrees["agreement"] == "Our ranking agrees with the seed's."
    assert agrees["ours"].replace(" = ", " > ").split(" > ") == [
        row["run"] for row in sorted(compare["trials"], key=lambda row: -row["test_accuracy"])]
    partly = ranking_words(compare["trials"], [second, best, third])
    assert partly["agreement"] == (f"Our ranking agrees with the seed's in part: the seed puts {second} above "
                                   f"{best}, we find {best} above {second}.")
    assert ranking_words(compare["trials"], [third, second, best])["agreement"] == "Our ranking reverses the seed's."
    rows = {row["run"]: row for row in compare["trials"]}
    # One gap per neighbouring pair of the seed's ranking, here the same order as ours.
    assert agrees["gaps"] == [_gap_words(rows[best], rows[second]), _gap_words(rows[second], rows[third])]


@pytest.mark.slow
def test_the_report_shows_mean_and_spread_the_ranking_and_the_band(repeated):
    import json

    from real_runs import images, text_of

    from dlcv_keras.report import build_report, figures
    from dlcv_keras.report.format import histories_by_trial

    results, store, compare = repeated
    ranked = _ranked(compare)
    run_file = results / "q8" / "smoke" / "run.json"
    run = json.loads(run_file.read_text())
    # The seed's ranking: our best two swapped.
    run["reference"]["compare"]["ranking"] = [ranked[1]["run"], ranked[0]["run"], ranked[2]["run"]]
    run_file.write_text(json.dumps(run))
    (html,) = build_report(results, ["q8"], "smoke")
    page = html.read_text()
    text = text_of(page)
    row = next(r for r in compare["trials"] if r["run"] == "dropout")
    # n = 3 for every run: said once above the table (a column of one value is left out).
    assert "Every run below:" in text and "n = 3" in text
    assert (f"dropout {row['settings']} {row['test_loss']:.4f} ± {row['test_loss_std']:.4f} 0.1386 "
            f"{100 * row['test_accuracy']:.2f} ± {100 * row['test_accuracy_std']:.2f} 96.60") in text, \
        text[text.find("dropout dropout"):][:300]
    assert "shaded from its lowest to its highest repeat" in text
    assert (f"the seed puts {ranked[1]['run']} above {ranked[0]['run']}, we find {ranked[0]['run']} above "
            f"{ranked[1]['run']}") in text
    # The figure in the page is the one with the bands, not the same curves without them.
    curves = {label: rows for label, rows in histories_by_trial(compare["history"]).items()}
    banded = figures.data_uri(figures.learning_curves(curves))
    bare = figures.data_uri(figures.learning_curves(
        {label: [{k: v for k, v in r.items() if not k.endswith(("_min", "_max"))} for r in rows]
         for label, rows in curves.items()}))
    assert banded in page and bare not in page and images(page) >= 2


@pytest.mark.slow
def test_runs_of_repeats_are_compared_by_the_paired_bootstrap_over_images_and_seeds(repeated, tmp_path):
    """The comparison's winner and the seed's claims come from the runs' stored test predictions, every seed of
    each: mean ± sd over the seeds, and the paired bootstrap's interval and p. Rewriting one run's predictions
    (each of its seeds right on every image) makes it the winner; the same predictions as another run, a tie."""
    import shutil

    from real_runs import set_predictions

    from dlcv_keras.report.context import read_run, section_context
    from dlcv_keras.results import ResultsStore

    source, _, _ = repeated
    results = tmp_path / "results"
    shutil.copytree(source / "q8", results / "q8", ignore=shutil.ignore_patterns("tuner"))
    store = ResultsStore(results, "q8", "smoke")

    def sentences():
        run = read_run(store)
        section = next(s for s in run["sections"] if s["experiment"] == "compare")
        return section_context(store, run, section)["observations"]

    def winner_words():
        return next(s for s in sentences() if "has the highest test accuracy" in s or "tie for the highest" in s)

    label = dict(zip(store.read_experiment("compare")["summary"]["experiments"],
                     store.read_experiment("compare")["summary"]["runs"]))
    with np.load(store.experiment_dir("dropout") / "predictions.npz") as stored:
        n = len(stored["labels"])
    for trial in store.read_experiment("dropout")["trials"]:
        set_predictions(store, "dropout", trial["trial_id"], np.ones(n, bool))
    rows = store.read_experiment("compare")["trials"]
    for row in rows:              # the comparison's row as compare_runs writes it again: the mean and sd of its seeds
        if row["experiment"] == "dropout":
            row.update(test_accuracy=1.0, test_accuracy_std=0.0)
    store.write_table("experiments/compare/trials.csv", rows)
    words = winner_words()
    assert words.startswith(f"{label['dropout'][:1].upper()}{label['dropout'][1:]} has the highest test accuracy and "
                            f"is ahead of each other run")
    assert f"{label['dropout']} 100.00 ± 0.00 % against" in words and "(mean ± sd of 3 seeds each)" in words
    assert "paired bootstrap over images and seeds p = " in words and words.endswith(f"{label['dropout']} is ahead.")
    # L2's seeds made the same as dropout's: no single winner between the two.
    for trial in store.read_experiment("l2")["trials"]:
        set_predictions(store, "l2", trial["trial_id"], np.ones(n, bool))
    for row in rows:
        if row["experiment"] == "l2":
            row.update(test_accuracy=1.0, test_accuracy_std=0.0)
    store.write_table("experiments/compare/trials.csv", rows)
    assert winner_words().startswith("No single winner:") and "tie for the highest test accuracy (100.00 %)" in winner_words()
