"""The reports in a real browser: headless Chromium over the DevTools protocol (tests/browser.py).

What only a browser shows: figures decode, table-of-contents links land, the page asks nothing of
the network, its script throws nothing, it is not blank, and sortable.js re-orders trial tables
when a reader clicks a header (or presses Enter or Space on it)."""

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser import PageReport, SortResult, find_chromium, inspect_page  # noqa: E402
from real_runs import DASH, PROFILE  # noqa: E402

from dlcv_keras.report import build_report  # noqa: E402
from dlcv_keras.report.render import render_template_string, templates_dir  # noqa: E402

pytestmark = pytest.mark.skipif(
    find_chromium() is None, reason="no chromium, chromium-browser or google-chrome on PATH (.ci/run installs one)")

# What aria-sort and the ▲/▼ marker read after each of browser.SORT_ACTIONS (click, click, Enter, Space).
DIRECTIONS = ["ascending", "descending", "ascending", "descending"]
MARKERS = ['" ▲"', '" ▼"', '" ▲"', '" ▼"']
MISSING = (DASH, "", "nan")


def page(tmp_path: Path, body: str, **context) -> Path:
    """A page made of the report's own pieces: its CSS, its macros, sortable.js at the end of <body>."""
    source = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title>'
              '<style>{% include "report.css" %}</style></head><body>{% import "macros.jinja2" as m %}'
              + body + '<script>{% include "sortable.js" %}</script></body></html>')
    path = tmp_path / "page.html"
    path.write_text(render_template_string(source, context), encoding="utf-8")
    return path


def number(text: str) -> float | None:
    """The test's own reading of a cell as a number (None: not one): "1,234" and "12.3 s" are."""
    token = re.split(r"[\s(]", text, maxsplit=1)[0]
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", token):
        token = token.replace(",", "")
    try:
        return float(token)
    except ValueError:
        return None


def check_sort_mechanics(result: SortResult) -> None:
    """Directions, markers and row integrity that hold for every column, whatever it holds."""
    where = f"table {result.table}, column {result.header!r}"
    assert result.tabindex == 0, where
    assert [s.aria_sort for s in result.steps] == DIRECTIONS, where
    assert [s.marker for s in result.steps] == MARKERS, where
    for step in result.steps:
        assert set(step.others_aria_sort) <= {None}, where          # one sorted column at a time
        assert sorted(step.rows) == sorted(result.before_rows), where   # rows move whole; none lost
    assert result.steps[2].column == result.steps[0].column, where  # the keyboard sorts as the mouse does
    assert result.steps[3].column == result.steps[1].column, where


def check_order(result: SortResult) -> None:
    """Ascending, then descending, by the column's values; missing cells last both ways."""
    where = f"table {result.table}, column {result.header!r}"
    ascending, descending = ([c for c in s.column if c not in MISSING] for s in result.steps[:2])
    for step, filled, reverse in ((result.steps[0], ascending, False), (result.steps[1], descending, True)):
        assert step.column[:len(filled)] == filled, where
        numbers = [number(c) for c in filled]
        if None not in numbers:
            assert numbers == sorted(numbers, reverse=reverse), where
    if None in map(number, ascending):   # text: the browser collates; the directions mirror each other
        assert descending == ascending[::-1], where


@pytest.fixture(scope="module")
def combined_page(smoke_results, tmp_path_factory) -> tuple[str, PageReport]:
    output = tmp_path_factory.mktemp("browser") / "report"
    (path,) = build_report(smoke_results, ["q1", "q3"], profile=PROFILE, formats=("html",), output=output)
    return path.read_text(encoding="utf-8"), inspect_page(path, click_sort=True)


def test_combined_report_loads_whole_and_offline(combined_page):
    html, report = combined_page
    assert report.problems() == []
    assert report.images_total == html.count("<img ") > 0     # every figure there, and decoded
    assert report.toc_links == html.count('href="#') >= 2       # the table of contents, every link landing
    assert report.screenshot_stddev > 10


def test_combined_report_trial_tables_sort_by_click_and_keyboard(combined_page):
    html, report = combined_page
    # The script went in as written: autoescape leaves an include alone.
    assert (templates_dir() / "sortable.js").read_text(encoding="utf-8").strip() in html
    assert report.sortable_tables == html.count('<table class="trials sortable">') > 0
    assert len(report.sorts) == sum(len(re.findall("<th>", t)) for t in
                                    re.findall(r'<table class="trials sortable">.*?</thead>', html, re.S))
    for result in report.sorts:
        check_sort_mechanics(result)
        check_order(result)
    # The smoke tables have columns whose order a click really changes.
    assert any(r.steps[0].rows != r.steps[1].rows for r in report.sorts)


def test_sortable_js_sorts_numbers_as_numbers(tmp_path):
    columns = {   # stored order -> ascending order (descending: the filled ones reversed, "—" still last)
        "trial": (["10", "9", "100", "2", DASH], ["2", "9", "10", "100", DASH]),
        "lr": (["1e-3", "0.1", DASH, "0.0005", "1e-2"], ["0.0005", "1e-3", "1e-2", "0.1", DASH]),
        "val acc. (%)": (["91.37 (diverged)", "9.50", DASH, "100.00", "12.30"],
                         ["9.50", "12.30", "91.37 (diverged)", "100.00", DASH]),
        "train time": (["12.3 s", "1,234.5 s", "9.0 s", DASH, "0.4 s"], ["0.4 s", "9.0 s", "12.3 s", "1,234.5 s", DASH]),
        "activation": (["sigmoid", "relu", DASH, "tanh", "elu"], ["elu", "relu", "sigmoid", "tanh", DASH]),
        "kernels": (["32, 64", "8, 16", "100, 2", "16, 32", DASH], ["8, 16", "16, 32", "32, 64", "100, 2", DASH]),
    }
    headers = list(columns)
    rows = [{"cells": [columns[h][0][i] for h in headers], "diverged": i == 0} for i in range(5)]
    path = page(tmp_path, "<p>Trials</p>{{ m.trial_table(t) }}", t={"headers": headers, "rows": rows, "shared": [], "notes": []})

    report = inspect_page(path, click_sort=True)

    assert report.problems() == [] and report.sortable_tables == 1
    assert [r.header for r in report.sorts] == headers
    assert report.sorts[0].before == columns["trial"][0]   # later columns start where the last left off
    for result in report.sorts:
        stored, ascending = columns[result.header]
        check_sort_mechanics(result)
        assert result.steps[0].column == ascending, result.header
        assert result.steps[1].column == ascending[-2::-1] + [DASH], result.header


def test_sortable_js_is_quiet_where_there_is_nothing_to_sort(tmp_path):
    path = page(tmp_path, '<p>No trial table here.</p><table class="sortable"><tr><td>1</td></tr></table>'
                          '<table class="sortable"><thead></thead><tbody></tbody></table>')
    report = inspect_page(path, click_sort=True)
    assert report.console_errors == [] and report.sorts == []
    assert report.sortable_tables == 2


def test_the_harness_reports_a_broken_page(tmp_path):
    """Each problem inspect_page looks for, planted once: it must find all of them."""
    path = tmp_path / "broken.html"
    path.write_text('<!DOCTYPE html><html><body><h1 id="here">A broken page</h1>'
                    '<img src="missing.png" alt="m"><img src="http://example.invalid/x.png" alt="h">'
                    '<img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7" alt="ok">'
                    '<a href="#here">fine</a> <a href="#nowhere">broken</a>'
                    '<script>console.error("x"); undefinedFunction();</script></body></html>', encoding="utf-8")

    report = inspect_page(path)

    assert report.images_total == 3
    assert report.images_broken == ["missing.png", "http://example.invalid/x.png"]
    assert report.toc_links == 2 and report.broken_links == ["#nowhere"]
    assert report.network_requests == ["http://example.invalid/x.png"]   # attempted, though it failed
    errors = "\n".join(report.console_errors)
    assert "console.error: x" in errors
    assert "undefinedFunction is not defined" in errors                  # Runtime.exceptionThrown
    assert "missing.png" in errors                                       # Log.entryAdded: the failed load
    assert len(report.problems()) >= 6


def test_the_harness_sees_a_blank_page(tmp_path):
    path = tmp_path / "blank.html"
    path.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    report = inspect_page(path)
    assert report.screenshot_stddev < 1
    assert report.problems() == [f"screenshot looks blank (grey-level stddev {report.screenshot_stddev:.2f})"]
