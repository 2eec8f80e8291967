"""The CV questions' smoke runs, end to end: q17, q9, q10, q11, q12 (reads q9-q11's stored models), q18.

One module fixture runs ``python -m dlcv_keras.run <q> --profile smoke`` for each, in that order, in
subprocesses, offline (``--no-download``; q10 then trains its own source checkpoint and says so in a
banner), on the real offline datasets (DLCV_DATA_DIR, else /work/shared/datasets; the module skips
without them). q9 runs without ``-q`` (its stdout, a pipe, shows the per-epoch progress lines); the
others with ``-q``; q18 also writes the PDF. Then q10 runs a second time with the same command.
The tests read what the runs wrote (run.json, summary.json, CSV tables, arrays.npz, .keras files,
the report) and check it against what the questions promise, with independent arithmetic.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from real_runs import REPO, child_env, kept_runs, offline_data, save_runs, text_of

pytestmark = pytest.mark.slow

PROFILE = "smoke"
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PROGRESS = re.compile(r"^(?P<label>\S+) trial (?P<i>\d+) of (?P<n>\d+) \| epoch (?P<e>\d+)/(?P<E>\d+) \| "
                      r"loss \d+\.\d+ acc \d\.\d+ \| left \S+, search \S+$")


def run_cli(args: list[str], folder: Path, timeout: int = 1200) -> dict:
    env = child_env(folder, None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return {"args": args, "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr,
            "seconds": round(time.perf_counter() - started, 1)}


@pytest.fixture(scope="module")
def cv(tmp_path_factory) -> dict:
    """{"results": folder, "data": data dir, "runs": {label: run}, "q10_weights_mtime": ns} after the runs.

    DLCV_CV_RESULTS=<folder> keeps the runs in that folder and reuses them in later sessions (for
    working on these tests; delete the folder after changing what a run writes)."""
    data = offline_data("cifar10", "mnist", "cats_vs_dogs")
    folder, state = kept_runs("DLCV_CV_RESULTS", "cv", tmp_path_factory)
    if state is not None:
        return {**state, "results": Path(state["results"]), "data": Path(state["data"])}
    (folder / "tfds-cache").mkdir(parents=True, exist_ok=True)
    results = folder / "results"
    common = ["--profile", PROFILE, "--results", str(results), "--data-dir", str(data), "--no-download"]
    plan = [("q17", ["q17", *common, "-q"]),
            ("q9", ["q9", *common]),                       # not quiet: the progress lines
            ("q10", ["q10", *common, "-q"]),
            ("q11", ["q11", *common, "-q"]),
            ("q12", ["q12", *common, "-q"]),
            ("q18", ["q18", *common, "-q", "--report", "pdf"])]
    runs = {}
    for label, args in plan:
        runs[label] = run_cli(args, folder)
        if runs[label]["returncode"] != 0:
            pytest.fail(f"`python -m dlcv_keras.run {' '.join(args)}` exited with {runs[label]['returncode']} "
                        f"after {runs[label]['seconds']} s; stderr:\n{runs[label]['stderr'][-6000:]}", pytrace=False)
    weights = results / "q10" / PROFILE / "experiments" / "source" / "source.weights.h5"
    first_mtime = weights.stat().st_mtime_ns if weights.is_file() else None
    # The same q10 command again (not quiet, to read what it says): everything should be reused.
    # (Do not edit tracked files of the checkout meanwhile: the git revision, "-dirty" included, is
    # part of every resume fingerprint, so the second run would start afresh.)
    runs["q10 again"] = run_cli(["q10", *common], folder)
    print("\nCV smoke runs (s): " + ", ".join(f"{k} {v['seconds']}" for k, v in runs.items()))
    state = {"results": str(results), "data": str(data), "runs": runs, "q10_weights_mtime": first_mtime}
    save_runs("DLCV_CV_RESULTS", "cv", folder, state)
    return {**state, "results": results, "data": data}


# -- reading what the runs wrote (plain csv/json, not the package's reader) -----------------------------
def root(cv, question: str) -> Path:
    return cv["results"] / question / PROFILE


def experiment(cv, question: str, name: str) -> Path:
    return root(cv, question) / "experiments" / name


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def num(value: str) -> float:
    return float(value)


def load_stored_model(path: Path):
    import keras

    import dlcv_keras.training.optimizers  # noqa: F401  (the classes a stored model names)
    import dlcv_keras.training.schedules  # noqa: F401

    return keras.saving.load_model(path, compile=False)


# ================================================================================ every run
def test_every_run_completed_and_says_where(cv):
    for label, run in cv["runs"].items():
        assert run["returncode"] == 0, label
        assert "Traceback" not in run["stderr"], (label, run["stderr"][-2000:])
    for question in ("q17", "q9", "q10", "q11", "q12", "q18"):
        stored = read_json(root(cv, question) / "run.json")
        assert stored["status"] == "complete", question
        assert stored["question"] == question and stored["profile"] == PROFILE
        assert f"{question}: results in {root(cv, question)}" in cv["runs"][question]["stdout"]
        assert (root(cv, question) / "report.html").is_file(), question


# ================================================================================ q17
def test_q17_parameter_table_totals_are_the_seeds_and_the_sum_of_its_rows(cv):
    folder = experiment(cv, "q17", "parameters")
    summary = read_json(folder / "summary.json")
    assert summary["totals"] == {"cnn": 570436, "tiny_cnn": 2066}
    rows = read_csv(folder / "layers.csv")
    for model, total in summary["totals"].items():
        layers = [r for r in rows if r["model"] == model]
        assert layers, model
        assert sum(int(r["params"]) for r in layers) == total, model
    # The CNN's layers as the seed describes them: 3x3 convolutions 1-18-36-72-72, FC 648-750-10.
    cnn = {r["layer"]: int(r["params"]) for r in rows if r["model"] == "cnn"}
    expected_convs = [(3 * 3 * i + 1) * o for i, o in ((1, 18), (18, 36), (36, 72), (72, 72))]
    assert sorted(v for k, v in cnn.items() if k.startswith("conv")) == sorted(expected_convs)
    assert sorted(v for k, v in cnn.items() if not k.startswith("conv") and v) == sorted([648 * 750 + 750, 750 * 10 + 10])


def test_q17_compare_has_the_three_runs_with_their_searches_test_accuracy(cv):
    folder = experiment(cv, "q17", "compare")
    rows = read_csv(folder / "trials.csv")
    assert [r["experiment"] for r in rows] == ["cnn", "tiny_cnn", "mlp"]
    assert read_json(folder / "summary.json")["runs"] == [r["run"] for r in rows]
    for row in rows:
        accuracy = num(row["test_accuracy"])
        assert 0.0 <= accuracy <= 1.0, row
        assert row["status"] == "completed"
        (trial,) = read_csv(experiment(cv, "q17", row["experiment"]) / "trials.csv")
        assert math.isclose(num(trial["test_accuracy"]), accuracy), row["experiment"]
        # The test split has max_test images: an accuracy is a whole number of them.
        n_test = read_json(root(cv, "q17") / "run.json")["dataset"]["splits"]["test"]
        assert abs(accuracy * n_test - round(accuracy * n_test)) < 1e-6


def test_q17_report_shows_the_parameter_total_and_the_seeds_accuracy(cv):
    text = text_of((root(cv, "q17") / "report.html").read_text())
    assert "570,436" in text and "2,066" in text
    assert "98.59" in text          # the seed's CNN test accuracy (0.9859)
    for row in read_csv(experiment(cv, "q17", "compare") / "trials.csv"):
        assert f"{100 * num(row['test_accuracy']):.2f}" in text


def test_quiet_runs_print_no_progress_lines(cv):
    for label in ("q17", "q10", "q11", "q12", "q18"):
        out = cv["runs"][label]["stdout"]
        assert " | epoch " not in out, label
        assert "\r" not in out, label
    # Quiet keeps the results: where they are, and how many of the seed's lessons the run reproduces.
    judged = read_json(root(cv, "q17") / "lessons.json")
    held = sum(lesson["verdict"] == "reproduced" for lesson in judged)
    assert cv["runs"]["q17"]["stdout"].strip().splitlines() == [
        f"report: {root(cv, 'q17') / 'report.html'}", f"q17: results in {root(cv, 'q17')}",
        f"q17: {held} of {len(judged)} lessons reproduced"]


# ================================================================================ q9
def test_q9_progress_lines_on_a_pipe(cv):
    out = cv["runs"]["q9"]["stdout"]
    assert "\r" not in out
    lines = [line for line in out.splitlines() if " | epoch " in line]
    epochs = int(read_csv(experiment(cv, "q9", "scratch") / "trials.csv")[0]["epochs"])
    assert len(lines) == epochs, lines
    for k, line in enumerate(lines, start=1):
        found = PROGRESS.match(line)
        assert found, line
        assert (found["label"], found["i"], found["n"]) == ("scratch", "1", "1")
        assert (int(found["e"]), int(found["E"])) == (k, epochs)


def test_q9_history_has_one_row_per_epoch(cv):
    (trial,) = read_csv(experiment(cv, "q9", "scratch") / "trials.csv")
    history = read_csv(experiment(cv, "q9", "scratch") / "history.csv")
    assert [int(r["epoch"]) for r in history] == list(range(1, int(trial["epochs_run"]) + 1))
    assert int(trial["epochs_run"]) == int(trial["epochs"]) == 2
    assert {r["trial_id"] for r in history} == {trial["trial_id"]}
    last = history[-1]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert math.isclose(num(last[key]), num(trial[key])), key
    best = read_csv(experiment(cv, "q9", "best") / "history.csv")
    assert [int(r["epoch"]) for r in best] == [int(r["epoch"]) for r in history]


def test_q9_history_records_the_one_cycle_learning_rate(cv):
    history = read_csv(experiment(cv, "q9", "scratch") / "history.csv")
    assert "learning_rate" in history[0], history[0]
    from dlcv_keras.training.schedules import one_cycle_closed_form

    (trial,) = read_csv(experiment(cv, "q9", "scratch") / "trials.csv")
    n_train = read_json(root(cv, "q9") / "run.json")["dataset"]["splits"]["train"]
    steps = math.ceil(n_train / int(trial["batch_size"]))
    total = steps * int(trial["epochs"])
    for row in history:
        step = int(row["epoch"]) * steps
        expected = one_cycle_closed_form(min(step, total - 1), num(trial["max_lr"]), total)
        assert math.isclose(num(row["learning_rate"]), expected, rel_tol=1e-3), row


def test_q9_stored_model_predicts_the_stored_test_accuracy(cv):
    from dlcv_keras.data import load_dataset
    from dlcv_keras.training.fit import predict_probabilities
    from dlcv_keras.tuning.spaces import tomllib   # tomli on Python 3.10

    summary = read_json(experiment(cv, "q9", "best") / "summary.json")
    assert summary["model_file"] == "model.keras"
    model = load_stored_model(experiment(cv, "q9", "best") / "model.keras")
    caps = tomllib.loads((REPO / "tuners" / "q9.toml").read_text())[PROFILE]
    data = load_dataset("cifar10", data_dir=cv["data"], val_fraction=0.1, max_train=caps["max_train"],
                        max_test=caps["max_test"], keep_uint8=True)
    stored = read_json(root(cv, "q9") / "run.json")["dataset"]
    assert data.info["content_hash"] == stored["content_hash"]      # the run's own data
    probabilities = predict_probabilities(model, data.x_test)
    assert probabilities.shape == (len(data.y_test), 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == data.y_test))
    assert abs(accuracy - summary["test_accuracy"]) <= 1e-6
    # metrics.json's confusion matrix says the same
    metrics = read_json(experiment(cv, "q9", "best") / "metrics.json")
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.sum() == len(data.y_test)
    assert abs(np.trace(matrix) / matrix.sum() - summary["test_accuracy"]) <= 1e-9


def test_q9_kept_trial_model_is_the_evaluated_one(cv):
    """EvaluateBest reads the search's kept model (dlcv_trials/<id>.keras) rather than training again."""
    (trial,) = read_csv(experiment(cv, "q9", "scratch") / "trials.csv")
    summary = read_json(experiment(cv, "q9", "scratch") / "summary.json")
    kept = root(cv, "q9") / "tuner" / summary["tuner_project"] / "dlcv_trials" / f"{trial['trial_id']}.keras"
    assert kept.is_file()
    best = read_json(experiment(cv, "q9", "best") / "summary.json")
    assert math.isclose(best["val_accuracy"], num(trial["val_accuracy"]), abs_tol=1e-6)
    assert best["seconds"] == pytest.approx(num(trial["seconds"]))
    a, b = load_stored_model(kept), load_stored_model(experiment(cv, "q9", "best") / "model.keras")
    for x, y in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(x, y)


# ================================================================================ q10
def test_q10_offline_banner_and_target_classes(cv):
    dataset = read_json(root(cv, "q10") / "run.json")["dataset"]
    assert dataset["fallback_banner"] and "source checkpoint" in dataset["fallback_banner"]
    assert dataset["class_names"] == ["dog", "frog", "horse", "ship", "truck"]
    source = read_json(experiment(cv, "q10", "source") / "summary.json")
    assert source["source"] == "self-trained"
    assert source["source_classes"] == CIFAR10[:5] and source["target_classes"] == CIFAR10[5:]
    assert (experiment(cv, "q10", "source") / "source.weights.h5").is_file()
    assert source["banner"] == dataset["fallback_banner"]
    # the best model classifies the 5 target classes
    model = load_stored_model(experiment(cv, "q10", "best") / "model.keras")
    assert model.outputs[0].shape[-1] == 5


def test_q10_compares_four_runs(cv):
    rows = read_csv(experiment(cv, "q10", "compare") / "trials.csv")
    assert [r["experiment"] for r in rows] == ["frozen", "finetune", "layerwise", "scratch"]
    for row in rows:
        (trial,) = read_csv(experiment(cv, "q10", row["experiment"]) / "trials.csv")
        assert trial["status"] == "completed"
        assert 0 <= num(row["test_accuracy"]) <= 1
        assert math.isclose(num(trial["test_accuracy"]), num(row["test_accuracy"]))
        if row["experiment"] != "scratch":
            assert trial["mode"] == row["experiment"]
    # The same ResNet-18 (width 0.125) every way: the same parameter count.
    params = {r["experiment"]: int(read_csv(experiment(cv, "q10", r["experiment"]) / "trials.csv")[0]["params"])
              for r in rows}
    assert len(set(params.values())) == 1, params


def test_q10_grid_is_the_seeds(cv):
    trials = read_csv(experiment(cv, "q10", "grid") / "trials.csv")
    assert len(trials) == 8
    settings = sorted((num(t["max_lr"]), num(t["grad_clip"]), num(t["weight_decay"])) for t in trials)
    assert settings == sorted(itertools.product([0.01, 0.06], [0.1, 0.6], [0.0001, 0.0006]))
    assert {t["mode"] for t in trials} == {"finetune"}
    summary = read_json(experiment(cv, "q10", "grid") / "summary.json")
    completed = [t for t in trials if t["status"] == "completed"]
    best = max(completed, key=lambda t: num(t["val_accuracy"]))
    assert math.isclose(summary["best_val_accuracy"], num(best["val_accuracy"]))
    for t in trials:
        assert t["rss_mb"] and t["peak_rss_mb"]


def test_q10_second_run_reuses_the_source_checkpoint_and_every_search(cv):
    again = cv["runs"]["q10 again"]
    assert again["returncode"] == 0, again["stderr"][-3000:]
    weights = experiment(cv, "q10", "source") / "source.weights.h5"
    assert weights.stat().st_mtime_ns == cv["q10_weights_mtime"]
    out = again["stdout"]
    assert "reused" in out or "already" in out
    assert "training a source checkpoint" not in out
    assert " | epoch " not in out                    # nothing trained
    for name in ("frozen", "finetune", "layerwise", "scratch", "grid"):
        n = read_json(experiment(cv, "q10", name) / "summary.json")["n_trials"]
        assert f"[{name}] search: {n} trial{'s' if n > 1 else ''}, {n} already finished (resuming)" in out, name
    # The banner is still shown, and the dataset is still the target task.
    dataset = read_json(root(cv, "q10") / "run.json")["dataset"]
    assert dataset["class_names"] == CIFAR10[5:] and "source checkpoint" in dataset["fallback_banner"]


# ================================================================================ q11
def test_q11_augmentation_search_tries_the_three_values(cv):
    trials = read_csv(experiment(cv, "q11", "augmentation") / "trials.csv")
    assert sorted(t["augment"] for t in trials) == sorted(["none", "crop+flip", "full"])
    assert all(t["status"] == "completed" for t in trials)


def test_q11_dropout_search_records_memory_and_runs_without_augmentation(cv):
    trials = read_csv(experiment(cv, "q11", "dropout") / "trials.csv")
    assert sorted((num(t["dropout_first"]), num(t["dropout_head"])) for t in trials) == \
        sorted(itertools.product([0.0, 0.2], [0.0, 0.6]))
    for t in trials:
        rss, peak = num(t["rss_mb"]), num(t["peak_rss_mb"])
        assert 10 < rss < 64_000 and 10 < peak < 64_000, t
        assert rss <= peak + 1, t
    # Dropout is tried where the network overfits, without augmentation; the rest is the augmentation
    # search's best setting.
    assert {t["augment"] for t in trials} == {"none"}
    best = read_json(experiment(cv, "q11", "augmentation") / "summary.json")["best_hyperparameters"]
    for key in ("epochs", "batch_size", "max_lr", "width"):
        assert {num(t[key]) for t in trials} == {num(best[key])}, key


def test_q11_augmented_examples(cv):
    with np.load(experiment(cv, "q11", "examples") / "arrays.npz") as arrays:
        originals, augmented, labels = arrays["originals"], arrays["augmented"], arrays["labels"]
    assert originals.dtype == np.uint8 and augmented.dtype == np.uint8
    assert originals.shape == (4, 32, 32, 3)
    assert augmented.shape == (4, 6, 32, 32, 3)
    assert len(set(labels.tolist())) == 4                 # one image of each of four classes
    for i in range(len(originals)):
        for j in range(augmented.shape[1]):
            assert not np.array_equal(augmented[i, j], originals[i]), (i, j)
    # and the copies differ from each other (random, seeded, not one transform repeated)
    assert len({augmented[0, j].tobytes() for j in range(augmented.shape[1])}) == augmented.shape[1]


# ================================================================================ q12
def test_q12_maps_for_three_models(cv):
    summary = read_json(experiment(cv, "q12", "maps") / "summary.json")
    assert [m["question"] for m in summary["models"]] == ["q9", "q10", "q11"]
    with np.load(experiment(cv, "q12", "maps") / "arrays.npz") as arrays:
        keys = set(arrays.files)
        images = arrays["images"]
        assert images.dtype == np.uint8 and len(images) == summary["images"] == 2
        for i in range(3):
            for kind in ("early", "late"):
                maps = arrays[f"{kind}_{i}"].astype(np.float64)
                assert maps.ndim == 4 and maps.shape[0] == 2 and maps.shape[1] <= summary["channels"]
                assert np.all(np.isfinite(maps)) and maps.min() >= 0.0 and maps.max() <= 1.0, (kind, i)
                assert list(maps.shape[2:]) == summary["models"][i][f"{kind}_shape"][:2]
            # the early map keeps the 32x32 resolution of the first convolution (CIFAR ResNet: no stem pooling)
            assert arrays[f"early_{i}"].shape[2:] == (32, 32)
    assert {f"filters_{i}" for i in range(3)} <= keys


def test_q12_without_q9_to_q11_exits_2_and_writes_nothing(cv, tmp_path):
    results = tmp_path / "results"
    run = run_cli(["q12", "--profile", PROFILE, "--results", str(results), "--data-dir", str(cv["data"]),
                   "--no-download", "-q"], tmp_path)
    lines = run["stderr"].strip().splitlines()
    assert run["returncode"] == 2, run["stderr"][-3000:]
    assert len(lines) == 1 and lines[0].startswith("error:"), run["stderr"][-3000:]
    assert "q9" in lines[0] and "Traceback" not in run["stderr"]
    assert not (results / "q12").exists() or not any(p.is_file() for p in (results / "q12").rglob("*"))


# ================================================================================ q18
def test_q18_fine_ranges_lie_inside_the_coarse_ones_around_its_best(cv):
    coarse = read_json(experiment(cv, "q18", "coarse") / "summary.json")
    fine = read_json(experiment(cv, "q18", "fine") / "summary.json")
    assert fine["narrowed_from"] == "coarse"
    best = coarse["best_hyperparameters"]
    for name in ("lr", "l2"):
        outer, inner = coarse["ranges"][name], fine["ranges"][name]
        assert outer["low"] <= inner["low"] < inner["high"] <= outer["high"], name
        assert inner["low"] <= best[name] <= inner["high"], (name, best[name], inner)
        assert inner["high"] / inner["low"] < outer["high"] / outer["low"], name      # really narrower
        for trial in read_csv(experiment(cv, "q18", "fine") / "trials.csv"):
            assert inner["low"] <= num(trial[name]) <= inner["high"], (name, trial[name])
        for trial in read_csv(experiment(cv, "q18", "coarse") / "trials.csv"):
            assert outer["low"] <= num(trial[name]) <= outer["high"], (name, trial[name])


def test_q18_gallery_rows_are_real_mistakes(cv):
    folder = experiment(cv, "q18", "gallery")
    summary = read_json(folder / "summary.json")
    rows = read_csv(folder / "gallery.csv")
    names = summary["class_names"]
    assert names == ["cats", "dogs"]
    assert len(rows) == summary["shown"] == min(6, summary["wrong"])
    confidence = []
    for row in rows:
        assert row["true"] != row["predicted"], row
        p = {n: num(row[f"p_{n}"]) for n in names}
        assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-4), row
        assert max(p, key=p.get) == row["predicted"], row
        confidence.append(p[row["predicted"]])
    assert confidence == sorted(confidence, reverse=True)        # most confident mistakes first
    with np.load(folder / "arrays.npz") as arrays:
        assert arrays["images"].dtype == np.uint8 and len(arrays["images"]) == len(rows)
        assert np.all(arrays["true"] != arrays["predicted"])
        assert [int(i) for i in arrays["indices"]] == [int(r["test_index"]) for r in rows]
    best = read_json(experiment(cv, "q18", "best") / "summary.json")
    assert math.isclose(summary["test_accuracy"], best["test_accuracy"], abs_tol=1e-9)
    assert summary["wrong"] == round((1 - best["test_accuracy"]) * summary["test_images"])


def test_q18_pdf_report(cv):
    pdf = root(cv, "q18") / "report.pdf"
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
    assert f"report: {pdf}" in cv["runs"]["q18"]["stdout"]
    from pypdf import PdfReader

    text = " ".join(page.extract_text() or "" for page in PdfReader(str(pdf)).pages)
    assert "Cats vs dogs" in text or "cats vs dogs" in text.lower()


# ================================================================================ shared results
def test_q10_source_checkpoint_is_readable_like_the_other_results(cv):
    summary = experiment(cv, "q10", "source") / "summary.json"
    weights = experiment(cv, "q10", "source") / "source.weights.h5"
    assert summary.stat().st_mode & 0o044 == 0o044
    assert weights.stat().st_mode & 0o044 == 0o044


# ================================================================================ memory per trial
def test_q11_dropout_grid_peak_memory_stays_flat_from_trial_3(cv):
    """The issue's measure: the peak resident memory of the searching process, and of each trial's own
    process (TensorFlow trials run one process each), within 10 % from trial 3 to the last."""
    trials = sorted(read_csv(experiment(cv, "q11", "dropout") / "trials.csv"), key=lambda t: int(t["trial_id"]))
    assert len(trials) >= 4
    for column in ("peak_rss_mb", "trial_peak_rss_mb"):
        peaks = [num(t[column]) for t in trials]
        assert all(p > 0 for p in peaks), (column, peaks)
        assert max(peaks[2:]) <= 1.10 * peaks[2], (column, peaks)


def test_q10_grid_memory_stays_flat_after_the_first_trial(cv):
    trials = sorted(read_csv(experiment(cv, "q10", "grid") / "trials.csv"), key=lambda t: int(t["trial_id"]))
    rss = [num(t["rss_mb"]) for t in trials]
    assert len(rss) == 8
    # The first trial compiles and warms caches; after it, 6 more trials of the same model
    # should not add more than 100 MB in all.
    assert rss[-1] - rss[1] < 100, rss


def test_recorded_peak_is_never_below_the_current_rss(monkeypatch):
    """A peak the kernel has not caught up with yet (simulated: getrusage says 1 MB) must not be
    recorded below the resident memory measured right after it."""
    import resource
    import types

    from dlcv_keras.tuning.search import memory_now

    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=1024))
    memory = memory_now()
    assert memory["rss_mb"] is not None
    assert memory["peak_rss_mb"] >= memory["rss_mb"], memory


# ================================================================================ write-up a3 as a reader sees it
@pytest.fixture(scope="module")
def a3(cv, tmp_path_factory) -> dict:
    """Write-up a3 (q8-q12) built from these runs (q8 is not run here), and the results overview."""
    from dlcv_keras.report.index import write_index
    from dlcv_keras.report.writeup import build_writeup

    (path,) = build_writeup(cv["results"], "a3", profile=PROFILE, formats=("html",),
                            output=tmp_path_factory.mktemp("a3") / "a3")
    html = path.read_text(encoding="utf-8")
    return {"html": html, "index": write_index(cv["results"]).read_text(encoding="utf-8")}


def chapter_of(html: str, question: str) -> str:
    return html.split(f'id="chapter-{question}"')[1].split('<section class="chapter')[0]


def best_layers(cv, question: str) -> list[dict]:
    """The per-layer parameter table the question's evaluation of its best model stored."""
    run = read_json(root(cv, question) / "run.json")
    name = next(s["experiment"] for s in run["sections"] if s["template"] == "best")
    return read_json(experiment(cv, question, name) / "metrics.json")["parameter_table"]


@pytest.mark.parametrize("question", ["q9", "q10", "q11"])
def test_a3_chapter_gives_resnet_parameters_per_stage_and_the_appendix_every_layer(cv, a3, question):
    from real_runs import html_tables

    layers = best_layers(cv, question)
    assert len(layers) > 60                           # a ResNet-18: 70 layers, too many for a chapter
    # Parts by name, restated: stem_*, stage<k>_*; the lone layers before are the input, after the head.
    def part(name):
        first = name.split("_")[0]
        return first if first == "stem" or re.fullmatch(r"stage\d", first) else None
    named = [part(row["layer"]) for row in layers]
    first, last = named.index("stem"), max(i for i, p in enumerate(named) if p)
    expected = [("input", layers[:first])]
    for key, rows in itertools.groupby(zip(named[first:last + 1], layers[first:last + 1]), key=lambda x: x[0]):
        expected.append((key.replace("stage", "stage "), [row for _, row in rows]))
    expected.append(("head", layers[last + 1:]))
    assert [name for name, _ in expected] == ["input", "stem", "stage 0", "stage 1", "stage 2", "stage 3", "head"]

    chapter = chapter_of(a3["html"], question)
    (parts,) = [t for t in html_tables(chapter) if t["headers"] == ["part", "layers", "output shape", "parameters"]]
    assert parts["rows"][:-1] == [[name, str(len(rows)), rows[-1]["output_shape"], f"{sum(r['params'] for r in rows):,}"]
                                  for name, rows in expected]
    total = sum(row["params"] for row in layers)
    assert parts["rows"][-1] == ["total", f"{total:,}"]
    assert "stage0_block0_a_conv" not in chapter          # no per-layer rows in the chapter
    anchor = re.search(r'<a class="page-ref" href="#([^"]+)">in the appendix</a>', chapter).group(1)

    appendix = a3["html"].split('id="appendix"')[1]
    block = appendix.split(f'id="{anchor}"')[1].split("</table>")[0] + "</table>"
    (every,) = html_tables(block)
    assert [row[0] for row in every["rows"][:-1]] == [row["layer"] for row in layers]
    assert [row[3] for row in every["rows"][:-1]] == [f"{row['params']:,}" for row in layers]
    assert every["rows"][-1] == ["total", f"{total:,}"]


def test_a3_says_once_in_plain_words_why_q10_has_no_imagenet_weights(cv, a3):
    source = read_json(experiment(cv, "q10", "source") / "summary.json")
    if source["source"] != "self-trained":
        pytest.skip("the ImageNet weights were available here: no substitute to explain")
    detail = source["reason_detail"]                  # the exception's own text, kept for the log
    assert "resnet_18_imagenet" in detail
    chapter = text_of(chapter_of(a3["html"], "q10"))
    assert chapter.count("No ImageNet weights") == 1 and chapter.count("could not be") == 1
    assert "Instead, q10 starts from a source checkpoint" in chapter
    for page in (a3["html"], a3["index"]):
        assert detail not in page and "Error" not in text_of(page)
        assert not re.search(r"Errno|URLError|Traceback|https?://", text_of(page))
    assert "No ImageNet weights" in text_of(a3["index"])
