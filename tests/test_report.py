"""The report: store -> context -> HTML (and PDF), and its CLI. No keras, no training."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_store  # noqa: E402
from dlcv_keras.report import build_report, report_context  # noqa: E402
from dlcv_keras.report.__main__ import main  # noqa: E402
from dlcv_keras.report.render import render_template_string, templates_dir  # noqa: E402
from dlcv_keras.validation import InvalidParameterError  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    fake_store.write_q1(root, class_names=["zero", "one", "two", "three", fake_store.EVIL,
                                           "five", "six", "seven", "eight", "nine"])
    fake_store.write_q3(root)
    return root


@pytest.fixture(scope="module")
def combined_html(results) -> str:
    paths = build_report(results, ["q1", "q3"], output=results / "combined" / "report")
    assert paths == [results / "combined" / "report.html"]
    return paths[0].read_text(encoding="utf-8")


def _text(html: str) -> str:
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


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


# -- HTML content -----------------------------------------------------------------
def test_q1_tables_show_ours_beside_reference(combined_html):
    text = _text(combined_html)
    # base run: ours 84.21 beside the seed's 85.56
    assert "84.21" in text and "85.56" in text
    # effect grid: every trial, best 91.37
    for value in ("91.37", "91.01", "89.11", "88.66", "82.02", "80.04"):
        assert value in text
    # top table: top 3 only, with the matching seed rows beside (91.51, 91.42)
    assert "92.44" in text and "92.33" in text and "92.22" in text
    assert "70.11" not in text and "88.00 " not in text.split("1.a Full grid")[1].split("Best configuration")[0]
    assert "91.51" in text and "91.42" in text
    # best: ours vs seed
    for value in ("92.88", "92.55", "92.66", "91.73", "91.47", "91.81", "97.91", "97.86", "86.12", "86.66"):
        assert value in text
    assert "7,850" in text and "(None, 784)" in text
    # sklearn vs our best vs seed
    for value in ("94.12", "93.18", "93.65", "92.57"):
        assert value in text
    # fractions
    for value in ("10 %", "20 %", "50 %", "87.12", "88.45", "90.23"):
        assert value in text


def test_q3_diverged_trial_banner_and_early_stop(combined_html):
    text = _text(combined_html)
    assert text.count(fake_store.BANNER) >= 2  # top of document and top of q3
    assert 'class="banner"' in combined_html
    assert "Diverged trials" in text and "nan" in text and "inf" in text
    assert "lr=0.5, batch_size=32" in text
    assert "274" in text and "17" in text and "val_loss_rising" in text  # epochs run ours vs seed
    assert "97.56" in text and "95.28" in text  # q3 grid reference rows
    assert "digits (requested: mnist)" in text
    assert "sha256:0123abcdfeed" in text and "tensorflow 2.21.0" in text and "abc123def" in text


def test_trial_ids_keep_their_zero_padding(combined_html):
    assert "<td>0003</td>" in combined_html


def test_html_is_self_contained_and_escaped(combined_html):
    assert combined_html.count('<img src="data:image/png;base64,') >= 10
    assert "<script" not in combined_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in combined_html
    for attr in re.findall(r'(?:src|href)="([^"]*)"', combined_html):
        assert attr.startswith(("data:", "#")), attr
    assert "<link" not in combined_html and "@import" not in combined_html and "url(" not in combined_html


def test_single_question_default_path_and_escaped_title(tmp_path):
    store = fake_store.write_q1(tmp_path)
    run = store.read_json("run.json")
    run["title"] = "Linear <script>x</script> & more"
    store.write_json("run.json", run)
    paths = build_report(tmp_path, ["q1"])
    assert paths == [tmp_path / "q1" / "quick" / "report.html"]
    html = paths[0].read_text(encoding="utf-8")
    assert "Linear &lt;script&gt;x&lt;/script&gt; &amp; more" in html
    assert "<script" not in html


def test_context_is_plain_values(results):
    context = report_context(results, ["q3"])
    (q,) = context["questions"]
    assert [s["template"] for s in q["sections"]] == ["curves", "effect", "best", "fractions"]
    effect = q["sections"][1]
    assert effect["x"] == "lr" and effect["group"] == ["batch_size"]
    assert [d["trial_id"] for d in effect["diverged"]] == ["0003"]
    assert context["banners"] == [{"question": "q3", "text": fake_store.BANNER}]


# -- errors -----------------------------------------------------------------------
def test_missing_experiment_names_the_file(tmp_path):
    store = fake_store.write_q1(tmp_path)
    (store.experiment_dir("sklearn") / "summary.json").unlink()
    with pytest.raises(InvalidParameterError, match=r"sklearn/summary\.json"):
        build_report(tmp_path, ["q1"])
    assert not (tmp_path / "q1" / "quick" / "report.html").exists()


def test_missing_metrics_names_the_file(tmp_path):
    store = fake_store.write_q1(tmp_path)
    (store.experiment_dir("best") / "metrics.json").unlink()
    with pytest.raises(InvalidParameterError, match=r"best/metrics\.json"):
        build_report(tmp_path, ["q1"])


@pytest.mark.parametrize("kwargs, message", [
    ({"questions": ["question1"]}, "question must be a name like"),
    ({"questions": []}, "non-empty"),
    ({"questions": ["q1"], "formats": ("docx",)}, "formats must"),
    ({"questions": ["q1"], "profile": "../x"}, "profile must"),
])
def test_bad_arguments(results, kwargs, message):
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        build_report(results, **kwargs)


def test_no_stored_run_message(tmp_path):
    with pytest.raises(InvalidParameterError) as info:
        build_report(tmp_path, ["q7"], profile="quick")
    assert str(info.value) == (f"no stored results for q7 (profile quick) in {tmp_path}; stored runs: "
                               "none (a run of `python -m dlcv_keras.run` makes them)")


def test_no_stored_run_message_lists_what_is_stored(results):
    with pytest.raises(InvalidParameterError) as info:
        build_report(results, ["q1"], profile="full")
    assert "no stored results for q1 (profile full)" in str(info.value)
    assert "stored runs: q1 (quick), q3 (quick)" in str(info.value)


def test_cli_usage_errors_and_unwritable_output_are_one_line(results, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["q1", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unrecognized arguments: --bogus") and "\n" not in err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["q1", "--results", str(results), "--output", str(blocker / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write the report") and "\n" not in err


# -- CLI --------------------------------------------------------------------------
def test_cli_missing_store_exits_2_one_line(tmp_path, capsys):
    assert main(["q1", "--results", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("error: no stored results for q1") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_question_exits_2(results, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["quiz1", "--results", str(results), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: question must be") and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_env_default_and_success(results, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLCV_RESULTS_DIR", str(results))
    out = tmp_path / "q3.html"
    assert main(["q3", "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert fake_store.BANNER in out.read_text(encoding="utf-8")


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--pdf" in capsys.readouterr().out


# -- PDF --------------------------------------------------------------------------
@pytest.mark.slow
def test_pdf_holds_the_numbers(results, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    paths = build_report(results, ["q1", "q3"], formats=("html", "pdf"), output=tmp_path / "both")
    assert [p.name for p in paths] == ["both.html", "both.pdf"]
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF")
    text = "\n".join(page.extract_text() for page in pypdf.PdfReader(paths[1]).pages)
    for value in ("91.37", "85.56", "92.66", "91.81", "93.65", "90.23", "0003", fake_store.BANNER):
        assert value in text, value


def test_unknown_section_template_is_one_line_error(tmp_path):
    store = fake_store.write_q1(tmp_path)
    run = store.read_json("run.json")
    run["sections"].append({"template": "no_such_section", "experiment": "base", "title": "x"})
    store.write_json("run.json", run)
    with pytest.raises(InvalidParameterError, match="no_such_section"):
        build_report(tmp_path, ["q1"])


def test_report_never_imports_keras(results):
    import subprocess

    code = ("import sys; from dlcv_keras.report import build_report; "
            f"build_report({str(results)!r}, ['q3'], output={str(results / 'nokeras')!r}); "
            "bad = [m for m in ('keras', 'tensorflow', 'keras_tuner') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_seed_rows_match_on_every_hyperparameter_not_only_the_shown_ones():
    from dlcv_keras.report.context import _trial_table

    reference = [{"lr": 0.1, "epochs": 50, "val_accuracy": 0.9130}]
    ours = [{"trial_id": 0, "status": "completed", "lr": 0.1, "epochs": 2, "val_accuracy": 0.5},
            {"trial_id": 1, "status": "completed", "lr": 0.1, "epochs": 50, "val_accuracy": 0.6}]
    table = _trial_table(ours, ["lr"], reference, match_columns=["lr", "epochs"])
    assert [row["cells"][-1] for row in table["rows"]] == ["—", "91.30"]
    assert "epochs" not in table["headers"]
