"""The lessons of q7, q13 and q14, judged on their real smoke runs and on copies of those runs whose
stored numbers are changed the way a different outcome would have written them: each verdict must
follow the numbers (a test whose verdict could not change would prove nothing).

The runs are ``python -m dlcv_keras.run <q> --profile smoke`` in subprocesses on the offline datasets
(DLCV_DATA_DIR, else /work/shared/datasets; skipped without them). The changes touch only the files a
check reads: predictions.npz (each trial's predicted class per test image), history.csv (a trial's
validation loss per epoch) and layer_stats.csv (each layer's mean |gradient|, from the layer probe).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlcv_keras import lessons
from dlcv_keras.questions import QUESTIONS
from dlcv_keras.results.store import PREDICTIONS
from real_runs import as_evaluated, copy_results, kept_runs, offline_data, save_runs, store
from test_cv_questions import run_cli

pytestmark = pytest.mark.slow

PLAN = {"q7": "cifar10", "q13": "cifar10", "q14": "gurmukhi"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The results folder of the three smoke runs. DLCV_DENSE_LESSONS_RESULTS=<folder> keeps and reuses them."""
    data = offline_data(*sorted(set(PLAN.values())))
    folder, state = kept_runs("DLCV_DENSE_LESSONS_RESULTS", "dense-lessons", tmp_path_factory)
    if state is not None:
        return Path(state["results"])
    results = folder / "results"
    for question in PLAN:
        run = run_cli([question, "--profile", "smoke", "--results", str(results), "--data-dir", str(data),
                       "--no-download", "--report", "none", "-q"], folder)
        if run["returncode"] != 0:
            pytest.fail(f"{question} exited with {run['returncode']}: {run['stderr'][-6000:]}", pytrace=False)
    save_runs("DLCV_DENSE_LESSONS_RESULTS", "dense-lessons", folder, {"results": str(results)})
    return results


@pytest.fixture
def copy(smoke, tmp_path):
    """A fresh copy of one question's smoke run to change: ``copy("q14")`` -> its ResultsStore."""
    def make(question: str):
        copy_results(smoke, tmp_path / "results", question)
        return store(tmp_path / "results", question)
    return make


def verdicts(run, question: str) -> list[dict]:
    return lessons.evaluate(run, QUESTIONS[question].lessons)


def trial_ids(run, experiment: str, **where) -> list[str]:
    """The completed trials of ``experiment`` whose hyperparameters match ``where``."""
    rows = run.read_experiment(experiment)["trials"]
    return [str(r["trial_id"]) for r in rows
            if r["status"] == "completed" and all(str(r.get(k)) == str(v) for k, v in where.items())]


def set_correct(run, experiment: str, right: float, **where) -> None:
    """Every matching trial of ``experiment`` now gets the first ``right`` share of the test images right
    and the rest wrong (a wrong class: the next one)."""
    path = run.experiment_dir(experiment) / PREDICTIONS
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    labels = arrays["labels"]
    predicted = (labels + 1) % 10
    predicted[:int(round(right * len(labels)))] = labels[:int(round(right * len(labels)))]
    keys = [k for k in arrays if k != "labels"] if run.read_experiment(experiment)["summary"]["kind"] == "evaluation" \
        else [str(int(t)) for t in trial_ids(run, experiment, **where)]
    assert keys, (experiment, where)
    for key in keys:
        arrays[key] = predicted.astype(arrays[key].dtype)
    run.write_arrays(experiment, PREDICTIONS, **arrays)


def set_class(run, experiment: str, label: int, **where) -> None:
    """Every matching trial predicts one class for every test image: a network that learned nothing."""
    path = run.experiment_dir(experiment) / PREDICTIONS
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    for key in [str(int(t)) for t in trial_ids(run, experiment, **where)]:
        arrays[key] = np.full_like(arrays[key], label)
    run.write_arrays(experiment, PREDICTIONS, **arrays)


def set_shares(run, experiment: str, shares: dict, **where) -> None:
    """The first layer's mean |gradient| becomes ``share`` times the output layer's at every epoch, in the
    trials matching ``where`` plus ``depth``: ``shares`` maps each depth to its share."""
    rows = run.read_table(f"experiments/{experiment}/layer_stats.csv")
    for depth, share in shares.items():
        for trial in trial_ids(run, experiment, depth=depth, **where):
            mine = [r for r in rows if str(r["trial_id"]) == trial]
            output = max(int(r["index"]) for r in mine)
            for epoch in {r["epoch"] for r in mine}:
                at = {int(r["index"]): r for r in mine if r["epoch"] == epoch}
                at[1]["grad_mean_abs"] = share * float(at[output]["grad_mean_abs"])
    run.write_table(f"experiments/{experiment}/layer_stats.csv", rows)


def set_val_loss(run, experiment: str, losses: list[float]) -> None:
    """The first trial's validation loss per epoch becomes ``losses`` (as many epochs as it ran)."""
    history = run.read_table(f"experiments/{experiment}/history.csv")
    first = str(run.read_experiment(experiment)["trials"][0]["trial_id"])
    mine = [r for r in history if str(r["trial_id"]) == first]
    assert len(mine) == len(losses)
    for row, loss in zip(mine, losses):
        row["val_loss"] = loss
    run.write_table(f"experiments/{experiment}/history.csv", history)


# ================================================================================ every question
@pytest.mark.parametrize("question", sorted(PLAN))
def test_the_run_writes_each_lesson_with_a_computed_verdict(smoke, question):
    written = json.loads((smoke / question / "smoke" / lessons.LESSONS_FILE).read_text())
    declared = QUESTIONS[question].lessons
    assert [lesson["claim"] for lesson in written] == [lesson.claim for lesson in declared]
    assert as_evaluated(written) == json.loads(json.dumps(verdicts(store(smoke, question), question)))
    for lesson in written:
        assert lesson["verdict"] in (lessons.REPRODUCED, lessons.NOT_REPRODUCED), lesson
        assert lesson["evidence"]["text"]
        assert (lesson["cause"] is None) == (lesson["verdict"] == lessons.REPRODUCED), lesson


# ================================================================================ q14
def test_q14_ranking_follows_each_pair_of_regularisers(copy):
    run = copy("q14")
    for experiment, right in (("dropout", 1.0), ("l2", 0.7), ("l1", 0.4)):
        set_correct(run, experiment, right)
    ranking = verdicts(run, "q14")[0]
    assert ranking["verdict"] == lessons.REPRODUCED, ranking
    assert ranking["evidence"]["text"].startswith("dropout > L2 > L1: dropout 100.00 % vs L2 70.22 %")
    assert "paired bootstrap over images and seeds" in ranking["evidence"]["text"]
    # L1 ahead of L2: the second step of the ranking fails, and the cause says which.
    set_correct(run, "l1", 0.9)
    ranking = verdicts(run, "q14")[0]
    assert ranking["verdict"] == lessons.NOT_REPRODUCED and ranking["cause"].startswith("L1 is ahead"), ranking
    # A tie: dropout and L2 right on the same images.
    set_correct(run, "l1", 0.4)
    set_correct(run, "l2", 1.0)
    ranking = verdicts(run, "q14")[0]
    assert ranking["verdict"] == lessons.NOT_REPRODUCED and ranking["cause"] == "dropout is not ahead", ranking


def test_q14_each_regulariser_against_the_baseline(copy):
    run = copy("q14")
    set_correct(run, "baseline", 0.8)
    set_correct(run, "dropout", 0.9)
    set_correct(run, "l2", 0.85)
    set_correct(run, "l1", 0.6)
    found = verdicts(run, "q14")
    assert [lesson["verdict"] for lesson in found[2:]] == [lessons.REPRODUCED] * 3, found
    set_correct(run, "baseline", 0.95)
    set_correct(run, "l1", 0.95)
    found = verdicts(run, "q14")
    assert found[2]["verdict"] == lessons.NOT_REPRODUCED and found[2]["cause"].startswith("baseline is ahead")
    assert found[3]["verdict"] == lessons.NOT_REPRODUCED and found[3]["cause"].startswith("baseline is ahead")
    assert found[4]["verdict"] == lessons.NOT_REPRODUCED and found[4]["cause"] == "baseline is not ahead"


def test_q14_overfitting_is_read_from_the_baseline_validation_loss(copy):
    run = copy("q14")
    epochs = len([r for r in run.read_table("experiments/baseline/history.csv")
                  if str(r["trial_id"]) == str(run.read_experiment("baseline")["trials"][0]["trial_id"])])
    set_val_loss(run, "baseline", [1.0 - 0.1 * e for e in range(epochs)])
    found = verdicts(run, "q14")[1]
    assert found["verdict"] == lessons.NOT_REPRODUCED and "still falling" in found["cause"], found
    set_val_loss(run, "baseline", [1.0 - 0.1 * e for e in range(epochs - 1)] + [2.0])
    found = verdicts(run, "q14")[1]
    assert found["verdict"] == lessons.REPRODUCED, found


def set_curves(run, experiment: str, column: str, curves: list[list[float]]) -> None:
    """Each completed trial of ``experiment`` (one per seed, in trials.csv order) gets its own curve of ``column``."""
    history = run.read_table(f"experiments/{experiment}/history.csv")
    trials = trial_ids(run, experiment)
    assert len(trials) == len(curves)
    for trial, values in zip(trials, curves):
        mine = [r for r in history if str(r["trial_id"]) == trial]
        assert len(mine) == len(values)
        for row, value in zip(mine, values):
            row[column] = value
    run.write_table(f"experiments/{experiment}/history.csv", history)


def judge(run, check) -> dict:
    return lessons.evaluate(run, [lessons.Lesson("claim", check)])[0]


def test_overfitting_is_read_in_every_seed_when_the_claim_says_every_seed(copy):
    run = copy("q14")
    baseline = lessons.Model("baseline", "baseline")
    flat, overfits, everywhere = (lessons.NoOverfitting(baseline), lessons.Overfits(baseline),
                                  lessons.Overfits(baseline, every_seed=True))
    assert len(trial_ids(run, "baseline")) == 2          # two seeds of one setting
    set_curves(run, "baseline", "val_loss", [[1.0, 0.5, 0.45], [1.0, 0.5, 0.45]])      # both still falling
    assert judge(run, flat)["verdict"] == lessons.REPRODUCED
    assert judge(run, overfits)["verdict"] == judge(run, everywhere)["verdict"] == lessons.NOT_REPRODUCED
    # The second seed rises 20 % after its minimum: it overfits, so "no seed overfits" no longer holds.
    set_curves(run, "baseline", "val_loss", [[1.0, 0.5, 0.45], [1.0, 0.5, 0.6]])
    found = judge(run, flat)
    assert found["verdict"] == lessons.NOT_REPRODUCED
    assert found["cause"] == "seed 1: the validation loss rose 20.0 % after its minimum (more than 5 %): it overfits"
    assert "seed 0: validation loss lowest at epoch 3" in found["evidence"]["text"]
    assert "required in none of the 2 seeds" in found["evidence"]["text"]
    assert judge(run, everywhere)["cause"] == "seed 0: the validation loss is lowest at the last epoch: still falling"
    # Both rise: overfitting in every seed.
    set_curves(run, "baseline", "val_loss", [[1.0, 0.5, 0.6], [1.0, 0.5, 0.6]])
    assert judge(run, everywhere)["verdict"] == judge(run, overfits)["verdict"] == lessons.REPRODUCED
    assert judge(run, flat)["verdict"] == lessons.NOT_REPRODUCED


def test_a_late_gain_over_seeds_is_weighed_by_the_seeds_spread(copy):
    """With several seeds the gain's noise is the 95 % interval of the seeds' mean gain (Student's t, computed
    here): "still improving" beyond it and 1 point, "a plateau" when the gain plus it stays within 1 point."""
    import statistics

    from scipy.stats import t

    run = copy("q14")
    baseline = lessons.Model("baseline", "baseline")
    improving, plateau = lessons.LateGain(baseline), lessons.LateGain(baseline, improving=False)

    def half_width(gains):
        return t.ppf(0.975, len(gains) - 1) * statistics.stdev(gains) / len(gains) ** 0.5

    def gains(*points):
        """Each seed's validation accuracy: 0.5, 0.6 at the middle epoch, then 0.6 plus its gain in points."""
        set_curves(run, "baseline", "val_accuracy", [[0.5, 0.6, 0.6 + g / 100] for g in points])

    gains(5.0, 5.2)                                      # the seeds agree: 5.1 ± 1.27
    assert half_width([5.0, 5.2]) < 5.1
    found = judge(run, improving)
    assert found["verdict"] == lessons.REPRODUCED, found
    assert f"the 95 % interval of the mean gain of 2 seeds is ±{half_width([5.0, 5.2]):.2f} points" in \
        found["evidence"]["text"]
    gains(1.0, 9.2)                                      # the same mean, the seeds far apart: ± 52
    assert half_width([1.0, 9.2]) > 5.1
    found = judge(run, improving)
    assert found["verdict"] == lessons.NOT_REPRODUCED and found["cause"].startswith("cannot tell within noise")
    gains(0.1, 0.2)                                      # 0.15 ± 0.64: within 1 point at the upper end
    assert 0.15 + half_width([0.1, 0.2]) <= 1
    assert judge(run, plateau)["verdict"] == lessons.REPRODUCED
    gains(0.1, 0.9)                                      # 0.5 ± 5.1: it may still be rising
    assert 0.5 + half_width([0.1, 0.9]) > 1
    found = judge(run, plateau)
    assert found["verdict"] == lessons.NOT_REPRODUCED and found["cause"].startswith("cannot tell within noise")


# ================================================================================ q13
def test_q13_sigmoid_trails_tanh_and_relu_by_the_paired_test(copy):
    run = copy("q13")
    for activation, right in (("sigmoid", 0.3), ("tanh", 0.6), ("relu", 0.7)):
        set_correct(run, "activations", right, activation=activation)
    found = verdicts(run, "q13")[0]
    assert found["verdict"] == lessons.REPRODUCED, found
    set_correct(run, "activations", 0.65, activation="sigmoid")
    found = verdicts(run, "q13")[0]
    assert found["verdict"] == lessons.NOT_REPRODUCED and found["cause"].startswith("sigmoid is ahead"), found


def test_q13_gradient_share_is_the_first_layer_over_the_output_layer(smoke):
    """GradientShare's number, by this test's own arithmetic on layer_stats.csv."""
    run = store(smoke, "q13")
    rows = run.read_table("experiments/depth/layer_stats.csv")
    (trial,) = trial_ids(run, "depth", activation="sigmoid", depth=9)
    mine = [r for r in rows if str(r["trial_id"]) == trial]
    last = max(int(r["epoch"]) for r in mine)
    at = {int(r["index"]): float(r["grad_mean_abs"]) for r in mine if int(r["epoch"]) == last}
    assert sorted(at) == list(range(1, 11))
    share = lessons.GradientShare("depth", "sigmoid at depth 9", {"activation": "sigmoid", "depth": 9})
    assert share.read(lessons.Stored(run)) == pytest.approx(at[1] / at[10])
    at_init = {int(r["index"]): float(r["grad_mean_abs"]) for r in mine if int(r["epoch"]) == 0}
    share = lessons.GradientShare("depth", "sigmoid at depth 9", {"activation": "sigmoid", "depth": 9}, epoch=0)
    assert share.read(lessons.Stored(run)) == pytest.approx(at_init[1] / at_init[10])


def test_q13_vanishing_follows_the_stored_gradients(copy):
    run = copy("q13")
    set_shares(run, "depth", {1: 0.8, 5: 0.05, 9: 0.001}, activation="sigmoid")
    set_shares(run, "depth", {1: 0.9, 5: 0.6, 9: 0.4}, activation="relu")
    found = verdicts(run, "q13")
    assert [found[1]["verdict"], found[2]["verdict"]] == [lessons.REPRODUCED] * 2, found
    # Sigmoid's share at depth 9 above the bound: it has not vanished.
    set_shares(run, "depth", {9: 0.02}, activation="sigmoid")
    found = verdicts(run, "q13")[1]
    assert found["verdict"] == lessons.NOT_REPRODUCED and "not < 0.01" in found["cause"], found
    # Not falling with depth: depth 5 gets more than depth 1.
    set_shares(run, "depth", {5: 0.9, 9: 0.001}, activation="sigmoid")
    found = verdicts(run, "q13")[1]
    assert found["verdict"] == lessons.NOT_REPRODUCED and "is not >" in found["cause"], found
    # ReLU's first layer at depth 9 gets 5 % of the output layer's gradient: below the 10 % it must reach.
    set_shares(run, "depth", {9: 0.05}, activation="relu")
    found = verdicts(run, "q13")[2]
    assert found["verdict"] == lessons.NOT_REPRODUCED and "relu at depth 9 is 0.05" in found["cause"], found


# ================================================================================ q7
def test_q7_tuning_and_flips_follow_the_paired_test(copy):
    run = copy("q7")
    set_correct(run, "default", 0.3)
    set_correct(run, "plain", 0.5)
    set_correct(run, "flip", 0.55)
    found = verdicts(run, "q7")
    assert [found[0]["verdict"], found[1]["verdict"]] == [lessons.REPRODUCED] * 2, found
    assert "McNemar's exact test" in found[1]["evidence"]["text"]
    set_correct(run, "flip", 0.5)
    set_correct(run, "default", 0.5)
    found = verdicts(run, "q7")
    assert found[0]["cause"] == "the tuned best setting is not ahead" and found[1]["cause"] == "with flips is not ahead"


def test_q7_the_seeds_collapse_needs_chance_and_a_vanished_gradient(copy):
    run = copy("q7")
    for depth in (3, 4):
        set_class(run, "depth", 0, depth=depth)
    set_shares(run, "depth", {4: 0.001})
    found = verdicts(run, "q7")[2]
    assert found["verdict"] == lessons.REPRODUCED, found
    # The same nets at chance, but a fair share of the gradient reaches the first layer: the measured
    # gradient does not support the seed's explanation, and the cause says so with the number.
    set_shares(run, "depth", {4: 0.3})
    found = verdicts(run, "q7")[2]
    assert found["verdict"] == lessons.NOT_REPRODUCED
    assert found["cause"] == "the 5-layer MLP's first-layer gradient share is 0.3, not < 0.01", found
    # Nets that learn: said first.
    set_correct(run, "depth", 0.9, depth=4)
    found = verdicts(run, "q7")[2]
    assert found["verdict"] == lessons.NOT_REPRODUCED and "the 5-layer MLP learns: above chance" in found["cause"]
