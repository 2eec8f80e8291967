"""The report: store -> context -> HTML (and PDF), and its CLI, on real smoke runs of q1 and q3.

The stores come from ``python -m dlcv_keras.run ... --profile smoke`` (the session fixture
``smoke_results`` in conftest.py); every expected number is read from the stored files and
formatted the way the report formats it. What a smoke run cannot produce (a diverged trial,
zero-padded trial ids, hostile text, missing files) is made in a copy, rewritten the way the
code writes it (tests/real_runs.py). No keras, no training here.
"""

from __future__ import annotations

import collections
import contextlib
import html as html_module
import io
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_runs import (DASH, FALLBACK_BANNER, PROFILE, between, copy_results, esc, hp,  # noqa: E402
                       hyperparameters, images, loss4, mark_diverged, pad_trial_ids, pct, section_texts, seed_row,
                       seconds, shape, store, text_of, thousands, varying, without_repeats)

from dlcv_keras.report import build_report, report_context  # noqa: E402
from dlcv_keras.report.__main__ import main  # noqa: E402
from dlcv_keras.report.render import render_html, render_template_string, templates_dir  # noqa: E402
from dlcv_keras.validation import InvalidParameterError  # noqa: E402

EVIL = "<script>alert(1)</script>"
# figures each section template draws when its data is finite; the smoke searches have 2 trials, so effect and
# top_table add every trial's curves but not the figures of 8 or more trials (tests/test_search_views.py)
FIGURES = {"curves": 1, "effect": 2, "top_table": 1, "best": 3, "sklearn": 0, "fractions": 2, "finite_difference": 2}


@pytest.fixture(scope="module")
def runs(smoke_results) -> dict[str, dict]:
    return {"q1": store(smoke_results, "q1").read_json("run.json"),
            "q3": store(smoke_results, "q3").read_json("run.json"),
            "q3-scratch": store(smoke_results, "q3", "scratch").read_json("run.json")}


@pytest.fixture(scope="module")
def combined_html(smoke_results, tmp_path_factory) -> str:
    output = tmp_path_factory.mktemp("combined") / "report"
    paths = build_report(smoke_results, ["q1", "q3"], profile=PROFILE, output=output)
    assert paths == [output.with_name("report.html")]
    return paths[0].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def q1_sections(combined_html, runs) -> dict[str, str]:
    text = between(text_of(combined_html), f"q1. {runs['q1']['title']}", f"q3. {runs['q3']['title']}")
    return section_texts(text, runs["q1"])


def _trial_cells(row: dict, shown: list[str], seed: str) -> list[str]:
    """A row of the report's trial tables, every column: id, status, shown hyperparameters, epochs,
    accuracies, val loss, training time, seed."""
    cells = [hp(row["trial_id"]), row["status"], *(hp(row[c]) for c in shown), hp(row["epochs_run"]),
             pct(row["accuracy"]), pct(row["val_accuracy"])]
    if "test_accuracy" in row:
        cells.append(pct(row["test_accuracy"]))
    return cells + [loss4(row["val_loss"]), seconds(row["seconds"]), seed]


def _trial_table(rows: list[dict], shown: list[str], seeds: list[str]) -> tuple[str, list[str]]:
    """The table's caption line and header as text, and its rows: a column every row shares is left out
    and said once above (real_runs.without_repeats)."""
    headers = ["trial", "status", *shown, "epochs run", "train acc. (%)", "val acc. (%)"]
    headers += ["test acc. (%)"] if "test_accuracy" in rows[0] else []
    headers += ["val loss", "train time", "seed val acc. (%)"]
    headers, cells, said = without_repeats(headers, [_trial_cells(r, shown, s) for r, s in zip(rows, seeds)])
    head = (f"Every trial below: {'; '.join(said)}. " if said else "") + " ".join(headers)
    return head, [" ".join(c) for c in cells]


SORTABLE_JS = (templates_dir() / "sortable.js").read_text(encoding="utf-8").strip()


# -- rendering without files -----------------------------------------------------
def test_inline_template_renders_and_escapes():
    out = render_template_string("<p>{{ name }}: {{ acc | pct }} / {{ none | pct }}</p>",
                                 {"name": "<b>x</b>", "acc": 0.9137, "none": None})
    assert out == "<p>&lt;b&gt;x&lt;/b&gt;: 91.37 / —</p>"


def test_templates_folder_has_every_section():
    sections = {p.name for p in (templates_dir() / "sections").glob("*.html.jinja2")}
    for name in ("curves", "effect", "top_table", "best", "sklearn", "fractions"):
        assert f"{name}.html.jinja2" in sections
    assert (templates_dir() / "base.html.jinja2").is_file()
    assert (templates_dir() / "report.css").is_file()


# -- q1: every section shows the stored numbers; the seed's are not beside them ----------------
# The smoke run of q1 asks for digits (--dataset digits), not the seed's MNIST: the seed's numbers measure
# another dataset, so every "seed" cell is empty (q3's fallback run shows them, see test_report_scratch).
NOT_COMPARED = collections.defaultdict(lambda: None, {
    "hyperparameters": {}, "rows": [], "best_class": {"name": DASH, "accuracy": None},
    "worst_class": {"name": DASH, "accuracy": None}})


def test_q1_on_another_dataset_says_so_and_shows_no_seed_numbers(smoke_results, runs, tmp_path):
    run = runs["q1"]
    assert run["dataset"]["requested"] == "digits" and run["seed_dataset"] == "mnist"
    html = build_report(smoke_results, ["q1"], profile=PROFILE, output=tmp_path / "q1")[0].read_text()
    text = html_module.unescape(text_of(html))
    assert f"q1: {run['title']} (run on digits)" in text
    assert "Ran on digits, not on the seed's mnist" in text
    assert "Seed write-up: its" not in text          # the seed's own rows are not listed
    for value in (run["reference"]["base"]["val_accuracy"], run["reference"]["sklearn"]["test_accuracy"]):
        assert f" {pct(value)} " not in text


def test_q1_base_run_beside_the_seed(smoke_results, runs, q1_sections):
    (trial,) = store(smoke_results, "q1").read_experiment("base")["trials"]
    seed = NOT_COMPARED
    text = q1_sections["base"]
    names = hyperparameters([trial])
    assert "Hyperparameters: " + ", ".join(f"{n} = {hp(trial[n])}" for n in names) + "." in text
    # On digits the seed's numbers are not shown: its column, "—" in every row, is left out, and said so.
    assert seed.get("val_accuracy") is None
    assert (f"No seed numbers for these. final epoch ours train accuracy (%) {pct(trial['accuracy'])} "
            f"val accuracy (%) {pct(trial['val_accuracy'])} epochs run {trial['epochs_run']} "
            f"stop reason {trial['stop_reason']}") in text
    assert "seed reference" not in text
    assert trial["stop_reason"] == "max epochs"          # training/fit.py's words for a full run


def test_q1_effect_grid_lists_every_trial(smoke_results, q1_sections):
    found = store(smoke_results, "q1").read_experiment("lr_batch")
    trials, summary = found["trials"], found["summary"]
    shown = varying(trials, hyperparameters(trials)) or hyperparameters(trials)
    text = q1_sections["lr_batch"]
    assert f"{len(trials)} trials" in text
    assert f"Best trial {summary['best_trial']}: val accuracy {pct(summary['best_val_accuracy'])} %" in text
    head, rows = _trial_table(trials, shown, [DASH] * len(trials))      # the seed reports no lr x batch grid
    assert head in text and "seed val acc." not in head and "status" not in head.split(". ")[-1]
    for row in rows:
        assert row in text
    assert "Diverged trials" not in text


def test_q1_top_table_matches_seed_rows_on_every_hyperparameter(smoke_results, runs, q1_sections):
    found = store(smoke_results, "q1").read_experiment("full_grid")
    trials = found["trials"]
    columns = hyperparameters(trials)
    shown = varying(trials, columns) or columns
    section = next(s for s in runs["q1"]["sections"] if s["experiment"] == "full_grid")
    reference = NOT_COMPARED["rows"]
    ranked = sorted(trials, key=lambda r: -r["val_accuracy"])[: section["top_k"]]
    text = q1_sections["full_grid"]
    trained = sum(1 for row in trials if row["status"] == "completed")
    assert (f"Top {section['top_k']} trials by validation accuracy" if trained >= section["top_k"] else
            f"All {trained} trained trials by validation accuracy") in text
    # the seed's rows match on every hyperparameter, shown or not (smoke trains 2 epochs, the seed 50/100)
    seeds = [pct(ref["val_accuracy"]) if (ref := seed_row(row, reference, columns)) else DASH for row in ranked]
    head, rows = _trial_table(ranked, shown, seeds)
    assert head in text
    for row in rows:
        assert row in text
    for ref in reference:   # the seed's own top rows, listed under ours
        assert " ".join([*(hp(v) for k, v in ref.items() if k != "val_accuracy"), pct(ref["val_accuracy"])]) in text


def test_q1_best_configuration_beside_the_seed(smoke_results, runs, q1_sections):
    found = store(smoke_results, "q1").read_experiment("best")
    summary, metrics = found["summary"], found["metrics"]
    seed = NOT_COMPARED
    text = q1_sections["best"]
    assert f"Best setting of {summary['from_experiment']}, retrained" in text
    # On digits no seed number is shown: each table without its "—" column, said once above it.
    assert all(v is None for v in seed["hyperparameters"].values()) and seed["val_accuracy"] is None
    assert "No seed numbers for these. hyperparameter ours " + " ".join(
        f"{name} {hp(value)}" for name, value in summary["hyperparameters"].items()) in text
    assert " ".join(f"{split} accuracy (%) {pct(summary[f'{split}_accuracy'])}" for split in ("train", "val", "test")) in text
    # Both losses say what they hold (run.json's words) once, in a note under the table, not in a cell.
    from markupsafe import escape       # the page's text, as Jinja escapes it ("model's" -> "model&#39;s")
    assert (f"val loss {loss4(summary['val_loss'])} test loss {loss4(summary['test_loss'])} "
            f"epochs run {summary['epochs_run']} stop reason {summary['stop_reason']} Val and test loss are computed "
            f"as Keras computes its validation loss: {escape(summary['loss_includes'])}.") in text
    assert text.count(escape(summary["loss_includes"])) == 1
    assert "No seed numbers for these. ours ours: test acc. (%) " + " ".join(
        f"{which.replace('_', ' ')} {metrics[which]['name']} {pct(metrics[which]['accuracy'])}"
        for which in ("best_class", "worst_class")) in text
    assert "No seed numbers for these. class ours (%) " + " ".join(
        f"{name} {pct(accuracy)}" for name, accuracy in zip(metrics["class_names"], metrics["per_class_accuracy"])) in text
    assert "seed reference" not in text
    for layer in metrics["parameter_table"]:
        assert f"{layer['layer']} {layer['type']} {shape(layer['output_shape'])} {thousands(layer['params'])}" in text
    assert f"total {thousands(metrics['total_params'])}" in text


def test_q1_sklearn_beside_our_best_and_the_seed(smoke_results, runs, q1_sections):
    q1 = store(smoke_results, "q1")
    sklearn, best = q1.read_json("experiments/sklearn/summary.json"), q1.read_json("experiments/best/summary.json")
    seed, seed_best = NOT_COMPARED, NOT_COMPARED
    text = q1_sections["sklearn"]
    assert f"The same data through scikit-learn: {esc(sklearn['model'])}" in text      # its settings, once
    estimator = sklearn["model"].split("(")[0]
    # On digits the seed's columns, "—" in every row, are left out, and said so above the table.
    assert {seed["train_accuracy"], seed["test_accuracy"], seed_best["train_accuracy"], seed_best["test_accuracy"]} == {None}
    assert "No seed numbers for these. model train accuracy (%) test accuracy (%)" in text
    assert f"scikit-learn {estimator} {pct(sklearn['train_accuracy'])} {pct(sklearn['test_accuracy'])}" in text
    assert f"our Keras model (best) {pct(best['train_accuracy'])} {pct(best['test_accuracy'])}" in text
    assert "seed reference" not in text


def test_q1_fractions_table(smoke_results, q1_sections):
    trials = store(smoke_results, "q1").read_experiment("fractions")["trials"]
    text = q1_sections["fractions"]
    fixed = [c for c in hyperparameters(trials) if c != "train_fraction"]
    headers = ["training data", "status", "epochs run", "train acc. (%)", "val acc. (%)", "test acc. (%)",
               "seed test acc. (%)"]
    rows = [[f"{100 * row['train_fraction']:g} %", row["status"], str(row["epochs_run"]), pct(row["accuracy"]),
             pct(row["val_accuracy"]), pct(row["test_accuracy"]), DASH]
            for row in sorted(trials, key=lambda r: r["train_fraction"])]
    headers, rows, said = without_repeats(headers, rows)
    # the settings every run shares, then the columns every row has alike, once above the table
    shared = [f"{c} = {hp(trials[0][c])}" for c in fixed] + said
    assert (f"Every run below: {'; '.join(shared)}. The data not used for training is the validation split. "
            + " ".join(headers)) in text
    for cells in rows:
        assert " ".join(cells) in text


# -- q3: the fallback run --------------------------------------------------------------
def test_q3_fallback_banner_dataset_and_environment(combined_html, runs):
    text = text_of(combined_html)
    run = runs["q3"]
    banner = run["dataset"]["fallback_banner"]
    assert banner == FALLBACK_BANNER
    # once, on q3's first part: the two implementations share their data, and the top does not repeat it
    assert combined_html.count('<div class="banner">') == 1
    assert combined_html.count(f'<div class="banner">{banner}</div>') == 1
    q3 = between(text, f"q3. {run['title']}")
    dataset, environment = run["dataset"], run["environment"]
    assert dataset["requested"] == "mnist" and dataset["name"] == "digits"
    assert f"name {dataset['name']} (requested: {dataset['requested']}) source {esc(dataset['source'])}" in q3
    assert "splits " + ", ".join(f"{k} {v:,}" for k, v in dataset["splits"].items()) in q3
    assert f"classes {len(dataset['class_names'])}; input shape {shape(dataset['input_shape'])}" in q3
    assert dataset["content_hash"] in q3
    for note in dataset["notes"]:
        assert esc(note) in q3
    assert f"Keras backend {environment['keras_backend']}" in q3
    assert f"tensorflow {environment['packages']['tensorflow']}" in q3
    assert f"git revision {hp(environment['git_revision'])}" in q3


def test_q3_base_run_epochs_beside_the_seeds(smoke_results, runs, combined_html):
    (trial,) = store(smoke_results, "q3").read_experiment("base")["trials"]
    seed = runs["q3"]["reference"]["base"]
    text = section_texts(between(text_of(combined_html), f"q3. {runs['q3']['title']}"), runs["q3"])["base"]
    assert f"val accuracy (%) {pct(trial['val_accuracy'])} {pct(seed['val_accuracy'])}" in text
    assert f"epochs run {trial['epochs_run']} {seed['epochs_run']}" in text    # ours (smoke: 3) vs the seed's 274
    assert f"stop reason {trial['stop_reason']} {DASH}" in text


def test_q3_fallback_run_names_the_requested_dataset(combined_html):
    assert "digits (requested: mnist)" in text_of(combined_html)


@pytest.mark.parametrize("draw", ["learning_curves", "curves_per_fraction"])
def test_accuracy_is_drawn_in_percent_like_the_tables_beside_it(smoke_results, monkeypatch, draw):
    """Every learning-curve figure plots accuracy on a 0-100 axis labelled "(%)", the tables' unit."""
    from dlcv_keras.report import figures

    history = store(smoke_results, "q1").read_experiment("best")["history"]
    drawn = []

    def capture(fig):                     # the figure as drawn, before it is cleared
        drawn.append([(ax.get_ylabel(), [list(line.get_ydata()) for line in ax.lines]) for ax in fig.axes])
        return b""

    monkeypatch.setattr(figures, "_to_png", capture)
    if draw == "learning_curves":
        figures.learning_curves({"best": history})
    else:
        figures.curves_per_fraction([("all", history)])
    (axes,) = drawn
    accuracy = [lines for label, lines in axes if "accuracy" in label]
    assert [label for label, _ in axes if "accuracy" in label] == ["accuracy (%)"]
    train, val = accuracy[0]
    assert train == pytest.approx([100 * row["accuracy"] for row in history])
    assert val == pytest.approx([100 * row["val_accuracy"] for row in history])
    loss = next(lines for label, lines in axes if label == "loss")
    assert loss[0] == pytest.approx([row["loss"] for row in history])   # losses as they are


def test_html_is_self_contained_and_draws_every_figure(combined_html, runs):
    expected = sum(FIGURES[s["template"]] for run in runs.values() for s in run["sections"])
    assert images(combined_html) == expected
    assert combined_html.count("<script") == 1 and SORTABLE_JS in combined_html   # our one inline script, nothing stored
    for attr in re.findall(r'(?:src|href)="([^"]*)"', combined_html):
        assert attr.startswith(("data:", "#")), attr
    assert "<link" not in combined_html and "@import" not in combined_html and "url(" not in combined_html


def test_a_seed_column_left_empty_says_whether_the_seed_has_these_settings(smoke_results):
    """An all-"—" seed column is left out; a note says the seed has none of the settings only when no trial
    matched a seed row (a seed row without an accuracy leaves the column empty too, and says nothing)."""
    from dlcv_keras.report.format import trial_table

    trials = store(smoke_results, "q1").read_experiment("lr_batch")["trials"]
    columns = hyperparameters(trials)
    shown = varying(trials, columns)
    note = "None of these settings is one the seed write-up reports."
    elsewhere = [{**{c: trials[0][c] for c in columns}, "lr": 123.0, "val_accuracy": 0.9}]
    assert trial_table(trials, shown, elsewhere, match_columns=columns)["notes"] == [note]
    same_setting = [{c: trials[0][c] for c in columns}]              # the seed lists it, without a number
    table = trial_table(trials, shown, same_setting, match_columns=columns)
    assert table["notes"] == [] and "seed val acc. (%)" not in table["headers"]
    with_number = [{**same_setting[0], "val_accuracy": 0.9}]
    table = trial_table(trials, shown, with_number, match_columns=columns)
    assert table["notes"] == [] and "seed val acc. (%)" in table["headers"]
    assert [row["cells"][-1] for row in table["rows"]] == [
        "90.00" if all(row[c] == trials[0][c] for c in columns) else DASH for row in trials]


def test_context_is_plain_values(smoke_results, runs):
    context = report_context(smoke_results, ["q3"], PROFILE)
    keras, scratch = context["questions"]
    assert [s["template"] for s in keras["sections"]] == [s["template"] for s in runs["q3"]["sections"]]
    trials = store(smoke_results, "q3").read_experiment("grid")["trials"]
    grid = next(s for s in keras["sections"] if s["experiment"] == "grid")
    shown = varying(trials, hyperparameters(trials))
    assert grid["x"] == "lr" and grid["group"] == [c for c in shown if c != "lr"]
    assert grid["diverged"] == [] and grid["figure"].startswith("data:image/png;base64,")
    assert context["banners"] == []                  # nothing left out; the fallback heads q3's first part
    assert (keras["banner"], scratch["banner"]) == (FALLBACK_BANNER, None)


# -- a diverged trial (a copy of q3, rewritten as the code records one) ------------------------
@pytest.fixture(scope="module")
def diverged(smoke_results, tmp_path_factory):
    results = copy_results(smoke_results, tmp_path_factory.mktemp("diverged"), "q3")
    q3 = store(results, "q3")
    summary = q3.read_json("experiments/grid/summary.json")
    trials = q3.read_experiment("grid")["trials"]
    victim = next(r for r in trials if str(r["trial_id"]) != str(summary["best_trial"]))
    row = mark_diverged(q3, "grid", victim["trial_id"], epoch=2)
    context = report_context(results, ["q3"], PROFILE)
    return {"results": results, "row": row, "trials": q3.read_experiment("grid")["trials"],
            "context": context, "text": text_of(render_html("base.html.jinja2", context))}


def test_diverged_trial_is_listed_with_its_losses(diverged):
    row, trials, text = diverged["row"], diverged["trials"], diverged["text"]
    assert row["stop_reason"] == "diverged at epoch 2 (loss inf, val_loss nan)"
    grid = between(text, "3.a Learning rate x batch size", "Best configuration")
    assert f"{len(trials)} trials (1 diverged)" in grid
    settings = ", ".join(f"{c}={hp(row[c])}" for c in hyperparameters(trials))
    assert "Diverged trials (left out of the plots)" in grid
    assert f"{row['trial_id']} {settings} 2 {row['stop_reason']} inf nan" in grid
    (listed,) = next(s for s in diverged["context"]["questions"][0]["sections"] if s["experiment"] == "grid")["diverged"]
    assert listed["trial_id"] == str(row["trial_id"]) and (listed["loss"], listed["val_loss"]) == ("inf", "nan")


def test_diverged_trial_is_marked_in_the_implementation_comparison(diverged, smoke_results):
    row = diverged["row"]
    scratch = {str(r["trial_id"]): r for r in store(smoke_results, "q3", "scratch").read_experiment("grid")["trials"]}
    other = scratch[str(row["trial_id"])]
    compared = between(diverged["text"], "the implementations compared")
    assert f"lr={hp(row['lr'])} {pct(row['val_accuracy'])} (diverged) {pct(other['val_accuracy'])}" in compared


# -- a changed copy of q1: hostile text, zero-padded trial ids, a shorter top table ---------------
@pytest.fixture(scope="module")
def changed_q1(smoke_results, tmp_path_factory):
    results = copy_results(smoke_results, tmp_path_factory.mktemp("changed"), "q1")
    q1 = store(results, "q1")
    run = q1.read_json("run.json")
    run["title"] = "Linear <script>x</script> & more"
    next(s for s in run["sections"] if s["template"] == "top_table")["top_k"] = 1
    q1.write_json("run.json", run)
    metrics = q1.read_json("experiments/best/metrics.json")
    metrics["class_names"][4] = EVIL
    q1.write_json("experiments/best/metrics.json", metrics)
    pad_trial_ids(q1, "lr_batch", width=2)    # KerasTuner's ids in a search of 10-99 trials
    paths = build_report(results, ["q1"], profile=PROFILE)
    return {"results": results, "paths": paths, "html": paths[0].read_text(encoding="utf-8")}


def test_single_question_goes_to_its_run_folder_and_escapes_stored_text(changed_q1):
    assert changed_q1["paths"] == [changed_q1["results"] / "q1" / PROFILE / "report.html"]
    html = changed_q1["html"]
    assert "Linear &lt;script&gt;x&lt;/script&gt; &amp; more" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1 and SORTABLE_JS in html   # our one inline script, nothing stored


def test_trial_ids_keep_their_zero_padding(changed_q1):
    trials = store(changed_q1["results"], "q1").read_experiment("lr_batch")["trials"]
    for i in range(len(trials)):
        assert f"<td>{i:02d}</td>" in changed_q1["html"]
    best = store(changed_q1["results"], "q1").read_json("experiments/lr_batch/summary.json")["best_trial"]
    assert f"Best trial {best}:" in text_of(changed_q1["html"]) and len(best) == 2


def test_top_table_keeps_the_top_k(changed_q1):
    trials = store(changed_q1["results"], "q1").read_experiment("full_grid")["trials"]
    best, *rest = sorted(trials, key=lambda r: -r["val_accuracy"])
    # The table alone: the section's observations after it name the runner-up's accuracy too.
    text = between(text_of(changed_q1["html"]), "Top 1 trials by validation accuracy", "The other")
    assert pct(best["val_accuracy"]) in text
    for row in rest:
        assert pct(row["val_accuracy"]) not in text
    # the others follow, each once, in a table of their own: the write-up shows every trial it reads
    others = between(text_of(changed_q1["html"]), f"The other {len(rest)} trained trials", "Observations")
    for row in rest:
        assert pct(row["val_accuracy"]) in others


# -- errors -----------------------------------------------------------------------
def test_missing_experiment_names_the_file(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q1")
    (store(results, "q1").experiment_dir("sklearn") / "summary.json").unlink()
    with pytest.raises(InvalidParameterError, match=r"sklearn/summary\.json"):
        build_report(results, ["q1"], profile=PROFILE)
    assert not (results / "q1" / PROFILE / "report.html").exists()


def test_missing_metrics_names_the_file(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q1")
    (store(results, "q1").experiment_dir("best") / "metrics.json").unlink()
    with pytest.raises(InvalidParameterError, match=r"best/metrics\.json"):
        build_report(results, ["q1"], profile=PROFILE)


def test_unknown_section_template_is_one_line_error(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q1")
    q1 = store(results, "q1")
    run = q1.read_json("run.json")
    run["sections"].append({"template": "no_such_section", "experiment": "base", "title": "x"})
    q1.write_json("run.json", run)
    with pytest.raises(InvalidParameterError, match="no_such_section") as info:
        build_report(results, ["q1"], profile=PROFILE)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"questions": ["question1"]}, "question must be a name like"),
    ({"questions": []}, "non-empty"),
    ({"questions": ["q1"], "formats": ("docx",)}, "formats must"),
    ({"questions": ["q1"], "profile": "../x"}, "profile must"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        build_report(tmp_path, **kwargs)


def test_no_stored_run_message(tmp_path):
    with pytest.raises(InvalidParameterError) as info:
        build_report(tmp_path, ["q7"], profile="quick")
    assert str(info.value) == (f"no stored results for q7 (profile quick) in {tmp_path}; stored runs: "
                               "none (a run of `python -m dlcv_keras.run` makes them)")


def test_no_stored_run_message_lists_what_is_stored(smoke_results):
    with pytest.raises(InvalidParameterError) as info:
        build_report(smoke_results, ["q1"], profile="full")
    assert "no stored results for q1 (profile full)" in str(info.value)
    assert "stored runs: q1 (smoke), q2 (smoke), q3 (smoke, smoke/scratch), q4 (smoke)" in str(info.value)


# -- CLI --------------------------------------------------------------------------
def test_cli_usage_errors_and_unwritable_output_are_one_line(smoke_results, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["q1", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unrecognized arguments: --bogus") and "\n" not in err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["q2", "--profile", PROFILE, "--results", str(smoke_results),
                 "--output", str(blocker / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write the report") and "\n" not in err


def test_cli_missing_store_exits_2_one_line(tmp_path, capsys):
    assert main(["q1", "--results", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("error: no stored results for q1") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_question_exits_2(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["quiz1", "--results", str(tmp_path), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: question must be") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--pdf" in capsys.readouterr().out


@pytest.fixture(scope="module")
def cli_pdf(smoke_results, tmp_path_factory) -> dict:
    """``python -m dlcv_keras.report q1 q3 --pdf`` with the results folder from DLCV_RESULTS_DIR."""
    pypdf = pytest.importorskip("pypdf")
    out = tmp_path_factory.mktemp("cli") / "both.html"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("DLCV_RESULTS_DIR", str(smoke_results))
        code = main(["q1", "q3", "--profile", PROFILE, "--pdf", "--output", str(out)])
    pdf = out.with_suffix(".pdf")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages) if code == 0 else ""
    return {"code": code, "printed": printed.getvalue(), "html": out, "pdf": pdf, "text": text}


def test_cli_env_default_writes_html_and_pdf(cli_pdf):
    assert cli_pdf["code"] == 0
    assert cli_pdf["printed"].split() == [str(cli_pdf["html"]), str(cli_pdf["pdf"])]
    assert FALLBACK_BANNER in cli_pdf["html"].read_text(encoding="utf-8")
    assert cli_pdf["pdf"].read_bytes().startswith(b"%PDF")


def test_pdf_holds_the_numbers(cli_pdf, smoke_results):
    q1, q3 = store(smoke_results, "q1"), store(smoke_results, "q3")
    reference = q3.read_json("run.json")["reference"]     # q3 fell back to digits: compared with its seed
    (base,) = q1.read_experiment("base")["trials"]
    best = q1.read_json("experiments/best/summary.json")
    values = [pct(base["val_accuracy"]), pct(reference["base"]["val_accuracy"]), pct(best["val_accuracy"]),
              pct(reference["best"]["test_accuracy"]), pct(q3.read_json("experiments/best/summary.json")["test_accuracy"]),
              FALLBACK_BANNER]
    for value in values:
        assert value in cli_pdf["text"], value


def test_pdf_keeps_the_sklearn_numbers_whole(cli_pdf, smoke_results):
    sklearn = store(smoke_results, "q1").read_json("experiments/sklearn/summary.json")
    assert pct(sklearn["train_accuracy"]) in cli_pdf["text"] and pct(sklearn["test_accuracy"]) in cli_pdf["text"]


def test_report_never_imports_keras(smoke_results, tmp_path):
    import subprocess

    code = ("import sys; from dlcv_keras.report import build_report; "
            f"build_report({str(smoke_results)!r}, ['q3'], profile={PROFILE!r}, output={str(tmp_path / 'q3')!r}); "
            "bad = [m for m in ('keras', 'tensorflow', 'keras_tuner') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_seed_rows_match_on_every_hyperparameter_not_only_the_shown_ones():
    from dlcv_keras.report.format import trial_table

    reference = [{"lr": 0.1, "epochs": 50, "val_accuracy": 0.9130}]
    ours = [{"trial_id": 0, "status": "completed", "lr": 0.1, "epochs": 2, "val_accuracy": 0.5},
            {"trial_id": 1, "status": "completed", "lr": 0.1, "epochs": 50, "val_accuracy": 0.6}]
    table = trial_table(ours, ["lr"], reference, match_columns=["lr", "epochs"])
    assert [row["cells"][-1] for row in table["rows"]] == ["—", "91.30"]
    assert "epochs" not in table["headers"]


def test_the_tuner_is_said_per_search_when_the_searches_differ():
    from dlcv_keras.report.format import tuner_words

    assert tuner_words({"tuner": "random", "tuners": {"base": "random", "grid": "random"}}) == "random"
    assert tuner_words({"tuner": None, "tuners": {"default": "grid", "search": "random", "plain": "grid"}}) == \
        "grid (default, plain); random (search)"
    assert tuner_words({"tuner": None, "tuners": {}}) == DASH               # no search ran
    assert tuner_words({"tuner": "grid"}) == "grid"                         # a run.json from before "tuners"
