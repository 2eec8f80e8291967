"""results/index.html (report/index.py) on the real smoke runs: one row per question and stored run,
its status, its headline accuracy beside the seed's, and links that lead somewhere.

Every change to the store is made on a copy (real_runs.copy_results), the way the code writes it.
Expected numbers are read from the stored files and formatted with the report's conventions
restated in real_runs, never taken from the index's own context.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dlcv_keras.questions import QUESTIONS
from dlcv_keras.questions.assignments import ASSIGNMENTS, assignment_of, questions_of
from dlcv_keras.report import stored_runs
from dlcv_keras.report.__main__ import main as report_main
from dlcv_keras.report.index import refresh_index, write_index
from real_runs import DASH, PROFILE, REPO, child_env, copy_results, pct, store, text_of

SEED_DIR = Path("/work/shared/seeds")


def rows_of(html: str) -> list[str]:
    """The visible text of each table row of the index (header rows left out)."""
    return [text_of(row).strip() for row in re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", html, flags=re.S)]


def row_of(html: str, question: str, implementation: str | None = None) -> str:
    """The row of ``question``'s smoke run (its default run, or the one of ``--impl implementation``)."""
    found = [row for row in rows_of(html) if row.startswith(f"{question} ")
             and (f"--impl {implementation}" in row if implementation else "--impl" not in row)]
    assert len(found) == 1, (question, implementation, found)
    return found[0]


def headline_of(run_json: dict, run_store) -> tuple[str, dict]:
    """What the index should show, restated: the "best" section's evaluation test accuracy, else the last
    section summary holding a test accuracy, else a best val accuracy; with the reference of that experiment."""
    summaries = [(s["experiment"], json.loads((run_store.experiment_dir(s["experiment"]) / "summary.json").read_text()))
                 for s in run_json["sections"]]
    best = [name for name, summary in summaries if summary.get("kind") == "evaluation"
            and any(s["template"] == "best" and s["experiment"] == name for s in run_json["sections"])]
    found = [("test", name, dict(summaries)[name]["test_accuracy"]) for name in best]
    found += [("test", name, s["test_accuracy"]) for name, s in reversed(summaries) if "test_accuracy" in s]
    found += [("best val", name, s["best_val_accuracy"]) for name, s in reversed(summaries) if "best_val_accuracy" in s]
    if not found:
        return DASH, {}
    label, name, value = found[0]
    return f"{label} {pct(value)} %", run_json["reference"].get(name) or {}


@pytest.fixture(scope="module")
def copied(smoke_results, tmp_path_factory) -> Path:
    """A copy of the smoke runs with its index written (the tests below that change files make their own)."""
    results = copy_results(smoke_results, tmp_path_factory.mktemp("index") / "results")
    write_index(results)
    return results


def fresh_copy(smoke_results, tmp_path) -> Path:
    return copy_results(smoke_results, tmp_path / "results")


# -- the catalogue of assignments -----------------------------------------------------------------
def test_every_question_belongs_to_the_assignment_of_its_seed_file_in_catalogue_order():
    listed = [q for name in ASSIGNMENTS for q in questions_of(name)]
    assert listed == list(QUESTIONS)
    for name, assignment in ASSIGNMENTS.items():
        for q in questions_of(name):
            assert QUESTIONS[q].seed_writeup.startswith(assignment.seed_file) and assignment_of(q) == name


def test_assignment_courses_are_the_seed_files_own_headings():
    if not SEED_DIR.is_dir():
        pytest.skip(f"no seed write-ups in {SEED_DIR}")
    for assignment in ASSIGNMENTS.values():
        opening = " ".join((SEED_DIR / assignment.seed_file).read_text(encoding="utf-8")[:600].split()).lower()
        code = assignment.course.split()[0].lower()          # "ds-265", "hlcv", "ell-793", "deep", "ift6135-h2019"
        assert code in opening, (assignment.name, opening[:200])


# -- rows -------------------------------------------------------------------------------------------
def test_rows_follow_the_catalogue_grouped_by_assignment(copied):
    html = (copied / "index.html").read_text(encoding="utf-8")
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert [h.split(":")[0] for h in headings] == list(ASSIGNMENTS)
    order = list(dict.fromkeys(row.split()[0] for row in rows_of(html)))
    assert order == list(QUESTIONS)
    # each question's rows sit under its own assignment's heading
    for name in ASSIGNMENTS:
        part = html.split(f'id="{name}"', 1)[1].split("<section", 1)[0]
        assert {row.split()[0] for row in rows_of(part)} == set(questions_of(name))


def test_each_stored_run_is_complete_with_its_headline_number(copied):
    html = (copied / "index.html").read_text(encoding="utf-8")
    runs = stored_runs(copied)
    assert {q for q in runs} == {"q1", "q2", "q3", "q4", "q5", "q6"} and runs["q3"] == [PROFILE, f"{PROFILE}/scratch"]
    for question, found in runs.items():
        for key in found:
            implementation = key.partition("/")[2] or None
            run_store = store(copied, question, implementation)
            run_json = run_store.read_json("run.json")
            row = row_of(html, question, implementation)
            headline, reference = headline_of(run_json, run_store)
            assert f" {PROFILE} " in row and " complete " in row, row
            assert headline in row, (headline, row)
            assert run_json["dataset"]["name"] in row
            assert f"{run_json['wall_seconds']:.1f} s" in row
            assert run_json["finished"][:10] in row            # the date it finished
            if question in ("q2", "q4", "q5", "q6"):          # no accuracy of their own: a dash, no seed
                assert headline == DASH and "seed" not in row.split(" complete ", 1)[1]


def test_a_run_on_another_dataset_shows_no_seed_number_as_its_reference(copied):
    """q1 ran with --dataset digits: the seed's MNIST numbers are no yardstick. q3 asked for MNIST and fell
    back to digits: compared with the seed as in the write-ups, where the fallback is named as a cause."""
    html = (copied / "index.html").read_text(encoding="utf-8")
    for question, implementation in (("q1", None), ("q3", None), ("q3", "scratch")):
        run_store = store(copied, question, implementation)
        run_json = run_store.read_json("run.json")
        assert run_json["dataset"]["name"] == "digits"
        headline, reference = headline_of(run_json, run_store)
        row = row_of(html, question, implementation)
        if question == "q1":
            assert f"{headline} (seed ran on mnist)" in row
            assert pct(reference["test_accuracy"]) not in row
        else:
            assert f"{headline} (seed {pct(reference['test_accuracy'])} %)" in row


def test_a_run_on_the_question_s_own_data_shows_the_seed_number_beside_ours(smoke_results, tmp_path):
    """q1's run.json as a run on MNIST would write it; then with fewer sections, down to a search only."""
    results = fresh_copy(smoke_results, tmp_path)
    q1 = store(results, "q1")
    run = q1.read_json("run.json")
    run["dataset"].update(name="mnist", requested="mnist")
    best = q1.read_json("experiments/best/summary.json")
    expected = f"test {pct(best['test_accuracy'])} % (seed {pct(run['reference']['best']['test_accuracy'])} %)"
    cases = [(run["sections"], expected)]
    # no evaluation: the last section with a test accuracy (scikit-learn's), beside the seed's
    without_best = [s for s in run["sections"] if s["experiment"] != "best"]
    sklearn = q1.read_json("experiments/sklearn/summary.json")
    cases.append((without_best, f"test {pct(sklearn['test_accuracy'])} % "
                                f"(seed {pct(run['reference']['sklearn']['test_accuracy'])} %)"))
    # searches only: the last one's best val accuracy; full_grid's seed is the best of its reference rows
    grid_only = [s for s in without_best if s["experiment"] in ("base", "lr_batch", "full_grid")]
    grid = q1.read_json("experiments/full_grid/summary.json")
    seed = max(row["val_accuracy"] for row in run["reference"]["full_grid"]["rows"])
    cases.append((grid_only, f"best val {pct(grid['best_val_accuracy'])} % (seed {pct(seed)} %)"))
    for sections, headline in cases:
        q1.write_json("run.json", {**run, "sections": sections})
        if not any(s["experiment"] == "best" for s in sections):
            (q1.experiment_dir("best") / "summary.json").unlink(missing_ok=True)
        row = row_of(write_index(results).read_text(encoding="utf-8"), "q1")
        assert headline in row and " complete " in row, (headline, row)


def test_questions_without_a_stored_run_show_the_command_that_runs_them(copied):
    html = (copied / "index.html").read_text(encoding="utf-8")
    missing = [q for q in QUESTIONS if q not in stored_runs(copied)]
    assert missing == [f"q{i}" for i in range(7, 19)]
    for question in missing:
        row = row_of(html, question)
        assert " not run " in row and f"python -m dlcv_keras.run {question}" in row, row
        assert "no report yet" in row


# -- statuses ---------------------------------------------------------------------------------------
def test_a_summary_written_by_another_run_makes_the_row_stale(smoke_results, tmp_path):
    results = fresh_copy(smoke_results, tmp_path)
    q1 = store(results, "q1")
    summary = q1.read_json("experiments/lr_batch/summary.json")
    q1.write_json("experiments/lr_batch/summary.json", {**summary, "run_id": "0123456789ab"})   # an earlier run's
    html = write_index(results).read_text(encoding="utf-8")
    row = row_of(html, "q1")
    assert " stale " in row and "lr_batch" in row and " complete " not in row, row
    assert "0123456789ab" in html                            # the tooltip says which run wrote it
    assert " complete " in row_of(html, "q2")


def test_a_section_with_no_stored_summary_makes_the_row_stale(smoke_results, tmp_path):
    results = fresh_copy(smoke_results, tmp_path)
    (store(results, "q6").experiment_dir("train") / "summary.json").unlink()
    row = row_of(write_index(results).read_text(encoding="utf-8"), "q6")
    assert " stale " in row and "train" in row, row


@pytest.mark.parametrize("status", ["interrupted", "failed", "running"])
def test_a_run_that_did_not_finish_is_partial_and_says_why(smoke_results, tmp_path, status):
    results = fresh_copy(smoke_results, tmp_path)
    q3 = store(results, "q3", "scratch")
    q3.write_json("run.json", {**q3.read_json("run.json"), "status": status, "finished": None, "wall_seconds": None})
    html = write_index(results).read_text(encoding="utf-8")
    row = row_of(html, "q3", "scratch")
    assert f" partial {status} " in row, row
    assert " complete " in row_of(html, "q3")                # the default implementation is not affected


@pytest.mark.parametrize("damage", ["{\"schema_version\": 1, \"status\": ", "[1, 2]", "{\"schema_version\": 99}",
                                    "{\"schema_version\": 1, \"status\": \"complete\", \"sections\": 3}"])
def test_an_unreadable_run_json_is_a_row_saying_so_not_an_error(smoke_results, tmp_path, damage):
    results = fresh_copy(smoke_results, tmp_path)
    (store(results, "q4").root / "run.json").write_text(damage, encoding="utf-8")
    html = write_index(results).read_text(encoding="utf-8")
    row = row_of(html, "q4")
    assert " unreadable q4/smoke/run.json " in row, row
    assert " complete " in row_of(html, "q5")


# -- links --------------------------------------------------------------------------------------------
def test_links_are_relative_and_lead_to_files_that_exist(smoke_results, tmp_path, capsys):
    """`python -m dlcv_keras.report q2` rewrites the index after writing its report; a write-up links when it exists."""
    results = fresh_copy(smoke_results, tmp_path)
    writeup = results / "writeups" / f"a2-{PROFILE}.html"   # as the write-up command names them
    writeup.parent.mkdir()
    writeup.write_text("<html></html>", encoding="utf-8")
    assert report_main(["q2", "--profile", PROFILE, "--results", str(results)]) == 0
    assert capsys.readouterr().out.split() == [str(results / "q2" / PROFILE / "report.html")]
    html = (results / "index.html").read_text(encoding="utf-8")
    hrefs = re.findall(r"href=\"([^\"]*)\"", html)
    assert f"q2/{PROFILE}/report.html" in hrefs and f"writeups/a2-{PROFILE}.html" in hrefs
    for href in hrefs:
        assert not re.match(r"^(/|[a-z]+:)", href), href     # relative: the folder can move as a whole
        assert (results / href).is_file(), href
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "@import" not in html
    assert ("no report yet" in row_of(html, "q1")) == (not (results / "q1" / PROFILE / "report.html").exists())
    assert "no write-up yet" in row_of(html, "q1")          # a1 has no write-up in this folder
    assert html.count(f'href="writeups/a2-{PROFILE}.html"') == 1      # q6's row: a2's only stored run


def test_a_failure_to_write_the_index_is_one_warning_line(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    assert refresh_index(blocker) is None
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: could not update") and str(blocker / "index.html") in err and "\n" not in err


def test_writing_the_index_never_loads_keras_or_plotting(copied):
    """The run command rewrites it after every question: it must stay a few JSON reads."""
    code = ("import sys; from pathlib import Path; from dlcv_keras.report.index import write_index; "
            f"write_index(Path({str(copied)!r})); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'matplotlib', "
            "'sklearn', 'weasyprint')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


# -- the run command keeps it current ----------------------------------------------------------------
def test_a_run_rewrites_the_index_with_every_stored_question(smoke_results, tmp_path):
    results = copy_results(smoke_results, tmp_path / "results", "q1", "q2")
    done = subprocess.run([sys.executable, "-m", "dlcv_keras.run", "q6", "--profile", PROFILE, "--results",
                           str(results), "-q", "--report", "none"], cwd=REPO, env=child_env(tmp_path, None),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "warning" not in done.stderr
    html = (results / "index.html").read_text(encoding="utf-8")
    q6 = store(results, "q6").read_json("run.json")
    row = row_of(html, "q6")
    assert " complete " in row and f"{q6['wall_seconds']:.1f} s" in row, row
    assert " complete " in row_of(html, "q1") and " not run " in row_of(html, "q3")
