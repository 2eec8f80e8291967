"""``<results>/index.html``: every question, what state its stored runs are in, and links.

``write_index(results_dir)`` reads run.json and the sections' summary.json files only (no CSV,
no figures, no Keras), so ``python -m dlcv_keras.run`` and ``python -m dlcv_keras.report`` can
rewrite it after every run in well under a second. One row per question and stored run
(profile, or profile/implementation); a question with none gets a "not run" row with the
command that runs it. A run.json that cannot be read is a row saying so, never an error.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any, Mapping

from dlcv_keras.questions import QUESTIONS
from dlcv_keras.questions.assignments import ASSIGNMENTS, questions_of
from dlcv_keras.report import default_output, stored_runs
from dlcv_keras.report.context import (evaluation_of, implementation_key, implementation_label, other_dataset,
                                       read_run, seed_dataset, stale_note)
from dlcv_keras.report.format import DASH, as_number, fmt, fmt_seconds, pct, read_json, summary_or
from dlcv_keras.report.verdicts import index_words, read_lessons
from dlcv_keras.report.writeup import writeup_path
from dlcv_keras.results import ResultsStore, atomic_write_text
from dlcv_keras.settings import PROFILES

__all__ = ["index_context", "write_index", "refresh_index", "INDEX_NAME"]

INDEX_NAME = "index.html"
STATUSES = ("complete", "stale", "partial", "unreadable", "not run")


def index_context(results_dir: Path) -> dict[str, Any]:
    """The plain dict ``index.html.jinja2`` renders (nothing written)."""
    results_dir = Path(results_dir)
    stored = stored_runs(results_dir)
    groups = []
    for assignment in ASSIGNMENTS.values():
        rows = []
        for question in questions_of(assignment.name):
            runs = sorted(stored.get(question, []), key=_run_order)
            rows += [_run_row(results_dir, question, run, assignment.name) for run in runs] or [_not_run_row(question)]
        groups.append({"name": assignment.name, "course": assignment.course, "title": assignment.title,
                       "seed_file": assignment.seed_file, "rows": rows})
    counts = {s: sum(row["status"] == s for g in groups for row in g["rows"]) for s in STATUSES}
    return {"title": "dlcv_keras: results overview", "groups": groups,
            "counts": [{"status": s, "count": n} for s, n in counts.items() if n],
            "written": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def write_index(results_dir: Path) -> Path:
    """Render ``<results>/index.html`` from the store and write it atomically; returns its path."""
    from dlcv_keras.report.render import render_html

    results_dir = Path(results_dir)
    path = results_dir / INDEX_NAME
    atomic_write_text(path, render_html("index.html.jinja2", index_context(results_dir)))
    return path


def refresh_index(results_dir: Path) -> Path | None:
    """``write_index`` for the run and report commands: the overview is a convenience, so a failure
    to write it is one warning line, never a failed run or report."""
    try:
        return write_index(results_dir)
    except Exception as error:  # noqa: BLE001  (whatever went wrong, the run's own results stand)
        message = " ".join(str(error).split())
        print(f"warning: could not update {Path(results_dir) / INDEX_NAME}: {type(error).__name__}: {message}",
              file=sys.stderr)
        return None


# -- rows ------------------------------------------------------------------------------------
def _run_order(run: str) -> tuple:
    """smoke, quick, full (then any other profile by name); a profile's default run before its implementations."""
    profile, _, implementation = run.partition("/")
    rank = PROFILES.index(profile) if profile in PROFILES else len(PROFILES)
    return rank, profile, implementation


def _not_run_row(question: str) -> dict[str, Any]:
    return {**_blank_row(question), "status": "not run", "command": f"python -m dlcv_keras.run {question}"}


def _blank_row(question: str) -> dict[str, Any]:
    return {"question": question, "title": QUESTIONS[question].title, "implementation": None, "profile": DASH,
            "status": "", "detail": None, "note": None, "headline": DASH, "lessons": DASH, "dataset": DASH, "dataset_note": None,
            "wall_time": DASH, "finished": DASH, "report": [], "writeup": [], "command": None}


def _run_row(results_dir: Path, question: str, run_key: str, assignment: str) -> dict[str, Any]:
    profile, _, implementation = run_key.partition("/")
    store = ResultsStore(results_dir, question, profile, implementation=implementation or None)
    row = {**_blank_row(question), "profile": profile,
           "report": _links(default_output(results_dir, [question], profile), results_dir),
           "writeup": _links(writeup_path(results_dir, assignment, profile), results_dir)}
    try:
        run = read_run(store)
        summaries = _section_summaries(store, run)
        status, detail, note = _status(run, summaries)
        headline = _headline(store, run, summaries)
        dataset = run.get("dataset") if isinstance(run.get("dataset"), Mapping) else {}
    # Bad JSON, another schema version, a field of the wrong type: this row says so, the page stands.
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as error:
        return {**row, "status": "unreadable", "detail": (store.root / "run.json").relative_to(results_dir).as_posix(),
                "note": " ".join(str(error).split()) or type(error).__name__}
    return {**row, "status": status, "detail": detail, "note": note, "headline": headline,
            "lessons": _lessons_cell(store, run),
            "implementation": implementation_label(implementation_key(store, run)) if implementation else None,
            "dataset": fmt(dataset.get("name")), "dataset_note": dataset.get("fallback_banner") or None,
            "wall_time": fmt_seconds(run.get("wall_seconds")), "finished": _when(run.get("finished"))}


def _lessons_cell(store: ResultsStore, run: Mapping[str, Any]) -> str:
    """The lessons' verdict counts; a lessons.json that cannot be read says so in this cell only."""
    try:
        return index_words(read_lessons(store, run))
    except ValueError as error:
        return f"unreadable: {' '.join(str(error).split())}"


def _section_summaries(store: ResultsStore, run: Mapping[str, Any]) -> dict[str, Mapping[str, Any] | None]:
    """Each section's experiment -> its summary.json (None when not stored), in section order."""
    sections = run.get("sections")
    if not isinstance(sections, list):
        raise ValueError(f"{store.root / 'run.json'} has no \"sections\" list")
    found: dict[str, Mapping[str, Any] | None] = {}
    for section in sections:
        name = section.get("experiment") if isinstance(section, Mapping) else None
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ValueError(f"{store.root / 'run.json'} has a section naming no valid experiment: {section!r}")
        relative = f"experiments/{name}/summary.json"
        summary = read_json(store, relative) if (store.root / relative).is_file() else None
        if summary is not None and not isinstance(summary, Mapping):
            raise ValueError(f"{store.root / relative} must hold a JSON object")
        found[name] = summary
    return found


def _status(run: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any] | None]) -> tuple[str, Any, Any]:
    """("complete" | "stale" | "partial", a few words shown under it, the full reason for its tooltip)."""
    if run.get("status") != "complete":
        status = fmt(run.get("status"))
        return "partial", status, f"run.json status: {status}; run the same command again to finish it."
    for name, summary in summaries.items():
        if summary is None:
            return ("stale", f"{name}: not stored",
                    f"No stored summary for {name}; run the same command again to redo it.")
        note = stale_note(run, summary)
        if note:
            return "stale", f"{name}: earlier run", f"{name}: {note}"
    return "complete", None, None


def _headline(store: ResultsStore, run: Mapping[str, Any], summaries: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The run's main accuracy beside the seed's: its evaluation's test accuracy, else the last section
    with a test accuracy, else the last run comparison's best test accuracy, else the last search's best
    val accuracy. Only this run's summaries count."""
    found = None
    experiment, summary = evaluation_of(store, run)
    if experiment and summary.get("test_accuracy") is not None:
        found = ("test", experiment, summary["test_accuracy"])
    current = [(name, s) for name, s in reversed(list(summaries.items())) if s is not None and not stale_note(run, s)]
    # a run comparison's best run (q8, q14, q17) counts as a test accuracy, before a search's val
    for label, key in (("test", "test_accuracy"), ("best test", "best_test_accuracy"),
                       ("best val", "best_val_accuracy")):
        if found is None:
            found = next(((label, name, s[key]) for name, s in current if s.get(key) is not None), None)
    if found is None:
        return DASH
    label, experiment, value = found
    text = f"{label} {pct(as_number(value))} %"
    if other_dataset(run, store.question):     # another dataset's number is no reference; a fallback's is,
        return f"{text} (seed ran on {seed_dataset(run, store.question)})"   # as in the write-ups
    reference = (run.get("reference") or {}).get(experiment) or {}
    seed_key = "val_accuracy" if label == "best val" else "test_accuracy"
    seed = as_number(summary_or(reference, seed_key, reference.get("rows") or []))
    return f"{text} (seed {pct(seed)} %)" if seed is not None else text


def _links(base: Path, results_dir: Path) -> list[dict[str, str]]:
    """``base``.html and ``base``.pdf where they exist, as hrefs relative to the results folder."""
    found = []
    for suffix in ("html", "pdf"):
        path = base.with_name(f"{base.name}.{suffix}")
        if path.is_file():
            found.append({"label": suffix.upper(), "href": path.relative_to(results_dir).as_posix()})
    return found


def _when(stamp: Any) -> str:
    """run.json's ISO time as "2026-11-23 13:00 UTC"; anything else as stored."""
    try:
        when = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return fmt(stamp)
    if when.utcoffset() is not None:
        when = when.astimezone(dt.timezone.utc)
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%Y-%m-%d %H:%M")
