"""Lessons (dlcv_keras/lessons.py) on a real run: q1's smoke run, as the command line stores it.

The verdicts are computed from stored predictions: each test rewrites the stored numbers the way a
run with other results would have written them and checks that the verdict follows."""

import json

import numpy as np
import pytest

import real_runs
from dlcv_keras import lessons
from dlcv_keras.lessons import (NOT_COMPARABLE, NOT_REPRODUCED, REPRODUCED, Accuracy, AtChance, Beats, Model,
                                NoWorse, Ordered, Overfits, Rises, Threshold, Value)
from dlcv_keras.questions import QUESTIONS
from dlcv_keras.results.store import PREDICTIONS

FAST = Model("lr_batch", "lr 1e-2", {"lr": 0.01, "batch_size": 32})
SLOW = Model("lr_batch", "lr 1e-4", {"lr": 0.0001, "batch_size": 32})


@pytest.fixture
def q1(smoke_results, tmp_path):
    """A copy of q1's smoke run, to rewrite."""
    return real_runs.store(real_runs.copy_results(smoke_results, tmp_path, "q1"), "q1")


def _trial_id(store, experiment: str, **where) -> str:
    rows = store.read_table(f"experiments/{experiment}/trials.csv")
    found = [r for r in rows if all(lessons._same(r.get(k), v) for k, v in where.items())]
    assert len(found) == 1, where
    return str(found[0]["trial_id"])


def _set_correct(store, experiment: str, trial_id: str, right: np.ndarray) -> None:
    """Rewrite one model's stored test predictions so that it is right exactly on ``right``."""
    path = store.experiment_dir(experiment) / PREDICTIONS
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    labels = arrays["labels"]
    key = next(k for k in arrays if k != "labels" and lessons._trial_key(k) == lessons._trial_key(trial_id))
    arrays[key] = np.where(right, labels, (labels + 1) % 10).astype(np.int16)
    store.write_arrays(experiment, PREDICTIONS, **arrays)


def _verdict(store, check):
    return lessons.evaluate(store, [lessons.Lesson("claim", check)])[0]


def test_the_run_writes_every_declared_lesson(smoke_results):
    stored = json.loads((smoke_results / "q1" / "smoke" / "lessons.json").read_text())
    assert [lesson["claim"] for lesson in stored] == [lesson.claim for lesson in QUESTIONS["q1"].lessons]
    for lesson in stored:
        assert lesson["verdict"] in lessons.VERDICTS
        assert lesson["evidence"]["text"]
        assert (lesson["cause"] is None) == (lesson["verdict"] == REPRODUCED)
    # Stored lessons are the stored numbers' verdicts: evaluating them again gives the same.
    again = lessons.evaluate(real_runs.store(smoke_results, "q1"), QUESTIONS["q1"].lessons)
    run_id = json.loads((smoke_results / "q1" / "smoke" / "run.json").read_text())["run_id"]
    assert again == [{k: v for k, v in lesson.items() if k != "run_id"} for lesson in stored]
    assert {lesson["run_id"] for lesson in stored} == {run_id}      # stamped: a report tells an earlier run's


def test_beats_follows_the_predictions(q1):
    n = len(np.load(q1.experiment_dir("lr_batch") / PREDICTIONS)["labels"])
    fast, slow = _trial_id(q1, "lr_batch", lr=0.01, batch_size=32), _trial_id(q1, "lr_batch", lr=0.0001, batch_size=32)
    rng = np.random.default_rng(0)
    base = rng.random(n) < 0.7
    # A right wherever B is, and on 40 more images: A beats B.
    better = base.copy()
    better[np.flatnonzero(~base)[:40]] = True
    _set_correct(q1, "lr_batch", fast, better)
    _set_correct(q1, "lr_batch", slow, base)
    found = _verdict(q1, Beats(FAST, SLOW))
    assert found["verdict"] == REPRODUCED
    assert found["evidence"]["comparison"]["only_a"] == 40 and found["evidence"]["comparison"]["only_b"] == 0
    assert "McNemar's exact test" in found["evidence"]["text"]
    # Two images more: within noise, not reproduced, and the cause says so.
    slight = base.copy()
    slight[np.flatnonzero(~base)[:2]] = True
    _set_correct(q1, "lr_batch", fast, slight)
    found = _verdict(q1, Beats(FAST, SLOW))
    assert found["verdict"] == NOT_REPRODUCED and "within noise" in found["cause"]
    # The other way round: B ahead, significantly.
    _set_correct(q1, "lr_batch", fast, base)
    _set_correct(q1, "lr_batch", slow, better)
    found = _verdict(q1, Beats(FAST, SLOW))
    assert found["verdict"] == NOT_REPRODUCED and found["cause"].startswith("lr 1e-4 is ahead, significantly")
    # No worse than: a tie is no worse; 40 images behind is.
    assert _verdict(q1, NoWorse(FAST, Model("lr_batch", "same", {"lr": 0.01, "batch_size": 32})))["verdict"] \
        == REPRODUCED
    assert _verdict(q1, NoWorse(FAST, SLOW))["verdict"] == NOT_REPRODUCED


def test_a_model_at_chance_is_said_to_be_at_chance_first(q1):
    n = len(np.load(q1.experiment_dir("lr_batch") / PREDICTIONS)["labels"])
    fast, slow = _trial_id(q1, "lr_batch", lr=0.01, batch_size=32), _trial_id(q1, "lr_batch", lr=0.0001, batch_size=32)
    chance = np.arange(n) % 10 == 0                      # one image in ten: chance on ten classes
    _set_correct(q1, "lr_batch", fast, chance)
    _set_correct(q1, "lr_batch", slow, np.ones(n, bool))
    found = _verdict(q1, Beats(FAST, SLOW))
    assert found["verdict"] == NOT_REPRODUCED and found["cause"].startswith("lr 1e-2 is at chance")
    assert _verdict(q1, AtChance(FAST))["verdict"] == REPRODUCED
    assert _verdict(q1, Accuracy(FAST))["verdict"] == NOT_REPRODUCED
    assert _verdict(q1, Accuracy(SLOW, at_least=0.99))["verdict"] == REPRODUCED
    _set_correct(q1, "lr_batch", slow, np.arange(n) % 10 < 9)         # 90 %
    found = _verdict(q1, Accuracy(SLOW, at_least=0.95))
    assert found["verdict"] == NOT_REPRODUCED and "below 95.00 %" in found["cause"]


def test_rises_needs_the_ends_apart_and_no_step_down(q1):
    n = len(np.load(q1.experiment_dir("fractions") / PREDICTIONS)["labels"])
    models = tuple(Model("fractions", f"{share:g}", {"train_fraction": share}) for share in (0.1, 0.2, 0.5))
    ids = [_trial_id(q1, "fractions", train_fraction=share) for share in (0.1, 0.2, 0.5)]
    for trial, right in zip(ids, (np.arange(n) < 0.5 * n, np.arange(n) < 0.55 * n, np.arange(n) < 0.7 * n)):
        _set_correct(q1, "fractions", trial, right)
    assert _verdict(q1, Rises(models))["verdict"] == REPRODUCED
    # The middle share far below the smallest: a significant step down.
    _set_correct(q1, "fractions", ids[1], np.arange(n) < 0.2 * n)
    found = _verdict(q1, Rises(models))
    assert found["verdict"] == NOT_REPRODUCED and "0.2 is below 0.1" in found["cause"]


def test_missing_or_stale_numbers_are_not_comparable(q1):
    (q1.experiment_dir("lr_batch") / PREDICTIONS).unlink()
    found = _verdict(q1, Beats(FAST, SLOW))
    assert found["verdict"] == NOT_COMPARABLE and "no test predictions" in found["cause"]
    found = _verdict(q1, Beats(Model("lr_batch", "lr 0.5", {"lr": 0.5}), SLOW))
    assert found["verdict"] == NOT_COMPARABLE
    # A summary another run left behind is stale: never read as this run's.
    summary = q1.read_json("experiments/fractions/summary.json")
    q1.write_json("experiments/fractions/summary.json", {**summary, "run_id": "an-earlier-run"})
    found = _verdict(q1, Rises((Model("fractions", "a", {"train_fraction": 0.1}),
                                Model("fractions", "b", {"train_fraction": 0.5}))))
    assert found["verdict"] == NOT_COMPARABLE and "stale" in found["cause"]


def test_overfits_reads_the_validation_loss_curve(q1):
    history = q1.read_table("experiments/base/history.csv")
    assert len(history) >= 2
    base = Model("base", "the base run")
    rising = [{**row, "val_loss": 1.0 + (0.5 if i == len(history) - 1 else 0.0) - 0.01 * i} for i, row in enumerate(history)]
    q1.write_table("experiments/base/history.csv", rising)
    assert _verdict(q1, Overfits(base))["verdict"] == REPRODUCED
    falling = [{**row, "val_loss": 1.0 - 0.1 * i} for i, row in enumerate(history)]
    q1.write_table("experiments/base/history.csv", falling)
    found = _verdict(q1, Overfits(base))
    assert found["verdict"] == NOT_REPRODUCED and "still falling" in found["cause"]


def test_threshold_and_order_on_stored_numbers(q1):
    accuracy = Value("best", "test_accuracy", "the best model's test accuracy")
    stored = q1.read_json("experiments/best/summary.json")["test_accuracy"]
    assert _verdict(q1, Threshold(accuracy, ">=", stored))["verdict"] == REPRODUCED
    assert _verdict(q1, Threshold(accuracy, ">", stored))["verdict"] == NOT_REPRODUCED
    rows = [Value("fractions", "test_accuracy", f"{s:g}", table="trials", where={"train_fraction": s})
            for s in (0.1, 0.2, 0.5)]
    numbers = [row.read(lessons.Stored(q1)) for row in rows]
    rising = numbers == sorted(numbers) and len(set(numbers)) == 3
    assert (_verdict(q1, Ordered(tuple(rows)))["verdict"] == REPRODUCED) == rising


# -- the report shows the stored verdicts ----------------------------------------------------------
def _judge_again(store):
    """Judge the lessons as the run does when it completes (pipeline.judge_lessons, the run's id stamped)."""
    from dlcv_keras.pipeline import judge_lessons

    store.run_id = store.read_json("run.json")["run_id"]
    return judge_lessons(QUESTIONS["q1"], store, echo=lambda *args: None)


def _q1_chapter(results):
    from dlcv_keras.report.writeup import writeup_context

    context = writeup_context(results, "a1", real_runs.PROFILE)
    return context, next(c for c in context["chapters"] if c["question"] == "q1")


def test_the_writeup_and_index_show_each_lesson_and_follow_its_verdict(q1, tmp_path):
    from dlcv_keras.report.index import index_context
    from dlcv_keras.report.writeup import build_writeup

    results = q1.root.parents[1]
    context, chapter = _q1_chapter(results)
    stored = q1.read_json("lessons.json")
    assert [(l["claim"], l["verdict"]) for l in chapter["lessons"]["lessons"]] == \
        [(l["claim"], l["verdict"]) for l in stored]
    row = next(r for r in context["scoreboard"]["rows"] if r["question"] == "q1")
    held = sum(l["verdict"] == REPRODUCED for l in stored)
    assert row["cells"][0] == held and row["total"] == len(stored) and not row["stale"]
    html = build_writeup(results, "a1", real_runs.PROFILE)[0].read_text()
    assert "What this question teaches, and whether our run shows it" in html and "What this shows." in html
    assert all(l["claim"] in __import__("html").unescape(html) for l in stored)

    # lr 1e-2 wrong everywhere lr 1e-4 is right: the first lesson is judged not reproduced, and every view says so.
    n = len(np.load(q1.experiment_dir("lr_batch") / PREDICTIONS)["labels"])
    _set_correct(q1, "lr_batch", _trial_id(q1, "lr_batch", lr=0.01, batch_size=32), np.arange(n) % 10 == 0)
    _set_correct(q1, "lr_batch", _trial_id(q1, "lr_batch", lr=0.0001, batch_size=32), np.ones(n, bool))
    judged = _judge_again(q1)
    assert judged[0]["verdict"] == NOT_REPRODUCED
    context, chapter = _q1_chapter(results)
    first = chapter["lessons"]["lessons"][0]
    assert first["verdict_words"] == "not reproduced" and chapter["lessons"]["counts"][NOT_REPRODUCED] >= 1
    assert "Not shown (not reproduced): Trained for the seed's 50 epochs" in chapter["lessons"]["shows"]
    assert judged[0]["cause"] in chapter["lessons"]["shows"]
    row = next(r for r in context["scoreboard"]["rows"] if r["question"] == "q1")
    assert row["cells"][1] == sum(l["verdict"] == NOT_REPRODUCED for l in judged)
    assert context["scoreboard"]["every_lesson"] == 0
    index_row = next(r for g in index_context(results)["groups"] for r in g["rows"] if r["question"] == "q1")
    assert index_row["lessons"].startswith(f"{sum(l['verdict'] == REPRODUCED for l in judged)} of {len(judged)} "
                                           f"reproduced (")

    # Another run's verdicts are that run's: said so, never counted as this run's.
    q1.write_json("run.json", {**q1.read_json("run.json"), "run_id": "a-later-run"})
    context, chapter = _q1_chapter(results)
    assert chapter["lessons"]["stale"] and context["scoreboard"]["every_lesson"] == 0
    assert "These verdicts were judged by an earlier run" in build_writeup(results, "a1", real_runs.PROFILE)[0].read_text()


@pytest.mark.parametrize("content, expected", [
    (json.dumps([{"claim": "x", "verdict": "maybe", "evidence": {}}]), "'maybe'"),
    (json.dumps([{"claim": "x", "verdict": "reproduced", "evidence": {}, "run_id": ["a"]}]), "['a']"),
    (json.dumps([]), "got an empty list"),
    (b"\xff\xfe not text", "is not UTF-8 text"),
    ("[{", "is not valid JSON"),
])
def test_a_malformed_lessons_file_is_one_line_and_exit_2(q1, content, expected):
    import subprocess
    import sys

    path = q1.root.joinpath("lessons.json")
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    done = subprocess.run([sys.executable, "-m", "dlcv_keras.report", "a1", "--results", str(q1.root.parents[1]),
                           "--profile", real_runs.PROFILE], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "lessons.json" in done.stderr and expected in done.stderr
    assert not (q1.root.parents[1] / "writeups" / f"a1-{real_runs.PROFILE}.html").exists()
    # The overview page still stands: the bad file is named in its own cell only.
    from dlcv_keras.report.index import index_context
    row = next(r for g in index_context(q1.root.parents[1])["groups"] for r in g["rows"] if r["question"] == "q1")
    assert row["status"] == "complete" and row["lessons"].startswith("unreadable: ") and expected in row["lessons"]


def test_a_claims_headline_is_its_words_before_the_first_colon_outside_parentheses():
    from dlcv_keras.report.verdicts import headline

    claim = QUESTIONS["q15"].lessons[1].claim
    assert claim.startswith("N(0, 1) initialisation learns, but plateaus early (the seed: ")
    assert headline(claim) == claim[:claim.index("): ") + 1]
    assert headline("A plain claim, checked nowhere else.") == "A plain claim, checked nowhere else"
