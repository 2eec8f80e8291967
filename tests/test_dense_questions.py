"""The dense studies' smoke runs, end to end: q7 (the numpy two-layer net, its search and variants,
Keras MLPs by depth), q13 (activations, depth, vanishing gradients), q14
(regularisation from several seeds) and q15 (initialisation), each through ``python -m dlcv_keras.run <q> --profile smoke`` in a subprocess on
the offline datasets (DLCV_DATA_DIR, else /work/shared/datasets; skipped without them). The tests
read what the runs wrote (CSV tables, summaries, the report) and check it with their own arithmetic.
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path

import pytest

from real_runs import kept_runs, offline_data, save_runs, text_of
from test_cv_questions import run_cli

pytestmark = pytest.mark.slow

PROFILE = "smoke"
PLAN = {"q7": ("cifar10",), "q13": ("cifar10",), "q14": ("gurmukhi",), "q15": ("mnist",)}


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> dict:
    """{"results": folder, "runs": {question: run}}. DLCV_DENSE_RESULTS=<folder> keeps and reuses the runs."""
    data = offline_data(*sorted({d for names in PLAN.values() for d in names}))
    folder, state = kept_runs("DLCV_DENSE_RESULTS", "dense", tmp_path_factory)
    if state is not None:
        return {**state, "results": Path(state["results"])}
    results = folder / "results"
    common = ["--profile", PROFILE, "--results", str(results), "--data-dir", str(data), "--no-download", "-q"]
    runs = {}
    for question in PLAN:
        runs[question] = run_cli([question, *common, *(["--report", "pdf"] if question == "q15" else [])], folder)
        if runs[question]["returncode"] != 0:
            pytest.fail(f"{question} exited with {runs[question]['returncode']}: {runs[question]['stderr'][-6000:]}",
                        pytrace=False)
    print("\ndense smoke runs (s): " + ", ".join(f"{k} {v['seconds']}" for k, v in runs.items()))
    state = {"results": str(results), "runs": runs}
    save_runs("DLCV_DENSE_RESULTS", "dense", folder, state)
    return {**state, "results": results}


def root(dense, question: str) -> Path:
    return dense["results"] / question / PROFILE


def experiment(dense, question: str, name: str) -> Path:
    return root(dense, question) / "experiments" / name


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def report_text(dense, question: str) -> str:
    return html.unescape(text_of((root(dense, question) / "report.html").read_text()))


def layer_rows(dense, question: str, name: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in read_csv(experiment(dense, question, name) / "layer_stats.csv"):
        found.setdefault(row["trial_id"], []).append(row)
    return found


def test_every_run_completed_with_its_report(dense):
    for question, run in dense["runs"].items():
        assert run["returncode"] == 0 and "Traceback" not in run["stderr"], question
        stored = json.loads((root(dense, question) / "run.json").read_text())
        assert stored["status"] == "complete" and stored["environment"]["keras_backend"] == "jax", question
        assert (root(dense, question) / "report.html").is_file()
    assert (root(dense, "q15") / "report.pdf").stat().st_size > 10_000


# ================================================================================ q7
def test_q7_numpy_runs_decay_their_learning_rate_each_epoch_and_count_iterations(dense):
    from dlcv_keras.tuning.spaces import tomllib   # tomli on Python 3.10

    space = tomllib.loads((Path(__file__).resolve().parents[1] / "tuners" / "q7.toml").read_text())["smoke"]
    history = read_csv(experiment(dense, "q7", "default") / "history.csv")
    (trial,) = read_csv(experiment(dense, "q7", "default") / "trials.csv")
    setting = space["default"]
    train = json.loads((root(dense, "q7") / "run.json").read_text())["dataset"]["splits"]["train"]
    steps_per_epoch = max(train // setting["batch_size"], 1)
    assert len(history) == math.ceil(setting["iterations"] / steps_per_epoch) == int(trial["epochs_run"])
    rates = [float(row["learning_rate"]) for row in history]
    assert rates[0] == pytest.approx(setting["lr"])
    for before, after in zip(rates, rates[1:]):
        assert after == pytest.approx(before * setting["lr_decay"])
    summary = json.loads((experiment(dense, "q7", "search") / "summary.json").read_text())
    assert summary["implementation"] == "scratch" and summary["model"] == "two_layer"


def test_q7_best_setting_is_evaluated_and_its_weights_shown_as_images(dense):
    import numpy as np

    trials = read_csv(experiment(dense, "q7", "search") / "trials.csv")
    best = max(trials, key=lambda t: float(t["val_accuracy"]))
    evaluation = json.loads((experiment(dense, "q7", "best") / "summary.json").read_text())
    assert evaluation["hyperparameters"]["units"] == int(best["units"])
    images = np.load(experiment(dense, "q7", "weights") / "arrays.npz")["images"]
    assert images.shape == (min(10, int(best["units"])), 32, 32, 3)
    assert np.allclose(images.reshape(len(images), -1).min(axis=1), 0) and np.allclose(
        images.reshape(len(images), -1).max(axis=1), 1)


def test_q7_variants_are_the_best_setting_with_one_change_each(dense):
    rows = {r["experiment"]: r for r in read_csv(experiment(dense, "q7", "variants") / "trials.csv")}
    assert list(rows) == ["plain", "pca", "flip", "early_stop"]
    assert rows["plain"]["settings"] == "none of these"
    assert rows["pca"]["settings"] == "pca=40" and rows["flip"]["settings"] == "augment=flip"
    assert rows["early_stop"]["settings"] == "patience=1"
    best = json.loads((experiment(dense, "q7", "search") / "summary.json").read_text())["best_hyperparameters"]
    for name in rows:
        (trial,) = read_csv(experiment(dense, "q7", name) / "trials.csv")
        for key, value in best.items():
            assert trial[key] == str(value), (name, key)
        assert 0 <= float(trial["test_accuracy"]) <= 1


def test_q7_depth_study_measures_gradients_and_says_what_the_seed_saw(dense):
    trials = read_csv(experiment(dense, "q7", "depth") / "trials.csv")
    layers = layer_rows(dense, "q7", "depth")
    assert sorted(int(t["depth"]) for t in trials) == [1, 2, 3, 4]
    for trial in trials:
        assert {int(r["index"]) for r in layers[trial["trial_id"]]} == set(range(1, int(trial["depth"]) + 2))
    assert "The seed's nets fell to chance at depth 3" in report_text(dense, "q7")


# ================================================================================ q13
def test_q13_layer_probe_measured_every_layer_at_every_epoch(dense):
    trials = read_csv(experiment(dense, "q13", "depth") / "trials.csv")
    layers = layer_rows(dense, "q13", "depth")
    assert sorted(layers) == sorted(t["trial_id"] for t in trials)
    for trial in trials:
        depth, epochs = int(trial["depth"]), int(trial["epochs_run"])
        rows = layers[trial["trial_id"]]
        # Epoch 0 is the network at initialisation; then one measurement per epoch, every kernel layer.
        assert [(int(r["epoch"]), int(r["index"])) for r in rows] == [
            (e, i) for e in range(epochs + 1) for i in range(1, depth + 2)]
        assert [r["layer"] for r in rows[:depth + 1]] == [f"dense_{i}" for i in range(depth)] + ["logits"]
        for row in rows:
            assert float(row["grad_mean_abs"]) >= 0 and float(row["weight_mean_abs"]) > 0
        assert "act_mean" not in rows[0]          # q13 measures gradients and weights only


def test_q13_report_shows_each_gradient_ratio_and_who_stayed_at_chance(dense):
    text = report_text(dense, "q13")
    trials = read_csv(experiment(dense, "q13", "depth") / "trials.csv")
    layers = layer_rows(dense, "q13", "depth")
    for trial in trials:
        rows = layers[trial["trial_id"]]
        output = int(trial["depth"]) + 1
        last = int(trial["epochs_run"])
        ratios = []
        for epoch in (0, last):
            at = {int(r["index"]): float(r["grad_mean_abs"]) for r in rows if int(r["epoch"]) == epoch}
            ratios.append(f"{at[1] / at[output]:.1e}")
        assert f"{ratios[0]} / {ratios[1]}" in text, trial["trial_id"]
    # Stayed at chance: not above the validation split's chance (its most common class's share) by the exact
    # binomial test, the report's one rule (observe.chance_test, itself tested against scipy).
    from dlcv_keras.report.observe import chance_test
    run = json.loads((dense["results"] / "q13" / "smoke" / "run.json").read_text())
    stuck = [t for t in trials if not chance_test(run, "val", float(t["val_accuracy"])).above_chance()]
    if stuck:
        assert f"{len(stuck)} of {len(trials)} trained settings stayed at chance" in text
    else:
        assert "No trained setting stayed at chance" in text
    for trial in stuck:
        assert (f"depth {trial['depth']}: val {100 * float(trial['val_accuracy']):.2f} %, train "
                f"{100 * float(trial['accuracy']):.2f} %") in text


def test_q13_activation_runs_are_timed_and_tested(dense):
    trials = read_csv(experiment(dense, "q13", "activations") / "trials.csv")
    assert [t["activation"] for t in trials] == ["sigmoid", "tanh", "relu"]
    text = report_text(dense, "q13")
    assert "train time" in text
    for trial in trials:
        assert 0 <= float(trial["test_accuracy"]) <= 1 and float(trial["seconds"]) > 0
        assert f"{float(trial['seconds']):.1f} s" in text


# ================================================================================ q14
def test_q14_each_regulariser_runs_from_several_seeds_and_the_table_holds_their_mean_and_spread(dense):
    import statistics

    rows = {r["experiment"]: r for r in read_csv(experiment(dense, "q14", "compare") / "trials.csv")}
    assert list(rows) == ["baseline", "l1", "l2", "dropout"]
    for name, row in rows.items():
        trials = read_csv(experiment(dense, "q14", name) / "trials.csv")
        assert sorted(int(t["repeat"]) for t in trials) == list(range(len(trials))) and len(trials) >= 2
        accuracies = [float(t["test_accuracy"]) for t in trials]
        assert int(row["n"]) == len(trials)
        assert float(row["test_accuracy"]) == pytest.approx(statistics.fmean(accuracies))
        assert float(row["test_accuracy_std"]) == pytest.approx(statistics.stdev(accuracies))
    # Each repeat starts from its own seed: the repeats' weights (and so their losses) differ.
    baseline = read_csv(experiment(dense, "q14", "baseline") / "trials.csv")
    assert len({t["loss"] for t in baseline}) == len(baseline)


def test_q14_report_ranks_the_runs_by_mean_test_accuracy_against_the_seeds_order(dense):
    rows = read_csv(experiment(dense, "q14", "compare") / "trials.csv")
    text = report_text(dense, "q14")
    assert "the seed's: dropout > L2 > L1. Our ranking" in text      # one of the section's observations
    means = {r["run"]: float(r["test_accuracy"]) for r in rows}
    order = sorted(means, key=lambda run: -means[run])
    ranked = [run for run in order if run in ("dropout", "L2", "L1")]
    if ranked == ["dropout", "L2", "L1"]:
        assert "Our ranking agrees with the seed's." in text
    else:
        assert "Our ranking agrees with the seed's." not in text


# ================================================================================ q15
def test_q15_zero_initialisation_keeps_every_unit_identical(dense):
    trials = {t["initializer"]: t for t in read_csv(experiment(dense, "q15", "init") / "trials.csv")}
    layers = layer_rows(dense, "q15", "init")
    zeros, glorot = layers[trials["zeros"]["trial_id"]], layers[trials["glorot_uniform"]["trial_id"]]
    assert {float(r["unit_spread"]) for r in zeros} == {0.0}
    assert all(float(r["unit_spread"]) > 0 for r in glorot)
    # A network whose units are all the same unit predicts one class: no better than chance.
    assert float(trials["zeros"]["accuracy"]) < 0.2
    text = report_text(dense, "q15")
    epochs = trials["zeros"]["epochs_run"]
    assert (f"initializer=zeros: every unit of every layer kept the same incoming weights from initialisation "
            f"to epoch {epochs} (largest difference 0)") in text
    assert "initializer=glorot_uniform: every unit" not in text


def test_q15_activation_statistics_at_initialisation_are_reported_per_hidden_layer(dense):
    text = report_text(dense, "q15")
    for name in ("init", "init_depth"):
        trials = read_csv(experiment(dense, "q15", name) / "trials.csv")
        layers = layer_rows(dense, "q15", name)
        for trial in trials:
            at_init = [r for r in layers[trial["trial_id"]] if r["epoch"] == "0"]
            hidden = at_init[:-1]                      # the output layer's are its logits
            assert len(hidden) == len(at_init) - 1 >= 2
            for row in hidden:
                mean, std = float(row["act_mean"]), float(row["act_std"])
                assert math.isfinite(mean) and std >= 0
                assert f"{row['index']}: {row['layer']}" in text
                cell = f"{mean:.2e} / {std:.2e}"
                if row.get("grad_mean_abs"):          # q15's init also measures gradients
                    cell += f" / {float(row['grad_mean_abs']):.2e}"
                assert cell in text, (name, trial["trial_id"], row["layer"])
