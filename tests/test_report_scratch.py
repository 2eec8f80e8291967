"""Report sections of the from-scratch questions (q2, q4, q5, q6, q16's gradient check)
and a question stored with two implementations (q3 and q3 --impl scratch), on real smoke runs.

Expected values are read from the stored files (``smoke_results``, conftest.py) and formatted as
the report formats them; damaged or unusual stores are copies of the real ones, rewritten the way
the code writes (tests/real_runs.py).
"""

from __future__ import annotations

import io
import math
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from real_runs import (DASH, FALLBACK_BANNER, PROFILE, between, copy_results, esc, hp,  # noqa: E402
                       hyperparameters, images, pct, sci, seconds, seed_row, sig, store, text_of, varying,
                       without_repeats)

from dlcv_keras.report import build_report, question_stores, report_context, stored_runs  # noqa: E402
from dlcv_keras.report.context import compare_implementations, fmt_sci, fmt_sig  # noqa: E402
from dlcv_keras.report.render import render_html, templates_dir  # noqa: E402
from dlcv_keras.validation import InvalidParameterError  # noqa: E402

SCRATCH_QUESTIONS = ["q2", "q4", "q5", "q6"]
NEW_TEMPLATES = ("scalar_gradients", "conv_blur", "conv_l2_divergence", "conv_l2_batches", "two_layer_check",
                 "toy_training", "finite_difference")
KERAS_LABEL, SCRATCH_LABEL = "Keras layers", "hand-written numpy modules (--impl scratch)"


@pytest.fixture(scope="module")
def runs(smoke_results) -> dict[str, dict]:
    return {q: store(smoke_results, q).read_json("run.json") for q in SCRATCH_QUESTIONS + ["q3"]}


@pytest.fixture(scope="module")
def scratch_context(smoke_results) -> dict:
    return report_context(smoke_results, SCRATCH_QUESTIONS, PROFILE)


@pytest.fixture(scope="module")
def scratch_html(scratch_context) -> str:
    return render_html("base.html.jinja2", scratch_context)    # what build_report writes


@pytest.fixture(scope="module")
def parts(scratch_html, runs) -> dict[str, str]:
    """Each question's part of the text."""
    text = text_of(scratch_html)
    headings = [f"{q}. {esc(runs[q]['title'])}" for q in SCRATCH_QUESTIONS]
    return {q: between(text, start, end) for q, start, end in zip(SCRATCH_QUESTIONS, headings, headings[1:] + [None])}


@pytest.fixture(scope="module")
def q3_context(smoke_results) -> dict:
    return report_context(smoke_results, ["q3"], PROFILE)


@pytest.fixture(scope="module")
def q3_html(q3_context) -> str:
    return render_html("base.html.jinja2", q3_context)


def _sections(context) -> dict[str, dict]:
    return {s["template"]: s for q in context["questions"] for s in q["sections"]}


def _experiment(smoke_results, question, template, implementation=None) -> tuple[str, dict, dict]:
    """(section title, stored experiment, seed reference) of the section with ``template``."""
    run = store(smoke_results, question, implementation).read_json("run.json")
    section = next(s for s in run["sections"] if s["template"] == template)
    found = store(smoke_results, question, implementation).read_experiment(section["experiment"])
    return section["title"], found, run["reference"].get(section["experiment"]) or {}


def test_templates_folder_has_the_new_sections():
    names = {p.name for p in (templates_dir() / "sections").glob("*.html.jinja2")}
    for template in NEW_TEMPLATES:
        assert f"{template}.html.jinja2" in names


def test_number_formats():
    assert fmt_sig(2 / 3) == "0.66666667"
    assert fmt_sig(-8.0) == "-8" and fmt_sig(None) == "—" and fmt_sig(math.nan) == "nan"
    assert fmt_sci(3.1e-15) == "3.1e-15" and fmt_sci("inf") == "inf" and fmt_sci(3.865070e-11, 2) == "3.87e-11"


SORTABLE_JS = (templates_dir() / "sortable.js").read_text(encoding="utf-8").strip()


# -- q2 ------------------------------------------------------------------------------
def test_q2_scalar_gradients(smoke_results, scratch_html, scratch_context, parts):
    _, found, _ = _experiment(smoke_results, "q2", "scalar_gradients")
    summary, points = found["summary"], found["points"]
    variables = summary["variables"]
    text = parts["q2"]
    assert f'<code class="expression">{esc(summary["expression"])}</code>' in scratch_html
    for header in [*(f"df/d{v}" for v in variables), "max |Δ| vs TensorFlow", "max |Δ| vs central differences"]:
        assert header in text
    for row in points:
        assert " ".join([row["point"], sig(row["value"]), *(sig(row[f"df_d{v}"]) for v in variables),
                         sci(row["max_abs_diff_tf"]), sci(row["max_abs_diff_numeric"])]) in text
        for v in variables:   # each derivative three ways: ours, TensorFlow, central differences
            assert f"df/d{v} {sig(row[f'df_d{v}'])} {sig(row[f'tf_df_d{v}'])} {sig(row[f'numeric_df_d{v}'])}" in text
    assert f"max |Δ| vs TensorFlow autodiff {sci(summary['max_abs_diff_tf'])}" in text
    assert f"max relative difference vs central differences {sci(summary['max_rel_diff_numeric'])}" in text
    largest = max(row["max_rel_diff_tf"] for row in points)
    assert summary["max_rel_diff_tf"] == largest
    assert f"max relative difference vs TensorFlow autodiff {sci(largest)}" in text
    # The seed's f: its table beside ours, every digit of both, with each point's relative difference.
    seed_rows = [row for row in points if "seed_rel_diff" in row]
    assert len(seed_rows) == summary["seed_points"] == 4
    for row in seed_rows:
        assert " ".join([row["point"], "f", repr(row["value"]), repr(row["seed_value"]),
                         sci(row["seed_rel_diff"])]) in text
        for v in variables:
            assert f"df/d{v} {row[f'df_d{v}']!r} {row[f'seed_df_d{v}']!r}" in text
    assert "prints no numbers" not in text and "exponent cut off" in text
    section = _sections(scratch_context)["scalar_gradients"]
    assert [r["point"] for r in section["rows"]] == [row["point"] for row in points]
    assert section["variables"] == variables
    assert len(section["details"]) == len(points) * (1 + len(variables))   # f and each derivative per point
    # q2 evaluates f at points: its run stores a placeholder dataset, shown with its source
    assert esc(store(smoke_results, "q2").read_json("run.json")["dataset"]["source"]) in text


def test_q2_missing_points_csv_is_one_line_error(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q2")
    (store(results, "q2").experiment_dir("gradients") / "points.csv").unlink()
    with pytest.raises(InvalidParameterError, match=r"gradients/points\.csv") as info:
        build_report(results, ["q2"], profile=PROFILE)
    assert "\n" not in str(info.value)
    assert not (results / "q2" / PROFILE / "report.html").exists()


# -- q4 ------------------------------------------------------------------------------
def test_q4_conv_blur(smoke_results, scratch_context, parts):
    _, found, reference = _experiment(smoke_results, "q4", "conv_blur")
    summary = found["summary"]
    arrays = store(smoke_results, "q4").read_arrays("blur")
    text = parts["q4"]
    assert f"forward: max |Δ| vs Keras Conv2D {sci(summary['keras_max_abs_diff'])}" in text
    assert f"backward: max relative error vs TensorFlow autodiff {sci(summary['backward_max_rel_error'])}" in text
    assert f"originals {arrays['originals'].shape} → blurred {arrays['blurred'].shape}" in text
    assert f"dataset {summary['dataset']}; time {seconds(summary['seconds'])}" in text
    labels = {"kernel_size": "kernel size", "sigma": "sigma", "stride": "stride", "padding": "padding",
              "images": "images", "out_channels": "output channels"}
    assert "setting ours seed reference " + " ".join(
        f"{label} {hp(summary[key])} {hp(reference.get(key))}" for key, label in labels.items()) in text
    section = _sections(scratch_context)["conv_blur"]
    assert section["kernel_sum"] == sig(arrays["kernel"].sum(), 6) == "1"
    assert section["kernel_shape"] == f"({summary['kernel_size']}, {summary['kernel_size']})"
    for key in ("kernel_figure", "originals_figure", "grid_figure"):
        assert section[key].startswith("data:image/png;base64,")


def test_q4_rgb_originals_are_shown_in_colour(smoke_results, tmp_path):
    """A colour dataset's images are (n, H, W, 3); the digits run's gray ones, given three channels."""
    import base64

    import matplotlib.image
    import numpy as np

    results = copy_results(smoke_results, tmp_path, "q4")
    q4 = store(results, "q4")
    arrays = q4.read_arrays("blur")
    gray = arrays["originals"][..., 0]
    arrays["originals"] = np.stack([gray, 1 - gray, 0.5 * gray], axis=-1)
    q4.write_arrays("blur", **arrays)
    section = _sections(report_context(results, ["q4"], PROFILE))["conv_blur"]
    png = base64.b64decode(section["originals_figure"].split(",", 1)[1])
    pixels = matplotlib.image.imread(io.BytesIO(png))
    assert (abs(pixels[..., 0] - pixels[..., 1]) > 0.05).any()  # not gray


@pytest.mark.parametrize("damage, message", [
    ("delete", r"no stored result \S*blur/arrays\.npz \(needed by section"),
    ("corrupt", r"blur/arrays\.npz is not a readable \.npz archive"),
    ("no_kernel", r"blur/arrays\.npz holds no array 'kernel'"),
])
def test_q4_missing_or_corrupt_arrays_is_one_line_error(smoke_results, tmp_path, damage, message):
    results = copy_results(smoke_results, tmp_path, "q4")
    q4 = store(results, "q4")
    path = q4.experiment_dir("blur") / "arrays.npz"
    if damage == "delete":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not a zip archive")
    else:
        arrays = q4.read_arrays("blur")
        del arrays["kernel"]
        q4.write_arrays("blur", **arrays)
    with pytest.raises(InvalidParameterError, match=message) as info:
        build_report(results, ["q4"], profile=PROFILE)
    assert "\n" not in str(info.value)


# -- q5 ------------------------------------------------------------------------------
def _seed_loss(value) -> str:
    """A loss as the seed printed it: 1.41e+30, inf, nan."""
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def test_q5_divergence_log_and_seed_table(smoke_results, scratch_html, parts):
    title, found, reference = _experiment(smoke_results, "q5", "conv_l2_divergence")
    summary, history = found["summary"], found["history"]
    assert summary["status"] == "diverged" and 0 < summary["first_inf_epoch"] < summary["first_nan_epoch"]
    assert len(history) <= 40   # a longer log shows only its first and last lines
    log = re.search(r'<pre class="log">(.*?)</pre>', scratch_html, flags=re.S).group(1).splitlines()
    assert log == [f"epoch = {row['epoch']}, loss = {_seed_loss(row['loss'])}" for row in history]
    assert log[summary["first_inf_epoch"] - 1].endswith("loss = inf") and log[-1].endswith("loss = nan")
    text = between(parts["q5"], esc(title))
    assert f"loss after the first epoch {_seed_loss(history[0]['loss'])} {_seed_loss(reference['first_loss'])}" in text
    assert f"first epoch with loss = inf {summary['first_inf_epoch']} {reference['first_inf_epoch']}" in text
    assert f"first epoch with loss = nan {summary['first_nan_epoch']} {reference['first_nan_epoch']}" in text
    assert f"epochs run {summary['epochs_run']} {DASH}" in text
    assert f"final L2 norm between the outputs {summary['final_l2_norm']} {DASH}" in text   # "nan" as stored
    assert f"status diverged {DASH} stop reason {summary['stop_reason']} {DASH}" in text
    assert esc(reference["note"]) in text
    assert "gradient clipping none" in text


def test_q5_inf_and_nan_are_not_plotted(smoke_results, monkeypatch):
    from matplotlib.axes import Axes

    plotted = []
    real_plot = Axes.plot

    def recording_plot(self, *args, **kwargs):
        lines = real_plot(self, *args, **kwargs)
        plotted.extend(list(line.get_ydata()) for line in lines)
        return lines

    monkeypatch.setattr(Axes, "plot", recording_plot)
    section = _sections(report_context(smoke_results, ["q5"], PROFILE))["conv_l2_divergence"]
    assert section["figure"].startswith("data:image/png;base64,")  # the figure is still made
    values = [v for line in plotted for v in line]
    assert values and all(math.isfinite(v) for v in values)
    # the finite losses are plotted, as log10 (values near 1e300 overflow a log axis)
    _, found, _ = _experiment(smoke_results, "q5", "conv_l2_divergence")
    finite = [math.log10(row["loss"]) for row in found["history"] if math.isfinite(row["loss"])]
    assert any(line == pytest.approx(finite) for line in plotted)


def test_q5_batch_sizes_table_and_figures(smoke_results, scratch_context, parts):
    title, found, reference = _experiment(smoke_results, "q5", "conv_l2_batches")
    text = between(parts["q5"], esc(title))
    headers = ["batch size", "status", "our final L2 norm", "seed L2 norm", "final loss", "epochs", "seconds"]
    rows = []
    for row in sorted(found["trials"], key=lambda r: r["batch_size"]):
        seed = seed_row(row, reference["rows"], ["batch_size"])
        rows.append([str(row["batch_size"]), row["status"], f"{row['l2_norm']:.2f}", f"{seed['l2_norm']:.2f}",
                     sig(row["loss"], 6), str(row["epochs_run"]), seconds(row["seconds"])])
    # what every batch size shares (every run completed, the same epochs) is said once, above the table
    headers, rows, said = without_repeats(headers, rows)
    assert "status" not in headers and "our final L2 norm" in headers
    assert (f"Every batch size below: {'; '.join(said)}." if said else "") + " " + " ".join(headers) in text
    for cells in rows:
        assert " ".join(cells) in text
    section = _sections(scratch_context)["conv_l2_batches"]
    assert section["curves"] and section["plot"] and section["diverged"] == []


# -- q6 ------------------------------------------------------------------------------
def test_q6_two_layer_check(smoke_results, scratch_context, parts):
    title, found, reference = _experiment(smoke_results, "q6", "two_layer_check")
    summary = found["summary"]
    text = between(parts["q6"], esc(title))

    def matrix(rows):   # 8 decimals, as the seed printed its scores
        return " ".join(f"{v:.8f}" for row in rows for v in row)

    assert f"ours {matrix(summary['scores'])}" in text
    assert f"seed reference {matrix(reference['scores'])}" in text
    section = _sections(scratch_context)["two_layer_check"]
    assert len(section["scores"]) == summary["num_inputs"] and len(section["reference_scores"][0]) == summary["num_classes"]
    assert f"loss {sig(summary['loss'], 12)} {sig(reference['loss'], 12)}" in text
    assert f"|loss - seed loss| {sci(summary['loss_abs_diff'])} {DASH}" in text
    assert f"max |scores - seed scores| {sci(summary['scores_max_abs_diff'])} {DASH}" in text
    for name, error in summary["relative_errors"].items():
        assert (f"{name} {sci(error, 2)} {sci(summary['tf_relative_errors'][name], 2)} "
                f"{sci(reference['relative_errors'][name], 2)}") in text
    assert f"(largest {sci(summary['max_relative_error'], 2)})" in text


def test_q6_toy_training(smoke_results, scratch_context, parts):
    title, found, reference = _experiment(smoke_results, "q6", "toy_training")
    summary = found["summary"]
    text = between(parts["q6"], esc(title))

    def yes(reached):
        return "yes" if reached else "no"

    assert f"final loss {sig(summary['final_loss'], 4)} {sig(reference['final_loss'], 4)}" in text
    assert (f"reached the target loss {hp(summary['target_loss'])} {yes(summary['reached_target'])} "
            f"{yes(reference['final_loss'] <= summary['target_loss'])}") in text
    assert f"train accuracy (%) {pct(summary['train_accuracy'])} {DASH}" in text
    assert f"iterations {summary['iterations']} {DASH}" in text
    assert _sections(scratch_context)["toy_training"]["figure"]


def test_scratch_questions_html_is_self_contained(scratch_html):
    assert images(scratch_html) == 7  # kernel, originals, grid, divergence, batch curves, L2 vs batch, toy loss
    assert scratch_html.count("<script") == 1 and SORTABLE_JS in scratch_html   # our one inline script, nothing stored
    for attr in re.findall(r'(?:src|href)="([^"]*)"', scratch_html):
        assert attr.startswith(("data:", "#")), attr


# -- q3: Keras layers and hand-written modules ---------------------------------------------
def test_q3_both_implementations_and_their_comparison(smoke_results, q3_html, runs):
    text = text_of(q3_html)
    title = runs["q3"]["title"]
    keras_heading, scratch_heading = f"q3. {title} — {KERAS_LABEL}", f"q3. {title} — {SCRATCH_LABEL}"
    ids = re.findall(r'\bid="([^"]+)"', q3_html)
    assert len(ids) == len(set(ids))
    assert {"q3-smoke", "q3-smoke-scratch", "q3-smoke-implementations"} <= set(ids)
    keras = between(text, keras_heading, scratch_heading)
    scratch = between(text, scratch_heading, f"q3. {title}: the implementations compared")
    scratch_run = store(smoke_results, "q3", "scratch").read_json("run.json")
    (gradient_check,) = [s["title"] for s in scratch_run["sections"] if s["template"] == "finite_difference"]
    assert esc(gradient_check) in scratch and esc(gradient_check) not in keras
    # the banner: once, on the first part (the implementations share their data)
    assert q3_html.count(f'<div class="banner">{FALLBACK_BANNER}</div>') == 1
    assert keras.count(FALLBACK_BANNER) >= 1 and FALLBACK_BANNER + " " not in scratch.split("Dataset")[0]

    bests = [store(smoke_results, "q3", impl).read_json("experiments/best/summary.json") for impl in (None, "scratch")]
    seed = runs["q3"]["reference"]["best"]
    compared = between(text, "the implementations compared")
    assert f"{KERAS_LABEL} {SCRATCH_LABEL} seed reference experiment best best {DASH}" in compared
    for name in bests[0]["hyperparameters"]:
        assert " ".join([name, *(hp(b["hyperparameters"][name]) for b in bests), hp(seed["hyperparameters"].get(name))]) in compared
    for split in ("train", "val", "test"):
        key = f"{split}_accuracy"
        assert " ".join([f"{split} accuracy (%)", *(pct(b[key]) for b in bests), pct(seed[key])]) in compared
    assert " ".join(["epochs run", *(str(b["epochs_run"]) for b in bests), DASH]) in compared
    assert " ".join(["stop reason", *(b["stop_reason"] for b in bests), DASH]) in compared
    assert " ".join(["training time", *(seconds(b["seconds"]) for b in bests), DASH]) in compared

    # each shared search: val accuracy per setting, the seed's beside it where it reports one
    for experiment, has_seed in (("grid", True), ("fractions", False)):
        tables = [store(smoke_results, "q3", impl).read_experiment(experiment)["trials"] for impl in (None, "scratch")]
        columns = hyperparameters(tables[0])
        shown = varying(tables[0] + tables[1], columns)
        reference = runs["q3"]["reference"].get(experiment, {}).get("rows", [])
        assert bool(reference) == has_seed
        for keras_row, scratch_row in zip(tables[0], tables[1]):
            setting = ", ".join(f"{c}={hp(keras_row[c])}" for c in shown)
            cells = [setting, pct(keras_row["val_accuracy"]), pct(scratch_row["val_accuracy"])]
            if has_seed:
                ref = seed_row(keras_row, reference, columns)
                cells.append(pct(ref["val_accuracy"]) if ref else DASH)
            assert " ".join(cells) in compared


def test_q3_context_parts(q3_context, runs):
    keras, scratch = q3_context["questions"]
    assert (keras["implementation"], scratch["implementation"]) == ("keras", "scratch")
    assert keras["comparison"] is None and scratch["comparison"]["labels"] == [KERAS_LABEL, SCRATCH_LABEL]
    assert [s["template"] for s in scratch["sections"]][-1] == "finite_difference"
    assert q3_context["title"] == f"q3: {runs['q3']['title']}"
    assert q3_context["banners"] == []               # nothing left out; the fallback heads the first part
    assert (keras["banner"], scratch["banner"]) == (FALLBACK_BANNER, None)


def test_finite_difference_section(smoke_results, q3_html):
    title, found, _ = _experiment(smoke_results, "q3", "finite_difference", "scratch")
    summary, sweep = found["summary"], found["sweep"]
    text = between(text_of(q3_html), esc(title), "the implementations compared")
    assert (f"parameter {summary['parameter']}; entries checked {summary['count']}; "
            f"examples in the loss {summary['examples']}; model {summary['implementation']}; "
            f"time {seconds(summary['seconds'])}") in text
    epsilon = {row["N"]: row["epsilon"] for row in sweep}
    assert "N epsilon max |gap| " + " ".join(
        f"{n} {hp(epsilon[n])} {sci(summary['max_abs_gap'][str(n)], 2)}" for n in summary["n_values"]) in text
    assert all(gap > 0 for gap in summary["max_abs_gap"].values()) and "Left out of the log-log plot" not in text
    assert "Largest |analytic − numeric| gap against N" in text and "Numeric gradient of each checked entry" in text


def test_scratch_only_question_renders_and_lists_a_zero_gap(smoke_results, tmp_path):
    """Only q3 --impl scratch stored; one N whose central difference matched exactly (gap 0)."""
    results = copy_results(smoke_results, tmp_path, f"q3/{PROFILE}/scratch")
    scratch = store(results, "q3", "scratch")
    found = scratch.read_experiment("fd_sweep")
    summary, sweep = found["summary"], found["sweep"]
    exact = summary["n_values"][-1]
    summary["max_abs_gap"][str(exact)] = 0.0
    for row in sweep:
        if row["N"] == exact:
            row.update(numeric=row["analytic"], abs_gap=0.0)
    scratch.write_experiment("fd_sweep", summary=summary, tables={"sweep": sweep})

    (path,) = build_report(results, ["q3"], profile=PROFILE)
    assert path == results / "q3" / PROFILE / "report.html"
    html = path.read_text(encoding="utf-8")
    text = text_of(html)
    assert f"— {SCRATCH_LABEL}" in text and KERAS_LABEL not in text
    assert "implementations compared" not in text
    assert f'id="q3-{PROFILE}-scratch"' in html
    assert f"Left out of the log-log plot (gap 0 or not finite): N = {exact} (max |gap| 0.00e+00)." in text


def test_implementation_folders_are_discovered_by_run_json(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q3")
    root = results / "q3" / PROFILE
    shutil.copytree(root / "scratch", root / "numpy2")     # as `--impl numpy2` would store itself
    numpy2 = store(results, "q3", "numpy2")
    numpy2.write_json("run.json", {**numpy2.read_json("run.json"), "implementation": "numpy2"})
    (root / "notes").mkdir()  # no run.json: not an implementation
    stores, left_out = question_stores(results, "q3", PROFILE)
    assert [s.implementation for s in stores] == [None, "numpy2", "scratch"] and left_out == []
    assert compare_implementations(stores)["labels"] == [KERAS_LABEL, "numpy2 (--impl numpy2)", SCRATCH_LABEL]
    assert stored_runs(results) == {"q3": [PROFILE, f"{PROFILE}/numpy2", f"{PROFILE}/scratch"]}


def test_no_stored_run_lists_implementation_folders(smoke_results):
    with pytest.raises(InvalidParameterError) as info:
        build_report(smoke_results, ["q7"], profile=PROFILE)
    assert (f"stored runs: q1 ({PROFILE}), q2 ({PROFILE}), q3 ({PROFILE}, {PROFILE}/scratch), q4 ({PROFILE}), "
            f"q5 ({PROFILE}), q6 ({PROFILE})") in str(info.value)
    with pytest.raises(InvalidParameterError, match=r"no stored results for q3 \(profile full\)"):
        build_report(smoke_results, ["q3"], profile="full")


def test_an_unfinished_second_implementation_is_left_out_with_a_banner(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path, "q3")
    scratch = store(results, "q3", "scratch")
    run = scratch.read_json("run.json")   # what pipeline.run_question writes when Ctrl-C stops a run
    scratch.write_json("run.json", {**run, "status": "interrupted", "finished": None, "wall_seconds": None})
    for summary in scratch.root.glob("experiments/*/summary.json"):   # as if stopped before any finished
        summary.unlink()
    context = report_context(results, ["q3"], PROFILE)
    assert len(context["questions"]) == 1          # the Keras run alone
    banner = " ".join(b["text"] for b in context["banners"])
    assert "q3 --impl scratch is not shown" in banner and "interrupted" in banner
    html = render_html("base.html.jinja2", context)
    assert "q3 --impl scratch is not shown" in html and "implementations compared" not in html


# -- PDF ----------------------------------------------------------------------------------
def test_pdf_of_the_scratch_questions(smoke_results, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    paths = build_report(smoke_results, SCRATCH_QUESTIONS, profile=PROFILE, formats=("pdf",),
                         output=tmp_path / "scratch")
    assert [p.name for p in paths] == ["scratch.pdf"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(paths[0]).pages)
    q2 = _experiment(smoke_results, "q2", "scalar_gradients")[1]["summary"]
    q4 = _experiment(smoke_results, "q4", "conv_blur")[1]["summary"]
    q5a = _experiment(smoke_results, "q5", "conv_l2_divergence")[1]["history"]
    _, q5b, q5_seed = _experiment(smoke_results, "q5", "conv_l2_batches")
    q6 = _experiment(smoke_results, "q6", "two_layer_check")[1]["summary"]
    toy = _experiment(smoke_results, "q6", "toy_training")[1]["summary"]
    values = [sci(q2["max_abs_diff_numeric"]), sci(q4["keras_max_abs_diff"]), _seed_loss(q5a[0]["loss"]),
              "loss = inf", "loss = nan", f"{q5b['trials'][-1]['l2_norm']:.2f}", f"{q5_seed['rows'][0]['l2_norm']:.2f}",
              sig(q6["loss"], 12), sci(q6["relative_errors"]["W1"], 2), sig(toy["final_loss"], 4)]
    for value in values:
        assert value in text, value
