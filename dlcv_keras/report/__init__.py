"""Write-ups from stored results: ``build_report(results_dir, ["q1", "q3"], formats=("html", "pdf"))``.

Reads only the results store (docs/results-store.md); never trains and never imports
keras, so a report can be rebuilt from ``results/`` alone. HTML is one self-contained
file (CSS inlined, figures as ``data:`` URIs); the PDF is WeasyPrint's rendering of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from dlcv_keras.results import ResultsStore, atomic_write_bytes, atomic_write_text
from dlcv_keras.validation import InvalidParameterError

__all__ = ["build_report", "report_context", "default_output", "FORMATS"]

FORMATS = ("html", "pdf")
_QUESTION = re.compile(r"q[0-9]+")
_PROFILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _check_questions(questions: Sequence[str]) -> list[str]:
    if isinstance(questions, str):
        questions = [questions]
    questions = list(questions)
    if not questions:
        raise InvalidParameterError("questions must be a non-empty list of names like 'q1', got []")
    for q in questions:
        if not isinstance(q, str) or not _QUESTION.fullmatch(q):
            raise InvalidParameterError(f"question must be a name like 'q1' or 'q13', got {q!r}")
    if len(set(questions)) != len(questions):
        raise InvalidParameterError(f"questions must not repeat, got {questions!r}")
    return questions


def _check_profile(profile: str) -> str:
    from dlcv_keras.settings import PROFILES

    if profile not in PROFILES:
        raise InvalidParameterError(f"profile must be one of {', '.join(map(repr, PROFILES))}, got {profile!r}")
    return profile


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(formats)
    if not formats:
        raise InvalidParameterError("formats must name at least one of 'html', 'pdf', got ()")
    for f in formats:
        if f not in FORMATS:
            raise InvalidParameterError(f"formats must hold only 'html' or 'pdf', got {f!r}")
    return tuple(f for f in FORMATS if f in formats)


def default_output(results_dir: Path, questions: Sequence[str], profile: str) -> Path:
    """``<results>/<q>/<profile>/report`` for one question, ``<results>/report-<profile>`` for several."""
    results_dir = Path(results_dir)
    if len(questions) == 1:
        return results_dir / questions[0] / profile / "report"
    return results_dir / f"report-{profile}"


def _known_templates() -> list[str]:
    from dlcv_keras.report.render import templates_dir

    folder = templates_dir() / "sections"
    return sorted(p.name[: -len(".html.jinja2")] for p in folder.glob("*.html.jinja2"))


def stored_runs(results_dir: Path) -> dict[str, list[str]]:
    """Question -> stored runs under ``results_dir``: profiles with a run.json, and
    ``<profile>/<implementation>`` for a second implementation's run (``quick/scratch``)."""
    results_dir = Path(results_dir)
    runs = [*results_dir.glob("q*/*/run.json"), *results_dir.glob("q*/*/*/run.json")]
    found: dict[str, list[str]] = {}
    for folders in sorted(run.parent.relative_to(results_dir).parts for run in runs):
        found.setdefault(folders[0], []).append("/".join(folders[1:]))
    return found


def question_stores(results_dir: Path, question: str, profile: str) -> tuple[list[ResultsStore], list[str]]:
    """Every stored implementation of ``question``: the default run (``<q>/<profile>/run.json``) first,
    then each subfolder of ``<q>/<profile>/`` that holds a run.json (``scratch``, ...), by name.

    A second implementation whose run did not complete (interrupted, failed, still running) is
    left out, so it cannot break the report of the first; the second list says which, and why.
    """
    default = ResultsStore(results_dir, question, profile)
    stores = [default] if default.exists() else []
    left_out = []
    if default.root.is_dir():
        for folder in sorted(default.root.iterdir()):
            if folder.is_dir() and _PROFILE.fullmatch(folder.name) and (folder / "run.json").is_file():
                store = ResultsStore(results_dir, question, profile, implementation=folder.name)
                status = _run_status(store)
                if stores and status != "complete":
                    left_out.append(f"{question} --impl {folder.name} is not shown: its run in {store.root} "
                                    f"is {status} (run the same command again to finish it)")
                else:
                    stores.append(store)
    return stores, left_out


def _run_status(store: ResultsStore) -> str:
    try:
        run = store.read_json("run.json")
    except (OSError, ValueError):
        return "unreadable"
    return str(run.get("status")) if isinstance(run, dict) else "unreadable"


def question_parts(stores: Sequence[ResultsStore], known: Sequence[str]) -> list[dict]:
    """One part per stored implementation of a question (``question_stores``), in order. With several,
    each is named, the last carries their comparison, and a banner they share is said once, on the first."""
    from dlcv_keras.report.context import compare_implementations, question_context

    parts = [question_context(store, known) for store in stores]
    if len(parts) > 1:
        for part in parts:
            part["show_implementation"] = True
            if part is not parts[0] and part["banner"] == parts[0]["banner"]:
                part["banner"] = None
        parts[-1]["comparison"] = compare_implementations(stores)
    return parts


def report_context(results_dir: Path, questions: Sequence[str], profile: str = "quick") -> dict:
    """The plain dict ``base.html.jinja2`` renders (no files written).

    ``questions`` holds one part per stored implementation of each question, in order; a
    question with several implementations has their comparison on its last part.
    """
    questions = _check_questions(questions)
    _check_profile(profile)
    results_dir = Path(results_dir)
    known = _known_templates()
    found_runs = {q: question_stores(results_dir, q, profile) for q in questions}
    stores = {q: found_runs[q][0] for q in questions}
    for q in questions:  # every question checked before any figure is drawn
        if not stores[q]:
            stored = stored_runs(results_dir)
            listing = ", ".join(f"{name} ({', '.join(profiles)})" for name, profiles in stored.items())
            raise InvalidParameterError(
                f"no stored results for {q} (profile {profile}) in {results_dir}; stored runs: "
                f"{listing or 'none'} (a run of `python -m dlcv_keras.run` makes them)")
    parts = [part for q in questions for part in question_parts(stores[q], known)]
    if len(questions) == 1:
        title = f"{parts[0]['question']}: {parts[0]['title']}"
        if len(parts) == 1 and parts[0]["show_implementation"]:    # one run, not the default implementation
            title += f" — {parts[0]['implementation_label']}"
    else:
        title = f"dlcv_keras write-up: {', '.join(questions)} (profile {profile})"
    # What is left out of the document is said at its top; a question's own banner (the digits
    # fallback) heads that question only, so each is said once.
    banners = [{"question": q, "text": note} for q in questions for note in found_runs[q][1]]
    return {"title": title, "profile": profile, "questions": parts, "banners": banners,
            "several": len(parts) > 1}


def build_report(results_dir: Path, questions: list[str], profile: str = "quick",
                 formats: tuple = ("html",), output: Path | None = None) -> list[Path]:
    """Render the write-up for ``questions`` and return the paths written.

    ``output`` is the target path; its suffix is replaced by ``.html`` / ``.pdf`` per
    format. Everything is rendered in memory first, then each file is written
    atomically, so an error never leaves a partial report behind.
    """
    from dlcv_keras.report.render import render_html

    formats = _check_formats(formats)
    questions = _check_questions(questions)
    context = report_context(results_dir, questions, profile)
    base = Path(output) if output is not None else default_output(results_dir, questions, profile)
    return write_rendered(base, render_html("base.html.jinja2", context), formats, results_dir)


def write_rendered(base: Path, html: str, formats: tuple[str, ...], results_dir: Path) -> list[Path]:
    """Write ``html`` as ``base``.html and/or its PDF rendering as ``base``.pdf, each atomically, after
    both are rendered. The PDF embeds nothing from outside ``results_dir`` (render.pdf_bytes)."""
    from dlcv_keras.report.render import pdf_bytes

    base = Path(base)
    if base.suffix.lower() in (".html", ".htm", ".pdf"):
        base = base.with_suffix("")
    rendered: list[tuple[Path, str | bytes]] = []
    if "html" in formats:
        rendered.append((base.with_name(base.name + ".html"), html))
    if "pdf" in formats:
        target = base.with_name(base.name + ".pdf")
        rendered.append((target, pdf_bytes(html, base_url=target.parent.resolve(), allowed_root=results_dir)))
    for path, data in rendered:
        if isinstance(data, str):
            atomic_write_text(path, data)
        else:
            atomic_write_bytes(path, data)
    return [path for path, _ in rendered]
