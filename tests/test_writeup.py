"""Assignment write-ups (report/writeup.py) built from the real smoke runs (q1-q6, q3 --impl scratch).

a1 (q1-q5) has every question stored; a2 (q6, q7) has q7 not run. The tests read the write-up as a
reader would: its HTML text, its PDF text (pypdf), its PDF layout (WeasyPrint's boxes) and, when a
browser is installed, the page in headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import html as html_module
import io
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import find_chromium, inspect_page  # noqa: E402
from real_runs import (DASH, PROFILE, copy_results, hp, html_tables, pct, store, text_of,  # noqa: E402
                       without_repeats)

from dlcv_keras import __version__  # noqa: E402
from dlcv_keras.questions import QUESTIONS  # noqa: E402
from dlcv_keras.questions.assignments import ASSIGNMENTS  # noqa: E402
from dlcv_keras.report.__main__ import main as report_main  # noqa: E402
from dlcv_keras.report.render import pdf_bytes  # noqa: E402
from dlcv_keras.report.writeup import build_writeup, number_floats, onednn_words, writeup_context  # noqa: E402
from dlcv_keras.validation import InvalidParameterError  # noqa: E402

TODAY = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def a1(smoke_results, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("a1")
    html_path, pdf_path = build_writeup(smoke_results, "a1", profile=PROFILE, formats=("html", "pdf"),
                                        output=folder / "a1", today=TODAY)
    html = html_path.read_text(encoding="utf-8")
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(pdf_path.read_bytes()))
    pages = [page.extract_text() or "" for page in reader.pages]
    context = writeup_context(smoke_results, "a1", PROFILE, today=TODAY)
    return {"html": html, "html_path": html_path, "pdf": pdf_path, "pages": pages, "context": context,
            "text": html_module.unescape(text_of(html))}


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# -- front matter and body -------------------------------------------------------------------------
def test_title_page_names_course_assignment_profile_date_and_version(a1):
    first = _words(a1["pages"][0])
    assignment = ASSIGNMENTS["a1"]
    for words in (assignment.course, assignment.title, f"dlcv_keras {__version__}", f"profile {PROFILE}",
                  "2026-11-30", assignment.seed_file, "5 of 5"):
        assert words in first, words


def test_chapters_follow_the_seed_order_and_the_contents_link_to_each(a1):
    html = a1["html"]
    positions = [html.index(f'id="chapter-{q}"') for q in ASSIGNMENTS["a1"].questions]
    assert positions == sorted(positions)
    links = re.findall(r'<a href="#([^"]+)">', html)
    assert links and all(f'id="{target}"' in html for target in links)
    for number, question in enumerate(ASSIGNMENTS["a1"].questions, 1):
        assert f"chapter-{question}" in links
        chapter = next(c for c in a1["context"]["chapters"] if c["question"] == question)
        numbers = [s["number"] for part in chapter["parts"] for s in part["sections"]]
        assert numbers == [f"{number}.{i}" for i in range(1, len(numbers) + 1)]


def test_figures_and_tables_are_numbered_in_reading_order_and_observations_cite_them(a1):
    html = a1["html"]
    figures = [int(n) for n in re.findall(r'<figure id="figure-(\d+)">', html)]
    tables = [int(n) for n in re.findall(r'<table id="table-(\d+)"', html)]
    assert figures == list(range(1, html.count("<figure") + 1)) and len(figures) > 5
    assert tables == list(range(1, len(tables) + 1)) and len(tables) > 10
    for n in figures:
        assert f'<span class="float-label">Figure {n}.</span>' in html
    # every observation heading names exactly the figures and tables of its own section
    for section in re.findall(r'<section class="part.*?</section>', html, flags=re.S):
        heading = re.search(r"<h4>Observations([^<]*)</h4>", section)
        if heading is None:
            continue
        own_figures = re.findall(r'<figure id="figure-(\d+)">', section)
        own_tables = re.findall(r'<table id="table-(\d+)"', section)
        for n in (own_figures[:1] + own_tables[:1]):
            assert n in heading.group(1)


def test_number_floats_folds_a_heading_into_its_table_caption():
    html = ('<section class="part x"><h4>All trials</h4>\n<table class="trials"><tr><td>1</td></tr></table>'
            '<table class="meta"><tr><td>m</td></tr></table><figure><img src="data:,"><figcaption>Curves</figcaption>'
            '</figure><div class="observations"><h4>Observations</h4></div></section>')
    out = number_floats(html)
    assert ('<div class="table-float"><table id="table-1" class="trials"><caption><span class="float-label">Table 1.'
            '</span> All trials</caption><tr><td class="nb">1</td></tr></table></div>') in out
    assert "<h4>All trials</h4>" not in out and '<table class="meta">' in out
    assert '<figcaption><span class="float-label">Figure 1.</span> Curves' in out
    assert "<h4>Observations (from Figure 1 and Table 1)</h4>" in out
    row = "".join(f"<th>c{i}</th>" for i in range(11))
    assert '<div class="table-float"><table id="table-1" class="wide trials">' in number_floats(f'<table class="trials"><tr>{row}</tr></table>')
    assert 'class="wide' not in number_floats(f'<table class="trials"><tr>{row[:-12]}</tr></table>')
    # a header row in <thead> counts its cells, not the <thead> tag; a table's count stops at its own end
    ten = f'<table class="trials"><thead><tr>{row[:-12]}</tr></thead><tbody></tbody></table>'
    assert 'class="wide' not in number_floats(ten + f'<table><tr>{row}</tr></table>').split("</table>")[0]
    assert 'class="wide' not in number_floats('<table class="provenance"></table><p>x</p>')


def test_a_question_on_another_dataset_is_titled_so_and_compared_with_nothing(a1, smoke_results):
    run = store(smoke_results, "q1").read_json("run.json")
    assert run["dataset"]["requested"] == "digits"
    assert f"q1. {run['title']} (run on digits)" in a1["text"]
    chapter = a1["html"].split('id="chapter-q1"')[1].split('id="chapter-q2"')[0]
    assert "Ran on digits, not on the seed&#39;s mnist" in chapter


def test_a_question_not_run_is_listed_with_its_command(smoke_results, tmp_path):
    (path,) = build_writeup(smoke_results, "a2", profile=PROFILE, output=tmp_path / "a2", today=TODAY)
    text = html_module.unescape(text_of(path.read_text(encoding="utf-8")))
    assert f"q7. {QUESTIONS['q7'].title}" in text
    assert (f"Not run: no stored results for profile {PROFILE}. This command runs it: python -m dlcv_keras.run q7 "
            f"--profile {PROFILE} --results {smoke_results}") in text
    assert "1 of 2" in text and f"q6. {QUESTIONS['q6'].title}" in text


def test_an_unfinished_run_shows_what_it_stored_and_marks_the_rest(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path / "results", "q1")
    q1 = store(results, "q1")
    run = q1.read_json("run.json")
    last = run["sections"][-1]
    (q1.experiment_dir(last["experiment"]) / "summary.json").unlink()
    with pytest.raises(InvalidParameterError, match="summary.json"):   # a complete run must hold everything
        build_writeup(results, "a1", profile=PROFILE, output=tmp_path / "a1", today=TODAY)
    q1.write_json("run.json", {**run, "status": "interrupted"})
    (path,) = build_writeup(results, "a1", profile=PROFILE, output=tmp_path / "a1", today=TODAY)
    chapter = html_module.unescape(text_of(path.read_text(encoding="utf-8").split('id="chapter-q1"')[1].split('id="chapter-q2"')[0]))
    assert 'Run status is "interrupted"' in chapter.replace("“", '"').replace("”", '"')
    assert f"{last['title']} Not stored yet: the run's status is \"interrupted\"" in chapter
    for section in run["sections"][:-1]:
        assert section["title"] in chapter


# -- tables a reader can read --------------------------------------------------------------------
def _columns(table: dict) -> list[list[str]]:
    """The table's columns, from its rows of one cell per header (a "total" row spans several)."""
    rows = [row for row in table["rows"] if len(row) == len(table["headers"])]
    return [[row[k] for row in rows] for k in range(len(table["headers"]))]


def test_no_table_repeats_one_value_or_a_dash_down_a_whole_column(a1):
    """Trial tables, the tables of runs and the ours-beside-the-seed tables: a column whose every row holds the
    same value ("completed") or nothing ("—") is left out; the shared value is said once, above the table."""
    checked = 0
    for table in html_tables(a1["html"]):
        if table["class"] in ("meta titlemeta", "provenance") or len(table["rows"]) < 2 or not table["headers"]:
            continue
        checked += 1
        columns = _columns(table)
        assert all(set(column) != {DASH} for column in columns), (table["caption"], table["headers"])
        if "trials" in table["class"]:            # a table of trials or runs: the first column names the row
            repeated = [h for h, column in zip(table["headers"][1:], columns[1:]) if len(set(column)) == 1]
            assert not repeated, (table["caption"], repeated)
    assert checked > 10


def test_what_every_trial_shares_is_said_once_above_its_table(a1, smoke_results):
    trials = store(smoke_results, "q1").read_experiment("lr_batch")["trials"]
    assert len(trials) > 1 and {row["status"] for row in trials} == {"completed"}
    assert len({row["epochs_run"] for row in trials}) == 1
    chapter = a1["html"].split('id="chapter-q1"')[1].split('id="chapter-q2"')[0]
    grid = next(t for t in html_tables(chapter) if "trials" in t["class"]
                and sorted(row[0] for row in t["rows"]) == sorted(str(row["trial_id"]) for row in trials))
    assert "status" not in grid["headers"] and "epochs run" not in grid["headers"]
    assert f"Every trial below: status = completed; epochs run = {trials[0]['epochs_run']}" in grid["caption"]
    # what does differ stays, row by row
    assert "val acc. (%)" in grid["headers"] and "lr" in grid["headers"]
    shown = {row[0]: row[grid["headers"].index("val acc. (%)")] for row in grid["rows"]}
    assert shown == {str(row["trial_id"]): pct(row["val_accuracy"]) for row in trials}


def test_the_loss_definition_is_said_once_under_its_table_not_in_its_cells(a1, smoke_results):
    summary = store(smoke_results, "q1").read_json("experiments/best/summary.json")
    from markupsafe import escape       # as Jinja escapes it in the page ("model's" -> "model&#39;s")
    definition = str(escape(summary["loss_includes"]))
    chapter = a1["html"].split('id="chapter-q1"')[1].split('id="chapter-q2"')[0]
    assert all(definition not in cell for table in html_tables(chapter) for row in table["rows"] for cell in row)
    best = chapter.split('id="q1-smoke-best"')[1].split("</section>")[0]
    assert best.count(definition) == 1
    accuracy = next(t for t in html_tables(best) if t["rows"] and t["rows"][0][0] == "train accuracy (%)")
    assert ["val loss", f"{summary['val_loss']:.4f}"] == accuracy["rows"][3][:2]
    assert best.index(definition) > best.index("</table>", best.index("train accuracy (%)"))


# -- appendix ----------------------------------------------------------------------------------
def test_appendix_gives_provenance_commands_and_search_spaces(a1, smoke_results):
    appendix = a1["text"].split("Appendix: provenance, commands and search spaces")[-1]
    for question in ASSIGNMENTS["a1"].questions:
        run = store(smoke_results, question).read_json("run.json")
        assert run["dataset"].get("content_hash", "—") in appendix if run["dataset"].get("content_hash") else True
        assert run["environment"]["keras_backend"] in appendix
        assert f"TensorFlow oneDNN {onednn_words(run['environment']['onednn'])}" in appendix
        # the command the run recorded, given back as one the user can type
        recorded = run["environment"]["command"].split()
        report = recorded.index("--report")
        kept = [a for i, a in enumerate(recorded[1:], 1) if a not in ("-q", "--quiet") and i not in (report, report + 1)]
        assert "python -m dlcv_keras.run " + " ".join(kept) in appendix
        assert kept[0] == question and "--report" not in kept
        for name, size in run["dataset"].get("splits", {}).items():
            assert f"{name} {size:,}" in appendix
    grid = store(smoke_results, "q1").read_json("experiments/full_grid/summary.json")
    rows = [[name, ", ".join(hp(v) for v in values), "searched"] for name, values in grid["space"].items()]
    rows += [[name, hp(value), "fixed"] for name, value in grid["fixed"].items()]
    _, shown, said = without_repeats(["hyperparameter", "values", "how"], rows)
    for row in shown:
        assert " ".join(row) in appendix
    if said:                       # "how" is the same for every row: said once, above the table
        assert "Every hyperparameter below: " + "; ".join(said) + "." in appendix


def test_the_onednn_row_says_whether_it_was_on_and_who_decided():
    assert onednn_words({"on": True, "decided_by": "dlcv_keras"}) == (
        "on (dlcv_keras's default: TensorFlow leaves it off on this CPU)")
    assert onednn_words({"on": False, "decided_by": "user"}) == "off (the user's TF_ENABLE_ONEDNN_OPTS)"
    assert onednn_words({"on": True, "decided_by": "tensorflow"}) == "on (TensorFlow's default here)"
    assert onednn_words({"on": None, "decided_by": "tensorflow"}) == "unknown (TensorFlow's default here)"
    assert onednn_words({}) == "unknown"


# -- the PDF ------------------------------------------------------------------------------------
def test_pdf_holds_every_table_number_and_observation_sentence(a1):
    text = _words(" ".join(a1["pages"]))
    squeezed = text.replace(" ", "")
    html = a1["html"]
    blocks = re.findall(r'<div class="observations">.*?<ul>(.*?)</ul>', html, flags=re.S)
    sentences = [_words(html_module.unescape(re.sub(r"<[^>]+>", "", li)))
                 for block in blocks for li in re.findall(r"<li>(.*?)</li>", block, flags=re.S)]
    sentences = [s for s in sentences if s]
    for sentence in sentences:
        assert sentence.replace(" ", "") in squeezed, sentence
    cells = [html_module.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", html)]
    numbers = {c for c in cells if re.fullmatch(r"-?[0-9][0-9.,e+-]*( %| s)?", c)}
    assert len(numbers) > 50 and len(sentences) > 10
    missing = [n for n in numbers if n.replace(" ", "") not in squeezed]
    assert not missing, missing[:10]


def test_pdf_has_a_running_header_and_page_numbers_but_not_on_the_title_page(a1):
    pages = a1["pages"]
    total = len(pages)
    assert total > 3
    assert f"1 / {total}" not in _words(pages[0])
    for number, page in enumerate(pages[1:], 2):
        words = _words(page)
        assert f"{number} / {total}" in words
        assert ASSIGNMENTS["a1"].course in words


def test_pdf_layout_keeps_tables_whole_within_the_page_and_numbers_unbroken(a1):
    """WeasyPrint's own layout: no table that fits on a page is split across two, none is wider than
    the page's text, a one-word cell takes one line, no heading ends a page and no caption is left
    on a page without its table."""
    import weasyprint

    document = weasyprint.HTML(string=a1["html"], base_url=str(a1["html_path"].parent)).render()
    fragments: dict[int, list[tuple[int, float]]] = {}     # table element -> (page, height) per fragment
    captions: dict[int, int] = {}                            # table element -> page of its caption
    first_rows: dict[int, int] = {}                          # table element -> page of its first row
    owner: dict[int, int] = {}                               # caption / first row element -> its table
    headings_last = []
    for index, page in enumerate(document.pages):
        box = page._page_box
        content_width, content_height = box.width, box.height
        blocks = []
        for child in box.descendants():
            tag = getattr(child, "element_tag", None)
            if tag == "table":      # the wrapper box comes first: know the table's caption and first row
                caption, first = child.element.find("caption"), next(child.element.iter("tr"), None)
                owner.update({id(e): id(child.element) for e in (caption, first) if e is not None})
            if tag == "caption" and id(child.element) in owner:
                captions.setdefault(owner[id(child.element)], index)
            if tag == "tr" and id(child.element) in owner:
                first_rows.setdefault(owner[id(child.element)], index)
            if tag == "table" and type(child).__name__ == "TableBox":
                fragments.setdefault(id(child.element), []).append((index, child.margin_height()))
                assert child.margin_width() <= content_width + 1, f"table wider than the page on page {index + 1}"
            if tag in ("td", "th") and type(child).__name__ == "TableCellBox":
                text = "".join(child.element.itertext()).strip()
                lines = [c for c in child.descendants() if type(c).__name__ == "LineBox"]
                if text and not re.search(r"[\s=_/]", text):       # one word: never broken
                    assert len(lines) <= 1, f"{text!r} breaks across lines on page {index + 1}"
            if tag in ("h2", "h3", "h4", "p", "table", "figure", "ul", "pre", "div") and hasattr(child, "position_y"):
                blocks.append((child.position_y + child.margin_height(), tag, child))
        if blocks and index < len(document.pages) - 1:
            bottom, tag, last = max(blocks, key=lambda b: b[0])
            if tag in ("h3", "h4"):
                headings_last.append((index + 1, "".join(last.element.itertext())))
    for parts in fragments.values():
        pages = {page for page, _ in parts}
        if len(pages) > 1:   # split: only a table taller than a page may be
            assert sum(height for _, height in parts) > 0.8 * content_height, (pages, parts)
    assert not headings_last, f"headings left at the foot of a page: {headings_last}"
    # every numbered table was seen with its caption and its first row
    assert len(captions) >= len(re.findall(r'<table id="table-', a1["html"])) and set(captions) <= set(first_rows)
    stranded = [page + 1 for table, page in captions.items() if first_rows[table] != page]
    assert not stranded, f"table captions on another page than their table's first row: pages {stranded}"


# -- nothing from outside the results folder ------------------------------------------------------
def _images_in(pdf: bytes) -> int:
    import pypdf

    return sum(len(page.images) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_pdf_embeds_only_data_uris_and_files_inside_the_results_folder(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inside = tmp_path / "results" / "q1" / "figure.png"
    inside.parent.mkdir(parents=True)
    plt.imsave(inside, [[0.0, 1.0], [1.0, 0.0]])
    plt.imsave(inside.with_name("other.png"), [[1.0, 0.0], [0.0, 0.5]])
    outside = tmp_path / "elsewhere.png"
    plt.imsave(outside, [[0.0, 1.0], [1.0, 0.5]])
    page = ('<html><body><img src="file:///etc/passwd"><img src="http://example.invalid/x.png">'
            f'<img src="{outside.as_uri()}"><img src="{inside.as_uri()}"><img src="q1/other.png"></body></html>')
    assert _images_in(pdf_bytes(page, base_url=tmp_path / "results", allowed_root=tmp_path / "results")) == 2
    assert _images_in(pdf_bytes(page, base_url=tmp_path / "results", allowed_root=tmp_path / "nowhere")) == 0


def test_stored_text_holding_an_image_tag_embeds_nothing(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path / "results", "q2")
    q2 = store(results, "q2")
    run = q2.read_json("run.json")
    clean = build_writeup(results, "a1", profile=PROFILE, formats=("pdf",), output=tmp_path / "clean", today=TODAY)[0]
    run["title"] = 'q2 <img src="file:///etc/passwd"> <img src="http://example.invalid/x.png">'
    run["sections"][0]["title"] = '<img src="file:///etc/hostname">'
    q2.write_json("run.json", run)
    html, pdf = build_writeup(results, "a1", profile=PROFILE, formats=("html", "pdf"), output=tmp_path / "a1", today=TODAY)
    text = html.read_text(encoding="utf-8")
    assert '&lt;img src=&#34;file:///etc/passwd&#34;&gt;' in text and '<img src="file:' not in text
    assert _images_in(pdf.read_bytes()) == _images_in(clean.read_bytes())


# -- the command line ---------------------------------------------------------------------------
def test_report_all_writes_five_writeups_and_the_index(smoke_results, tmp_path, capsys):
    results = copy_results(smoke_results, tmp_path / "results", "q1", "q2", "q6")
    assert report_main(["all", "--profile", PROFILE, "--results", str(results)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(results / "writeups" / f"{a}-{PROFILE}.html") for a in ASSIGNMENTS]
    index = (results / "index.html").read_text(encoding="utf-8")
    assert f'href="writeups/a1-{PROFILE}.html"' in index


@pytest.mark.parametrize("argv, words", [
    (["a1", "q1"], "not both"),
    (["a9"], "'a9'"),
    (["all", "a1"], "stands alone"),
    (["a1", "a1"], "must not repeat"),
    (["a1", "a2", "--output", "x"], "--output"),
    (["a1", "--profile", "../x"], "profile"),
    (["a1", "--profile", "bogus"], "'smoke', 'quick', 'full'"),
])
def test_bad_writeup_names_are_one_line_errors(smoke_results, tmp_path, capsys, argv, words):
    results = copy_results(smoke_results, tmp_path / "results", "q1")
    assert report_main([*argv, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and words in err
    assert not (results / "writeups").exists()


# -- in a real browser ------------------------------------------------------------------------------
@pytest.mark.skipif(find_chromium() is None, reason="no chromium, chromium-browser or google-chrome on PATH")
def test_writeup_in_a_real_browser(a1):
    report = inspect_page(a1["html_path"], click_sort=False)
    assert report.problems() == []
    assert report.images_total == a1["html"].count("<img ")
    assert report.toc_links >= len(ASSIGNMENTS["a1"].questions)
