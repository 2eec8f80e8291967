"""Results store -> plain dict for the templates (pytest-html's ReportData idea).

``question_context(store)`` reads ``run.json`` and, for each entry of its "sections",
that experiment's files (docs/results-store.md), and hands them to the view of the
section's template: each experiment kind (dlcv_keras/experiments/) owns its views, so
this module only checks, dispatches and lays out the question's frame. Shared number
formatting and trial tables are in ``report.format``.

A summary written by an earlier run (its ``run_id`` differs from run.json's) is shown as
stale, never as current. A question may hold several implementations (q3 with Keras
layers and with hand-written numpy modules, ``--impl scratch``): each is a run of its own,
and ``compare_implementations`` sets them side by side when they saw the same data.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dlcv_keras.experiments import REQUIRED_FILES, VIEWS
from dlcv_keras.report.format import (  # noqa: F401  (fmt_sci, fmt_sig: re-exported for callers)
    DASH, as_number, fmt, fmt_sci, fmt_seconds, fmt_sig, hyperparameter_columns, id_width, is_diverged, pct,
    read_experiment, read_json, reference_match, thousands, trial_table, tuner_words, varying_columns)
from dlcv_keras.report.observe import STALE_WORDS, is_stale
from dlcv_keras.report.verdicts import read_lessons
from dlcv_keras.results import SCHEMA_VERSION, ResultsStore
from dlcv_keras.validation import InvalidParameterError


def _generic(store, section, experiment, reference, run=None) -> dict[str, Any]:
    """For a template this module has no builder for: its summary and trials, formatted."""
    summary = experiment["summary"]
    trials = experiment.get("trials") or []
    columns = hyperparameter_columns(trials)
    return {"summary": [{"name": k, "value": fmt(v)} for k, v in summary.items() if not isinstance(v, (dict, list))],
            "table": trial_table(trials, columns, reference.get("rows") or [], id_width(summary)) if trials else None}


# -- questions ----------------------------------------------------------------
def seed_dataset(run: Mapping[str, Any], question: str) -> str | None:
    """The dataset the seed's numbers were measured on: run.json's, else (runs stored before it was
    recorded) the question catalogue's."""
    if "seed_dataset" in run:
        return run["seed_dataset"]
    from dlcv_keras.questions import QUESTIONS

    return QUESTIONS[question].dataset if question in QUESTIONS else None


def other_dataset(run: Mapping[str, Any], question: str) -> str | None:
    """The dataset a run asked for (``--dataset``) when it is not the seed's, else None. A fallback
    (asked for MNIST, ran on digits) is not another dataset: it is compared, with the cause named."""
    dataset = run.get("dataset") or {}
    requested = dataset.get("requested") or dataset.get("name")
    seed = seed_dataset(run, question)
    return str(requested) if seed and requested and requested != seed else None


def read_run(store: ResultsStore) -> dict[str, Any]:
    run = read_json(store, "run.json")
    if not isinstance(run, dict):
        raise InvalidParameterError(f"{store.root / 'run.json'} must hold a JSON object")
    version = run.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidParameterError(
            f"{store.root / 'run.json'} has schema_version {version!r}; this report reads version {SCHEMA_VERSION}")
    return run


def check_section(store: ResultsStore, section: Any, known_templates: Sequence[str] = ()) -> dict[str, Any]:
    """A run.json "sections" entry with a known template and a stored experiment (cheap checks)."""
    if not isinstance(section, Mapping) or not section.get("template") or not section.get("experiment"):
        raise InvalidParameterError(
            f"each entry of \"sections\" in {store.root / 'run.json'} needs \"template\" and \"experiment\", got {section!r}")
    template = str(section["template"])
    section = {**section, "title": str(section.get("title") or section["experiment"])}
    if template not in VIEWS and template not in known_templates:
        raise InvalidParameterError(
            f"section template {template!r} in {store.root / 'run.json'} has no report_templates/sections/{template}.html.jinja2")
    for name in (section["experiment"], section.get("compare_with")):
        if name and isinstance(name, str) and not (store.experiment_dir(name) / "summary.json").is_file():
            raise InvalidParameterError(
                f"no stored result {store.experiment_dir(name) / 'summary.json'} (needed by section {section['title']!r})")
    if isinstance(section["experiment"], str):
        for filename in REQUIRED_FILES.get(template, ()):
            path = store.experiment_dir(section["experiment"]) / filename
            if not path.is_file():
                raise InvalidParameterError(f"no stored result {path} (needed by section {section['title']!r})")
    return section


def section_context(store: ResultsStore, run: Mapping[str, Any], section: Mapping[str, Any],
                    known_templates: Sequence[str] = ()) -> dict[str, Any]:
    section = check_section(store, section, known_templates)
    template = str(section["template"])
    experiment = read_experiment(store, section["experiment"], section["title"])
    stale = stale_note(run, experiment["summary"])
    # A run on another dataset than the seed's has no reference: the seed's numbers measure something else.
    # Nor has a stale section: its numbers are an earlier run's, compared with nothing of this run's.
    if other_dataset(run, store.question) or stale:
        run = {**run, "reference": {}}
    reference = (run.get("reference") or {}).get(section["experiment"]) or {}
    values = VIEWS.get(template, _generic)(store, section, experiment, reference, run)
    if stale:
        values = {**values, "observations": [STALE_WORDS]}
    return {"template": template, "title": section["title"], "experiment": section["experiment"],
            "kind": fmt(experiment["summary"].get("kind")), "stale": stale,
            "description": experiment["summary"].get("title") or "", "has_reference": bool(reference),
            "observations": [], **values}


def not_stored(store: ResultsStore, section: Any) -> bool:
    """A section whose experiment has no summary.json yet."""
    name = section.get("experiment") if isinstance(section, Mapping) else None
    return isinstance(name, str) and not (store.experiment_dir(name) / "summary.json").is_file()


def pending_section(section: Mapping[str, Any], run: Mapping[str, Any]) -> dict[str, Any]:
    """The place of an experiment an unfinished run has not stored yet."""
    return {"template": str(section.get("template")), "title": str(section.get("title") or section["experiment"]),
            "experiment": str(section["experiment"]), "stale": None, "description": "", "observations": [],
            "pending": (f"Not stored yet: the run's status is \"{fmt(run.get('status'))}\" and it has not stored this "
                        f"experiment; once no run of it is going on, the same command finishes it.")}


def stale_note(run: Mapping[str, Any], summary: Mapping[str, Any]) -> str | None:
    """Why a stored summary is not this run's (it was written by an earlier run with other
    settings, data or code, and this run has not redone it yet), or None when it is current."""
    current, written = run.get("run_id"), summary.get("run_id")
    if not is_stale(run, summary):
        return None
    return (f"Stale: these numbers were stored by an earlier run ({written or 'no run id'}), not by this run "
            f"({current}); run the same command again to redo them.")


def question_context(store: ResultsStore, known_templates: Sequence[str] = ()) -> dict[str, Any]:
    """Everything one question's part of the report shows, as plain values."""
    run = read_run(store)
    dataset = run.get("dataset") or {}
    environment = run.get("environment") or {}
    splits = dataset.get("splits") or {}
    sections = run.get("sections")
    if not isinstance(sections, list):
        raise InvalidParameterError(f"{store.root / 'run.json'} has no \"sections\" list")
    # A run still going, interrupted or failed shows what it stored; a complete one must hold everything.
    pending = [] if run.get("status") == "complete" else [s for s in sections if not_stored(store, s)]
    for section in sections:  # fail fast, before any figure is drawn
        if section not in pending:
            check_section(store, section, known_templates)
    implementation = implementation_key(store, run)
    other = other_dataset(run, store.question)
    return {
        "other_dataset": other,
        "other_dataset_note": (f"Ran on {other}, not on the seed's {seed_dataset(run, store.question)}: the seed's "
                               f"numbers measure another dataset, so they are not shown beside ours.") if other else None,
        "question": store.question,
        "anchor": "-".join([store.question, store.profile] + ([store.implementation] if store.implementation else [])),
        "implementation": implementation,
        "implementation_label": implementation_label(implementation),
        # report_context also names it when the question has several implementations
        "show_implementation": bool(store.implementation),
        "comparison": None,  # set on a question's last part when it has several implementations
        "title": str(run.get("title") or store.question) + (f" (run on {other})" if other else ""),
        "seed_writeup": fmt(run.get("seed_writeup")),
        "profile": fmt(run.get("profile", store.profile)),
        "tuner": tuner_words(run),
        "seed": fmt(run.get("seed")),
        "status": fmt(run.get("status")),
        "complete": run.get("status") == "complete",
        "started": fmt(run.get("started")),
        "finished": fmt(run.get("finished")),
        "wall_time": fmt_seconds(run.get("wall_seconds")),
        "lessons": read_lessons(store, run),
        "banner": dataset.get("fallback_banner") or None,
        "dataset": {
            "present": bool(dataset),
            "name": fmt(dataset.get("name")),
            "requested": fmt(dataset.get("requested")),
            "substituted": bool(dataset.get("requested")) and dataset.get("requested") != dataset.get("name"),
            "source": fmt(dataset.get("source")),
            "splits": [{"name": k, "size": thousands(v)} for k, v in splits.items()],
            "n_classes": len(dataset.get("class_names") or []) or DASH,
            "input_shape": fmt(dataset.get("input_shape")),
            "content_hash": fmt(dataset.get("content_hash")),
            "notes": [str(n) for n in (dataset.get("notes") or [])],
        },
        "environment": {
            "python": fmt(environment.get("python")),
            "platform": fmt(environment.get("platform")),
            "backend": fmt(environment.get("keras_backend")),
            "packages": [{"name": k, "version": fmt(v)} for k, v in (environment.get("packages") or {}).items()],
            "git_revision": fmt(environment.get("git_revision")),
        },
        "sections": [pending_section(s, run) if s in pending else section_context(store, run, s, known_templates)
                     for s in sections],
    }


# -- several implementations of one question -------------------------------------
IMPLEMENTATION_LABELS = {"keras": "Keras layers", "scratch": "hand-written numpy modules (--impl scratch)"}


def implementation_key(store: ResultsStore, run: Mapping[str, Any]) -> str:
    """"keras" for the default run (run.json may say so or not), else the subfolder's name."""
    if store.implementation:
        return str(store.implementation)
    return str(run.get("implementation") or "keras")


def implementation_label(key: str) -> str:
    return IMPLEMENTATION_LABELS.get(key) or f"{key} (--impl {key})"


def evaluation_of(store: ResultsStore, run: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The run's evaluation of its best setting: the "best" section's experiment, else the experiment
    named "best", else the last section whose summary kind is "evaluation"."""
    sections = [s for s in run.get("sections") or [] if isinstance(s, Mapping) and isinstance(s.get("experiment"), str)]
    candidates = [s["experiment"] for s in sections if s.get("template") == "best"] + ["best"]
    candidates += [s["experiment"] for s in reversed(sections)]
    for name in dict.fromkeys(candidates):
        if "/" in name or name.startswith(".") or not (store.experiment_dir(name) / "summary.json").is_file():
            continue
        summary = read_json(store, f"experiments/{name}/summary.json")
        if isinstance(summary, Mapping) and summary.get("kind") == "evaluation" and not stale_note(run, summary):
            return name, dict(summary)
    return None, {}


def _best_comparison(runs, labels) -> dict[str, Any]:
    found = [evaluation_of(store, run) for store, run in runs]
    first_name = next((name for name, _ in found if name), None)
    seed = ((runs[0][1].get("reference") or {}).get(first_name) or {}) if first_name else {}
    hp_names: list[str] = []
    for _, summary in found:
        hp_names.extend(k for k in summary.get("hyperparameters") or {} if k not in hp_names)
    seed_hp = seed.get("hyperparameters") or {}
    rows = [{"metric": "experiment", "cells": [fmt(name) for name, _ in found], "seed": DASH}]
    rows += [{"metric": n, "cells": [fmt((s.get("hyperparameters") or {}).get(n)) for _, s in found],
              "seed": fmt(seed_hp.get(n))} for n in hp_names]
    for split in ("train", "val", "test"):
        key = f"{split}_accuracy"
        rows.append({"metric": f"{split} accuracy (%)", "cells": [pct(as_number(s.get(key))) for _, s in found],
                     "seed": pct(as_number(seed.get(key)))})
    rows.append({"metric": "epochs run", "cells": [fmt(s.get("epochs_run")) for _, s in found],
                 "seed": fmt(seed.get("epochs_run"))})
    rows.append({"metric": "stop reason", "cells": [fmt(s.get("stop_reason")) for _, s in found],
                 "seed": fmt(seed.get("stop_reason"))})
    rows.append({"metric": "training time", "cells": [fmt_seconds(s.get("seconds")) for _, s in found], "seed": DASH})
    return {"headers": labels, "rows": rows, "found": any(name for name, _ in found)}


def _search_comparison(runs, labels, name: str, title: str) -> dict[str, Any] | None:
    """Val accuracy per setting of search ``name`` in each run that has it (None when fewer than two do)."""
    tables: list[list[Mapping[str, Any]] | None] = []
    for store, run in runs:
        path = store.experiment_dir(name) / "summary.json"
        summary = read_json(store, f"experiments/{name}/summary.json") if path.is_file() else None
        if isinstance(summary, Mapping) and summary.get("kind") == "search" and not stale_note(run, summary):
            tables.append(read_experiment(store, name, title).get("trials") or [])
        else:
            tables.append(None)
    present = [t for t in tables if t is not None]
    if len(present) < 2:
        return None
    common = [c for c in hyperparameter_columns(present[0]) if all(c in hyperparameter_columns(t) for t in present[1:])]
    everything = [row for t in present for row in t]
    shown = varying_columns(everything, common) or common
    settings: dict[tuple, str] = {}
    cells: dict[tuple, list[str]] = {}
    for i, trials in enumerate(tables):
        for row in trials or []:
            key = tuple(fmt(row.get(c)) for c in shown)
            settings.setdefault(key, ", ".join(f"{c}={fmt(row.get(c))}" for c in shown) or "(one setting)")
            values = cells.setdefault(key, [DASH] * len(tables))
            if values[i] == DASH:
                values[i] = pct(row.get("val_accuracy")) + (" (diverged)" if is_diverged(row) else "")
    reference_rows = ((runs[0][1].get("reference") or {}).get(name) or {}).get("rows") or []
    rows = []
    for key, setting in settings.items():
        seed = None
        if reference_rows:
            probe = next(row for t in present for row in t if tuple(fmt(row.get(c)) for c in shown) == key)
            ref = reference_match(probe, reference_rows, common)
            seed = pct(as_number(ref.get("val_accuracy"))) if ref else DASH
        rows.append({"setting": setting, "cells": cells[key], "seed": seed})
    return {"experiment": name, "title": title, "headers": labels, "rows": rows, "has_seed": bool(reference_rows)}


def compare_implementations(stores: Sequence[ResultsStore]) -> dict[str, Any]:
    """Implementations of one question side by side: best evaluation, and each shared search's val accuracy."""
    runs = [(store, read_run(store)) for store in stores]
    # On another dataset than the seed's, the seed's numbers are no reference here either.
    runs = [(store, {**run, "reference": {}} if other_dataset(run, store.question) else run) for store, run in runs]
    labels = [implementation_label(implementation_key(store, run)) for store, run in runs]
    titles: dict[str, str] = {}
    for _, run in runs:
        for section in run.get("sections") or []:
            if isinstance(section, Mapping) and isinstance(section.get("experiment"), str):
                titles.setdefault(section["experiment"], str(section.get("title") or section["experiment"]))
    searches = [table for name, title in titles.items()
                if "/" not in name and not name.startswith(".")
                and (table := _search_comparison(runs, labels, name, title)) is not None]
    first = stores[0]
    hashes = [(run.get("dataset") or {}).get("content_hash") for _, run in runs]
    mismatch = None
    if len(set(hashes)) > 1 or None in hashes:
        mismatch = ("Not compared: the implementations did not see the same data (dataset content hashes "
                    + ", ".join(f"{label} {fmt(h)}" for label, h in zip(labels, hashes))
                    + "). Run both with the same --dataset, --data-dir, profile and seed.")
    return {
        "anchor": f"{first.question}-{first.profile}-implementations",
        "question": first.question,
        "title": str(runs[0][1].get("title") or first.question),
        "labels": labels,
        "mismatch": mismatch,
        "best": _best_comparison(runs, labels) if mismatch is None else {"found": False, "rows": [], "headers": labels},
        "searches": searches if mismatch is None else [],
    }
