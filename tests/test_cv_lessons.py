"""q9-q12's lessons: the map statistics q12's lessons read, and every lesson judged on real smoke runs and
on copies of them whose stored numbers are changed the way a better or worse run would change them.

The statistics tests feed ``MapStatistics`` maps whose answer is known by construction (patch-constant
maps have no fine detail, a checkerboard has nothing else). The lesson tests run
``python -m dlcv_keras.run q9 | q10 | q11 | q12 --profile smoke`` once (offline, on the real offline
CIFAR-10 copy), then copy a question's results, rewrite a number (a test prediction, a training accuracy,
a validation loss, a measured statistic) and judge the lessons again: each verdict must follow.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import real_runs
from real_runs import copy_results, kept_runs, offline_data, save_runs

PROFILE = "smoke"


# ================================================================================ map statistics
def measure(maps, images=None, image_size=32, batches=1) -> dict:
    from dlcv_keras.experiments.activation_maps import MapStatistics

    maps = np.asarray(maps, np.float32)
    if images is None:
        images = np.zeros((len(maps), image_size, image_size, 3), np.float32)
    found = MapStatistics(image_size)
    for part in np.array_split(np.arange(len(maps)), batches):
        found.add(maps[part], images[part])
    return found.result()


def test_patch_constant_maps_have_no_fine_detail_and_a_checkerboard_nothing_else():
    rng = np.random.default_rng(0)
    blocks = rng.random((5, 4, 4, 3))
    constant = np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2)          # one value per 8x8-pixel patch
    found = measure(constant)
    assert found["detail"] == pytest.approx(0.0, abs=1e-12)
    assert (found["height"], found["width"], found["positions"], found["stride"]) == (32, 32, 1024, 1)

    board = np.indices((32, 32)).sum(axis=0) % 2 * 2.0 - 1                 # +1/-1 checkerboard: only fine detail
    found = measure(np.broadcast_to(board[None, :, :, None], (2, 32, 32, 4)))
    assert found["detail"] == pytest.approx(1.0)
    assert found["neighbour_correlation"] == pytest.approx(-1.0)

    # Half-and-half: a map whose 8x8 patches are constant plus a checkerboard of equal variance.
    halves = np.where(np.indices((32, 32))[1] < 16, 1.0, -1.0) + board
    assert measure(halves[None, :, :, None])["detail"] == pytest.approx(0.5)


def test_fine_detail_is_measured_on_whole_patches_only():
    rng = np.random.default_rng(5)
    maps = rng.random((3, 28, 28, 2))
    maps[:, :24, :24] = np.repeat(np.repeat(rng.random((3, 3, 3, 2)), 8, axis=1), 8, axis=2)
    found = measure(maps, np.zeros((3, 28, 28, 1), np.float32), image_size=28)
    assert found["detail"] == pytest.approx(0.0, abs=1e-12)      # the ragged last 4 rows and columns left out
    assert found["stride"] == 1 and found["positions"] == 28 * 28


def test_a_late_map_holds_no_detail_finer_than_its_stride_and_counts_its_zeros():
    rng = np.random.default_rng(1)
    late = np.maximum(rng.normal(size=(6, 4, 4, 10)), 0)                  # ReLU output: about half zeros
    found = measure(late)
    assert (found["height"], found["positions"], found["stride"], found["channels"]) == (4, 16, 8, 10)
    assert found["detail"] == 0.0
    assert found["zero_share"] == pytest.approx(float((late == 0).mean()))


def test_the_channel_following_the_edges_is_found_and_batches_add_up():
    from dlcv_keras.experiments.activation_maps import _edges

    rng = np.random.default_rng(2)
    images = rng.random((8, 32, 32, 3)).astype(np.float32)
    edges = _edges(images)
    maps = rng.random((8, 32, 32, 3))
    maps[..., 1] = 3 * edges + 2                                             # channel 1 is the edge map, rescaled
    found = measure(maps, images)
    assert found["edge_channel"] == 1
    assert found["edge_correlation"] == pytest.approx(1.0)
    assert measure(maps, images, batches=3) == pytest.approx(found)
    # Sobel on a vertical step: the magnitude is 4 x the step along the two columns beside it, 0 elsewhere.
    step = np.zeros((1, 32, 32, 1))
    step[..., 16:, :] = 1.0
    magnitude = _edges(step)[0]
    assert np.allclose(magnitude[:, 15:17], 4.0) and np.allclose(np.delete(magnitude, [15, 16], axis=1), 0.0)


def test_the_observation_reads_the_measured_statistics():
    from dlcv_keras.experiments.activation_maps import _model_observation

    rng = np.random.default_rng(4)
    # Smooth images (one colour per 8x8 patch, a little noise) and noisy early maps: more detail in the maps.
    images = (np.repeat(np.repeat(rng.random((6, 4, 4, 3)), 8, axis=1), 8, axis=2)
              + 0.01 * rng.random((6, 32, 32, 3))).astype(np.float32)
    early = np.maximum(rng.normal(size=(6, 32, 32, 4)), 0)
    late = np.maximum(rng.normal(size=(6, 4, 4, 16)), 0)
    statistics = {"early": measure(early, images), "late": measure(late, images)}
    inputs = measure(images, images)
    model = {"label": "ResNet-18", "question": "q9", "early_layer": "stem_relu", "late_layer": "stage3_block1_out"}
    shown_early, shown_late = rng.random((2, 4, 32, 32)), rng.random((2, 4, 4, 4))
    sentence = _model_observation(model, shown_early, shown_late, statistics, inputs)
    e, l = statistics["early"], statistics["late"]
    assert sentence.startswith("ResNet-18 (q9), measured on 6 test images and every channel: the early maps "
                               "(stem_relu) are 32 x 32; ")
    assert f"{100 * e['detail']:.1f} % of their variance is finer than 8 x 8-pixel patches (more than the input " \
           f"images' own {100 * inputs['detail']:.1f} %)" in sentence
    assert "are 4 x 4, one value per 8 x 8-pixel patch (64 times fewer positions), so none of their variance" in sentence
    assert f"correlate at r = {l['neighbour_correlation']:.2f}, against {e['neighbour_correlation']:.2f}" in sentence
    assert f"{100 * e['zero_share']:.1f} % of the early activations and {100 * l['zero_share']:.1f} % of the late" \
        in sentence
    # Less fine detail than the input: said so.
    blurred = dict(statistics, early={**e, "detail": inputs["detail"] / 2})
    assert "(no more than the input images' own" in _model_observation(model, shown_early, shown_late, blurred, inputs)


# ================================================================================ q10's small target set
def test_a_small_target_set_keeps_k_training_and_validation_images_per_class_and_the_whole_test_split():
    from dlcv_keras.data.base import Dataset
    from dlcv_keras.experiments.pretrained_source import _few_per_class

    rng = np.random.default_rng(3)

    def split(per_class):
        y = np.repeat(np.arange(5), per_class)
        return rng.integers(0, 256, (len(y), 8, 8, 3), dtype=np.uint8), y

    (xt, yt), (xv, yv), (xs, ys) = split(30), split(3), split(12)
    data = Dataset("cifar10", xt, yt, xv, yv, xs, ys, [str(k) for k in range(5)], (8, 8, 3),
                   info={"splits": {"train": 150, "val": 15, "test": 60}, "notes": ["before"], "content_hash": "x"})
    small = _few_per_class(data, 4, seed=0)
    assert np.bincount(small.y_train).tolist() == [4] * 5
    assert np.bincount(small.y_val).tolist() == [3] * 5             # fewer than 4 there: all kept
    assert small.x_test is data.x_test and small.y_test is data.y_test
    assert small.info["splits"] == {"train": 20, "val": 15, "test": 60}
    assert small.info["class_counts"] == {"train": [4] * 5, "val": [3] * 5, "test": [12] * 5}
    assert small.info["notes"][0] == "before" and "at most 4 training and 4 validation images per class" in \
        small.info["notes"][1]
    assert small.info["content_hash"] != "x" and _few_per_class(data, 4, seed=0).info == small.info
    # Each kept image is one of the originals, with its own label.
    for x, y in zip(small.x_train, small.y_train):
        assert any(np.array_equal(x, original) for original in data.x_train[data.y_train == y])
    assert _few_per_class(data, 4, seed=1).info["content_hash"] != small.info["content_hash"]


# ================================================================================ lessons on real runs
def run_cli(args, folder):
    import subprocess
    import sys
    import time

    from real_runs import REPO, child_env

    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], cwd=REPO, env=child_env(folder, None),
                          capture_output=True, text=True, timeout=3600)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
            "seconds": round(time.perf_counter() - started, 1)}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The results folder of real smoke runs of q9, q10, q11 and q12 (in that order: q12 reads the others'
    models). DLCV_CV_LESSON_RESULTS=<folder> keeps them for later sessions."""
    data = offline_data("cifar10")
    folder, state = kept_runs("DLCV_CV_LESSON_RESULTS", "cv-lessons", tmp_path_factory)
    if state is not None:
        return {key: (type(folder)(value) if key in ("results",) else value) for key, value in state.items()}
    results = folder / "results"
    runs = {}
    for question in ("q9", "q10", "q11", "q12"):
        runs[question] = run_cli([question, "--profile", PROFILE, "--results", str(results), "--data-dir", str(data),
                                  "--no-download", "--report", "none", "-q"], folder)
        if runs[question]["returncode"] != 0:
            pytest.fail(f"{question} smoke exited with {runs[question]['returncode']}:\n"
                        f"{runs[question]['stderr'][-4000:]}", pytrace=False)
    state = {"results": str(results), "stdout": {q: r["stdout"] for q, r in runs.items()}}
    save_runs("DLCV_CV_LESSON_RESULTS", "cv-lessons", folder, state)
    return {**state, "results": results}


def copied(smoke, question, tmp_path):
    """A copy of ``question``'s smoke results and its store."""
    from dlcv_keras.results import ResultsStore

    copy_results(smoke["results"], tmp_path, f"{question}/{PROFILE}")
    return ResultsStore(tmp_path, question, PROFILE)


def judge(store, question):
    from dlcv_keras import lessons
    from dlcv_keras.questions import QUESTIONS

    return lessons.evaluate(store, QUESTIONS[question].lessons)


def verdicts(store, question):
    return [lesson["verdict"] for lesson in judge(store, question)]


def predictions(store, experiment) -> dict:
    with np.load(store.experiment_dir(experiment) / "predictions.npz") as found:
        return {key: found[key] for key in found.files}


def set_predictions(store, experiment, **changed):
    """Rewrite some models' predicted class per test image, as the search or evaluation writes them."""
    from dlcv_keras.results.store import PREDICTIONS

    store.write_arrays(experiment, PREDICTIONS, **{**predictions(store, experiment), **changed})


def right_on(labels, share, classes):
    """Predictions right on the first ``share`` of the images and wrong (the next class) on the rest."""
    labels = np.asarray(labels)
    wrong = (labels + 1) % classes
    keep = np.arange(len(labels)) < round(share * len(labels))
    return np.where(keep, labels, wrong).astype(labels.dtype)


def rewrite(store, experiment, change):
    """Apply ``change(found)`` to an experiment's stored summary and tables, and write them back."""
    found = store.read_experiment(experiment)
    change(found)
    extra = {k: v for k, v in found.items() if k not in ("summary", "trials", "history", "metrics")}
    store.write_experiment(experiment, summary=found["summary"], trials=found.get("trials") or None,
                           history=found.get("history") or None, metrics=found.get("metrics"),
                           tables=extra or None, predictions=predictions(store, experiment)
                           if (store.experiment_dir(experiment) / "predictions.npz").is_file() else None)


def trial_of(store, experiment, **where) -> str:
    rows = [r for r in store.read_experiment(experiment)["trials"]
            if all(str(r[k]) == str(v) or (isinstance(v, float) and math.isclose(float(r[k]), v)) for k, v in where.items())]
    assert len(rows) == 1, (where, rows)
    return str(int(rows[0]["trial_id"]))


@pytest.mark.slow                  # real training runs
def test_each_run_wrote_its_lessons_and_they_are_the_stored_numbers_verdicts(smoke, tmp_path):
    from dlcv_keras.lessons import VERDICTS
    from dlcv_keras.questions import QUESTIONS

    for question in ("q9", "q10", "q11", "q12"):
        store = copied(smoke, question, tmp_path)
        written = json.loads((store.root / "lessons.json").read_text())
        assert [lesson["claim"] for lesson in written] == [lesson.claim for lesson in QUESTIONS[question].lessons]
        assert all(lesson["verdict"] in VERDICTS for lesson in written)
        assert real_runs.as_evaluated(written) == json.loads(json.dumps(judge(store, question)))
        assert f"{question}: " in smoke["stdout"][question] and " lessons reproduced" in smoke["stdout"][question]


@pytest.mark.slow                  # real training runs
def test_q9_learning_and_staying_close_follow_the_numbers(smoke, tmp_path):
    from scipy.stats import binomtest

    store = copied(smoke, "q9", tmp_path)
    labels = predictions(store, "best")["labels"]
    history = store.read_experiment("scratch")["history"]

    def falling(found):
        for i, row in enumerate(found["history"]):
            row["val_loss"] = 2.0 - 0.1 * i

    rewrite(store, "scratch", falling)
    # 97 % on the test images (95 % interval down to about 93.6 %) and 97 % on its own: close.
    set_predictions(store, "best", test=right_on(labels, 0.97, 10))
    rewrite(store, "best", lambda found: found["summary"].update(train_accuracy=0.97))
    assert verdicts(store, "q9") == ["reproduced", "reproduced"]
    gap = judge(store, "q9")[1]["evidence"]["parts"][0]
    n = len(labels)
    low = binomtest(round(0.97 * n), n).proportion_ci(0.95, method="exact").low      # Clopper-Pearson
    assert gap["gap_points"] == pytest.approx(100 * (0.97 - round(0.97 * n) / n))
    assert gap["gap_high_points"] == pytest.approx(100 * (0.97 - low))

    # All of its training images right: the gap may reach about 6.4 points, more than 5.
    rewrite(store, "best", lambda found: found["summary"].update(train_accuracy=1.0))
    first, second = judge(store, "q9")
    assert first["verdict"] == "reproduced" and second["verdict"] == "not_reproduced"
    assert "training accuracy runs ahead" in second["cause"]

    # Close again, but the validation loss rises after its minimum: it overfits.
    rewrite(store, "best", lambda found: found["summary"].update(train_accuracy=0.97))

    def rising(found):
        for i, row in enumerate(found["history"]):
            row["val_loss"] = 1.0 + 0.5 * i

    assert len(history) >= 2
    rewrite(store, "scratch", rising)
    cause = judge(store, "q9")[1]["cause"]
    assert cause.startswith("the validation loss rose ") and cause.endswith(" % after its minimum (more than 5 %): it overfits")

    # At 40 %: above chance, below "far above"; at chance (all wrong): said so first.
    set_predictions(store, "best", test=right_on(labels, 0.4, 10))
    assert "below 50.00 %" in judge(store, "q9")[0]["cause"]
    set_predictions(store, "best", test=right_on(labels, 0.0, 10))
    assert judge(store, "q9")[0]["cause"].startswith("the trained ResNet-18 is at chance")


@pytest.mark.slow                  # real training runs
def test_q10_pretrained_against_scratch_and_frozen_follows_the_test_predictions(smoke, tmp_path):
    store = copied(smoke, "q10", tmp_path)
    labels = predictions(store, "finetune")["labels"]
    classes = len(json.loads((store.root / "run.json").read_text())["dataset"]["class_names"])
    assert classes == 5                                   # the offline target task: CIFAR-10 classes 5-9
    for name, share in (("finetune", 0.9), ("scratch", 0.5), ("frozen", 0.6)):
        set_predictions(store, name, **{trial_of(store, name): right_on(labels, share, classes)})
    assert verdicts(store, "q10") == ["reproduced", "reproduced"]

    set_predictions(store, "scratch", **{trial_of(store, "scratch"): right_on(labels, 0.95, classes)})
    first, second = judge(store, "q10")
    assert first["verdict"] == "not_reproduced" and first["cause"].startswith("from scratch is ahead")
    assert second["verdict"] == "reproduced"

    # A tie with the frozen backbone is no win.
    set_predictions(store, "frozen", **{trial_of(store, "frozen"): right_on(labels, 0.9, classes)})
    assert judge(store, "q10")[1]["verdict"] == "not_reproduced"


@pytest.mark.slow                  # real training runs
def test_q10_small_target_set_keeps_the_test_split_whole(smoke, tmp_path):
    import tomllib

    from real_runs import REPO

    store = copied(smoke, "q10", tmp_path)
    per_class = tomllib.loads((REPO / "tuners" / "q10.toml").read_text())[PROFILE]["source"]["target_per_class"]
    dataset = json.loads((store.root / "run.json").read_text())["dataset"]
    source = store.read_experiment("source")["summary"]
    for split in ("train", "val"):
        assert dataset["splits"][split] <= 5 * per_class
    assert (source["target_train"], source["target_val"]) == (dataset["splits"]["train"], dataset["splits"]["val"])
    assert dataset["splits"]["train"] == 5 * per_class    # the smoke pool has more than that per class
    labels = predictions(store, "finetune")["labels"]
    assert dataset["splits"]["test"] == len(labels) and np.bincount(labels).min() > per_class
    # run.json counts the target task's classes as the lessons' stored labels do: one chance level for both.
    assert dataset["class_counts"]["test"] == np.bincount(labels, minlength=len(dataset["class_names"])).tolist()
    assert dataset["class_counts"]["train"] == [per_class] * len(dataset["class_names"])
    assert any("small target set" in note for note in dataset["notes"])


@pytest.mark.slow                  # real training runs
def test_q11_augmentation_and_dropout_lessons_follow_the_numbers(smoke, tmp_path):
    store = copied(smoke, "q11", tmp_path)
    labels = predictions(store, "augmentation")["labels"]
    none, crop = trial_of(store, "augmentation", augment="none"), trial_of(store, "augmentation", augment="crop+flip")
    dropout = [k for k in predictions(store, "dropout") if k != "labels"]      # the best by validation is one

    def none_overfits(rises: bool):
        def change(found):
            # Five epochs, as a longer run stores them (smoke trains one), whose validation loss rises or falls.
            first = next(row for row in found["history"] if str(int(row["trial_id"])) == none)
            others = [row for row in found["history"] if str(int(row["trial_id"])) != none]
            found["history"][:] = others + [
                {**first, "epoch": epoch, "val_loss": (0.5 + 0.3 * epoch) if rises else (2.0 - 0.1 * epoch)}
                for epoch in range(1, 6)]
        return change

    rewrite(store, "augmentation", none_overfits(True))
    set_predictions(store, "augmentation", **{none: right_on(labels, 0.5, 10), crop: right_on(labels, 0.6, 10)})
    set_predictions(store, "dropout", **{k: right_on(labels, 0.7, 10) for k in dropout})
    assert verdicts(store, "q11") == ["reproduced", "reproduced", "reproduced"]

    rewrite(store, "augmentation", none_overfits(False))
    assert judge(store, "q11")[0]["cause"] == "the validation loss is lowest at the last epoch: still falling"

    set_predictions(store, "augmentation", **{crop: right_on(labels, 0.5, 10)})
    assert judge(store, "q11")[1]["cause"].startswith("crop + flip is not ahead")
    # Dropout below the network without it: the dropout lesson's reference is the "none" run, not the best one.
    set_predictions(store, "augmentation", **{crop: right_on(labels, 0.9, 10)})
    assert judge(store, "q11")[2]["verdict"] == "reproduced"
    set_predictions(store, "dropout", **{k: right_on(labels, 0.3, 10) for k in dropout})
    third = judge(store, "q11")[2]
    assert third["verdict"] == "not_reproduced" and third["cause"].startswith(
        "no dropout (and no augmentation) is ahead, significantly")


@pytest.mark.slow                  # real training runs
def test_q12_lessons_read_the_measured_statistics(smoke, tmp_path):
    store = copied(smoke, "q12", tmp_path)
    stats = store.read_experiment("maps")["summary"]["statistics"]
    assert set(stats) == {"input", "q9", "q10", "q11"}

    def setting(**values):
        def change(found):
            for path, value in values.items():
                question, layer, key = path.split("__")
                found["summary"]["statistics"][question][layer][key] = value
        return change

    for q in ("q9", "q10", "q11"):
        rewrite(store, "maps", setting(**{f"{q}__early__detail": stats["input"]["detail"] + 0.1,
                                          f"{q}__late__detail": 0.0, f"{q}__late__stride": 8}))
    assert verdicts(store, "q12") == ["reproduced", "reproduced"]

    rewrite(store, "maps", setting(q10__early__detail=stats["input"]["detail"] - 0.01))
    first, second = judge(store, "q12")
    assert first["verdict"] == "not_reproduced" and "q10's early maps' fine detail" in first["cause"]
    assert second["verdict"] == "reproduced"              # still more than the late maps' none

    rewrite(store, "maps", setting(q10__early__detail=stats["input"]["detail"] + 0.1, q11__late__stride=2))
    first, second = judge(store, "q12")
    assert first["verdict"] == "reproduced" and second["verdict"] == "not_reproduced"
    assert "q11's late maps' stride" in second["cause"]
    rewrite(store, "maps", setting(q11__late__stride=8, q9__late__detail=0.99))
    assert judge(store, "q12")[1]["cause"].startswith("q9's late maps' fine detail")
