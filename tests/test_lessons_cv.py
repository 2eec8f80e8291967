"""q17's and q18's lessons on their real smoke runs, then on copies whose stored predictions or numbers are
changed the way another outcome would have stored them; q17's labels and its borrowing of our q16's widths;
q18's views of a net at chance.

One module fixture runs ``python -m dlcv_keras.run q17`` and ``q18 --profile smoke`` in subprocesses, offline,
on the real offline datasets (DLCV_DATA_DIR, else /work/shared/datasets; the module skips without them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import real_runs
from real_runs import kept_runs, offline_data, save_runs
from test_cv_questions import PROFILE, read_csv, read_json, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cv(tmp_path_factory) -> dict:
    """{"results": folder, "data": data dir, "runs": {label: run}}; DLCV_LESSONS_CV_RESULTS=<folder> keeps them."""
    data = offline_data("mnist", "cats_vs_dogs")
    folder, state = kept_runs("DLCV_LESSONS_CV_RESULTS", "lessons-cv", tmp_path_factory)
    if state is not None:
        return {**state, "results": Path(state["results"]), "data": Path(state["data"])}
    results = folder / "results"
    common = ["--profile", PROFILE, "--results", str(results), "--data-dir", str(data), "--no-download", "-q",
              "--report", "none"]
    runs = {}
    for question in ("q17", "q18"):
        runs[question] = run_cli([question, *common], folder, timeout=2400)
        if runs[question]["returncode"] != 0:
            pytest.fail(f"{question} smoke run exited with {runs[question]['returncode']}; stderr:\n"
                        f"{runs[question]['stderr'][-6000:]}", pytrace=False)
    state = {"results": str(results), "data": str(data), "runs": runs}
    save_runs("DLCV_LESSONS_CV_RESULTS", "lessons-cv", folder, state)
    return {**state, "results": results, "data": data}


def root(cv, question: str) -> Path:
    return cv["results"] / question / PROFILE


def experiment(cv, question: str, name: str) -> Path:
    return root(cv, question) / "experiments" / name

def copied_store(cv, question: str, tmp_path):
    """A copy of a question's smoke run to change, and its store."""
    from real_runs import copy_results

    from dlcv_keras.results import ResultsStore

    results = copy_results(cv["results"], tmp_path / "results", f"{question}/{PROFILE}")
    return ResultsStore(results, question, PROFILE)


def judged(store) -> list[dict]:
    from dlcv_keras import lessons
    from dlcv_keras.questions import QUESTIONS

    return lessons.evaluate(store, QUESTIONS[store.question].lessons)


def set_predictions(store, experiment: str, change) -> None:
    """Rewrite an experiment's predictions.npz: ``change(arrays)`` edits the labels' and models' arrays."""
    path = store.experiment_dir(experiment) / "predictions.npz"
    with np.load(path) as stored:
        arrays = {k: stored[k].copy() for k in stored.files}
    change(arrays)
    np.savez(path, **arrays)


def right_on(labels: np.ndarray, share: float) -> np.ndarray:
    """Predictions right on the first ``share`` of the images and wrong on the rest (2 classes)."""
    predicted = labels.copy()
    wrong = np.arange(len(labels)) >= round(share * len(labels))
    predicted[wrong] = 1 - labels[wrong]
    return predicted


def section_sentences(store, experiment: str) -> list[str]:
    from dlcv_keras.report.context import read_run, section_context

    run = read_run(store)
    section = next(s for s in run["sections"] if s["experiment"] == experiment)
    return section_context(store, run, section)["observations"]


def test_q17_lessons_are_the_paired_tests_of_the_stored_predictions(cv, tmp_path):
    from dlcv_keras import lessons, stats

    store = copied_store(cv, "q17", tmp_path)
    assert real_runs.as_evaluated(read_json(root(cv, "q17") / "lessons.json")) == judged(store)
    correct, labels = {}, {}
    for name in ("cnn", "tiny_cnn", "mlp"):
        with np.load(experiment(cv, "q17", name) / "predictions.npz") as stored:
            (trial,) = read_csv(experiment(cv, "q17", name) / "trials.csv")
            correct[name] = stored[str(int(trial["trial_id"]))] == stored["labels"]
            labels[name] = stored["labels"]
    for lesson, (a, b) in zip(judged(store), (("cnn", "mlp"), ("tiny_cnn", "mlp"), ("cnn", "tiny_cnn"))):
        found = stats.compare(correct[a], correct[b])
        beats = found.difference > 0 and found.significant()
        assert lesson["verdict"] == (lessons.REPRODUCED if beats else lessons.NOT_REPRODUCED), (a, b)
        assert lesson["evidence"]["comparison"]["p_two_sided"] == found.p_two_sided

    # An MLP right on every test image: neither CNN beats it any more (a CNN at chance is said to be first).
    (trial,) = read_csv(experiment(cv, "q17", "mlp") / "trials.csv")
    set_predictions(store, "mlp", lambda arrays: arrays.update({str(int(trial["trial_id"])): arrays["labels"]}))
    first, second, third = judged(store)
    assert first["verdict"] == second["verdict"] == lessons.NOT_REPRODUCED
    # Chance as the lessons and the report take it: the most common test class's share.
    learned = stats.against_chance(int(correct["cnn"].sum()), len(correct["cnn"]), 10,
                                   stats.chance_level(labels["cnn"], 10)).above_chance()
    assert first["cause"].startswith("the MLP is ahead" if learned else "the CNN is at chance")
    assert third == judged(copied_store(cv, "q17", tmp_path / "again"))[2]


def test_q17_labels_say_what_each_run_is_from_its_stored_model(cv):
    rows = read_csv(experiment(cv, "q17", "compare") / "trials.csv")
    mlp = read_json(experiment(cv, "q17", "mlp") / "summary.json")
    params = {r["experiment"]: int(read_csv(experiment(cv, "q17", r["experiment"]) / "trials.csv")[0]["params"])
              for r in rows}
    # No q16 run in this results folder: the MLP is the seed's q16 best, and says so.
    assert mlp["borrowed"]["values"] == {} and mlp["borrowed"]["words"] == "the seed's q16 best"
    assert f"no q16 run of the {PROFILE} profile" in mlp["borrowed"]["why"]
    hp = mlp["best_hyperparameters"]
    assert [r["run"] for r in rows] == [
        f"CNN ({params['cnn']:,} parameters)", f"tiny CNN ({params['tiny_cnn']:,} parameters)",
        f"MLP {hp['units_1']}-{hp['units_2']}, the seed's q16 best ({params['mlp']:,} parameters)"]
    assert params["mlp"] == 784 * hp["units_1"] + hp["units_1"] + hp["units_1"] * hp["units_2"] + hp["units_2"] \
        + hp["units_2"] * 10 + 10


def test_q17_borrows_our_q16_widths_only_from_a_complete_current_run(cv, tmp_path):
    """A real q16 smoke run in a results folder: its best widths are taken; not once its run is incomplete,
    on other data, or its search is an earlier run's."""
    from types import SimpleNamespace

    from dlcv_keras.experiments.search import borrowed_values
    from dlcv_keras.questions import QUESTIONS
    from dlcv_keras.results import ResultsStore

    results = tmp_path / "results"
    done = run_cli(["q16", "--profile", PROFILE, "--results", str(results), "--data-dir", str(cv["data"]),
                    "--no-download", "--report", "none", "-q"], tmp_path)
    assert done["returncode"] == 0, done["stderr"][-3000:]
    q16 = ResultsStore(results, "q16", PROFILE)
    best = q16.read_experiment("search")["summary"]["best_hyperparameters"]
    borrow = QUESTIONS["q17"].experiment("mlp").borrow
    runner = SimpleNamespace(settings=SimpleNamespace(results_dir=results, profile=PROFILE),
                             data=SimpleNamespace(info={"name": "mnist"}))
    found = borrowed_values(runner, borrow)
    assert found["values"] == {"units_1": best["units_1"], "units_2": best["units_2"]}
    assert found["words"] == "our q16's best" and found["run_id"] == q16.read_json("run.json")["run_id"]

    runner.data.info["name"] = "digits"
    assert borrowed_values(runner, borrow)["values"] == {}
    runner.data.info["name"] = "mnist"
    run = q16.read_json("run.json")
    q16.write_json("run.json", {**run, "status": "interrupted"})
    found = borrowed_values(runner, borrow)
    assert found["values"] == {} and "interrupted, not complete" in found["why"]
    q16.write_json("run.json", {**run, "run_id": "another"})
    found = borrowed_values(runner, borrow)
    assert found["values"] == {} and found["words"] == "the seed's q16 best" and "stale or missing" in found["why"]


def test_q18_lessons_follow_the_stored_predictions(cv, tmp_path):
    from dlcv_keras import lessons, stats

    store = copied_store(cv, "q18", tmp_path)
    assert real_runs.as_evaluated(read_json(root(cv, "q18") / "lessons.json")) == judged(store)
    with np.load(experiment(cv, "q18", "best") / "predictions.npz") as stored:
        labels, predicted = stored["labels"].copy(), stored["test"].copy()
    test = stats.against_chance(int(np.sum(predicted == labels)), len(labels), 2, stats.chance_level(labels, 2))
    learns = judged(store)[0]
    if not test.above_chance():       # two smoke epochs usually leave the net at chance: said first
        assert learns["verdict"] == lessons.NOT_REPRODUCED and learns["cause"].startswith("the best model is at chance")
    for share, verdict, cause in ((0.8, lessons.REPRODUCED, None), (0.64, lessons.NOT_REPRODUCED,
                                                                      "learns, but reaches 64.00 %, below 70.00 %"),
                                  (0.5, lessons.NOT_REPRODUCED, "at chance")):
        set_predictions(store, "best", lambda arrays, share=share: arrays.update(test=right_on(labels, share)))
        learns = judged(store)[0]
        assert learns["verdict"] == verdict and (cause is None or cause in learns["cause"]), share

    # The fine search's best right on 80 % of the images, the coarse one's on 60 %: no worse; then swapped.
    for fine, coarse, verdict in ((0.8, 0.6, lessons.REPRODUCED), (0.6, 0.8, lessons.NOT_REPRODUCED)):
        for name, share in (("fine", fine), ("coarse", coarse)):
            trials = read_csv(experiment(cv, "q18", name) / "trials.csv")
            set_predictions(store, name, lambda arrays, share=share, trials=trials: arrays.update(
                {str(int(t["trial_id"])): right_on(labels, share) for t in trials}))
        no_worse = judged(store)[1]
        assert no_worse["verdict"] == verdict, (fine, coarse)
    assert "may be worse than" in no_worse["cause"]


def test_q18_views_say_a_net_at_chance_first(cv, tmp_path):
    store = copied_store(cv, "q18", tmp_path)
    names = read_json(experiment(cv, "q18", "gallery") / "summary.json")["class_names"]
    n_val = read_json(root(cv, "q18") / "run.json")["dataset"]["splits"]["val"]

    def gallery(accuracy):
        summary = store.read_experiment("gallery")["summary"]
        store.write_json("experiments/gallery/summary.json", {**summary, "test_accuracy": accuracy})
        best = store.read_experiment("best")["summary"]
        store.write_json("experiments/best/summary.json", {**best, "test_accuracy": accuracy})
        return section_sentences(store, "gallery")

    at_chance, learned = gallery(0.5), gallery(0.9)
    assert at_chance[0].startswith("The model is at chance on the test split: 50.00 % of")
    assert not any(s.startswith("The most confident mistake") for s in at_chance)
    assert not any(s.startswith("The model is at chance") for s in learned)
    assert any(s.startswith("The most confident mistake") for s in learned)
    assert len(names) == 2

    def coarse(accuracies):
        rows = store.read_experiment("coarse")["trials"]
        for row, accuracy in zip(rows, accuracies):
            row["val_accuracy"] = accuracy
        store.write_table("experiments/coarse/trials.csv", rows)
        return section_sentences(store, "coarse")

    rows = store.read_experiment("coarse")["trials"]
    trials = len(rows)
    counts = read_json(root(cv, "q18") / "run.json")["dataset"]["class_counts"]["val"]
    chance_level = max(counts) / sum(counts)                 # the most common validation class's share
    chance = [0.5 + i / n_val for i in range(trials)]            # within a few images of 50 %
    sentences = coarse(chance)
    assert sentences[0].startswith(f"No trial learned: all {trials} trained trials are at chance on the validation "
                                   f"split (the best, ")
    # Nothing is read into noise: no best of k, no comparison on the test split.
    assert not any(" had the highest validation accuracy " in s or s.startswith("On the test split") for s in sentences)

    # One trial learned: the others are named at chance first, then the best of k (never a win on the images
    # it was chosen on), then the best against the runner-up on the test split by its stored predictions.
    sentences = coarse([0.95] + chance[1:])
    k = trials - 1
    assert sentences[0].startswith(f"{k} of {trials} trained trials {'is' if k == 1 else 'are'} at chance on the "
                                   f"validation split (not above the {100 * chance_level:.2f} % chance by the exact "
                                   f"binomial test): ")
    (chosen,) = [s for s in sentences if " had the highest validation accuracy " in s]
    lead = 100 * (0.95 - chance[-1])
    assert (f" had the highest validation accuracy of the {trials} trials (95.00 %), {lead:.2f} points "
            f"({round(lead * n_val / 100)} of {n_val:,} images) above the runner-up (") in chosen
    assert chosen.endswith("so its lead there is no evidence that it is better.")
    assert not any(" won " in s or s.startswith("No single winner") for s in sentences)

    best, runner_up = rows[0]["trial_id"], rows[-1]["trial_id"]       # 95 %, and the highest of the rest
    with np.load(experiment(cv, "q18", "coarse") / "predictions.npz") as stored:
        n_test = len(stored["labels"])
    for ours, theirs, verdict in ((0.8, 0.5, "the best setting ("), (0.5, 0.5, None), (0.5, 0.8, "the runner-up (")):
        a = real_runs.set_predictions(store, "coarse", best, np.arange(n_test) < round(ours * n_test))
        b = real_runs.set_predictions(store, "coarse", runner_up, np.arange(n_test) < round(theirs * n_test))
        (words,) = [s for s in section_sentences(store, "coarse") if s.startswith("On the test split")]
        assert words.startswith("On the test split, which played no part in the choice: the best setting (")
        assert f") {real_runs.pct(a)} % against the runner-up (" in words
        assert f") {real_runs.pct(b)} % on the same {n_test:,} test images: " in words
        said = words.rsplit(": ", 1)[1]
        if verdict is None:
            assert said == "no significant difference.", (ours, theirs)
        else:
            assert said.startswith(verdict) and said.endswith(") is ahead."), (ours, theirs)


def test_an_unbalanced_test_split_has_one_chance_level_in_the_lesson_and_the_report(cv, tmp_path):
    """70 % of the test images of one class: always guessing it scores 70 %, far above 1 / 2 but no learning.
    The lesson (from the stored test labels) and the report's section (from run.json's per-class test counts)
    both judge the best model against that share, and say the same; then both follow a model that learned."""
    from dlcv_keras import lessons, stats

    store = copied_store(cv, "q18", tmp_path)
    with np.load(experiment(cv, "q18", "best") / "predictions.npz") as stored:
        labels = stored["labels"].copy()
    n = len(labels)
    common = round(0.7 * n)
    labels[:] = np.arange(n) >= common                          # class 0 on the first 70 %, class 1 on the rest
    run = store.read_json("run.json")
    dataset = run["dataset"]
    store.write_json("run.json", {**run, "dataset": {**dataset, "class_counts": {**dataset["class_counts"],
                                                                                  "test": [common, n - common]}}})

    def predict(predicted):
        set_predictions(store, "best", lambda arrays: arrays.update(labels=labels, test=predicted))
        summary = store.read_experiment("best")["summary"]
        accuracy = float(np.mean(predicted == labels))
        store.write_json("experiments/best/summary.json", {**summary, "test_accuracy": accuracy})
        return judged(store)[0], section_sentences(store, "best")

    guess = stats.against_chance(common, n, 2, common / n)
    assert stats.against_chance(common, n, 2).above_chance() and not guess.above_chance()   # the two rules disagree
    learns, sentences = predict(np.zeros_like(labels))                   # always the common class
    assert learns["verdict"] == lessons.NOT_REPRODUCED
    assert learns["cause"] == f"the best model is at chance: {guess.words()}"
    assert sentences[0] == f"The model is at chance on the test split: {guess.words()}."

    predicted = labels.copy()
    predicted[: round(0.1 * n)] = 1                               # right on 90 %: above the 70 % share
    learns, sentences = predict(predicted)
    assert stats.against_chance(round(0.9 * n), n, 2, common / n).above_chance()
    assert learns["verdict"] == lessons.REPRODUCED
    assert not any("is at chance" in s for s in sentences)
