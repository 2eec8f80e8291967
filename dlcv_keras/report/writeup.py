"""Assignment write-ups: one document per seed assignment (a1 ... a5), from stored results only.

``build_writeup(results_dir, "a1", profile="quick", formats=("html", "pdf"))`` writes
``<results>/writeups/a1-quick.html`` (and ``.pdf``): a title page, a table of contents, one numbered
chapter per question in the seed's order (its sections, figures and tables numbered, each section
ending with its observations), questions not run listed with the command that runs them, and an
appendix with each run's provenance, the command lines that reproduce it, its search spaces and the
per-layer parameter tables too long for a chapter (a ResNet-18's 70 rows; the chapter shows them by part).
Like the per-question reports it reads only the results store and never trains.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
from pathlib import Path
from typing import Any, Mapping, Sequence

from dlcv_keras.questions import QUESTIONS
from dlcv_keras.questions.assignments import ASSIGNMENTS, get_assignment
from dlcv_keras.report.format import DASH, fmt, fmt_seconds, read_json, thousands, tuner_words, without_constant_columns
from dlcv_keras.results import ResultsStore
from dlcv_keras.validation import InvalidParameterError

__all__ = ["writeup_context", "build_writeup", "build_writeups", "writeup_path", "number_floats", "reproduce_command"]

# Options of a stored command line that do not change a number: how it printed and what it wrote after
# (the value: whether the option takes one).
_NOT_REPRODUCING = {"--report": True, "-q": False, "--quiet": False, "--fresh": False}


def writeup_path(results_dir: Path, assignment: str, profile: str) -> Path:
    """``<results>/writeups/<assignment>-<profile>`` (no suffix: .html and .pdf are put on it)."""
    return Path(results_dir) / "writeups" / f"{assignment}-{profile}"


def run_command(question: str, profile: str, results_dir: Path) -> str:
    """The command that runs a question not run yet, into the results folder the write-up reads."""
    words = ["python", "-m", "dlcv_keras.run", question] + ([] if profile == "quick" else ["--profile", profile])
    if Path(results_dir).resolve() != Path("results").resolve() or os.environ.get("DLCV_RESULTS_DIR"):
        words += ["--results", str(results_dir)]
    return shlex.join(words)


def reproduce_command(run: Mapping[str, Any], store: ResultsStore) -> str:
    """The command line that made this run, as the user can type it again.

    run.json records the process's arguments; a run started through ``python -m dlcv_keras.run``
    (directly, or as one of ``all``'s children) is given back as that command, less the options that
    only change what is printed or written after. A run started otherwise (from Python) is described
    by its recorded settings."""
    recorded = str((run.get("environment") or {}).get("command") or "")
    try:
        argv = shlex.split(recorded)
    except ValueError:
        argv = []
    if argv and re.search(r"(dlcv_keras[/\\.]run(\.py)?|[/\\]dlcv|^dlcv)$", argv[0]):   # -m, or the console script
        kept, words = [], iter(argv[1:])
        for arg in words:
            name = arg.split("=", 1)[0]
            if name not in _NOT_REPRODUCING:
                kept.append(arg)
            elif _NOT_REPRODUCING[name] and "=" not in arg:
                next(words, None)       # "--report none": its value goes with it
        return shlex.join(["python", "-m", "dlcv_keras.run", *kept])
    # Started from Python (not the command line): rebuilt from the settings run.json records.
    words = ["python", "-m", "dlcv_keras.run", store.question, "--profile", str(run.get("profile", store.profile))]
    if run.get("tuner") not in (None, "grid"):
        words += ["--tuner", str(run["tuner"])]
    if run.get("seed") not in (None, 0):
        words += ["--seed", str(run["seed"])]
    requested = (run.get("dataset") or {}).get("requested")
    if requested and requested != run.get("seed_dataset", requested):
        words += ["--dataset", str(requested)]
    if store.implementation:
        words += ["--impl", store.implementation]
    return shlex.join(words) + "  # rebuilt from run.json: the run was not started from the command line"


def _provenance(run: Mapping[str, Any]) -> list[dict[str, str]]:
    """What a reader needs to trust and redo one stored run, as (name, value) rows."""
    dataset = run.get("dataset") or {}
    environment = run.get("environment") or {}
    packages = environment.get("packages") or {}
    splits = dataset.get("splits") or {}
    rows = [
        ("status", f"{fmt(run.get('status'))}, finished {fmt(run.get('finished'))}, wall time "
                   f"{fmt_seconds(run.get('wall_seconds'))}"),
        ("profile, tuner, seed", f"{fmt(run.get('profile'))}, {tuner_words(run)}, {fmt(run.get('seed'))}"),
        ("dataset", fmt(dataset.get("name")) + (f" (asked for {dataset['requested']})"
                                                 if dataset.get("requested") not in (None, dataset.get("name")) else "")),
        ("source", fmt(dataset.get("source"))),
        ("content hash", fmt(dataset.get("content_hash"))),
        ("split sizes", ", ".join(f"{k} {thousands(v)}" for k, v in splits.items()) or DASH),
        ("versions", ", ".join([f"Python {fmt(environment.get('python'))}",
                                f"Keras backend {fmt(environment.get('keras_backend'))}"]
                               + [f"{name} {fmt(version)}" for name, version in packages.items()])),
        ("platform", fmt(environment.get("platform"))),
        ("git revision", fmt(environment.get("git_revision"))),
    ]
    if isinstance(environment.get("onednn"), Mapping):       # runs stored before it was recorded have none
        rows.append(("TensorFlow oneDNN", onednn_words(environment["onednn"])))
    notes = [str(n) for n in dataset.get("notes") or []]
    if notes:
        rows.append(("data notes", " ".join(notes)))
    return [{"name": name, "value": value} for name, value in rows]


ONEDNN_DECIDERS = {"dlcv_keras": "dlcv_keras's default: TensorFlow leaves it off on this CPU",
                   "user": "the user's TF_ENABLE_ONEDNN_OPTS", "tensorflow": "TensorFlow's default here"}


def onednn_words(state: Mapping[str, Any]) -> str:
    """run.json's environment.onednn in words: "on (dlcv_keras's default: ...)"."""
    on = {True: "on", False: "off"}.get(state.get("on"), "unknown")
    who = ONEDNN_DECIDERS.get(state.get("decided_by"))
    return f"{on} ({who})" if who else on


def _search_spaces(store: ResultsStore, run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every search the run stored: its title and the values it searched and fixed (summary.json)."""
    spaces = []
    for section in run.get("sections") or []:
        name = section.get("experiment") if isinstance(section, Mapping) else None
        if not isinstance(name, str) or not (store.experiment_dir(name) / "summary.json").is_file():
            continue
        summary = read_json(store, f"experiments/{name}/summary.json")
        if not isinstance(summary, Mapping) or summary.get("kind") != "search":
            continue
        rows = [{"name": k, "choices": ", ".join(fmt(v) for v in (vals if isinstance(vals, list) else [vals])),
                 "how": "searched"} for k, vals in (summary.get("space") or {}).items()]
        rows += [{"name": k, "choices": _range_words(span), "how": "range"} for k, span in (summary.get("ranges") or {}).items()]
        rows += [{"name": k, "choices": fmt(v), "how": "fixed"} for k, v in (summary.get("fixed") or {}).items()]
        # A one-trial search fixes everything: "fixed" is said once above its table, not in every row.
        table = without_constant_columns({"headers": ["hyperparameter", "values", "how"],
                                          "rows": [{"cells": [r["name"], r["choices"], r["how"]]} for r in rows]},
                                         noun="hyperparameter")
        spaces.append({"experiment": name, "title": str(section.get("title") or name), "tuner": fmt(summary.get("tuner")),
                       "trials": _count(summary.get("n_trials"), "trial"), "table": table})
    return spaces


def _layers_to_appendix(part: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-layer parameter tables a chapter shows by part (a ResNet's 70 layers: stem, stages, head),
    moved whole to the appendix; each section is told where its table went."""
    moved = []
    for section in part["sections"]:
        if not section.get("parameter_parts"):
            continue
        anchor = f"layers-{part['anchor']}-{section['experiment'].replace('/', '-')}"
        title = f"Every layer of the model of {section['number']} {section['title']}"
        section["layers_in_appendix"] = anchor
        moved.append({"anchor": anchor, "title": title, "rows": section["parameters"],
                      "total": section["total_params"]})
    return moved


def _count(n: Any, noun: str) -> str:
    return f"{fmt(n)} {noun}" + ("" if n == 1 else "s")


def _range_words(span: Any) -> str:
    if isinstance(span, Mapping):
        sampling = f", {span['sampling']} sampling" if span.get("sampling") else ""
        return f"{fmt(span.get('min', span.get('low')))} to {fmt(span.get('max', span.get('high')))}{sampling}"
    return fmt(span)


def writeup_context(results_dir: Path, assignment: str, profile: str = "quick", *,
                    today: dt.date | None = None) -> dict[str, Any]:
    """The plain dict ``writeup.html.jinja2`` renders (no files written)."""
    import dlcv_keras
    from dlcv_keras.report import _check_profile, _known_templates, question_parts, question_stores
    from dlcv_keras.report.context import read_run
    from dlcv_keras.report.verdicts import title_scoreboard

    chosen = get_assignment(assignment)
    _check_profile(profile)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise InvalidParameterError(f"no results folder {results_dir} (give --results, or run "
                                    f"`python -m dlcv_keras.run` first)")
    known = _known_templates()
    chapters, appendix, notices = [], [], []
    for number, question in enumerate(chosen.questions, 1):
        stores, left_out = question_stores(results_dir, question, profile)
        notices += left_out
        chapter = {"number": number, "question": question, "anchor": f"chapter-{question}",
                   "title": QUESTIONS[question].title, "not_run": not stores,
                   "command": run_command(question, profile, results_dir), "parts": []}
        if stores:
            parts = question_parts(stores, known)
            count = 0
            for part in parts:
                for section in part["sections"]:
                    count += 1
                    section["number"] = f"{number}.{count}"
            # Only the question's first implementation judges the lessons (pipeline.judge_lessons).
            chapter.update(parts=parts, title=parts[0]["title"],
                           lessons=next((part["lessons"] for part in parts if part["lessons"]), None))
            for store, part in zip(stores, parts):
                run = read_run(store)
                appendix.append({"question": question, "label": part["implementation_label"] if len(parts) > 1 else "",
                                 "provenance": _provenance(run), "command": reproduce_command(run, store),
                                 "spaces": _search_spaces(store, run), "layers": _layers_to_appendix(part)})
        chapters.append(chapter)
    run_count = sum(1 for c in chapters if not c["not_run"])
    return {
        "scoreboard": title_scoreboard(chapters),
        "title": f"{chosen.course}: {chosen.title}",
        "course": chosen.course, "assignment_title": chosen.title, "assignment": chosen.name,
        "seed_file": chosen.seed_file, "profile": profile, "version": dlcv_keras.__version__,
        "date": (today or dt.date.today()).isoformat(), "chapters": chapters, "appendix": appendix,
        "notices": notices, "run_count": run_count, "question_count": len(chapters),
    }


# -- numbering figures and tables ---------------------------------------------------------------
_FLOATS = re.compile(
    r'(?P<section><section class="part[^"]*")'
    r'|(?P<figure><figure>)'
    r'|(?P<figcaption><figcaption>)'
    r'|(?:<h4>(?P<heading>[^<]*)</h4>\s*)?<table(?P<attrs>[^>]*)>(?P<caption>\s*<caption>)?'
    r'|(?P<observations><h4>Observations</h4>)')


_CLOSE_FLOAT = re.compile(r'(<div class="table-float[^"]*">.*?</table>)', re.S)
_HEADER = re.compile(r"<th(\s[^>]*)?>([^<]*)</th>")   # a long header may break after "=", "_" or "/", never mid-word
_SHORT_CELL = re.compile(r"<td>(?=[^<]{1,14}</td>)")   # a number with its unit, a one- or two-word status
WIDE_COLUMNS = 11   # columns from which a table is set in a smaller type (writeup.css: table.wide)
LONG_ROWS = 50      # rows beyond which a table cannot fit a page: it may split (writeup.css: table.long)


def number_floats(html: str) -> str:
    """Number every figure and table of the rendered write-up in reading order ("Figure 3.", "Table 5.")
    and head each section's observations with the figures and tables they read.

    A table headed by an ``<h4>`` right above it takes the heading as its caption, so the PDF never
    leaves a heading at the foot of a page and its table on the next. Tables of class "meta" (the
    front matter's) are not numbered; tables of ``WIDE_COLUMNS`` columns or more get class "wide", of more
    than ``LONG_ROWS`` rows class "long", and a short cell class "nb" (never broken across lines)."""
    counts = {"figure": 0, "table": 0}
    in_section: dict[str, list[int]] = {"figure": [], "table": []}

    def replace(match: re.Match) -> str:
        if match.group("section"):
            in_section["figure"], in_section["table"] = [], []
            return match.group(0)
        if match.group("figure"):
            counts["figure"] += 1
            in_section["figure"].append(counts["figure"])
            return f'<figure id="figure-{counts["figure"]}">'
        if match.group("figcaption"):
            return f'<figcaption><span class="float-label">Figure {counts["figure"]}.</span> '
        if match.group("observations"):
            return f"<h4>Observations{_refs(in_section)}</h4>"
        attrs = match.group("attrs")
        if re.search(r'class="[^"]*\b(meta|scoreboard)\b', attrs):     # front matter: not a numbered table
            return match.group(0)
        counts["table"] += 1
        in_section["table"].append(counts["table"])
        label = f'<span class="float-label">Table {counts["table"]}.</span>'
        heading = (match.group("heading") or "").strip()
        title = f" {heading}" if heading else ""
        end = html.find("</table>", match.end())
        body = html[match.end():end if end >= 0 else len(html)]       # this table only
        first_row = body.split("</tr>", 1)[0]
        rows = body.count("<tr") - body.count("<thead")               # body rows: the header row left out
        columns = len(re.findall(r"<t[hd][\s>]", first_row))
        for name, applies in (("wide", columns >= WIDE_COLUMNS),
                              ("long", rows > LONG_ROWS)):
            if applies:
                attrs = (re.sub(r'class="', f'class="{name} ', attrs, count=1) if 'class="' in attrs
                         else f'{attrs} class="{name}"')
        # In a block of its own, so a table that fits a page moves whole with its caption (writeup.css).
        block = "table-float long" if rows > LONG_ROWS else "table-float"
        opening = f'<div class="{block}"><table id="table-{counts["table"]}"{attrs}>'
        if match.group("caption"):
            return f"{opening}<caption>{label}{title} "
        return f"{opening}<caption>{label}{title}</caption>"

    numbered = _CLOSE_FLOAT.sub(r"\1</div>", _FLOATS.sub(replace, html))
    numbered = _HEADER.sub(lambda m: f"<th{m.group(1) or ''}>" + re.sub(r"([=_/])", r"\1<wbr>", m.group(2)) + "</th>",
                           numbered)
    return _SHORT_CELL.sub('<td class="nb">', numbered)


def _refs(in_section: Mapping[str, Sequence[int]]) -> str:
    words = [_span("Figure", in_section["figure"]), _span("Table", in_section["table"])]
    words = [w for w in words if w]
    return f" (from {' and '.join(words)})" if words else ""


def _span(name: str, numbers: Sequence[int]) -> str:
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"{name} {numbers[0]}"
    return f"{name}s {numbers[0]}–{numbers[-1]}"


def build_writeup(results_dir: Path, assignment: str, profile: str = "quick", formats: tuple = ("html",),
                  output: Path | None = None, *, today: dt.date | None = None) -> list[Path]:
    """Render assignment ``assignment``'s write-up and return the paths written (atomically, after
    everything rendered, so an error never leaves half a write-up)."""
    from dlcv_keras.report import _check_formats, write_rendered
    from dlcv_keras.report.render import render_html

    formats = _check_formats(formats)
    context = writeup_context(results_dir, assignment, profile, today=today)
    html = number_floats(render_html("writeup.html.jinja2", context))
    base = Path(output) if output is not None else writeup_path(results_dir, assignment, profile)
    return write_rendered(base, html, formats, results_dir)


def build_writeups(results_dir: Path, assignments: Sequence[str], profile: str = "quick",
                   formats: tuple = ("html",), output: Path | None = None) -> list[Path]:
    """``build_writeup`` for each assignment, in order; several are built side by side, one process
    per core (drawing figures and laying out PDFs is CPU-bound, and the write-ups share nothing).
    The workers are spawned: a script calling this at top level needs ``if __name__ == "__main__":``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(len(assignments), cores)
    if workers < 2:
        return [path for name in assignments
                for path in build_writeup(results_dir, name, profile, formats, output)]
    # "spawn": a fresh interpreter per worker, never a fork of a process whose threads (a test runner's,
    # a notebook's Keras) may hold locks.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(build_writeup, results_dir, name, profile, formats, output) for name in assignments]
        return [path for job in jobs for path in job.result()]


def is_assignment(name: str) -> bool:
    """Whether a command-line name asks for write-ups ("a1", "all", "a9"), not question reports ("q1")."""
    return name == "all" or bool(re.fullmatch(r"a[0-9]+", name))


def check_assignments(names: Sequence[str]) -> list[str]:
    """``["a1", "a3"]`` or ``["all"]`` -> assignment names, in order; anything else is an error."""
    names = list(names)
    if names == ["all"]:
        return list(ASSIGNMENTS)
    for name in names:
        if name == "all":
            raise InvalidParameterError(f"'all' stands alone (it names the five write-ups), got {' '.join(names)}")
        if not is_assignment(name):
            raise InvalidParameterError(f"name write-ups (a1 ... a5, or all) or question reports (q1 q3), "
                                        f"not both: got {' '.join(names)}")
        get_assignment(name)
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"assignments must not repeat, got {names!r}")
    return names
