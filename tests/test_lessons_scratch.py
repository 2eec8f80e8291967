"""The from-scratch questions' lessons (q2, q4, q5, q6), judged on their real smoke runs, then on copies
whose stored numbers are changed the way another outcome would have stored them: each verdict must follow.

The smoke runs are the shared ones (tests/conftest.py ``smoke_results``): q2 and q6 as the seed has them,
q4 and q5 on the digits fallback (offline, no MNIST or CIFAR-10).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from real_runs import PROFILE, as_evaluated, copy_results

from dlcv_keras import lessons
from dlcv_keras.questions import QUESTIONS
from dlcv_keras.results import ResultsStore
from dlcv_keras.scratch.expression import relative_difference


def copied(smoke_results, tmp_path, question: str) -> ResultsStore:
    results = copy_results(smoke_results, tmp_path / "results", f"{question}/{PROFILE}")
    return ResultsStore(results, question, PROFILE)


def judged(store: ResultsStore) -> list[dict]:
    return lessons.evaluate(store, QUESTIONS[store.question].lessons)


def verdicts(store: ResultsStore) -> list[str]:
    return [lesson["verdict"] for lesson in judged(store)]


def edit_summary(store: ResultsStore, experiment: str, change) -> None:
    """Change an experiment's summary.json in place (run_id kept: still this run's)."""
    summary = store.read_experiment(experiment)["summary"]
    change(summary)
    store.write_json(f"experiments/{experiment}/summary.json", summary)


def edit_table(store: ResultsStore, experiment: str, table: str, change) -> None:
    rows = store.read_experiment(experiment)[table]
    change(rows)
    store.write_table(f"experiments/{experiment}/{table}.csv", rows)


def test_every_question_here_wrote_its_lessons(smoke_results):
    for question in ("q2", "q4", "q5", "q6"):
        store = ResultsStore(smoke_results, question, PROFILE)
        written = store.read_json(lessons.LESSONS_FILE)
        assert as_evaluated(written) == judged(store), question
        assert [lesson["claim"] for lesson in written] == [lesson.claim for lesson in QUESTIONS[question].lessons]


# -- q2 ------------------------------------------------------------------------------------------
def test_q2_seed_table_lesson_follows_the_stored_difference(smoke_results, tmp_path):
    store = copied(smoke_results, tmp_path, "q2")
    found = store.read_experiment("gradients")
    summary, points = found["summary"], found["points"]
    # The smoke run evaluates the seed's f at the seed's four points: each compared with the seed's row.
    reference = {(r["x"], r["y"], r["z"]): r for r in store.read_json("run.json")["reference"]["gradients"]["rows"]}
    keys = ("value", "df_dx", "df_dy", "df_dz")
    for row in points:
        seed = reference[(row["x"], row["y"], row["z"])]
        assert [row[f"seed_{k}"] for k in keys] == [seed[k] for k in keys]
        assert row["seed_rel_diff"] == relative_difference([row[k] for k in keys], [seed[k] for k in keys])
    assert summary["max_rel_diff_seed"] == max(row["seed_rel_diff"] for row in points) <= 1e-12
    first, second = judged(store)
    assert first["verdict"] == second["verdict"] == lessons.REPRODUCED
    assert first["evidence"]["parts"][1]["value"] == summary["max_rel_diff_seed"]

    # Another f's numbers (a difference far above rounding), then fewer of the seed's points.
    edit_summary(store, "gradients", lambda s: s.update(max_rel_diff_seed=3e-9))
    first = judged(store)[0]
    assert first["verdict"] == lessons.NOT_REPRODUCED
    assert "3e-09, not <= 1e-12" in first["cause"]
    edit_summary(store, "gradients", lambda s: s.update(max_rel_diff_seed=1e-15, seed_points=3))
    assert judged(store)[0]["verdict"] == lessons.NOT_REPRODUCED
    # A run of the user's own f stores no comparison: nothing to judge against the seed's table.
    edit_summary(store, "gradients", lambda s: [s.pop(k) for k in ("max_rel_diff_seed", "seed_points")])
    assert judged(store)[0]["verdict"] == lessons.NOT_COMPARABLE


def test_q2_autodiff_lesson_follows_the_stored_differences(smoke_results, tmp_path):
    store = copied(smoke_results, tmp_path, "q2")
    assert verdicts(store)[1] == lessons.REPRODUCED
    edit_summary(store, "gradients", lambda s: s.update(max_rel_diff_numeric=2e-7))
    second = judged(store)[1]
    assert second["verdict"] == lessons.NOT_REPRODUCED and "central differences is 2e-07" in second["cause"]


def test_q2_users_f_is_not_compared_with_the_seeds_table(tmp_path):
    from dlcv_keras.experiments.scalar_gradients import against_seed_table
    from dlcv_keras.scratch.expression import DEFAULT_POINTS, parse_expression, value_gradients

    seed_rows = QUESTIONS["q2"].reference["gradients"]["rows"]
    rows = []
    for point in DEFAULT_POINTS[:2] + ((1.0, 2.0, 3.0),):
        value, grads = value_gradients(parse_expression("x*y + z"), point)
        rows.append({"x": float(point[0]), "y": float(point[1]), "z": float(point[2]), "value": value,
                     **{f"df_d{v}": g for v, g in zip("xyz", grads)}})
    # Compared only at the seed's points; a wrong f is far from its numbers there.
    assert against_seed_table(rows, seed_rows, ["x", "y", "z"]) == 2
    assert "seed_rel_diff" not in rows[2] and min(r["seed_rel_diff"] for r in rows[:2]) > 0.5


# -- q4 ------------------------------------------------------------------------------------------
def test_q4_blur_measures_and_lessons(smoke_results, tmp_path):
    store = copied(smoke_results, tmp_path, "q4")
    found = store.read_experiment("blur")
    summary, measures = found["summary"], found["measures"]
    with np.load(store.experiment_dir("blur") / "arrays.npz") as arrays:
        originals, blurred = arrays["originals"], arrays["blurred"]
    assert len(measures) == len(originals) * blurred.shape[-1]
    for row in measures:
        image = originals[row["image"] - 1].mean(axis=-1)
        channel = blurred[row["image"] - 1, ..., row["channel"] - 1]
        tv = [float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean()) for a in (image, channel)]
        assert row["tv_ratio"] == pytest.approx(tv[1] / tv[0], rel=1e-12)
    assert summary["tv_ratio"] == max(r["tv_ratio"] for r in measures) < 1
    assert summary["high_frequency_ratio"] == max(r["high_frequency_ratio"] for r in measures) < 1
    assert verdicts(store) == [lessons.REPRODUCED, lessons.REPRODUCED]

    # One channel no smoother than its image (an identity kernel's), then a forward pass off by 1e-3.
    edit_summary(store, "blur", lambda s: s.update(tv_ratio=1.0))
    second = judged(store)[1]
    assert second["verdict"] == lessons.NOT_REPRODUCED and "not < 1" in second["cause"]
    edit_summary(store, "blur", lambda s: s.update(tv_ratio=0.8, keras_max_rel_diff=1e-3))
    assert verdicts(store) == [lessons.NOT_REPRODUCED, lessons.REPRODUCED]


def test_q4_an_identity_kernel_does_not_blur():
    from dlcv_keras.experiments.conv_blur import blur_measures

    rng = np.random.default_rng(0)
    images = rng.random((2, 8, 8, 1))
    same = blur_measures(images, np.repeat(images, 3, axis=-1))
    assert all(math.isclose(r["tv_ratio"], 1.0) and math.isclose(r["high_frequency_ratio"], 1.0) for r in same)
    flat = blur_measures(images, np.full((2, 8, 8, 1), 0.5))
    assert all(r["tv_ratio"] == 0.0 and r["high_frequency_ratio"] == 0.0 for r in flat)


# -- q5 ------------------------------------------------------------------------------------------
def test_q5_explosion_lesson_follows_run_a(smoke_results, tmp_path):
    store = copied(smoke_results, tmp_path, "q5")
    summary = store.read_experiment("run_a")["summary"]
    # The smoke run on digits diverges within its 50 epochs: inf first, NaN later.
    assert summary["first_inf_epoch"] < summary["first_nan_epoch"] and summary["status"] == "diverged"
    first = judged(store)[0]
    assert first["verdict"] == lessons.REPRODUCED
    assert f"inf from epoch {summary['first_inf_epoch']}, NaN from epoch {summary['first_nan_epoch']}" in \
        first["evidence"]["text"]

    for change, cause in (({"first_inf_epoch": None, "first_nan_epoch": None, "status": "completed"},
                           "never reached inf"),
                          ({"first_nan_epoch": None}, "never NaN"),
                          ({"first_inf_epoch": summary["first_nan_epoch"] + 1}, "came before inf"),
                          ({"status": "completed"}, "recorded as completed")):
        edit_summary(store, "run_a", lambda s, change=change: s.update({**summary, **change}))
        first = judged(store)[0]
        assert first["verdict"] == lessons.NOT_REPRODUCED and cause in first["cause"], change


def test_q5_clipped_lessons_follow_run_b(smoke_results, tmp_path):
    store = copied(smoke_results, tmp_path, "q5")
    trials = {row["batch_size"]: row for row in store.read_experiment("run_b")["trials"]}
    norms = store.read_experiment("run_b")["summary"]["final_l2_norm"]
    settled = all(t["status"] == "completed" and t["l2_norm"] < t["initial_l2_norm"] for t in trials.values())
    rising = norms["1"] < norms["4"] < norms["8"]
    _, second, third = judged(store)
    assert second["verdict"] == (lessons.REPRODUCED if settled else lessons.NOT_REPRODUCED)
    assert third["verdict"] == (lessons.REPRODUCED if rising else lessons.NOT_REPRODUCED)

    # The seed's norms (429.59 < 561.23 < 617.48), then batch 4 above batch 8.
    for made, expected in (({"1": 429.59, "4": 561.23, "8": 617.48}, lessons.REPRODUCED),
                           ({"1": 429.59, "4": 700.0, "8": 617.48}, lessons.NOT_REPRODUCED)):
        edit_summary(store, "run_b", lambda s, made=made: s.update(final_l2_norm=made))
        third = judged(store)[2]
        assert third["verdict"] == expected, made
    assert third["cause"] == "batch size 4 (700) is not < batch size 8 (617.5)"

    # A clipped run that ended no closer to the target than it started, then one that diverged.
    def unsettled(rows):
        rows[0]["l2_norm"] = rows[0]["initial_l2_norm"] * 2
    edit_table(store, "run_b", "trials", unsettled)
    assert judged(store)[1]["verdict"] == lessons.NOT_REPRODUCED
    edit_table(store, "run_b", "trials", lambda rows: [r.update(l2_norm=r["initial_l2_norm"] / 2) for r in rows])
    assert judged(store)[1]["verdict"] == lessons.REPRODUCED
    edit_table(store, "run_b", "trials", lambda rows: rows[1].update(status="diverged", l2_norm=math.inf))
    second = judged(store)[1]
    assert second["verdict"] == lessons.NOT_REPRODUCED and "ended diverged" in second["cause"]


# -- q6 ------------------------------------------------------------------------------------------
def test_q6_lessons_follow_the_stored_checks(smoke_results, tmp_path):
    store = copied(smoke_results, tmp_path, "q6")
    check, train = (store.read_experiment(name)["summary"] for name in ("check", "train"))
    assert check["max_relative_error"] == max(check["relative_errors"].values()) <= 1e-8
    assert verdicts(store) == [lessons.REPRODUCED] * 3
    assert judged(store)[2]["evidence"]["value"] == train["final_loss"] < 0.02

    edit_summary(store, "check", lambda s: s.update(scores_max_abs_diff=2e-7))
    assert verdicts(store) == [lessons.NOT_REPRODUCED, lessons.REPRODUCED, lessons.REPRODUCED]
    edit_summary(store, "check", lambda s: s.update(scores_max_abs_diff=check["scores_max_abs_diff"],
                                                    max_relative_error=2e-8))
    assert verdicts(store) == [lessons.REPRODUCED, lessons.NOT_REPRODUCED, lessons.REPRODUCED]
    edit_summary(store, "train", lambda s: s.update(final_loss=0.02))
    third = judged(store)[2]
    assert third["verdict"] == lessons.NOT_REPRODUCED and third["cause"] == "the final training loss is 0.02, not < 0.02"
