"""Report sections of the from-scratch questions (q2, q4, q5, q6, q16's gradient check)
and a question stored with two implementations (q3 and q3 --impl scratch)."""

from __future__ import annotations

import io
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_store  # noqa: E402
from dlcv_keras.report import build_report, question_stores, report_context, stored_runs  # noqa: E402
from dlcv_keras.report.context import compare_implementations, fmt_sci, fmt_sig  # noqa: E402
from dlcv_keras.report.render import render_html, templates_dir  # noqa: E402
from dlcv_keras.validation import InvalidParameterError  # noqa: E402

SCRATCH_QUESTIONS = ["q2", "q4", "q5", "q6"]
NEW_TEMPLATES = ("scalar_gradients", "conv_blur", "conv_l2_divergence", "conv_l2_batches", "two_layer_check",
                 "toy_training", "finite_difference")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for write in (fake_store.write_q2, fake_store.write_q4, fake_store.write_q5, fake_store.write_q6,
                  fake_store.write_q3, fake_store.write_q3_scratch):
        write(root)
    return root


@pytest.fixture(scope="module")
def scratch_html(results) -> str:
    (path,) = build_report(results, SCRATCH_QUESTIONS, output=results / "out" / "scratch")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def q3_context(results) -> dict:
    return report_context(results, ["q3"])


@pytest.fixture(scope="module")
def q3_html(q3_context) -> str:
    return render_html("base.html.jinja2", q3_context)  # what build_report writes


def _text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _between(text: str, start: str, end: str | None = None) -> str:
    """The part of ``text`` from heading ``start`` to heading ``end`` (or the end)."""
    part = text.split(start, 1)[1]
    return part.split(end, 1)[0] if end else part


def _sections(context) -> dict[str, dict]:
    return {s["template"]: s for q in context["questions"] for s in q["sections"]}


def _images(html: str) -> int:
    return html.count('<img src="data:image/png;base64,')


def test_templates_folder_has_the_new_sections():
    names = {p.name for p in (templates_dir() / "sections").glob("*.html.jinja2")}
    for template in NEW_TEMPLATES:
        assert f"{template}.html.jinja2" in names


def test_number_formats():
    assert fmt_sig(2 / 3) == "0.66666667"
    assert fmt_sig(-8.0) == "-8" and fmt_sig(None) == "—" and fmt_sig(math.nan) == "nan"
    assert fmt_sci(3.1e-15) == "3.1e-15" and fmt_sci("inf") == "inf" and fmt_sci(3.865070e-11, 2) == "3.87e-11"


# -- q2 ------------------------------------------------------------------------------
def test_q2_scalar_gradients(results, scratch_html):
    text = _between(_text(scratch_html), "2. Scalar backpropagation", "q4. ")
    assert '<code class="expression">x*y/z + (x &lt; y)</code>' in scratch_html
    for header in ("df/dx", "df/dy", "df/dz", "max |Δ| vs TensorFlow", "max |Δ| vs central differences"):
        assert header in text
    assert "(2, 4, 1) 9 4 2 -8 3.1e-15 2.7e-10" in text
    assert "(1, 2, 3) 1.6666667 0.66666667 0.33333333 -0.22222222 5.5e-16 8.8e-11" in text
    assert "max relative difference vs central differences 1.3e-10" in text
    assert "max relative difference vs TensorFlow autodiff 3.9e-16" in text  # only in points.csv: its largest
    assert "prints no numbers" in text
    (section,) = report_context(results, ["q2"])["questions"][0]["sections"]
    assert [r["point"] for r in section["rows"]] == ["(2, 4, 1)", "(1, 2, 3)"]
    assert section["variables"] == ["x", "y", "z"]
    assert len(section["details"]) == 8  # f and three derivatives at two points


def test_q2_missing_points_csv_is_one_line_error(tmp_path):
    store = fake_store.write_q2(tmp_path)
    (store.experiment_dir("gradients") / "points.csv").unlink()
    with pytest.raises(InvalidParameterError, match=r"gradients/points\.csv") as info:
        build_report(tmp_path, ["q2"])
    assert "\n" not in str(info.value)
    assert not (tmp_path / "q2" / "quick" / "report.html").exists()


# -- q4 ------------------------------------------------------------------------------
def test_q4_conv_blur(results, scratch_html):
    text = _between(_text(scratch_html), "4. Gaussian blur with our conv2d", "q5. ")
    assert "forward: max |Δ| vs Keras Conv2D 1.2e-07" in text
    assert "backward: max relative error vs TensorFlow autodiff 3.4e-09" in text
    assert "originals (3, 8, 8, 1) → blurred (3, 8, 8, 5)" in text
    assert "dataset mnist; time 0.5 s" in text
    assert "setting ours seed reference kernel size 5 5 sigma 0.8 0.8 stride 1 — padding same — images 3 5 " \
           "output channels 5 5" in text
    section = _sections(report_context(results, ["q4"]))["conv_blur"]
    assert section["kernel_sum"] == "1" and section["kernel_shape"] == "(5, 5)"
    for key in ("kernel_figure", "originals_figure", "grid_figure"):
        assert section[key].startswith("data:image/png;base64,")


def test_q4_rgb_originals_are_shown_in_colour(tmp_path):
    import base64

    import matplotlib.image

    fake_store.write_q4(tmp_path, channels=3)
    section = _sections(report_context(tmp_path, ["q4"]))["conv_blur"]
    png = base64.b64decode(section["originals_figure"].split(",", 1)[1])
    pixels = matplotlib.image.imread(io.BytesIO(png))
    assert (abs(pixels[..., 0] - pixels[..., 1]) > 0.05).any()  # not gray


@pytest.mark.parametrize("damage, message", [
    ("delete", r"no stored result \S*blur/arrays\.npz \(needed by section"),
    ("corrupt", r"blur/arrays\.npz is not a readable \.npz archive"),
    ("no_kernel", r"blur/arrays\.npz holds no array 'kernel'"),
])
def test_q4_missing_or_corrupt_arrays_is_one_line_error(tmp_path, damage, message):
    store = fake_store.write_q4(tmp_path)
    path = store.experiment_dir("blur") / "arrays.npz"
    if damage == "delete":
        path.unlink()
    elif damage == "corrupt":
        path.write_bytes(b"PK\x03\x04 not a zip archive")
    else:
        arrays = store.read_arrays("blur")
        del arrays["kernel"]
        store.write_arrays("blur", **arrays)
    with pytest.raises(InvalidParameterError, match=message) as info:
        build_report(tmp_path, ["q4"])
    assert "\n" not in str(info.value)


# -- q5 ------------------------------------------------------------------------------
def test_q5_divergence_log_and_seed_table(scratch_html):
    log = re.search(r'<pre class="log">(.*?)</pre>', scratch_html, flags=re.S).group(1).splitlines()
    assert log[0] == "epoch = 1, loss = 1.41e+30"
    assert log[5] == "epoch = 6, loss = inf"
    assert log[10] == "epoch = 11, loss = nan"
    assert len(log) == 11
    text = _between(_text(scratch_html), "5.a No clipping", "5.b ")
    assert "loss after the first epoch 1.41e+30 1.41e+30" in text
    assert "first epoch with loss = inf 6 6" in text
    assert "first epoch with loss = nan 11 11" in text
    assert "final L2 norm between the outputs nan —" in text
    assert "the seed counts epochs from 0" in text
    assert "gradient clipping none" in text


def test_q5_inf_and_nan_are_not_plotted(results, monkeypatch):
    from matplotlib.axes import Axes

    plotted = []
    real_plot = Axes.plot

    def recording_plot(self, *args, **kwargs):
        lines = real_plot(self, *args, **kwargs)
        plotted.extend(list(line.get_ydata()) for line in lines)
        return lines

    monkeypatch.setattr(Axes, "plot", recording_plot)
    section = _sections(report_context(results, ["q5"]))["conv_l2_divergence"]
    assert section["figure"].startswith("data:image/png;base64,")  # the figure is still made
    values = [v for line in plotted for v in line]
    assert values and all(math.isfinite(v) for v in values)
    # the finite losses are plotted, as log10 (values near 1e300 overflow a log axis)
    assert [pytest.approx(math.log10(v)) for v in (1.41e30, 2.2e31, 5.5e32, 7.7e34, 9.9e36)] in plotted


def test_q5_batch_sizes_table_and_figures(results, scratch_html):
    text = _between(_text(scratch_html), "5.b Batch size", "q6. ")
    assert "batch size status our final L2 norm seed L2 norm final loss epochs seconds" in text
    assert "1 completed 432.17 429.59 300 3 2.5 s" in text
    assert "4 completed 555.55 561.23 75 3 2.5 s" in text
    assert "8 completed 620.71 617.48 37.5 3 2.5 s" in text
    section = _sections(report_context(results, ["q5"]))["conv_l2_batches"]
    assert section["curves"] and section["plot"] and section["diverged"] == []


# -- q6 ------------------------------------------------------------------------------
def test_q6_two_layer_check(results, scratch_html):
    text = _between(_text(scratch_html), "6.a Forward pass", "6.b ")
    # the score matrices side by side, 8 decimals like the seed's: ours differs in the 7th
    assert "ours -0.81233755 -1.27654624 -0.70335995 -0.17129677" in text
    assert "seed reference -0.81233741 -1.27654624 -0.70335995 -0.17129677" in text
    section = _sections(report_context(results, ["q6"]))["two_layer_check"]
    assert len(section["scores"]) == 5 and len(section["reference_scores"][4]) == 3
    assert "loss 1.30378789133 1.30378789133" in text
    assert "|loss - seed loss| 2.0e-13" in text
    assert "max |scores - seed scores| 1.4e-07" in text
    assert "W1 4.44e-09 7.77e-12 3.56e-09" in text
    assert "b2 6.66e-11 1.11e-12 3.87e-11" in text
    assert "(largest 5.55e-09)" in text


def test_q6_toy_training(results, scratch_html):
    text = _between(_text(scratch_html), "6.b Training on the toy data")
    assert "final loss 0.0183 0.017" in text
    assert "reached the target loss 0.02 yes yes" in text
    assert "train accuracy (%) 100.00 —" in text
    assert _sections(report_context(results, ["q6"]))["toy_training"]["figure"]


def test_scratch_questions_html_is_self_contained(scratch_html):
    assert _images(scratch_html) == 7  # kernel, originals, grid, divergence, batch curves, L2 vs batch, toy loss
    assert "<script" not in scratch_html
    for attr in re.findall(r'(?:src|href)="([^"]*)"', scratch_html):
        assert attr.startswith(("data:", "#")), attr
    text = _text(scratch_html)
    assert "Dataset" not in _between(text, "q2. ", "q4. ")  # q2 stores no dataset


# -- q3: Keras layers and hand-written modules ---------------------------------------------
def test_q3_both_implementations_and_their_comparison(q3_html):
    text = _text(q3_html)
    title = "q3. Modular vector backpropagation: 2-layer MLP, MNIST"
    keras_heading = f"{title} — Keras layers"
    scratch_heading = f"{title} — hand-written numpy modules (--impl scratch)"
    ids = re.findall(r'\bid="([^"]+)"', q3_html)
    assert len(ids) == len(set(ids))
    assert {"q3-quick", "q3-quick-scratch", "q3-quick-implementations"} <= set(ids)
    keras = _between(text, keras_heading, scratch_heading)
    scratch = _between(text, scratch_heading, f"{title}: the implementations compared")
    assert "96.11" in keras and "95.23" not in keras and "Gradient check" not in keras
    assert "95.23" in scratch and "Gradient check of dense_1.W" in scratch
    compared = _between(text, "the implementations compared")
    assert "Keras layers hand-written numpy modules (--impl scratch) seed reference" in compared
    assert "train accuracy (%) 99.11 98.76 99.99" in compared
    assert "val accuracy (%) 96.22 95.67 97.57" in compared
    assert "test accuracy (%) 96.33 95.89 97.87" in compared
    assert "epochs run 4 7 —" in compared
    assert "stop reason max_epochs max_epochs —" in compared
    assert "training time 12.0 s 33.3 s —" in compared
    assert "lr 0.01 0.01 0.01" in compared and "units 256 256 256" in compared
    assert "lr=0.01, batch_size=32 96.11 95.23 97.56" in compared
    assert "lr=0.001, batch_size=32 93.02 91.77 95.60" in compared
    assert "lr=0.5, batch_size=32 10.00 (diverged) — —" in compared  # only the Keras grid tried lr 0.5
    assert "train_fraction=0.5 94.06 93.05" in compared
    assert text.count(fake_store.BANNER) == 3  # document top once (not per implementation), each part


def test_q3_context_parts(q3_context):
    context = q3_context
    keras, scratch = context["questions"]
    assert (keras["implementation"], scratch["implementation"]) == ("keras", "scratch")
    assert keras["comparison"] is None and scratch["comparison"]["labels"] == [
        "Keras layers", "hand-written numpy modules (--impl scratch)"]
    assert [s["template"] for s in scratch["sections"]][-1] == "finite_difference"
    assert context["title"] == "q3: Modular vector backpropagation: 2-layer MLP, MNIST"
    assert context["banners"] == [{"question": "q3", "text": fake_store.BANNER}]


def test_finite_difference_section(q3_html):
    text = _between(_text(q3_html), "Gradient check of dense_1.W", "the implementations compared")
    assert "parameter dense_1.W; entries checked 10" in text
    assert "N epsilon max |gap| 1 1 3.20e-02 10 0.1 3.20e-04 100 0.01 3.20e-06 1000 0.001 0.00e+00" in text
    assert "Left out of the log-log plot (gap 0 or not finite): N = 1000" in text
    assert "Largest |analytic − numeric| gap against N" in text and "Numeric gradient of each checked entry" in text


def test_scratch_only_question_renders(tmp_path):
    fake_store.write_q3_scratch(tmp_path)
    (path,) = build_report(tmp_path, ["q3"])
    assert path == tmp_path / "q3" / "quick" / "report.html"
    html = path.read_text(encoding="utf-8")
    text = _text(html)
    assert "— hand-written numpy modules (--impl scratch)" in text and "Keras layers" not in text
    assert "implementations compared" not in text
    assert 'id="q3-quick-scratch"' in html


def test_implementation_folders_are_discovered_by_run_json(tmp_path):
    fake_store.write_q3(tmp_path)
    fake_store.write_q3_scratch(tmp_path)
    fake_store.write_q3_scratch(tmp_path, implementation="numpy2")
    (tmp_path / "q3" / "quick" / "notes").mkdir()  # no run.json: not an implementation
    stores, left_out = question_stores(tmp_path, "q3", "quick")
    assert [s.implementation for s in stores] == [None, "numpy2", "scratch"] and left_out == []
    assert compare_implementations(stores)["labels"] == [
        "Keras layers", "numpy2 (--impl numpy2)", "hand-written numpy modules (--impl scratch)"]
    assert stored_runs(tmp_path) == {"q3": ["quick", "quick/numpy2", "quick/scratch"]}


def test_no_stored_run_lists_implementation_folders(results):
    with pytest.raises(InvalidParameterError) as info:
        build_report(results, ["q7"])
    assert "stored runs: q2 (quick), q3 (quick, quick/scratch), q4 (quick)" in str(info.value)
    with pytest.raises(InvalidParameterError, match=r"no stored results for q3 \(profile full\)"):
        build_report(results, ["q3"], profile="full")


# -- PDF ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_pdf_of_the_scratch_questions(results, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    paths = build_report(results, SCRATCH_QUESTIONS, formats=("pdf",), output=tmp_path / "scratch")
    assert [p.name for p in paths] == ["scratch.pdf"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(paths[0]).pages)
    for value in ("3.1e-15", "1.2e-07", "1.41e+30", "loss = inf", "loss = nan", "429.59", "620.71",
                  "1.30378789133", "3.56e-09", "0.0183"):
        assert value in text, value


def test_an_unfinished_second_implementation_is_left_out_with_a_banner(tmp_path):
    import json

    fake_store.write_q3(tmp_path)
    store = fake_store.write_q3_scratch(tmp_path)
    run = json.loads((store.root / "run.json").read_text())
    (store.root / "run.json").write_text(json.dumps({**run, "status": "interrupted"}))
    for summary in store.root.glob("experiments/*/summary.json"):   # as if stopped before any finished
        summary.unlink()
    context = report_context(tmp_path, ["q3"])
    assert len(context["questions"]) == 1          # the Keras run alone
    banner = " ".join(b["text"] for b in context["banners"])
    assert "q3 --impl scratch is not shown" in banner and "interrupted" in banner
    html = build_report(tmp_path, ["q3"])[0].read_text()
    assert "q3 --impl scratch is not shown" in html and "implementations compared" not in html
