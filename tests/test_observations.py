"""Every experiment kind's observations (not the search views'), on real runs: the sentences quote the
stored numbers, and change with them when a stored value is changed the way the code writes it.

q2-q6 come from the shared smoke runs (``smoke_results``); q1 (on MNIST, its seed's dataset), q15
(initialisation study) and q17 (parameter table, run comparisons) are run once here on the offline MNIST copy (about a minute; DLCV_OBSERVATION_RESULTS
keeps them). The kinds whose real runs take minutes (q10's pretrained source, q11's augmented examples,
q12's activation maps, q18's gallery) are checked on a smoke run's store given the files those kinds write.
The expected numbers are computed here, independently of report/observe.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from real_runs import copy_results, esc, kept_runs, offline_data, pct, save_runs, set_predictions, text_of
from test_cv_questions import run_cli

from dlcv_keras import stats
from dlcv_keras.report.context import read_run, section_context
from dlcv_keras.results import ResultsStore

pytestmark = pytest.mark.slow
PROFILE = "smoke"


# -- helpers ---------------------------------------------------------------------------------------
def store_of(results: Path, question: str, implementation: str | None = None) -> ResultsStore:
    return ResultsStore(results, question, PROFILE, implementation=implementation)


def observations(results: Path, question: str, experiment: str, implementation: str | None = None) -> list[str]:
    """The observations of ``experiment``'s section, as the report builds them from the store."""
    store = store_of(results, question, implementation)
    run = read_run(store)
    section = next(s for s in run["sections"] if s["experiment"] == experiment)
    return section_context(store, run, section)["observations"]


def said(sentences: list[str], start: str) -> str:
    """The one sentence that starts with ``start``."""
    found = [s for s in sentences if s.startswith(start)]
    assert len(found) == 1, (start, sentences)
    return found[0]


def rewrite(store: ResultsStore, name: str, change) -> None:
    """Read an experiment's files, let ``change`` edit them in place, write them back as the code writes them
    (its test predictions kept as they are)."""
    found = store.read_experiment(name)
    change(found)
    standard = ("summary", "metrics", "trials", "history")
    path = store.experiment_dir(name) / "predictions.npz"
    predictions = None
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            predictions = {k: stored[k] for k in stored.files}
    store.write_experiment(name, summary=found["summary"], metrics=found.get("metrics"), trials=found.get("trials"),
                           history=found.get("history"), tables={k: v for k, v in found.items() if k not in standard},
                           predictions=predictions)


def labels_of(store: ResultsStore, name: str) -> np.ndarray:
    with np.load(store.experiment_dir(name) / "predictions.npz", allow_pickle=False) as stored:
        return stored["labels"]


def right_on(n: int, first: int, count: int) -> np.ndarray:
    """A correctness mask of ``n`` test images: right on ``count`` images from ``first`` on (wrapping)."""
    mask = np.zeros(n, bool)
    mask[(first + np.arange(count)) % n] = True
    return mask


def margin(accuracy: float, n: int) -> float:
    """The 95 % margin of a difference of two binomial accuracies at ``accuracy`` on n images, in points."""
    return 1.959963984540054 * math.sqrt(2) * se(accuracy, n)


def edit_run(store: ResultsStore, change) -> None:
    run = json.loads((store.root / "run.json").read_text())
    change(run)
    (store.root / "run.json").write_text(json.dumps(run))


def capital(text: str) -> str:
    """A label at the start of a sentence."""
    return text[:1].upper() + text[1:]


def se(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy on n images, in points."""
    return 100 * math.sqrt(accuracy * (1 - accuracy) / n)


def copy_question(source: Path, tmp_path: Path, question: str) -> Path:
    return copy_results(source, tmp_path / "results", f"{question}/{PROFILE}")


@pytest.fixture(scope="module")
def later(tmp_path_factory) -> Path:
    """Real smoke runs of q1, q15 and q17 on the offline MNIST copy (q1 on its seed's dataset, so compared with
    the seed's numbers, unlike the shared smoke run on digits); DLCV_OBSERVATION_RESULTS=<folder> keeps them."""
    data = offline_data("mnist")
    folder, state = kept_runs("DLCV_OBSERVATION_RESULTS", "observations", tmp_path_factory)
    if state is not None:
        return Path(state["results"])
    results = folder / "results"
    for question in ("q1", "q15", "q17"):
        done = run_cli([question, "--profile", PROFILE, "--results", str(results), "--data-dir", str(data),
                        "--no-download", "--report", "none", "-q"], folder)
        if done["returncode"] != 0:
            pytest.fail(f"{question} exited with {done['returncode']}: {done['stderr'][-6000:]}", pytrace=False)
    save_runs("DLCV_OBSERVATION_RESULTS", "observations", folder, {"results": str(results)})
    return results


# -- evaluate best (q1) ----------------------------------------------------------------------------------
def test_best_against_the_seed_is_reproduced_only_within_the_tolerance_and_on_the_seeds_settings(later, tmp_path):
    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    run = read_run(store)
    seed, seed_hp = run["reference"]["best"]["test_accuracy"], run["reference"]["best"]["hyperparameters"]
    epochs = store.read_experiment("best")["summary"]["hyperparameters"]["epochs"]
    assert epochs < seed_hp["epochs"]          # the smoke profile trains a few epochs

    def set_test(value):
        rewrite(store, "best", lambda found: found["summary"].update(test_accuracy=value))
        return said(observations(results, "q1", "best"), "Our test accuracy")

    close = seed - 0.005
    # The smoke run's few test images: our number alone is less certain than the tolerance, and the sentence says so.
    n = run["dataset"]["splits"]["test"]
    single = 1.959963984540054 * se((close + seed) / 2, n)
    assert single > 2
    uncertain = f" (our number alone is uncertain by ±{single:.2f} points, 95 %, on {n:,} test images)"
    sentence = set_test(close)
    assert sentence.startswith(f"Our test accuracy ({pct(close)} %) is consistent with the seed's ({pct(seed)} %): 0.50 "
                               f"points apart, within the 2-point tolerance{uncertain}, but not a reproduction, since "
                               f"the run is not the seed's setup (the smoke profile")
    assert f"fewer epochs ({epochs} against the seed's {seed_hp['epochs']})" in sentence and "reproduced" not in sentence

    # The seed's setup, as a full run on the whole MNIST would store it: the same number is now reproduced.
    edit_run(store, lambda run: (run.update(profile="full"), run["dataset"].update(notes=[])))
    rewrite(store, "best", lambda found: found["summary"]["hyperparameters"].update(epochs=seed_hp["epochs"],
                                                                                     lr=seed_hp["lr"]))
    assert set_test(close) == (f"Our test accuracy ({pct(close)} %) is within 2 points of the seed's ({pct(seed)} %), "
                               f"on the seed's settings: the seed's result is reproduced{uncertain}.")
    # The same on the seed's 10,000 test images: certain to within the tolerance, no clause.
    edit_run(store, lambda run: run["dataset"]["splits"].update(test=10000))
    assert set_test(close) == (f"Our test accuracy ({pct(close)} %) is within 2 points of the seed's ({pct(seed)} %), "
                               f"on the seed's settings: the seed's result is reproduced.")
    # A setting the seed leaves unstated (as q8's and q17's seeds do): consistent, never reproduced.
    edit_run(store, lambda run: run["reference"]["best"].update(unstated=["momentum"]))
    sentence = set_test(close)
    assert sentence.startswith(f"Our test accuracy ({pct(close)} %) is consistent with the seed's ({pct(seed)} %)")
    assert "settings the seed does not give (momentum: ours are our own choice)" in sentence
    assert "reproduced" not in sentence
    edit_run(store, lambda run: run["reference"]["best"].pop("unstated"))
    # Beyond the one tolerance by a tenth of a point: a real difference, whatever the test split's noise.
    assert set_test(seed - 0.021).startswith(f"Our test accuracy ({pct(seed - 0.021)} %) is 2.10 points below the "
                                             f"seed's ({pct(seed)} %), more than the 2-point tolerance")
    assert "the run records no cause" in set_test(seed - 0.021)
    # Another learning rate than the seed's, or its digits fallback: consistent, never reproduced.
    rewrite(store, "best", lambda found: found["summary"]["hyperparameters"].update(lr=seed_hp["lr"] * 10))
    assert f"another learning rate ({seed_hp['lr'] * 10:g} against the seed's {seed_hp['lr']:g})" in set_test(close)
    rewrite(store, "best", lambda found: found["summary"]["hyperparameters"].update(lr=seed_hp["lr"]))
    edit_run(store, lambda run: run["dataset"].update(name="digits", requested="mnist"))
    sentence = set_test(close)
    assert "consistent with the seed's" in sentence and "the digits fallback (ran on digits, not mnist)" in sentence
    far = set_test(seed - 0.10)
    assert far.startswith(f"Our test accuracy ({pct(seed - 0.10)} %) is 10.00 points below the seed's ({pct(seed)} %)")
    assert "known causes: the digits fallback" in far


def test_a_model_at_chance_is_said_to_be_at_chance_first_and_no_class_is_read_from_it(later, tmp_path):
    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    n, classes = read_run(store)["dataset"]["splits"]["test"], len(read_run(store)["dataset"]["class_names"])
    labels = labels_of(store, "best")
    # Right on exactly one image in ten: what guessing gets.
    accuracy = set_predictions(store, "best", "test", right_on(n, 0, n // classes))
    sentences = observations(results, "q1", "best")
    from scipy.stats import binomtest
    # Chance is the test split's most common class's share (run.json's class counts), as the lessons take it.
    chance = stats.chance_of_counts(read_run(store)["dataset"]["class_counts"]["test"], classes)
    p = binomtest(n // classes, n, chance, alternative="greater").pvalue
    assert sentences[0].startswith(f"The model is at chance on the test split: {pct(accuracy)} % of {n:,} images")
    assert stats.format_p(p) in sentences[0]
    assert "the model did not learn (it is at chance)" in said(sentences, "Our test accuracy")
    assert not [s for s in sentences if s.startswith(("Best class", "Our best class", "Training and test"))]
    # Twice as many right: above chance, and the classes are read again.
    set_predictions(store, "best", "test", right_on(n, 0, 3 * n // classes))
    sentences = observations(results, "q1", "best")
    assert not sentences[0].startswith("The model is at chance") and said(sentences, "Best class")
    assert len(labels) == n


def test_best_train_test_gap_is_a_gap_only_beyond_the_noise(later, tmp_path):
    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    run = read_run(store)
    n, seed = run["dataset"]["splits"]["test"], run["reference"]["best"]
    test = store.read_experiment("best")["summary"]["test_accuracy"]
    seed_gap = 100 * (seed["train_accuracy"] - seed["test_accuracy"])

    rewrite(store, "best", lambda found: found["summary"].update(train_accuracy=test + 0.2))
    sentence = said(observations(results, "q1", "best"), "Training accuracy is above test accuracy by 20.00 points")
    assert f"more than {margin(test, n):.2f} points" in sentence
    assert f"the seed's gap was {seed_gap:.2f} points, so ours is wider by {20 - seed_gap:.2f} points" in sentence
    rewrite(store, "best", lambda found: found["summary"].update(train_accuracy=test + 0.001))
    assert said(observations(results, "q1", "best"), "Training and test accuracy are").startswith(
        "Training and test accuracy are within noise: 0.10 points apart")


def _confusion(store: ResultsStore, matrix: list[list[int]]) -> None:
    """A confusion matrix and what evaluate_best derives from it: per-class accuracy, best and worst class."""
    def change(found):
        metrics = found["metrics"]
        names = metrics["class_names"]
        per_class = [row[k] / sum(row) for k, row in enumerate(matrix)]
        best, worst = int(np.argmax(per_class)), int(np.argmin(per_class))
        metrics.update(confusion_matrix=matrix, per_class_accuracy=per_class,
                       best_class={"index": best, "name": names[best], "accuracy": per_class[best]},
                       worst_class={"index": worst, "name": names[worst], "accuracy": per_class[worst]})
    rewrite(store, "best", change)


def test_best_and_worst_class_follow_the_confusion_matrix(later, tmp_path):
    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    seed = read_run(store)["reference"]["best"]
    matrix = store.read_experiment("best")["metrics"]["confusion_matrix"]
    counts = [sum(row) for row in matrix]
    k = len(matrix)

    # Every image of the seed's best class right: it becomes our best class too.
    best = int(seed["best_class"]["name"])
    right = [[counts[i] if j == i else 0 for j in range(k)] if i == best else list(row) for i, row in enumerate(matrix)]
    _confusion(store, right)
    sentences = observations(results, "q1", "best")
    assert said(sentences, "Our best class is the seed's") == (
        f"Our best class is the seed's ({best}: ours 100.00 %, the seed's {pct(seed['best_class']['accuracy'])} %).")

    # Half of every class right, the rest taken for the next class: no class stands out beyond the noise.
    half = [[counts[i] // 2 if j == i else counts[i] - counts[i] // 2 if j == (i + 1) % k else 0 for j in range(k)]
            for i in range(k)]
    _confusion(store, half)
    per_class = [counts[i] // 2 / counts[i] for i in range(k)]
    top, bottom = int(np.argmax(per_class)), int(np.argmin(per_class))
    sentence = said(observations(results, "q1", "best"), f"Best class {top} ")
    assert sentence.startswith(f"Best class {top} ({pct(per_class[top])} %), worst {bottom} ({pct(per_class[bottom])} %): "
                               f"within noise: {100 * (per_class[top] - per_class[bottom]):.2f} points apart")
    noise = margin((per_class[top] + per_class[bottom]) / 2, min(counts[top], counts[bottom]))
    assert f"not more than {noise:.2f} points" in sentence and sentence.endswith("no class is reliably the hardest.")


def restamp(store: ResultsStore, run_id: str, names) -> None:
    """Experiments ``names`` as a run with ``run_id`` writes them (its id on their summaries)."""
    for name in names:
        rewrite(store, name, lambda found: found["summary"].update(run_id=run_id))


def test_a_stale_section_is_said_to_be_stale_and_compared_with_nothing(later, tmp_path):
    from dlcv_keras.report.observe import STALE_WORDS

    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    run = read_run(store)
    seed = run["reference"]["best"]["test_accuracy"]
    # Its number a hair from the seed's (as an earlier run on another dataset might have left it).
    rewrite(store, "best", lambda found: found["summary"].update(test_accuracy=seed))
    assert said(observations(results, "q1", "best"), "Our test accuracy").startswith("Our test accuracy")
    # A new run (another id) redid every experiment but the best model's before it was stopped.
    edit_run(store, lambda run: run.update(run_id="a-later-run", status="interrupted"))
    restamp(store, "a-later-run", [s["experiment"] for s in run["sections"] if s["experiment"] != "best"])
    assert observations(results, "q1", "best") == [STALE_WORDS]
    section = next(s for s in read_run(store)["sections"] if s["experiment"] == "best")
    context = section_context(store, read_run(store), section)
    assert context["stale"] and not context["has_reference"]
    assert "Not compared with our Keras model: its evaluation (best) is an earlier run's." in \
        observations(results, "q1", "sklearn")
    # Redone by the new run: observed again.
    restamp(store, "a-later-run", ["best"])
    assert observations(results, "q1", "best") != [STALE_WORDS]
    assert said(observations(results, "q1", "sklearn"), "Scikit-learn ")


# -- scikit-learn (q1) -----------------------------------------------------------------------------------
def predicted_right(store: ResultsStore, name: str, key: str = "test") -> np.ndarray:
    """Which test images a stored model got right (its predictions.npz row against the labels)."""
    with np.load(store.experiment_dir(name) / "predictions.npz", allow_pickle=False) as stored:
        return stored[key] == stored["labels"]


def test_sklearn_against_the_keras_model_is_a_paired_test_on_their_stored_predictions(later, tmp_path):
    from scipy.stats import binomtest

    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    run = read_run(store)
    n = run["dataset"]["splits"]["test"]
    keras = predicted_right(store, "best")
    seed_sklearn, seed_keras = run["reference"]["sklearn"]["test_accuracy"], run["reference"]["best"]["test_accuracy"]
    assert seed_sklearn > seed_keras and 20 <= (~keras).sum() and 20 <= keras.sum()

    def sklearn_right(mask):
        set_predictions(store, "sklearn", "test", mask)
        return observations(results, "q1", "sklearn")

    def start(mask, difference):
        return (f"Scikit-learn {pct(mask.mean())} % against the Keras model {pct(keras.mean())} % on the same {n:,} "
                f"test images: {difference:+.2f} points")

    # Right wherever the Keras model is, and on 20 of the images it got wrong: ahead, by McNemar's exact test.
    more = keras.copy()
    more[np.flatnonzero(~keras)[:20]] = True
    sentences = sklearn_right(more)
    sentence = said(sentences, "Scikit-learn ")
    assert sentence.startswith(start(more, 2000 / n))
    assert (f"McNemar's exact test {stats.format_p(binomtest(20, 20, 0.5).pvalue)}; 20 vs 0 images only one of them "
            f"got right, of {n:,}: scikit-learn is ahead.") in sentence
    assert "Our ranking matches the seed's, beyond noise: scikit-learn > the Keras model." in sentences
    # The same accuracy, two images swapped: no difference, p = 1.
    swapped = keras.copy()
    swapped[np.flatnonzero(keras)[0]], swapped[np.flatnonzero(~keras)[0]] = False, True
    sentences = sklearn_right(swapped)
    sentence = said(sentences, "Scikit-learn ")
    assert sentence.startswith(start(swapped, 0.0)) and "p = 1.00; 1 vs 1 images" in sentence
    assert sentence.endswith("no significant difference.")
    # ... so our order of the two says nothing about the seed's.
    order = said(sentences, "Our order is within noise: ours ")
    assert order.endswith("the seed's scikit-learn > the Keras model; the seed's order is neither confirmed nor "
                          "contradicted.")
    assert not any(s.startswith(("Our ranking matches", "Our ranking differs")) for s in sentences)
    # Wrong on 20 of the Keras model's right images, right nowhere else: the Keras model is ahead.
    fewer = keras.copy()
    fewer[np.flatnonzero(keras)[:20]] = False
    sentences = sklearn_right(fewer)
    assert said(sentences, "Scikit-learn ").endswith("the Keras model is ahead.")
    assert ("Our ranking differs from the seed's, beyond noise: ours the Keras model > scikit-learn, the seed's "
            "scikit-learn > the Keras model.") in sentences
    # Its accuracy against the seed's.
    count = round((seed_sklearn - 0.1) * n)
    accuracy = count / n
    sentences = sklearn_right(right_on(n, 0, count))
    assert said(sentences, "Our scikit-learn test accuracy").startswith(
        f"Our scikit-learn test accuracy ({pct(accuracy)} %) is {100 * (seed_sklearn - accuracy):.2f} points below the "
        f"seed's ({pct(seed_sklearn)} %)")


# -- run comparison and parameter table (q17) ---------------------------------------------------------
def set_run_right(store: ResultsStore, experiment: str, mask) -> float:
    """A compared run's stored test predictions right on ``mask`` (its one trial), and the comparison's row for
    it as compare_runs writes it again (its test accuracy). Returns the accuracy."""
    trial = store.read_experiment(experiment)["trials"][0]["trial_id"]
    accuracy = set_predictions(store, experiment, trial, mask)
    rewrite(store, "compare", lambda found: [row.update(test_accuracy=accuracy) for row in found["trials"]
                                             if row["experiment"] == experiment])
    return accuracy


def test_comparison_winner_is_a_paired_test_and_follows_the_stored_predictions(later, tmp_path):
    from scipy.stats import binomtest

    results = copy_question(later, tmp_path, "q17")
    store = store_of(results, "q17")
    n = read_run(store)["dataset"]["splits"]["test"]
    rows = store.read_experiment("compare")["trials"]
    labels, names = [row["run"] for row in rows], [row["experiment"] for row in rows]

    def set_right(counts):
        """Each run right on the first ``count`` test images (nested: a run right on more is right on those too)."""
        for name, count in zip(names, counts):
            set_run_right(store, name, right_on(n, 0, count))
        return observations(results, "q17", "compare")

    big, mid, small = round(0.8 * n), round(0.6 * n), round(0.4 * n)
    first = said(set_right([big, mid, small]), capital(labels[0]))
    assert first.startswith(f"{capital(labels[0])} has the highest test accuracy and is ahead of each other run by a "
                            f"paired test on the same test images; against the runner-up: {labels[0]} {pct(big / n)} % "
                            f"against {labels[1]} {pct(mid / n)} % on the same {n:,} test images: "
                            f"{100 * (big - mid) / n:+.2f} points")
    assert (f"McNemar's exact test {stats.format_p(binomtest(big - mid, big - mid, 0.5).pvalue)}; {big - mid} vs 0 "
            f"images only one of them got right") in first and first.endswith(f"{labels[0]} is ahead.")
    # The first two swap their predictions: the second wins.
    assert said(set_right([mid, big, small]), capital(labels[1])).startswith(
        f"{capital(labels[1])} has the highest test accuracy and is ahead of each other run")
    # Two images apart: the highest, but not significantly ahead (p = 0.5).
    close = said(set_right([mid + 2, mid, small]), "No single winner")
    assert close.startswith(f"No single winner: {labels[0]} has the highest test accuracy, {pct((mid + 2) / n)} %, but "
                            f"it is not significantly ahead of {labels[1]} on the same test images")
    assert "McNemar's exact test p = 0.50; 2 vs 0 images" in close and close.endswith("no significant difference.")
    # The same accuracy: a tie.
    sentences = set_right([mid, mid, small])
    assert said(sentences, "No single winner") == (f"No single winner: {labels[0]} and {labels[1]} tie for the highest "
                                                   f"test accuracy ({pct(mid / n)} %).")
    # The seed's rows are keyed by the compared experiment's name (our labels carry parameter counts).
    seed = {row["experiment"]: row["test_accuracy"] for row in read_run(store)["reference"]["compare"]["rows"]}
    assert said(sentences, f"Our test accuracy with {labels[2]}").startswith(
        f"Our test accuracy with {labels[2]} ({pct(small / n)} %) is {100 * (seed[names[2]] - small / n):.2f} points "
        f"below the seed's")


def test_a_run_whose_settings_the_seed_does_not_give_is_consistent_never_reproduced(later, tmp_path):
    """q17's seed gives no optimizer, learning rate or batch size for its CNNs (the reference's "unstated"): on the
    seed's setup and within 2 points, the CNN is consistent with the seed's, while the MLP, whose settings the seed
    gives, is reproduced; without the declaration the CNN would be reproduced too."""
    results = copy_question(later, tmp_path, "q17")
    store = store_of(results, "q17")
    run = read_run(store)
    seed = {ref["experiment"]: ref for ref in run["reference"]["compare"]["rows"]}
    rows = {row["experiment"]: row for row in store.read_experiment("compare")["trials"]}
    assert "unstated" in seed["cnn"] and "unstated" not in seed["mlp"]
    # The seed's setup: the full profile on the whole MNIST (its 10,000 test images); each run 0.5 points below.
    edit_run(store, lambda found: (found.update(profile="full"), found["dataset"].update(notes=[]),
                                   found["dataset"]["splits"].update(test=10000)))
    rewrite(store, "compare", lambda found: [row.update(test_accuracy=seed[row["experiment"]]["test_accuracy"] - 0.005)
                                             for row in found["trials"]])

    def about(name):
        return said(observations(results, "q17", "compare"), f"Our test accuracy with {rows[name]['run']}")

    unstated = "settings the seed does not give (optimizer, learning rate and batch size: ours are our own choice)"
    cnn = about("cnn")
    assert cnn.startswith(f"Our test accuracy with {rows['cnn']['run']} ({pct(seed['cnn']['test_accuracy'] - 0.005)} %) "
                          f"is consistent with the seed's ({pct(seed['cnn']['test_accuracy'])} %): 0.50 points apart")
    assert unstated in cnn and "reproduced" not in cnn
    assert about("mlp").endswith("on the seed's settings: the seed's result is reproduced.")
    edit_run(store, lambda found: [ref.pop("unstated", None) for ref in found["reference"]["compare"]["rows"]])
    assert about("cnn").endswith("on the seed's settings: the seed's result is reproduced.")


def test_a_run_at_chance_is_said_first_and_the_l2_note_follows_the_stored_settings(later, tmp_path):
    results = copy_question(later, tmp_path, "q17")
    store = store_of(results, "q17")
    run = read_run(store)
    n, classes = run["dataset"]["splits"]["test"], len(run["dataset"]["class_names"])
    rows = store.read_experiment("compare")["trials"]
    for row in rows:                 # every run right on one image in ten: guessing
        set_run_right(store, row["experiment"], right_on(n, 0, n // classes))
    sentences = observations(results, "q17", "compare")
    assert [s.split(" is at chance")[0] for s in sentences[:len(rows)]] == [capital(row["run"]) for row in rows]
    assert sentences[len(rows)] == "Every run is at chance: none wins, and their order below is noise."
    assert "the model did not learn (it is at chance)" in said(sentences, f"Our test accuracy with {rows[0]['run']}")

    # q17's runs have no weight penalty: the note under the table does not claim one.
    section = next(s for s in run["sections"] if s["experiment"] == "compare")
    assert section_context(store, run, section)["penalised"] is None
    rewrite(store, rows[2]["experiment"], lambda found: found["summary"]["best_hyperparameters"].update(l2=1e-4))
    assert section_context(store, run, section)["penalised"] == f"the {rows[2]['run']} run's loss includes its penalty"
    from dlcv_keras.report import build_report
    (html,) = build_report(results, ["q17"], PROFILE)
    assert esc(f"so the {rows[2]['run']} run's loss includes its penalty") in html.read_text()


def test_comparison_ranking_against_the_seeds_is_said_once_at_the_sections_end(later, tmp_path):
    from scipy.stats import binomtest

    from dlcv_keras.report import build_report

    results = copy_question(later, tmp_path, "q17")
    store = store_of(results, "q17")
    n = read_run(store)["dataset"]["splits"]["test"]
    rows = store.read_experiment("compare")["trials"]
    labels = [row["run"] for row in rows]
    counts = [round(0.9 * n), round(0.85 * n), round(0.5 * n)]
    for row, count in zip(rows, counts):
        set_run_right(store, row["experiment"], right_on(n, 0, count))
    # The seed ranks our second run first.
    edit_run(store, lambda run: run["reference"]["compare"].update(ranking=[labels[1], labels[0], labels[2]]))
    sentences = observations(results, "q17", "compare")
    ranking = said(sentences, "Ranking by test accuracy")
    assert ranking == (f"Ranking by test accuracy, ours: {labels[0]} > {labels[1]} > {labels[2]}; the seed's: "
                       f"{labels[1]} > {labels[0]} > {labels[2]}. Our ranking agrees with the seed's in part: the seed "
                       f"puts {labels[1]} above {labels[0]}, we find {labels[0]} above {labels[1]}.")
    # The seed's claim that the second beats the first: the paired test finds the first ahead.
    gap = counts[0] - counts[1]
    claim = said(sentences, f"The seed ranks {labels[1]} above {labels[0]}")
    assert claim.startswith(f"The seed ranks {labels[1]} above {labels[0]}; ours: {labels[1]} {pct(counts[1] / n)} % "
                            f"against {labels[0]} {pct(counts[0] / n)} % on the same {n:,} test images: "
                            f"{-100 * gap / n:+.2f} points")
    assert (f"McNemar's exact test {stats.format_p(binomtest(0, gap, 0.5).pvalue)}; 0 vs {gap} images" in claim
            and claim.endswith(f"{labels[0]} is ahead."))
    assert said(sentences, f"The seed ranks {labels[0]} above {labels[2]}").startswith(
        f"The seed ranks {labels[0]} above {labels[2]}; ours: {labels[0]} {pct(counts[0] / n)} % against {labels[2]} "
        f"{pct(counts[2] / n)} %")
    (html,) = build_report(results, ["q17"], PROFILE)
    page = html.read_text()
    assert page.count(esc(ranking)) == 1 and "Ranking by test accuracy</h4>" not in page
    assert "Observations</h4>" in page and esc(said(sentences, capital(labels[0]))) in page


def test_parameter_counts_against_the_seeds(later, tmp_path):
    results = copy_question(later, tmp_path, "q17")
    store = store_of(results, "q17")
    summary = store.read_experiment("parameters")["summary"]
    seed = read_run(store)["reference"]["parameters"]["totals"]
    labels = dict(zip(summary["models"], summary["labels"]))
    sentences = observations(results, "q17", "parameters")
    assert summary["totals"] == seed                     # q17 builds the seed's two CNNs
    for model, total in summary["totals"].items():
        assert f"{labels[model]}: {total:,} parameters, exactly the seed's count." in sentences
    big, small = max(summary["totals"], key=summary["totals"].get), min(summary["totals"], key=summary["totals"].get)
    assert (f"{labels[big]} has {summary['totals'][big] / summary['totals'][small]:.1f} times the parameters of "
            f"{labels[small]}.") in sentences
    rewrite(store, "parameters", lambda found: found["summary"]["totals"].update({small: seed[small] - 66}))
    assert said(observations(results, "q17", "parameters"), f"{labels[small]}:") == (
        f"{labels[small]}: {seed[small] - 66:,} parameters, 66 fewer than the seed's {seed[small]:,} "
        f"({-6600 / seed[small]:+.1f} %).")


# -- initialisation study (q15) ------------------------------------------------------------------------
def test_init_study_winner_and_identical_units_follow_the_stored_numbers(later, tmp_path):
    from dlcv_keras.report import build_report

    results = copy_question(later, tmp_path, "q15")
    store = store_of(results, "q15")
    found = store.read_experiment("init")
    trials = {row["initializer"]: row for row in found["trials"]}
    epochs = trials["zeros"]["epochs_run"]
    identical = (f"initializer=zeros: every unit of every layer kept the same incoming weights from initialisation "
                 f"to epoch {epochs} (largest difference 0).")
    assert identical in observations(results, "q15", "init")

    # The settings the run stored (q15's smoke space: zeros, standard_normal, glorot_uniform), and chance as the
    # lessons and the report take it: the most common validation class's share (run.json's per-class counts).
    inits = [row["initializer"] for row in found["trials"]]
    k = len(inits)
    dataset = read_run(store)["dataset"]
    n, classes = dataset["splits"]["val"], len(dataset["class_names"])
    chance = stats.chance_of_counts(dataset["class_counts"]["val"], classes)

    def at_chance(init: str, accuracy: float) -> str:
        test = stats.against_chance(round(accuracy * n), n, classes, chance)
        return f"The setting {init} is at chance on the validation split: {test.words()}."

    # As stored (a smoke run's two epochs): those at chance are said first; none learned, nothing is ranked.
    sentences = observations(results, "q15", "init")
    stuck = [init for init in inits
             if not stats.against_chance(round(trials[init]["val_accuracy"] * n), n, classes, chance).above_chance()]
    assert sentences[:len(stuck)] == [s for s in sentences if "is at chance on the validation split" in s]
    assert sorted(sentences[:len(stuck)]) == sorted(at_chance(i, trials[i]["val_accuracy"]) for i in stuck)
    if len(stuck) == k:
        assert f"None of the {k} settings learned: no winner." in sentences

    def set_val(values):
        """Validation accuracies by initializer; any not given is at 10 %, at chance on MNIST's ten classes."""
        rewrite(store, "init", lambda f: [row.update(val_accuracy=values.get(row["initializer"], 0.1))
                                          for row in f["trials"]])
        return observations(results, "q15", "init")

    # Zero initialisation made the best (as if it had learned), Glorot next, the rest at chance: those said first;
    # then the best of the k on validation, by how much, and never a win there; on the test split, against the
    # runner-up, by a paired test on its stored predictions.
    others = [init for init in inits if init not in ("zeros", "glorot_uniform")]
    sentences = set_val({"zeros": 0.9, "glorot_uniform": 0.5})
    assert sorted(sentences[:len(others)]) == sorted(at_chance(init, 0.1) for init in others)
    assert said(sentences, "Zeros had") == (
        f"Zeros had the highest validation accuracy of the {k} settings (90.00 %), 40.00 points ({round(0.4 * n)} of "
        f"{n:,} images) above the runner-up (glorot_uniform, 50.00 %). It was chosen as the best of {k} on these same "
        f"images, so its lead there is no evidence that it is better.")
    test_n = read_run(store)["dataset"]["splits"]["test"]
    for zeros, glorot, verdict in ((0.6, 0.3, "the best setting (initializer=zeros) is ahead."),
                                   (0.3, 0.3, "no significant difference.")):
        set_predictions(store, "init", trials["zeros"]["trial_id"], right_on(test_n, 0, round(zeros * test_n)))
        set_predictions(store, "init", trials["glorot_uniform"]["trial_id"], right_on(test_n, 0, round(glorot * test_n)))
        words = said(observations(results, "q15", "init"), "On the test split")
        assert words.startswith(f"On the test split, which played no part in the choice: the best setting "
                                f"(initializer=zeros) {pct(round(zeros * test_n) / test_n)} % against the runner-up "
                                f"(initializer=glorot_uniform) {pct(round(glorot * test_n) / test_n)} %")
        assert words.endswith(verdict)
    # Only zeros learned: every other setting said at chance first, and the one that learned is not ranked.
    sentences = set_val({"zeros": 0.9})
    assert sorted(sentences[:k - 1]) == sorted(at_chance(init, 0.1) for init in inits if init != "zeros")
    assert "Only zeros learned (90.00 % validation accuracy)." in sentences and not [s for s in sentences if " had the" in s]

    # Glorot's units made identical in layer_stats.csv: it is said to keep them identical too.
    glorot = str(trials["glorot_uniform"]["trial_id"])
    rewrite(store, "init", lambda f: [row.update(unit_spread=0.0) for row in f["layer_stats"]
                                      if str(row["trial_id"]) == glorot])
    sentences = observations(results, "q15", "init")
    assert f"initializer=glorot_uniform: every unit of every layer kept the same incoming weights" in " ".join(sentences)
    (html,) = build_report(results, ["q15"], PROFILE)
    assert text_of(html.read_text()).count(esc(identical)) == 1         # said once, among the observations


# -- conv regression (q5) --------------------------------------------------------------------------------
def test_divergence_epochs_against_the_seeds(smoke_results, tmp_path):
    results = copy_question(smoke_results, tmp_path, "q5")
    store = store_of(results, "q5")
    seed = read_run(store)["reference"]["run_a"]
    summary = store.read_experiment("run_a")["summary"]
    inf, nan = summary["first_inf_epoch"], summary["first_nan_epoch"]

    def relation(ours, theirs):
        if ours == theirs:
            return f"as the seed's (epoch {theirs})"
        return f"{abs(ours - theirs)} epoch{'s' if abs(ours - theirs) != 1 else ''} " \
               f"{'after' if ours > theirs else 'before'} the seed's (epoch {theirs})"

    assert said(observations(results, "q5", "run_a"), "The loss blew up") == (
        f"The loss blew up: inf from epoch {inf}, {relation(inf, seed['first_inf_epoch'])}; NaN from epoch {nan}, "
        f"{relation(nan, seed['first_nan_epoch'])}; epochs counted from 1 in both.")

    # The same run with finite losses throughout (as conv_regression stores a run that never diverged).
    def finite(found):
        for row in found["history"]:
            row["loss"] = 1.0
        found["summary"].update(first_inf_epoch=None, first_nan_epoch=None, status="completed")
    rewrite(store, "run_a", finite)
    epochs = summary["epochs_run"]
    assert said(observations(results, "q5", "run_a"), "The loss stayed finite") == (
        f"The loss stayed finite: never inf in {epochs} epochs, where the seed's was from epoch "
        f"{seed['first_inf_epoch']}; never NaN in {epochs} epochs, where the seed's was from epoch "
        f"{seed['first_nan_epoch']}; epochs counted from 1 in both.")


def test_l2_norm_order_over_batch_sizes_against_the_seeds(smoke_results, tmp_path):
    results = copy_question(smoke_results, tmp_path, "q5")
    store = store_of(results, "q5")
    seed = {row["batch_size"]: row["l2_norm"] for row in read_run(store)["reference"]["run_b"]["rows"]}
    norms = {row["batch_size"]: row["l2_norm"] for row in store.read_experiment("run_b")["trials"]}
    sentences = observations(results, "q5", "run_b")

    def trend(by_size):
        steps = [by_size[b] - by_size[a] for a, b in zip(sorted(by_size), sorted(by_size)[1:])]
        return ("rises with the batch size" if all(s > 0 for s in steps) else
                "falls as the batch size grows" if all(s < 0 for s in steps) else
                "does not move one way with the batch size")
    seed_words = ", ".join(f"batch size {b}: {seed[b]:.2f}" for b in sorted(seed))
    assert trend(seed) == "rises with the batch size"      # 429.59 < 561.23 < 617.48
    ours = "In this run (one seed per batch size), our final L2 norm"     # one run each: no trend over seeds
    assert (f"{ours} {trend(norms)}, as the seed's does ({seed_words})." if trend(norms) == trend(seed)
            else f"{ours} {trend(norms)}; the seed's rises with the batch size ({seed_words}).") in sentences
    ratio = max(norms.values()) / min(norms.values())
    assert (f"The largest final L2 norm is {ratio:.2f} times the smallest (the seed's: "
            f"{max(seed.values()) / min(seed.values()):.2f} times).") in sentences

    # Norms that fall as the batch size grows, then ones that rise: the sentence follows the numbers.
    for made in ({b: 1000.0 / b for b in norms}, {b: 10.0 * b for b in norms}):
        def set_norms(found, made=made):
            for row in found["trials"]:
                row["l2_norm"] = made[row["batch_size"]]
            found["summary"]["final_l2_norm"] = {str(b): v for b, v in made.items()}
        rewrite(store, "run_b", set_norms)
        words = (f"{ours} {trend(made)}, as the seed's does ({seed_words})." if trend(made) == trend(seed)
                 else f"{ours} {trend(made)}; the seed's rises with the batch size ({seed_words}).")
        assert words in observations(results, "q5", "run_b")
        assert trend(made) == ("falls as the batch size grows" if made[min(made)] > made[max(made)] else
                               "rises with the batch size")


# -- gradient checks (q2, q6, q3 --impl scratch) and the blur (q4) --------------------------------------
def test_scalar_gradients_against_the_tolerance(smoke_results, tmp_path):
    results = copy_question(smoke_results, tmp_path, "q2")
    store = store_of(results, "q2")
    found = store.read_experiment("gradients")
    largest = max(row["max_rel_diff_numeric"] for row in found["points"])
    step = found["summary"]["step"]
    assert said(observations(results, "q2", "gradients"), "Each gradient").startswith(
        f"Each gradient agrees with central differences (step {step:g}) to {largest:.1e} (largest relative "
        f"difference over the {len(found['points'])} points")

    # A wrong central difference for df/dx at the first point, and the differences the run computes from it.
    def wrong(found):
        row = found["points"][0]
        row["numeric_df_dx"] += 1e-3
        names = [k[len("df_d"):] for k in row if k.startswith("df_d")]
        pairs = [(row[f"df_d{v}"], row[f"numeric_df_d{v}"]) for v in names]
        row["max_abs_diff_numeric"] = max(abs(a - b) for a, b in pairs)
        row["max_rel_diff_numeric"] = math.hypot(*(a - b for a, b in pairs)) / (
            math.hypot(*(a for a, _ in pairs)) + math.hypot(*(b for _, b in pairs)))
        found["summary"]["max_abs_diff_numeric"] = max(r["max_abs_diff_numeric"] for r in found["points"])
        found["summary"]["max_rel_diff_numeric"] = max(r["max_rel_diff_numeric"] for r in found["points"])
    rewrite(store, "gradients", wrong)
    worst = store.read_experiment("gradients")["summary"]["max_rel_diff_numeric"]
    assert said(observations(results, "q2", "gradients"), "Each gradient") == (
        f"Each gradient does not agree with central differences (step {step:g}): the largest relative difference over "
        f"the 4 points reaches {worst:.1e}, more than the 1e-07 tolerance (largest absolute "
        f"{store.read_experiment('gradients')['summary']['max_abs_diff_numeric']:.1e}).")


def test_two_layer_check_and_toy_training(smoke_results, tmp_path):
    results = copy_question(smoke_results, tmp_path, "q6")
    store = store_of(results, "q6")
    seed = read_run(store)["reference"]
    summary = store.read_experiment("check")["summary"]
    sentences = observations(results, "q6", "check")
    # The seed printed its scores with 8 decimals: ours agree when within half a unit of the 8th.
    difference = max(abs(a - b) for row, ref in zip(summary["scores"], seed["check"]["scores"]) for a, b in zip(row, ref))
    assert said(sentences, "Each score") == (f"Each score agrees with the seed's to {difference:.1e} (largest absolute "
                                             f"difference; the seed printed 8 decimals; tolerance 5e-09).")
    errors = summary["relative_errors"]
    assert said(sentences, "Each analytic gradient (W1, b1, W2, b2) agrees with central differences").startswith(
        f"Each analytic gradient (W1, b1, W2, b2) agrees with central differences to {max(errors.values()):.1e}")
    rewrite(store, "check", lambda found: found["summary"]["relative_errors"].update(W2=2e-3))
    assert said(observations(results, "q6", "check"), "Each analytic gradient (W1, b1, W2, b2) does not agree") == (
        "Each analytic gradient (W1, b1, W2, b2) does not agree with central differences: the largest relative error "
        f"reaches 2.0e-03, more than the 1e-07 tolerance (at W2; the seed's largest "
        f"{max(seed['check']['relative_errors'].values()):.1e}).")

    history = store.read_experiment("train")["history"]
    first = next(row["epoch"] for row in history if row["loss"] < 0.02)
    final = store.read_experiment("train")["summary"]["final_loss"]
    assert said(observations(results, "q6", "train"), "The training loss").startswith(
        f"The training loss first fell below the 0.02 target at iteration {first} and ended at {final:.4g} after "
        f"{len(history)} iterations")

    def never(found):
        for row in found["history"]:
            row["loss"] = max(row["loss"], 0.03)
        found["summary"].update(final_loss=found["history"][-1]["loss"], reached_target=False)
    rewrite(store, "train", never)
    assert said(observations(results, "q6", "train"), "The training loss").startswith(
        f"The training loss never fell below the 0.02 target: it ended at 0.03 after {len(history)} iterations")


def test_blur_against_keras_conv2d(smoke_results, tmp_path):
    results = copy_question(smoke_results, tmp_path, "q4")
    store = store_of(results, "q4")
    summary = store.read_experiment("blur")["summary"]
    blurred = store.read_arrays("blur")["blurred"]
    tolerance = 1e-5 * max(1.0, float(np.abs(blurred).max()))
    assert said(observations(results, "q4", "blur"), "The forward pass").startswith(
        f"The forward pass agrees with Keras Conv2D to {summary['keras_max_abs_diff']:.1e}")
    rewrite(store, "blur", lambda found: found["summary"].update(keras_max_abs_diff=1e-3))
    assert said(observations(results, "q4", "blur"), "The forward pass") == (
        f"The forward pass does not agree with Keras Conv2D: the largest absolute difference in float32 reaches "
        f"1.0e-03, more than the {tolerance:g} tolerance (outputs up to {max(1.0, float(np.abs(blurred).max())):.3g}).")


def test_finite_differences_fall_as_epsilon_squared_and_a_wrong_gradient_is_caught(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path / "results", f"q3/{PROFILE}/scratch")
    store = store_of(results, "q3", "scratch")
    summary = store.read_experiment("fd_sweep")["summary"]
    gaps = sorted((float(n), gap) for n, gap in summary["max_abs_gap"].items())
    (n1, g1), (n2, g2) = gaps[:2]
    sentences = observations(results, "q3", "fd_sweep", "scratch")
    power = math.log(g1 / g2) / math.log(n2 / n1)
    assert f"as epsilon to the power {power:.2f}" in said(sentences, f"From N = {n1:g} to N = {n2:g}")
    assert abs(power - 2) < 0.1                                    # central differences
    assert said(sentences, "The analytic gradient").startswith("The analytic gradient agrees with central differences")

    # An analytic gradient off by 0.01 (a wrong backward pass), with the gaps the run computes from it.
    def wrong(found):
        for row in found["sweep"]:
            row["analytic"] += 0.01
            row["abs_gap"] = abs(row["analytic"] - row["numeric"])
        found["summary"]["max_abs_gap"] = {str(n): max(r["abs_gap"] for r in found["sweep"] if r["N"] == n)
                                           for n in found["summary"]["n_values"]}
    rewrite(store, "fd_sweep", wrong)
    assert said(observations(results, "q3", "fd_sweep", "scratch"), "The analytic gradient").startswith(
        "The analytic gradient does not agree with central differences")


# -- the kinds of q10, q11, q12 and q18, on q1's store --------------------------------------------------------
SOURCE_CLASSES, TARGET_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"], ["dog", "frog", "horse", "ship", "truck"]


def test_offline_pretrained_weights_are_a_known_cause_of_the_seed_difference(later, tmp_path):
    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    banner = ("No ImageNet weights: they could not be downloaded (this machine could not reach Kaggle, which hosts "
              "them). Instead, q10 starts from a source checkpoint")
    # What find_weights stores offline (stamped with the run's id, as the run's store does), and what
    # runner.replace_data writes to run.json.
    store.run_id = read_run(store)["run_id"]
    store.write_experiment("source", summary={
        "kind": "pretrained_source", "title": "The pretrained weights", "source": "self-trained",
        "weights": "source.weights.h5", "banner": banner, "reason": "they could not be downloaded", "description": "self-trained",
        "source_classes": SOURCE_CLASSES, "target_classes": TARGET_CLASSES, "source_train": 400, "source_val": 100,
        "settings": {}, "source_val_accuracy": 0.62, "source_epochs": 3, "source_seconds": 9.0})

    def add_source(run):
        run["sections"].insert(0, {"template": "pretrained_source", "experiment": "source", "title": "Weights"})
        run["dataset"]["fallback_banner"] = banner
    edit_run(store, add_source)
    sentences = observations(results, "q1", "source")
    assert said(sentences, "The source checkpoint reached") == (
        f"The source checkpoint reached 62.00 % validation accuracy on its own classes after 3 epochs: above their "
        f"20 % chance ({stats.against_chance(62, 100, 5).words()}).")
    # Hardly better than guessing on its five classes: not above chance.
    rewrite(store, "source", lambda found: found["summary"].update(source_val_accuracy=0.25))
    assert "on its own classes after 3 epochs: not above their 20 % chance" in said(
        observations(results, "q1", "source"), "The source checkpoint reached")
    rewrite(store, "source", lambda found: found["summary"].update(source_val_accuracy=0.62))
    assert said(sentences, "The starting weights are an offline substitute").endswith(
        "a 5-class task with chance at 20 %, not the seed's 10-class task.")
    below = said(observations(results, "q1", "best"), "Our test accuracy")
    assert "an offline substitute for the ImageNet weights (a source checkpoint trained here on airplane, " \
           "automobile, bird, cat, deer; the target task is the other 5 classes)" in below
    assert "fallback" not in below              # the same dataset, another task: not a dataset fallback

    rewrite(store, "source", lambda found: found["summary"].update(source="imagenet", description="ImageNet weights"))
    assert observations(results, "q1", "source") == ["The starting weights are ImageNet's (ImageNet weights), as the seed's."]
    assert "substitute" not in said(observations(results, "q1", "best"), "Our test accuracy")


def test_gallery_counts_the_mistakes_of_the_evaluated_model(later, tmp_path):
    results = copy_question(later, tmp_path, "q1")
    store = store_of(results, "q1")
    best = store.read_experiment("best")
    matrix, names = np.array(best["metrics"]["confusion_matrix"]), best["metrics"]["class_names"]
    total, wrong = int(matrix.sum()), int(matrix.sum() - np.trace(matrix))
    off = matrix - np.diag(np.diag(matrix))
    true, predicted = np.unravel_index(np.argmax(off), off.shape)
    # What MisclassifiedGallery stores: its summary, gallery.csv and arrays.npz (one shown mistake).
    row = {"test_index": 7, "true": names[true], "predicted": names[predicted],
           **{f"p_{name}": 0.9 if k == predicted else 0.1 / (len(names) - 1) for k, name in enumerate(names)}}
    store.run_id = read_run(store)["run_id"]          # the run's store stamps its id on what it writes
    store.write_experiment("gallery", summary={"kind": "misclassified", "title": "Misclassified", "source": "best",
                                               "test_images": total, "wrong": wrong, "shown": 1,
                                               "test_accuracy": 1 - wrong / total, "class_names": names},
                           tables={"gallery": [row]},
                           arrays={"images": np.zeros((1, 8, 8, 1), np.uint8), "true": [true], "predicted": [predicted],
                                   "probabilities": np.full((1, len(names)), 0.1, np.float32), "indices": [7]})
    edit_run(store, lambda run: run["sections"].append({"template": "misclassified", "experiment": "gallery",
                                                        "title": "Misclassified"}))
    sentences = observations(results, "q1", "gallery")
    assert sentences[0] == (f"{wrong:,} of {total:,} test images are misclassified ({pct(wrong / total)} %): test accuracy "
                            f"{pct(1 - wrong / total)} %, as the best evaluation stored it.")
    assert (f"The most frequent confusion on the test split: {names[true]} taken for {names[predicted]}, "
            f"{off.max()} images ({pct(off.max() / wrong)} % of the mistakes).") in sentences
    assert f"The most confident mistake: {names[true]} called {names[predicted]}, with 90.00 % probability." in sentences
    rewrite(store, "best", lambda found: found["summary"].update(test_accuracy=0.5))
    assert observations(results, "q1", "gallery")[0].endswith(
        "but the best evaluation stored 50.00 %: the gallery did not read the same model or images.")


def test_activation_maps_and_augmented_copies_are_described_from_the_stored_arrays():
    from dlcv_keras.experiments.activation_maps import _model_observation
    from dlcv_keras.experiments.augmented_examples import _observations

    rng = np.random.default_rng(0)
    # Maps as activation_maps stores them: (images, channels, H, W), each scaled to [0, 1]; flat maps are 0.
    early = rng.random((4, 8, 32, 32)).astype(np.float16)
    early[:, [2, 5]] = 0
    late = rng.random((4, 8, 4, 4)).astype(np.float16)
    model = {"label": "ResNet-18", "question": "q9", "early_shape": [32, 32, 16], "late_shape": [4, 4, 128]}
    assert _model_observation(model, early, late) == (
        "ResNet-18 (q9): the late maps are 4 x 4 against the early 32 x 32, 8 times coarser; 2 of the 8 early channels "
        "shown and 0 of the 8 late ones are flat (one value over the whole map) on all 4 images.")

    originals = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    copies = np.stack([originals, originals[:, :, ::-1], originals[:, ::-1]], axis=1)      # unchanged, flipped twice
    copies[0, 0] = np.clip(copies[0, 0].astype(int) + 10, 0, 255)
    changed = [np.abs(copies[i, j].astype(float) - originals[i]).mean() for i in range(3) for j in range(3)
               if not np.array_equal(copies[i, j], originals[i])]
    assert _observations(originals, copies) == [
        f"{9 - len(changed)} of the 9 augmented copies are identical to their original; the others differ from it by "
        f"{np.mean(changed):.1f} of 255 per pixel value on average."]
    assert _observations(originals, copies[:, 1:]) == [
        f"All 6 augmented copies differ from their original, by {np.mean(changed[1:]):.1f} of 255 per pixel value "
        f"on average."]
