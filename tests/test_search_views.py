"""A search's figures and observations (experiments/search.py views), on real runs.

The smoke runs (the shared ``smoke_results`` fixture) have two trials a search; what needs more comes
from two extra real q1 runs made here through the command line with a space file: a 3 x 3 grid and an
8-trial random search (``many``). Observations are checked against the stored numbers, then the stored
numbers are changed in a copy, written back with the store's own writer, and the sentence must follow.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_runs import (PROFILE, REPO, child_env, copy_results, esc, hp, hyperparameters, images,  # noqa: E402
                       kept_runs, pct, save_runs, store, varying)

from dlcv_keras.experiments.search import MANY_TRIALS, hyperparameter_importance  # noqa: E402
from dlcv_keras.report import build_report  # noqa: E402
from dlcv_keras.report.context import read_run, section_context  # noqa: E402

# The extra runs' spaces: q1's smoke tables with a 3 x 3 lr x batch grid, or (--tuner random) an lr range.
SPACE = """
[smoke]
max_train = 600
max_test = 300
random_trials = 8

[smoke.base]
lr = 1e-2
l2 = 1e-3
batch_size = 64
epochs = 2

[smoke.lr_batch]
lr = {lr}
batch_size = {batch_size}
l2 = 1e-3
epochs = 2

[smoke.full_grid]
lr = [1e-1, 1e-2]
l2 = [1e-3]
epochs = [2]
batch_size = [64]

[smoke.fractions]
train_fraction = [0.5]
"""
SPACES = {"grid": ([], SPACE.format(lr="[1e-1, 1e-2, 1e-3]", batch_size="[32, 64, 128]")),
          "random": (["--tuner", "random"], SPACE.format(lr='{min = 1e-3, max = 0.3, sampling = "log"}',
                                                          batch_size="[32, 64]"))}
CAPTIONS = {"trial_curves": "Validation accuracy (left) and loss (right) per epoch of every trained trial", "parallel": "Parallel coordinates:",
            "importance": "Hyperparameter importance", "running_best": "Random search: each trial"}
# The best of a search's trials on validation: which had the highest accuracy (never "won": it was chosen there).
WINNER = re.compile(r"^(?:The setting (?P<won>.+?) had the highest validation accuracy of the \d+ trials "
                    r"\((?P<won_pct>[\d.]+) %\)"
                    r"|The setting (?P<tied>.+?) and the setting .+? tie for the highest validation accuracy of the "
                    r"\d+ trials \((?P<tied_pct>[\d.]+) %\))")


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> dict[str, Path]:
    """Results folders of two real q1 smoke runs on digits: "grid" (lr_batch a 3 x 3 grid) and "random"
    (lr_batch 8 random trials). DLCV_SEARCH_RUNS=<folder> keeps them for later sessions."""
    folder, state = kept_runs("DLCV_SEARCH_RUNS", "search", tmp_path_factory)
    if state is None:
        started, running = time.perf_counter(), {}
        for label, (extra, space) in SPACES.items():     # both at once: each mostly waits on its own imports
            (folder / f"{label}.toml").write_text(space)
            args = ["q1", "--dataset", "digits", "--profile", PROFILE, "--space", str(folder / f"{label}.toml"),
                    "--results", str(folder / label), "--report", "none", "-q", *extra]
            running[label] = (args, subprocess.Popen([sys.executable, "-m", "dlcv_keras.run", *args], cwd=REPO,
                                                     env=child_env(folder, None), stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE, text=True))
        for label, (args, process) in running.items():
            _, stderr = process.communicate(timeout=600)
            if process.returncode != 0:
                pytest.fail(f"`python -m dlcv_keras.run {' '.join(args)}` exited with {process.returncode}; "
                            f"stderr:\n{stderr[-6000:]}", pytrace=False)
        print(f"\nq1 grid and random search runs: {time.perf_counter() - started:.0f} s")
        state = {label: str(folder / label) for label in SPACES}
        save_runs("DLCV_SEARCH_RUNS", "search", folder, state)
    return {label: Path(path) for label, path in state.items()}


# -- reading a section's observations and figures ------------------------------------------------
def section(results: Path, question: str, experiment: str) -> dict:
    """One section's context, as the report builds it (only that section's figures are drawn)."""
    run = store(results, question)
    found = read_run(run)
    return section_context(run, found, next(s for s in found["sections"] if s["experiment"] == experiment))


def sentence(observations: list[str], start: str | re.Pattern) -> str:
    found = [s for s in observations if (start.match(s) if isinstance(start, re.Pattern) else s.startswith(start))]
    assert len(found) == 1, (start, observations)
    return found[0]


def stated_winner(observations: list[str]) -> tuple[str, str]:
    """The setting the winner sentence names first, and the accuracy it gives it."""
    found = WINNER.match(sentence(observations, WINNER))
    return found["won"] or found["tied"], found["won_pct"] or found["tied_pct"]


def setting(row: dict, shown: list[str]) -> str:
    return ", ".join(f"{c}={hp(row[c])}" for c in shown)


def search_rows(results: Path, experiment: str, question: str = "q1") -> tuple[list[dict], list[str]]:
    trials = store(results, question).read_experiment(experiment)["trials"]
    return trials, varying(trials, hyperparameters(trials))


def section_html(html: str, title: str) -> str:
    start = html.index(f"<h3>{esc(title)}</h3>")
    end = html.find('<section class="part', start)
    return html[start: end if end >= 0 else len(html)]


def binomial_se_points(accuracy: float, n: int) -> float:
    return 100 * math.sqrt(accuracy * (1 - accuracy) / n)


# -- changing a copy the way the code writes it -------------------------------------------------------
def rewrite_trials(run, experiment: str, change) -> list[dict]:
    """Apply ``change(trials)`` to trials.csv and write it back with the store's writer, with the summary's
    best trial updated as the search would pick it (the highest val accuracy)."""
    path = run.experiment_dir(experiment) / "trials.csv"
    before = path.read_bytes()
    trials = run.read_experiment(experiment)["trials"]
    run.write_table(f"experiments/{experiment}/trials.csv", trials)
    assert path.read_bytes() == before        # read and written back unchanged: the format is the code's
    change(trials)
    run.write_table(f"experiments/{experiment}/trials.csv", trials)
    summary = run.read_json(f"experiments/{experiment}/summary.json")
    best = max((r for r in trials if r["status"] == "completed"), key=lambda r: r["val_accuracy"])
    summary.update(best_trial=str(best["trial_id"]), best_val_accuracy=best["val_accuracy"],
                   best_hyperparameters={c: best[c] for c in hyperparameters(trials)})
    run.write_json(f"experiments/{experiment}/summary.json", summary)
    return trials


def ranked(trials: list[dict]) -> list[dict]:
    return sorted((r for r in trials if r["status"] == "completed"), key=lambda r: -r["val_accuracy"])


# -- the winner ------------------------------------------------------------------------------------------
def test_winner_names_the_stored_best_setting_and_its_accuracy(smoke_results):
    trials, shown = search_rows(smoke_results, "lr_batch")
    best = ranked(trials)[0]
    observations = section(smoke_results, "q1", "lr_batch")["observations"]
    assert stated_winner(observations) == (setting(best, shown), pct(best["val_accuracy"]))


def test_swapping_two_trials_accuracies_swaps_the_winner(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q1")
    first, second = ranked(search_rows(results, "lr_batch")[0])[:2]

    def swap(trials):
        a, b = (next(r for r in trials if r["trial_id"] == t["trial_id"]) for t in (first, second))
        a["val_accuracy"], b["val_accuracy"] = b["val_accuracy"], a["val_accuracy"]

    trials = rewrite_trials(store(results, "q1"), "lr_batch", swap)
    shown = varying(trials, hyperparameters(trials))
    observations = section(results, "q1", "lr_batch")["observations"]
    assert setting(first, shown) != setting(second, shown)
    assert stated_winner(observations) == (setting(second, shown), pct(first["val_accuracy"]))
    assert f"the setting {setting(first, shown)}" in sentence(observations, WINNER).split(" above the runner-up ")[-1]


def test_a_validation_lead_is_never_a_win_and_the_test_split_compares_the_two(smoke_results, tmp_path):
    """The best of k on validation is chosen there: its lead there is said in points and images, never as a win,
    however large. lr_batch also scored its trials on the test split: there the best and the runner-up are
    compared by McNemar's exact test on their stored predictions, and the verdict follows them."""
    from scipy.stats import binomtest

    from real_runs import set_predictions

    from dlcv_keras import stats

    results = copy_results(smoke_results, tmp_path, "q1")
    run = store(results, "q1")
    n_val = run.read_json("run.json")["dataset"]["splits"]["val"]
    first, second = ranked(search_rows(results, "lr_batch")[0])[:2]
    words = {}
    for label, runner_up in (("clear", 0.3), ("one image", 0.6 - 1 / n_val)):
        def lead(trials, runner_up=runner_up):
            for row in trials:          # any other trial far behind both
                row["val_accuracy"] = {first["trial_id"]: 0.6, second["trial_id"]: runner_up}.get(row["trial_id"], 0.1)
        rewrite_trials(run, "lr_batch", lead)
        words[label] = sentence(section(results, "q1", "lr_batch")["observations"], WINNER)
    assert "30.00 points (" in words["clear"] and f"1 of {n_val:,} images)" in words["one image"]
    for said in words.values():
        assert " had the highest validation accuracy of the " in said and "won" not in said
        assert said.endswith("so its lead there is no evidence that it is better.")

    import numpy as np
    with np.load(run.experiment_dir("lr_batch") / "predictions.npz") as stored:
        n = len(stored["labels"])
    for extra, verdict in ((40, "is ahead."), (1, "no significant difference.")):
        best = np.arange(n) < n // 2                   # right on the first half, and ``extra`` more
        best[n // 2: n // 2 + extra] = True
        set_predictions(run, "lr_batch", first["trial_id"], best)
        set_predictions(run, "lr_batch", second["trial_id"], np.arange(n) < n // 2)
        said = sentence(section(results, "q1", "lr_batch")["observations"], "On the test split")
        assert said.startswith(f"On the test split, which played no part in the choice: the best setting "
                               f"({setting(first, search_rows(results, 'lr_batch')[1])})")
        assert f"McNemar's exact test {stats.format_p(binomtest(extra, extra, 0.5).pvalue)}; {extra} vs 0 images" in said
        assert said.endswith(verdict)


# -- the effect, the gap, the seed ---------------------------------------------------------------------
@pytest.mark.slow   # the extra real runs
def test_effect_of_lr_follows_the_best_accuracy_at_each_lr(many, tmp_path):
    results = copy_results(many["grid"], tmp_path, "q1")
    trials, shown = search_rows(results, "lr_batch")
    others = [c for c in shown if c != "lr"]

    def path(trials):
        best = {lr: max(r["val_accuracy"] for r in trials if r["lr"] == lr) for lr in {r["lr"] for r in trials}}
        return " → ".join(f"{hp(lr)}: {pct(best[lr])} %" for lr in sorted(best))

    metric = f"The best validation accuracy over {', '.join(others)}"
    words = sentence(section(results, "q1", "lr_batch")["observations"], metric)
    # Every value is said, as a path or piece by piece.
    assert all(f"{part.split(': ')[1][:-2]}" in words for part in path(trials).split(" → "))

    def falling(trials):       # the lower the lr, the better, by 25 points a step (beyond the 95 % margin)
        for row in trials:
            row["val_accuracy"] = 0.9 - 0.25 * round(math.log10(row["lr"] / 1e-3)) - 0.001 * row["batch_size"] / 32
    trials = rewrite_trials(store(results, "q1"), "lr_batch", falling)
    words = sentence(section(results, "q1", "lr_batch")["observations"], metric)
    assert words.startswith(f"{metric} falls at every step as lr grows: {path(trials)} (a step counts when it exceeds")

    def peaked(trials):        # up 25 points, then flat within a point: not a rise "with lr"
        for row in trials:
            row["val_accuracy"] = {1e-3: 0.5, 1e-2: 0.75, 1e-1: 0.745}[row["lr"]] - 0.001 * row["batch_size"] / 32
    trials = rewrite_trials(store(results, "q1"), "lr_batch", peaked)
    words = sentence(section(results, "q1", "lr_batch")["observations"], metric)
    assert "rises with lr" not in words and words.startswith(f"{metric} rises from lr = 0.001 to 0.01")
    assert "then stays flat within noise from lr = 0.01 to 0.1" in words and "it is highest at" not in words
    assert "its highest, at lr = 0.01" in words and "is within noise of lr = 0.1" in words     # no peak claimed


@pytest.mark.slow   # the extra real runs
def test_main_effect_within_the_noise_is_said_to_be_unclear(many, tmp_path):
    results = copy_results(many["grid"], tmp_path, "q1")
    n_val = store(results, "q1").read_json("run.json")["dataset"]["splits"]["val"]
    for step, clear in ((0.2, True), (0.5 / n_val, False)):     # lr's values 20 points, or half an image, apart
        def by_lr(trials, step=step):
            for row in trials:
                row["val_accuracy"] = 0.3 + step * round(math.log10(row["lr"] / 1e-3)) + 0.1 * (row["batch_size"] == 64) / n_val
        rewrite_trials(store(results, "q1"), "lr_batch", by_lr)
        words = sentence(section(results, "q1", "lr_batch")["observations"], "In this full grid, lr's main effect")
        assert ("no effect is clear" not in words) == clear, words
        if not clear:
            assert f"are within noise: {200 * step:.2f} points apart" in words


def test_train_val_gap_of_the_best_trial_follows_its_history(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q1")
    run = store(results, "q1")
    found = run.read_experiment("lr_batch")
    best = ranked(found["trials"])[0]
    mine = [r for r in found["history"] if r["trial_id"] == best["trial_id"]]
    first = mine[1] if len(mine) >= 3 else mine[0]      # epoch 1's running-mean training accuracy is skipped
    last = mine[-1]

    def lead(gap):
        return f"{abs(gap):.2f} points {'above' if gap > 0 else 'below'} validation accuracy"

    # In units of the 95 % margin of a two-proportion z-test on the validation split (at the trial's accuracy),
    # around a validation accuracy of 50 % at both epochs.
    n_val = run.read_json("run.json")["dataset"]["splits"]["val"]
    m = 1.959963984540054 * math.sqrt(2) * binomial_se_points(best["val_accuracy"], n_val)
    assert 1 + 1.5 * m < 50
    first["val_accuracy"] = last["val_accuracy"] = 0.5
    for start, target, verb in ((1.0, 1 + 1.5 * m, "the gap grew"), (-1.0, -1 - 1.5 * m, "the gap grew"),
                                (1 + 1.5 * m, 1.0, "the gap shrank"),
                                (-0.3 * m, 1.1 * m, "training accuracy overtook validation accuracy"),
                                (0.3 * m, -1.1 * m, "validation accuracy overtook training accuracy"),
                                (0.2, 0.3, "the gap stayed the same size"),
                                # Sides swapped, but the last lead is inside the noise: no one leads.
                                (-0.3 * m, 0.8 * m, "the lead changed sides, but the last gap is no lead"),
                                (0.2, -0.2, "the lead changed sides, but the last gap is no lead")):
        first["accuracy"] = first["val_accuracy"] + start / 100
        last["accuracy"] = last["val_accuracy"] + target / 100
        run.write_table("experiments/lr_batch/history.csv", found["history"])
        words = sentence(section(results, "q1", "lr_batch")["observations"], "For the best trial")
        assert words.startswith(f"For the best trial, training accuracy was {lead(start)} at epoch {first['epoch']} and "
                                f"{lead(target)} at epoch {last['epoch']}: {verb} (")


def test_ranking_and_accuracy_beside_the_seed(smoke_results, tmp_path):
    """q3's smoke run fell back to digits: the seed's rows are still shown, and the fallback is a named cause. Our
    order of the settings the seed also ranks confirms or contradicts the seed's only where two validation
    accuracies are apart by more than the 95 % margin of two accuracies on the validation split; otherwise it is
    within noise."""
    import json

    results = copy_results(smoke_results, tmp_path, "q3")
    run = store(results, "q3")
    rows = run.read_json("run.json")["reference"]["grid"]["rows"]
    n_val = run.read_json("run.json")["dataset"]["splits"]["val"]
    trials, shown = search_rows(results, "grid", "q3")

    def seed_of(row):
        return next((ref for ref in rows if all(math.isclose(row[k], ref[k]) for k in ref
                                                if k in row and k != "val_accuracy")), None)

    def margin(a, b):
        return 1.959963984540054 * math.sqrt(2) * binomial_se_points((a + b) / 2, n_val)

    # Our settings the seed also ranks, in the seed's order (best first).
    both = sorted((r for r in ranked(trials) if seed_of(r)), key=lambda r: -seed_of(r)["val_accuracy"])
    assert len(both) >= 2                              # the smoke grid's settings are among the seed's
    theirs = [f"({setting(r, shown)})" for r in both]

    def observe(values):
        """Our settings' validation accuracies set to ``values`` (in the seed's order): the section's sentences."""
        chosen = {r["trial_id"]: v for r, v in zip(both, values)}
        rewrite_trials(run, "grid", lambda trials: [r.update(val_accuracy=chosen[r["trial_id"]]) for r in trials
                                                     if r["trial_id"] in chosen])
        return section(results, "q3", "grid")["observations"]

    # 20 points apart at every step, more than the margin: the seed's order is confirmed, then contradicted.
    apart = [0.95 - 0.2 * i for i in range(len(both))]
    assert min(apart) > 0.3 and 20 > max(margin(a, b) for a, b in zip(apart, apart[1:]))
    assert f"Our ranking matches the seed's, beyond noise: {' > '.join(theirs)}." in observe(apart)
    words = sentence(observe(apart[::-1]), "Our ranking differs from the seed's")
    assert words.startswith(f"Our ranking differs from the seed's: ours {' > '.join(theirs[::-1])}, the seed's "
                            f"{' > '.join(theirs)}")
    assert f"{theirs[-1]} > {theirs[0]}" in words
    # The same orders, each pair at most 2 points apart, within the margin: neither confirmed nor contradicted.
    assert len(both) <= 4
    close = [0.80, 0.79, 0.815, 0.805][:len(both)]
    assert max(close) - min(close) < min(margin(a, b) for a in close for b in close)
    ours = [label for _, label in sorted(zip(close, theirs), key=lambda p: -p[0])]
    found = observe(close)
    assert (f"Our order is within noise: ours {' > '.join(ours)}, the seed's {' > '.join(theirs)}; the seed's order "
            f"is neither confirmed nor contradicted.") in found
    assert not any(s.startswith(("Our ranking matches", "Our ranking differs")) for s in found)

    best, seed_best = ranked(run.read_experiment("grid")["trials"])[0], max(rows, key=lambda r: r["val_accuracy"])
    words = sentence(found, "Our best validation accuracy")
    assert words.startswith(f"Our best validation accuracy ({pct(best['val_accuracy'])} %)")
    assert f"the seed's ({pct(seed_best['val_accuracy'])} %)" in words
    assert "the digits fallback (ran on digits, not mnist)" in words and "the smoke profile" in words

    # The seed's setup (the full profile on MNIST, whole), our best within 2 points of the seed's best.
    def edit_run(change):
        found = json.loads((run.root / "run.json").read_text())
        change(found)
        (run.root / "run.json").write_text(json.dumps(found))

    edit_run(lambda found: (found.update(profile="full"),
                            found["dataset"].update(name="mnist", requested="mnist", fallback_banner=None, notes=[])))
    top = seed_best["val_accuracy"] - 0.005
    single = 1.959963984540054 * binomial_se_points(top, n_val)
    assert single > 2                                  # our number alone is less certain than the tolerance
    uncertain = f"(our number alone is uncertain by ±{single:.2f} points, 95 %, on {n_val:,} validation images)"
    assert seed_of(both[0]) is seed_best               # the seed's best is the first of ours in its order
    words = sentence(observe([top] + [top - 0.3] * (len(both) - 1)), "Our best validation accuracy")
    assert words == (f"Our best validation accuracy ({pct(top)} %) is within 2 points of the seed's "
                     f"({pct(seed_best['val_accuracy'])} %), on the seed's settings: the seed's result is reproduced "
                     f"{uncertain}.")
    # The same number from another setting than the seed's best: consistent, not reproduced, and why.
    other = next(i for i, r in enumerate(both) if r["lr"] == both[0]["lr"] and r["batch_size"] != both[0]["batch_size"])
    values = [top - 0.3] * len(both)
    values[other] = top
    words = sentence(observe(values), "Our best validation accuracy")
    assert words.startswith(f"Our best validation accuracy ({pct(top)} %) is consistent with the seed's "
                            f"({pct(seed_best['val_accuracy'])} %): 0.50 points apart, within the 2-point tolerance "
                            f"{uncertain}, but not a reproduction")
    assert (f"our best setting is not the seed's best (batch_size {both[other]['batch_size']} against the seed's "
            f"{both[0]['batch_size']})") in words
    # The seed's best again, but a setting the seed does not state: consistent, with that cause.
    edit_run(lambda found: found["reference"]["grid"].update(unstated=["momentum"]))
    words = sentence(observe([top] + [top - 0.3] * (len(both) - 1)), "Our best validation accuracy")
    assert "consistent with the seed's" in words and "reproduced" not in words
    assert "settings the seed does not give (momentum: ours are our own choice)" in words


def test_single_run_states_its_final_accuracies_or_that_it_is_at_chance(smoke_results, tmp_path):
    from scipy.stats import binomtest

    results = copy_results(smoke_results, tmp_path, "q1")
    run = store(results, "q1")
    found = run.read_json("run.json")["dataset"]
    n_val, classes = found["splits"]["val"], len(found["class_names"])
    for val in (0.6, round(n_val / classes) / n_val):       # well above chance, then exactly one in ten right
        rewrite_trials(run, "base", lambda trials: trials[0].update(val_accuracy=val))
        (row,) = run.read_experiment("base")["trials"]
        observations = section(results, "q1", "base")["observations"]
        if binomtest(round(val * n_val), n_val, 1 / classes, alternative="greater").pvalue < 0.05:
            words = sentence(observations, "After ")
            assert words.startswith(f"After {row['epochs_run']} epochs ({row['stop_reason']}), training accuracy is "
                                    f"{pct(row['accuracy'])} % and validation accuracy {pct(row['val_accuracy'])} %: ")
            gap = 100 * (row["accuracy"] - row["val_accuracy"])
            margin = 1.959963984540054 * math.sqrt(2) * binomial_se_points(row["val_accuracy"], n_val)
            if abs(gap) > margin:
                assert f"{'training' if gap >= 0 else 'validation'} accuracy is ahead by {abs(gap):.2f} points, more than" in words
            else:
                assert f"the two are within noise: {abs(gap):.2f} points apart, not more than {margin:.2f} points" in words
        else:
            assert observations[0].startswith(f"This run is at chance on the validation split: {pct(val)} % of {n_val:,}")
            assert not [s for s in observations if s.startswith(("After ", "For this run"))]
            # Against the seed (when the run has its reference), not learning is the first cause.
            assert not [s for s in observations if s.startswith("Our validation accuracy")
                        and "known causes: the model did not learn (it is at chance)" not in s]


def test_fractions_trend_follows_the_test_accuracies(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q1")

    def stated():
        rows = sorted(store(results, "q1").read_experiment("fractions")["trials"], key=lambda r: r["train_fraction"])
        path = " → ".join(f"{hp(r['train_fraction'])}: {pct(r['test_accuracy'])} %" for r in rows)
        return path, sentence(section(results, "q1", "fractions")["observations"], re.compile(".*train_fraction"))

    path, words = stated()
    assert all(part.split(": ")[1][:-2] in words for part in path.split(" → "))

    # The most data now scores lowest, 20 points a step apart: each fraction's stored predictions right on
    # fewer of the same test images (nested), as a run would store them.
    import numpy as np

    from real_runs import set_predictions

    run = store(results, "q1")
    with np.load(run.experiment_dir("fractions") / "predictions.npz") as stored:
        n = len(stored["labels"])
    trials = sorted(run.read_experiment("fractions")["trials"], key=lambda r: -r["train_fraction"])
    for i, row in enumerate(trials):
        set_predictions(run, "fractions", row["trial_id"], np.arange(n) < round((0.3 + 0.2 * i) * n))
    path, words = stated()
    assert words == (f"Test accuracy falls at every step as train_fraction grows: {path} (each step by a paired test "
                     f"on the same test images at p < 0.05).")
    # The middle fraction's images right on one image more than the largest's: that step is flat, the other falls.
    if len(trials) == 3:
        set_predictions(run, "fractions", trials[1]["trial_id"], np.arange(n) < round(0.3 * n) + 1)
        path, words = stated()
        assert words.startswith("Test accuracy falls from train_fraction = ") and "then stays flat within noise" in words


# -- importance: the computation alone ---------------------------------------------------------------------
def grid(effect) -> list[dict]:
    rows = []
    for i, (lr, batch, l2) in enumerate((lr, b, l2) for lr in (1e-3, 1e-2, 1e-1) for b in (32, 64) for l2 in (0.0, 1e-3)):
        rows.append({"trial_id": i, "status": "completed", "lr": lr, "batch_size": batch, "l2": l2,
                     "val_accuracy": effect(lr, batch, l2)})
    return rows


def test_main_effects_give_the_only_hyperparameter_that_matters_all_the_share():
    lr_effect = {1e-3: 0.70, 1e-2: 0.85, 1e-1: 0.80}
    found = hyperparameter_importance(grid(lambda lr, b, l2: lr_effect[lr]), ["lr", "batch_size", "l2"])
    assert found.method == "main effects" and found.trials == 12
    assert math.isclose(found.scores["lr"], 1.0) and found.scores["batch_size"] < 1e-12 and found.scores["l2"] < 1e-12
    assert found.interactions < 1e-12


def test_main_effects_of_an_additive_grid_split_the_variance_between_them():
    lr_effect, batch_effect = {1e-3: 0.0, 1e-2: 0.1, 1e-1: 0.2}, {32: 0.0, 64: 0.05}
    found = hyperparameter_importance(grid(lambda lr, b, l2: 0.5 + lr_effect[lr] + batch_effect[b]),
                                      ["lr", "batch_size", "l2"])
    lr_var, batch_var = statistics.pvariance(lr_effect.values()), statistics.pvariance(batch_effect.values())
    assert math.isclose(found.scores["lr"], lr_var / (lr_var + batch_var))
    assert math.isclose(found.scores["batch_size"], batch_var / (lr_var + batch_var))
    assert found.interactions < 1e-12


def test_a_grid_with_a_hole_falls_back_to_permutation_importance():
    lr_effect = {1e-3: 0.70, 1e-2: 0.85, 1e-1: 0.80}
    rows = grid(lambda lr, b, l2: lr_effect[lr] + (0.001 if b == 64 else 0.0))
    rows[3]["status"], rows[3]["val_accuracy"] = "diverged", float("nan")
    found = hyperparameter_importance(rows, ["lr", "batch_size", "l2"])
    assert found.method == "permutation" and found.interactions is None and found.trials == 11
    assert max(found.scores, key=found.scores.get) == "lr"
    assert found.scores["lr"] > 10 * max(found.scores["batch_size"], found.scores["l2"])
    assert hyperparameter_importance(grid(lambda lr, b, l2: 0.5), ["lr", "batch_size", "l2"]) is None


# -- figures only where the trial counts call for them ---------------------------------------------------
def expected_figures(summary: dict, trials: list[dict], template: str) -> set[str]:
    trained = [r for r in trials if r["status"] == "completed"]
    many = len(trained) >= MANY_TRIALS
    found = {"trial_curves"} if (len(trained) >= 2 and template != "curves") or many else set()
    if many:
        found |= {"parallel", "importance"}
    if many and summary["tuner"] == "random":
        found.add("running_best")
    return found


@pytest.mark.parametrize("which", ["smoke", "grid", "random"])
def test_figures_appear_when_the_trial_counts_call_for_them(which, many, smoke_results, tmp_path):
    results = smoke_results if which == "smoke" else many[which]
    output = tmp_path / "report"
    html = build_report(results, ["q1"], profile=PROFILE, output=output)[0].read_text(encoding="utf-8")
    run = store(results, "q1").read_json("run.json")
    for part in run["sections"]:
        if part["experiment"] not in ("lr_batch", "full_grid"):
            continue
        found = store(results, "q1").read_experiment(part["experiment"])
        expected = expected_figures(found["summary"], found["trials"], part["template"])
        shown = section_html(html, part["title"])
        drawn = {name for name, caption in CAPTIONS.items() if f"<figcaption>{caption}" in shown}
        assert drawn == expected, (which, part["experiment"])
        assert images(shown) == len(expected) + (part["template"] == "effect")
        if "importance" in expected:
            method = ("main-effects share of variance" if which == "grid" else "permutation importance")
            assert method in shown
    if which != "smoke":        # the extra runs are there to have many trials
        trials = store(results, "q1").read_experiment("lr_batch")["trials"]
        assert sum(r["status"] == "completed" for r in trials) >= MANY_TRIALS


def test_axes_are_logarithmic_only_for_positive_values_spanning_more_than_a_decade():
    from dlcv_keras.report.figures import positions, scale_of

    assert scale_of([1e-3, 1e-2, 1e-1]) == "log" and positions([1e-3, 1e-1], "log") == [-3.0, -1.0]
    assert scale_of([1e-3, 5e-3]) == "linear" and scale_of([0.0, 1e-3, 1e-1]) == "linear"
    assert scale_of(["relu", "tanh"]) == "categories" and scale_of([64, None]) == "categories"
    assert positions(["tanh", "relu", "tanh"], "categories") == [1.0, 0.0, 1.0]


def test_gap_is_counted_from_the_second_epoch_and_a_lead_within_noise_is_no_overtaking():
    from dlcv_keras.experiments.search import _gap_change
    from dlcv_keras.report.observe import Noise

    def history(*gaps):          # training minus validation accuracy, in points, per epoch from 1
        return [{"epoch": e, "accuracy": 0.5 + g / 100, "val_accuracy": 0.5} for e, g in enumerate(gaps, 1)]

    noise = Noise(0.83, "n")
    # epoch 1's running-mean accuracy (-20 here) is left out: from epoch 2's -1.00 the gap grew
    assert _gap_change(history(-20.0, -1.0, -5.0), noise, "x").startswith(
        "For x, training accuracy was 1.00 points below validation accuracy at epoch 2 and 5.00 points below "
        "validation accuracy at epoch 3: the gap grew (4.00 points")
    # ends 0.30 points above: within noise of equal, so no overtaking is claimed
    words = _gap_change(history(0.0, -5.0, 0.3), noise, "x")
    assert "overtook" not in words and "the gap shrank" in words
    assert "training accuracy overtook validation accuracy (a change of 7.00 points" in _gap_change(
        history(0.0, -5.0, 2.0), noise, "x")
    assert "equal to validation accuracy at epoch 3" in _gap_change(history(0.0, -5.0, -0.0001), noise, "x")
