"""A search that trains each setting from several seeds (``repeat``, as q3 quick's grid and fractions do) is
shown one setting at a time: one table row, point and panel per training fraction with the mean ± sd of its
seeds and their count, one trend step per pair of distinct neighbouring fractions (a paired test over every
seed's predictions on the same test images), and in the effect view one point per setting, with ``repeat``
no line, colour, axis or share of the importance.

On one real q3 smoke run made here through the command line, with a space file that is tuners/q3.toml's
smoke profile plus ``repeat = [0, 1]`` in the grid and fractions tables (q3 falls back to digits offline,
as in the shared smoke runs). Expected numbers are restated from the stored trials; the verdicts are then
checked again after the stored numbers are changed in a copy, as the code writes them.
"""

from __future__ import annotations

import itertools
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_runs import (PROFILE, REPO, between, child_env, copy_results, esc, hp, hyperparameters,  # noqa: E402
                       images, kept_runs, pct, save_runs, set_predictions, store)
from test_search_views import rewrite_trials, section, sentence  # noqa: E402

from dlcv_keras.experiments.search import hyperparameter_importance  # noqa: E402
from dlcv_keras.report import build_report  # noqa: E402

pytestmark = pytest.mark.slow      # a real run of q3's smoke profile
SEEDS = (0, 1)
REPEATED = ("grid", "fractions")
TREND = re.compile(r"^Test accuracy \(mean of 2 seeds\)")


def repeated_space() -> str:
    """tuners/q3.toml's smoke profile, with every setting of the grid and fractions tables trained from SEEDS."""
    text = (REPO / "tuners" / "q3.toml").read_text(encoding="utf-8").split("\n[quick]")[0]
    for table in REPEATED:
        header = f"[smoke.{table}]\n"
        assert text.count(header) == 1, table
        text = text.replace(header, f"{header}repeat = {list(SEEDS)}\n")
    return text


@pytest.fixture(scope="module")
def repeated(tmp_path_factory) -> Path:
    """The results folder of the q3 smoke run with repeats. DLCV_REPEAT_RUNS=<folder> keeps it for later sessions."""
    folder, state = kept_runs("DLCV_REPEAT_RUNS", "repeat", tmp_path_factory)
    if state is None:
        (folder / "no-data").mkdir(parents=True, exist_ok=True)
        space = folder / "q3-repeats.toml"
        space.write_text(repeated_space(), encoding="utf-8")
        args = ["q3", "--no-download", "--data-dir", str(folder / "no-data"), "--profile", PROFILE,
                "--space", str(space), "--results", str(folder / "results"), "--report", "none", "-q"]
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], cwd=REPO, env=child_env(folder, None),
                              capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            pytest.fail(f"`python -m dlcv_keras.run {' '.join(args)}` exited with {done.returncode}; "
                        f"stderr:\n{done.stderr[-6000:]}", pytrace=False)
        print(f"\nq3 smoke run with repeats: {time.perf_counter() - started:.0f} s")
        state = {"results": str(folder / "results")}
        save_runs("DLCV_REPEAT_RUNS", "repeat", folder, state)
    return Path(state["results"])


def by_fraction(trials: list[dict]) -> dict[float, list[dict]]:
    found: dict[float, list[dict]] = {}
    for row in sorted(trials, key=lambda r: (r["train_fraction"], r["repeat"])):
        found.setdefault(row["train_fraction"], []).append(row)
    return found


def mean_sd(rows: list[dict], key: str) -> str:
    """A mean over seeds as the tables print it: "91.20 ± 0.45" (percent)."""
    values = [row[key] for row in rows]
    return f"{pct(statistics.fmean(values))} ± {pct(statistics.stdev(values))}"


def trials_of(results: Path, experiment: str = "fractions") -> list[dict]:
    return store(results, "q3").read_experiment(experiment)["trials"]


def best_setting(results: Path) -> str:
    """The grid's setting with the highest mean validation accuracy over its seeds, as the views name it."""
    trials = trials_of(results, "grid")
    means = {(r["batch_size"], r["lr"]): statistics.fmean(t["val_accuracy"] for t in trials
                                                          if (t["batch_size"], t["lr"]) == (r["batch_size"], r["lr"]))
             for r in trials}
    batch, lr = max(means, key=means.get)
    return f"batch_size={batch}, lr={hp(lr)}"


def mean_path(results: Path) -> str:
    """The stored fractions' mean test accuracies, as a trend's path: "0.1: 80.00 % → 0.2: ..."."""
    groups = by_fraction(trials_of(results))
    return " → ".join(f"{hp(fraction)}: {pct(statistics.fmean(r['test_accuracy'] for r in rows))} %"
                      for fraction, rows in groups.items())


# -- the fractions view ------------------------------------------------------------------------------------
def test_the_run_repeated_every_setting_from_both_seeds(repeated):
    for name, settings in (("grid", ("lr", "batch_size")), ("fractions", ("train_fraction",))):
        trials = store(repeated, "q3").read_experiment(name)["trials"]
        seeds = {}
        for row in trials:
            seeds.setdefault(tuple(row[k] for k in settings), []).append(row["repeat"])
        assert all(sorted(found) == list(SEEDS) for found in seeds.values()), (name, seeds)
        assert all(row["status"] == "completed" for row in trials), name


def test_the_fractions_table_has_one_row_per_fraction_with_the_mean_and_sd_of_its_seeds(repeated):
    groups = by_fraction(store(repeated, "q3").read_experiment("fractions")["trials"])
    table = section(repeated, "q3", "fractions")["table"]
    assert [row["cells"][0] for row in table["rows"]] == [f"{100 * f:g} %" for f in groups]
    # Both seeds of every fraction completed: the seeds column is the same in every row, said once above it.
    assert {"name": "seeds", "value": str(len(SEEDS))} in table["shared"] and "repeat" not in table["headers"]
    assert any("mean ± sample standard deviation over its seeds" in note for note in table["notes"])
    for header, key in (("train acc. (%)", "accuracy"), ("val acc. (%)", "val_accuracy"),
                        ("test acc. (%)", "test_accuracy")):
        expected = [mean_sd(rows, key) for rows in groups.values()]
        if header in table["headers"]:
            column = table["headers"].index(header)
            assert [row["cells"][column] for row in table["rows"]] == expected, header
        else:                                   # the same in every row: said once above the table
            assert len(set(expected)) == 1 and {"name": header, "value": expected[0]} in table["shared"], header


def test_the_fraction_trend_steps_between_distinct_fractions(repeated):
    observations = section(repeated, "q3", "fractions")["observations"]
    words = sentence(observations, TREND)
    for part in mean_path(repeated).split(" → "):      # every fraction's mean, as a path or piece by piece
        assert part.split(": ")[1][:-2] in words, (part, words)
    # Said as a path ("0.1: 80.00 % → 0.2: ...") each fraction once; piece by piece, from one to a larger one.
    assert all(words.count(f"{hp(f)}: ") <= 1 for f in by_fraction(trials_of(repeated))), words
    spans = re.findall(r"from train_fraction = ([\d.]+) to ([\d.]+)", words)
    assert all(float(start) < float(end) for start, end in spans), words
    # At most one at-chance sentence per fraction, each naming its seeds' mean.
    chance = [s for s in observations if " of the data" in s and "is at chance" in s]
    assert len(chance) <= 3 and all("(mean of 2 seeds)" in s for s in chance)


def test_each_step_is_a_paired_test_over_every_seed_and_follows_the_predictions(repeated, tmp_path):
    results = copy_results(repeated, tmp_path, "q3")
    run = store(results, "q3")
    with np.load(run.experiment_dir("fractions") / "predictions.npz") as stored:
        n = len(stored["labels"])
    groups = by_fraction(run.read_experiment("fractions")["trials"])

    def right_on(shares):
        """Every seed of the i-th fraction right on the first shares[i] of the test images (nested)."""
        for rows, share in zip(groups.values(), shares):
            for row in rows:
                set_predictions(run, "fractions", row["trial_id"], np.arange(n) < round(share * n))
        return sentence(section(results, "q3", "fractions")["observations"], TREND)

    words = right_on((0.3, 0.5, 0.7))
    assert words == (f"Test accuracy (mean of 2 seeds) rises with train_fraction at every step: {mean_path(results)} "
                     f"(each step by a paired test on the same test images at p < 0.05).")
    # The middle fraction's seeds now right on the smallest's images and one more: that step is flat.
    words = right_on((0.3, 0.3 + 1 / n, 0.7))
    fractions = [hp(f) for f in groups]
    assert words.startswith(f"Test accuracy (mean of 2 seeds) stays flat within noise from train_fraction = "
                            f"{fractions[0]} to {fractions[1]}"), words
    assert f"then rises from train_fraction = {fractions[1]} to {fractions[2]}" in words
    # One seed of the largest fraction now as bad as the middle one (one image less): the mean is still
    # 20 points up, but the step is weighed over both seeds and every image, and one seed did not rise.
    last = list(groups.values())[-1]
    set_predictions(run, "fractions", last[0]["trial_id"], np.arange(n) < round(0.3 * n))
    words = sentence(section(results, "q3", "fractions")["observations"], TREND)
    assert words == (f"Test accuracy (mean of 2 seeds) does not change with train_fraction beyond noise "
                     f"({mean_path(results)}; each step by a paired test on the same test images at p < 0.05)."), words


def test_the_report_says_what_each_point_and_panel_is(repeated, tmp_path):
    html = build_report(repeated, ["q3"], profile=PROFILE, output=tmp_path / "report")[0].read_text(encoding="utf-8")
    run = store(repeated, "q3").read_json("run.json")
    titles = {part["experiment"]: part["title"] for part in run["sections"]}
    fractions = between(html, f"<h3>{esc(titles['fractions'])}</h3>", "</section>")
    assert esc("the mean over its seeds, shaded from the lowest to the highest seed.") in fractions
    assert esc("(the mean over each fraction's seeds, bars ± one standard deviation).") in fractions
    assert images(fractions) == 2
    effect = between(html, f"<h3>{esc(titles['grid'])}</h3>", "</section>")
    assert esc("one line per batch_size, each point the mean of its 2 seeds, bars ± one standard deviation") in effect
    assert esc("each trained setting is a line (at the mean validation accuracy of its seeds)") in effect


# -- the effect view: repeat is no hyperparameter --------------------------------------------------------
def test_the_effect_view_groups_seeds_and_never_treats_repeat_as_a_hyperparameter(repeated):
    found = section(repeated, "q3", "grid")
    assert (found["x"], found["group"], found["seeds"]) == ("lr", ["batch_size"], len(SEEDS))
    assert found["colour_by"] in ("lr", "batch_size")
    # The best of the 4 settings (each the mean of its seeds), not of the 8 trials.
    assert sentence(found["observations"], "The setting ").startswith(
        f"The setting {best_setting(repeated)} (mean of 2 seeds) had the highest validation accuracy of the 4 settings (")
    words = sentence(found["observations"], "In this full grid, ")      # 8 trials: the importance is computed
    assert "repeat" not in words
    assert "a full grid of 4 trained settings, each the mean validation accuracy of its seeds" in found["importance_caption"]


def test_main_effects_are_shares_of_the_setting_means(repeated, tmp_path):
    """Seed 1 scores 30 points above seed 0 everywhere and lr 1e-2 20 points above 1e-3: over the setting means
    lr explains everything and nothing is left, where counting repeat as a hyperparameter would make it the
    largest effect. Then the stored accuracies as they are, against the shares restated from their means."""
    results = copy_results(repeated, tmp_path, "q3")
    run = store(results, "q3")

    def seeds_apart(trials):
        for row in trials:
            row["val_accuracy"] = 0.5 + 0.2 * (row["lr"] == 1e-2) + 0.3 * row["repeat"]
    rewrite_trials(run, "grid", seeds_apart)
    words = sentence(section(results, "q3", "grid")["observations"], "In this full grid, ")
    assert words.startswith("In this full grid, lr's main effect explains 100.0 % of the variance of validation "
                            "accuracy, the most of any hyperparameter (next: batch_size, 0.0 %); 0.0 % is left to "
                            "interactions."), words

    trials = store(repeated, "q3").read_experiment("grid")["trials"]
    columns = hyperparameters(trials)
    assert "repeat" in columns
    means = {setting: statistics.fmean(r["val_accuracy"] for r in trials if (r["lr"], r["batch_size"]) == setting)
             for setting in itertools.product({r["lr"] for r in trials}, {r["batch_size"] for r in trials})}
    grand = statistics.fmean(means.values())
    total = sum((m - grand) ** 2 for m in means.values())
    found = hyperparameter_importance(trials, columns)
    assert set(found.scores) == {"lr", "batch_size"} and found.trials == 4 and found.seeds == 2
    for index, name in enumerate(("lr", "batch_size")):
        levels = {setting[index] for setting in means}
        share = sum(2 * (statistics.fmean(m for s, m in means.items() if s[index] == level) - grand) ** 2
                    for level in levels) / total
        assert found.scores[name] == pytest.approx(share)
