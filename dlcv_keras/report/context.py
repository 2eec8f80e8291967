"""Results store -> plain dict for the templates (pytest-html's ReportData idea).

``question_context(store)`` reads ``run.json`` and, for each entry of its "sections",
that experiment's files (docs/results-store.md), and returns strings and numbers
ready to print plus figures as ``data:`` URIs. Templates only lay them out.

Conventions:
- accuracies are fractions in the store and are printed as percent, 2 decimals;
- the seed write-up's number sits beside ours; "—" where the seed reports none;
- diverged trials (status "diverged", nan/inf losses) are listed with their losses
  and left out of every plot.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Sequence

from dlcv_keras.report import figures
from dlcv_keras.report.render import pct
from dlcv_keras.results import SCHEMA_VERSION, ResultsStore
from dlcv_keras.validation import InvalidParameterError

DASH = "—"
# trials.csv columns that are not hyperparameters (docs/results-store.md).
RESULT_COLUMNS = ("trial_id", "status", "epochs_run", "stop_reason", "loss", "accuracy", "val_loss",
                  "val_accuracy", "seconds", "test_loss", "test_accuracy")
ACCURACY_KEYS = ("accuracy", "train_accuracy", "val_accuracy", "test_accuracy")
ROW_METRIC_KEYS = ACCURACY_KEYS + ("loss", "val_loss", "test_loss", "epochs_run", "stop_reason", "seconds")


# -- formatting -----------------------------------------------------------------
def fmt(value: Any) -> str:
    """A hyperparameter or plain value: 0.01 -> "0.01", 1e-05 -> "1e-05", None -> "—"."""
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join("None" if v is None else fmt(v) for v in value) + ")"
    return str(value)


def fmt_loss(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, str):
        return value  # "nan" / "inf" as stored in JSON
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{value:.4f}"
    return str(value)


def fmt_seconds(value: Any) -> str:
    if not _finite(value):
        return DASH
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> Any:
    """Store JSON writes nan/inf as strings; give them back as floats."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _number(a), _number(b)
    if _finite(a) and _finite(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


# -- reading ------------------------------------------------------------------
def _read_json(store: ResultsStore, relative: str) -> Any:
    try:
        return store.read_json(relative)
    except FileNotFoundError as error:
        raise InvalidParameterError(str(error)) from None
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"{store.root / relative} is not valid JSON ({error.msg}, line {error.lineno})") from None


def _read_experiment(store: ResultsStore, name: str, section_title: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise InvalidParameterError(f"section {section_title!r} in {store.root / 'run.json'} names no valid experiment: {name!r}")
    try:
        return store.read_experiment(name)
    except FileNotFoundError as error:
        raise InvalidParameterError(f"{error} (needed by section {section_title!r})") from None
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"{store.experiment_dir(name)} holds invalid JSON ({error.msg}, line {error.lineno})") from None


def _require(experiment: Mapping[str, Any], key: str, store: ResultsStore, name: str, filename: str,
             section_title: str) -> Any:
    if key not in experiment:
        raise InvalidParameterError(
            f"no stored result {store.experiment_dir(name) / filename} (needed by section {section_title!r})")
    return experiment[key]


# -- trials -------------------------------------------------------------------
def hyperparameter_columns(trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """trials.csv columns that are hyperparameters, in file order."""
    columns: list[str] = []
    for row in trials:
        columns.extend(k for k in row if k not in RESULT_COLUMNS and k not in columns)
    return columns


def varying_columns(trials: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    return [c for c in columns if len({fmt(row.get(c)) for row in trials}) > 1]


def is_diverged(row: Mapping[str, Any]) -> bool:
    if row.get("status") == "diverged":
        return True
    return any(isinstance(row.get(k), float) and not math.isfinite(row[k]) for k in ("loss", "val_loss"))


def _histories(history: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_trial: dict[str, list[Mapping[str, Any]]] = {}
    for row in history:
        by_trial.setdefault(str(row.get("trial_id")), []).append(row)
    for rows in by_trial.values():
        rows.sort(key=lambda r: r.get("epoch") if _finite(r.get("epoch")) else 0)
    return by_trial


def _trial_id(row: Mapping[str, Any]) -> str:
    """The key that joins trials.csv and history.csv rows.

    read_table turns "0001" into 1 in both files, so str() of both sides matches.
    """
    return str(row.get("trial_id"))


def _id_width(summary: Mapping[str, Any]) -> int:
    """Width of zero-padded trial ids, from the ids summary.json keeps as strings ("0001" -> 4)."""
    for tid in [summary.get("best_trial"), *(summary.get("diverged") or [])]:
        if isinstance(tid, str) and tid.isdigit():
            return len(tid)
    return 0


def _show_id(row: Mapping[str, Any], width: int = 0) -> str:
    tid = row.get("trial_id")
    if isinstance(tid, int) and not isinstance(tid, bool) and width:
        return f"{tid:0{width}d}"
    return fmt(tid)


def _reference_match(row: Mapping[str, Any], reference_rows: Sequence[Mapping[str, Any]],
                     columns: Sequence[str]) -> Mapping[str, Any] | None:
    """The seed's row with the same hyperparameters (on the columns both share), if any."""
    for ref in reference_rows:
        keys = [k for k in ref if k not in ROW_METRIC_KEYS and k in columns]
        if keys and all(_same(row.get(k), ref[k]) for k in keys):
            return ref
    return None


def _reference_table(reference_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    columns: list[str] = []
    for ref in reference_rows:
        columns.extend(k for k in ref if k not in ROW_METRIC_KEYS and k not in columns)
    metrics = [k for k in ROW_METRIC_KEYS if any(k in ref for ref in reference_rows)]
    rows = []
    for ref in reference_rows:
        cells = [fmt(ref.get(c)) for c in columns]
        cells += [pct(_number(ref.get(k))) if k in ACCURACY_KEYS else fmt(ref.get(k)) for k in metrics]
        rows.append(cells)
    headers = columns + [_metric_header(k) for k in metrics]
    return {"headers": headers, "rows": rows}


def _metric_header(key: str) -> str:
    names = {"accuracy": "train acc. (%)", "train_accuracy": "train acc. (%)", "val_accuracy": "val acc. (%)",
             "test_accuracy": "test acc. (%)", "epochs_run": "epochs run", "stop_reason": "stop reason"}
    return names.get(key, key.replace("_", " "))


def _diverged_rows(trials: Sequence[Mapping[str, Any]], columns: Sequence[str], width: int = 0) -> list[dict[str, Any]]:
    out = []
    for row in trials:
        if is_diverged(row):
            out.append({"trial_id": _show_id(row, width), "hyperparameters": ", ".join(f"{c}={fmt(row.get(c))}" for c in columns),
                        "epochs_run": fmt(row.get("epochs_run")), "stop_reason": fmt(row.get("stop_reason")),
                        "loss": fmt_loss(row.get("loss")), "val_loss": fmt_loss(row.get("val_loss"))})
    return out


def _trial_table(trials: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 reference_rows: Sequence[Mapping[str, Any]], width: int = 0,
                 match_columns: Sequence[str] | None = None) -> dict[str, Any]:
    """Trials with hyperparameters, metrics and the seed's val accuracy for the same setting.

    ``columns`` are shown; a seed row matches on ``match_columns`` (default: the shown ones),
    so a value left out of the table because every trial shares it still has to agree.
    """
    has_test = any(row.get("test_accuracy") is not None for row in trials)
    headers = ["trial", "status"] + list(columns) + ["epochs run", "train acc. (%)", "val acc. (%)"]
    if has_test:
        headers.append("test acc. (%)")
    headers += ["val loss", "seed val acc. (%)"]
    rows = []
    for row in trials:
        ref = _reference_match(row, reference_rows, match_columns or columns)
        cells = [_show_id(row, width), fmt(row.get("status"))] + [fmt(row.get(c)) for c in columns]
        cells += [fmt(row.get("epochs_run")), pct(row.get("accuracy")), pct(row.get("val_accuracy"))]
        if has_test:
            cells.append(pct(row.get("test_accuracy")))
        cells += [fmt_loss(row.get("val_loss")), pct(_number(ref.get("val_accuracy"))) if ref else DASH]
        rows.append({"cells": cells, "diverged": is_diverged(row)})
    return {"headers": headers, "rows": rows}


def _by_val_accuracy(row: Mapping[str, Any]) -> float:
    value = row.get("val_accuracy")
    return -value if _finite(value) else math.inf


# -- sections -----------------------------------------------------------------
def _curves(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    history = _require(experiment, "history", store, section["experiment"], "history.csv", section["title"])
    by_trial = _histories(history)
    if summary.get("kind") == "evaluation" or "trials" not in experiment:
        trials = [{"trial_id": next(iter(by_trial), "best"), "status": "completed",
                   "epochs_run": summary.get("epochs_run"), "stop_reason": summary.get("stop_reason"),
                   "accuracy": summary.get("train_accuracy"), "val_accuracy": summary.get("val_accuracy"),
                   "loss": None, "val_loss": None, **(summary.get("hyperparameters") or {})}]
    else:
        trials = experiment["trials"]
    columns = hyperparameter_columns(trials)
    ok = [row for row in trials if not is_diverged(row)]
    plotted = {tid: rows for tid, rows in by_trial.items() if tid in {_trial_id(r) for r in ok}}
    figure = figures.data_uri(figures.learning_curves(plotted)) if plotted else None

    single = len(trials) == 1
    comparison = []
    if single:
        row = trials[0]
        comparison = [
            {"metric": "train accuracy (%)", "ours": pct(row.get("accuracy")), "seed": pct(_number(reference.get("train_accuracy")))},
            {"metric": "val accuracy (%)", "ours": pct(row.get("val_accuracy")), "seed": pct(_number(reference.get("val_accuracy")))},
            {"metric": "epochs run", "ours": fmt(row.get("epochs_run")), "seed": fmt(reference.get("epochs_run"))},
            {"metric": "stop reason", "ours": fmt(row.get("stop_reason")), "seed": fmt(reference.get("stop_reason"))},
        ]
        if row.get("test_accuracy") is not None or "test_accuracy" in reference:
            comparison.append({"metric": "test accuracy (%)", "ours": pct(row.get("test_accuracy")),
                               "seed": pct(_number(reference.get("test_accuracy")))})
    return {
        "figure": figure,
        "single": single,
        "comparison": comparison,
        "hyperparameters": [{"name": c, "value": fmt(trials[0].get(c))} for c in columns] if single else [],
        "trials": _trial_table(trials, columns, reference.get("rows") or [], _id_width(summary)) if not single else None,
        "reference_summary": _reference_summary(reference) if not single else [],
        "diverged": _diverged_rows(trials, columns, _id_width(summary)),
    }


def _reference_summary(reference: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "epochs_run", "stop_reason"):
        if key in reference:
            value = pct(_number(reference[key])) if key in ACCURACY_KEYS else fmt(reference[key])
            out.append({"name": _metric_header(key), "value": value})
    return out


def _search_common(store, section, experiment) -> tuple[dict, list, list[str]]:
    summary = experiment["summary"]
    trials = _require(experiment, "trials", store, section["experiment"], "trials.csv", section["title"])
    return summary, trials, hyperparameter_columns(trials)


def _search_meta(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "tuner": fmt(summary.get("tuner")),
        "objective": fmt(summary.get("objective")),
        "space": [{"name": k, "choices": ", ".join(fmt(v) for v in (vals if isinstance(vals, list) else [vals]))}
                  for k, vals in (summary.get("space") or {}).items()],
        "fixed": [{"name": k, "value": fmt(v)} for k, v in (summary.get("fixed") or {}).items()],
        "n_trials": fmt(summary.get("n_trials", len(trials))),
        "n_diverged": sum(1 for row in trials if is_diverged(row)),
        "best_trial": fmt(summary.get("best_trial")),
        "best_val_accuracy": pct(_number(summary.get("best_val_accuracy"))),
        "seconds": fmt_seconds(summary.get("seconds")),
    }


def _effect(store, section, experiment, reference) -> dict[str, Any]:
    summary, trials, columns = _search_common(store, section, experiment)
    ok = [row for row in trials if not is_diverged(row)]
    varying = varying_columns(trials, columns) or columns[:1]
    x = "lr" if "lr" in varying else (varying[0] if varying else None)
    group = [c for c in varying if c != x]
    if "batch_size" in group:  # one line per batch size, as in the seed's figure
        group = ["batch_size"] + [c for c in group if c != "batch_size"]
    figure = None
    if x is not None and ok:
        figure = figures.data_uri(figures.effect_plot(ok, x, group, log_x=(x == "lr")))
    reference_rows = reference.get("rows") or []
    return {
        "figure": figure, "x": x, "group": group,
        "meta": _search_meta(summary, trials),
        # Values shared by every trial are listed once above the table ("Fixed"), not in each row.
        "table": _trial_table(trials, varying_columns(trials, columns) or columns, reference_rows,
                              _id_width(summary), match_columns=columns),
        "reference": _reference_table(reference_rows) if reference_rows else None,
        "diverged": _diverged_rows(trials, columns, _id_width(summary)),
    }


def _top_table(store, section, experiment, reference) -> dict[str, Any]:
    summary, trials, columns = _search_common(store, section, experiment)
    top_k = section.get("top_k", 5)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidParameterError(f"section {section['title']!r}: top_k must be an int >= 1, got {top_k!r}")
    ranked = sorted((row for row in trials if not is_diverged(row)), key=_by_val_accuracy)[:top_k]
    reference_rows = reference.get("rows") or []
    return {
        "top_k": top_k,
        "meta": _search_meta(summary, trials),
        "table": _trial_table(ranked, varying_columns(trials, columns) or columns, reference_rows,
                              _id_width(summary), match_columns=columns),
        "reference": _reference_table(reference_rows) if reference_rows else None,
        "diverged": _diverged_rows(trials, columns, _id_width(summary)),
    }


def _class_entry(entry: Any) -> dict[str, str]:
    if not isinstance(entry, Mapping):
        return {"name": DASH, "accuracy": DASH}
    return {"name": fmt(entry.get("name")), "accuracy": pct(_number(entry.get("accuracy")))}


def _best(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    metrics = _require(experiment, "metrics", store, section["experiment"], "metrics.json", section["title"])
    ours_hp = summary.get("hyperparameters") or {}
    ref_hp = reference.get("hyperparameters") or {}
    names = list(ours_hp) + [k for k in ref_hp if k not in ours_hp]
    accuracies = [{"metric": f"{split} accuracy (%)", "ours": pct(_number(summary.get(f"{split}_accuracy"))),
                   "seed": pct(_number(reference.get(f"{split}_accuracy")))} for split in ("train", "val", "test")]
    accuracies.append({"metric": "test loss", "ours": fmt_loss(summary.get("test_loss")), "seed": fmt_loss(reference.get("test_loss"))})
    accuracies.append({"metric": "epochs run", "ours": fmt(summary.get("epochs_run")), "seed": fmt(reference.get("epochs_run"))})
    accuracies.append({"metric": "stop reason", "ours": fmt(summary.get("stop_reason")), "seed": fmt(reference.get("stop_reason"))})

    class_names = [str(c) for c in metrics.get("class_names") or []]
    per_class = [_number(a) for a in metrics.get("per_class_accuracy") or []]
    if not class_names:
        class_names = [str(i) for i in range(len(per_class))]
    ref_per_class = reference.get("per_class_accuracy") or []
    per_class_rows = [{"name": name, "ours": pct(acc),
                       "seed": pct(_number(ref_per_class[i])) if i < len(ref_per_class) else DASH}
                      for i, (name, acc) in enumerate(zip(class_names, per_class))]
    parameters = [{"layer": fmt(p.get("layer")), "type": fmt(p.get("type")),
                   "output_shape": fmt(p.get("output_shape")), "params": _thousands(p.get("params"))}
                  for p in metrics.get("parameter_table") or []]
    history = experiment.get("history") or []
    matrix = metrics.get("confusion_matrix")
    return {
        "from_experiment": fmt(summary.get("from_experiment")),
        "hyperparameters": [{"name": n, "ours": fmt(ours_hp.get(n)), "seed": fmt(ref_hp.get(n))} for n in names],
        "accuracies": accuracies,
        "curves": figures.data_uri(figures.learning_curves({"best": history})) if history else None,
        "parameters": parameters,
        "total_params": _thousands(metrics.get("total_params")),
        "per_class": per_class_rows,
        "per_class_figure": figures.data_uri(figures.per_class_bars(class_names, per_class)) if per_class else None,
        "best_class": {"ours": _class_entry(metrics.get("best_class")), "seed": _class_entry(reference.get("best_class"))},
        "worst_class": {"ours": _class_entry(metrics.get("worst_class")), "seed": _class_entry(reference.get("worst_class"))},
        "confusion": figures.data_uri(figures.confusion_matrix(matrix, class_names)) if matrix else None,
        "seconds": fmt_seconds(summary.get("seconds")),
    }


def _thousands(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else fmt(value)


def _sklearn(store, section, experiment, reference, run) -> dict[str, Any]:
    summary = experiment["summary"]
    other_name = section.get("compare_with")
    rows = [{"model": f"scikit-learn {summary.get('model') or 'model'}",
             "train": pct(_number(summary.get("train_accuracy"))), "train_seed": pct(_number(reference.get("train_accuracy"))),
             "test": pct(_number(summary.get("test_accuracy"))), "test_seed": pct(_number(reference.get("test_accuracy")))}]
    if other_name:
        other = _read_experiment(store, other_name, section["title"])["summary"]
        other_ref = (run.get("reference") or {}).get(other_name) or {}
        rows.append({"model": f"our Keras model ({other_name})",
                     "train": pct(_number(other.get("train_accuracy"))), "train_seed": pct(_number(other_ref.get("train_accuracy"))),
                     "test": pct(_number(other.get("test_accuracy"))), "test_seed": pct(_number(other_ref.get("test_accuracy")))})
    return {"model": fmt(summary.get("model")), "rows": rows, "compare_with": other_name,
            "seconds": fmt_seconds(summary.get("seconds"))}


def _fractions(store, section, experiment, reference) -> dict[str, Any]:
    summary, trials, columns = _search_common(store, section, experiment)
    key = "train_fraction" if "train_fraction" in columns else (columns[0] if columns else None)
    if key is None:
        raise InvalidParameterError(
            f"{store.experiment_dir(section['experiment']) / 'trials.csv'} has no train_fraction column")
    ordered = sorted(trials, key=lambda r: r.get(key) if _finite(r.get(key)) else math.inf)
    by_trial = _histories(experiment.get("history") or [])
    ok = [row for row in ordered if not is_diverged(row)]
    panels = [(f"{100 * row[key]:g} % of training data" if _finite(row.get(key)) else fmt(row.get(key)),
               by_trial.get(_trial_id(row), [])) for row in ok]
    panels = [p for p in panels if p[1]]
    has_test = any(row.get("test_accuracy") is not None for row in ok)
    y_key = "test_accuracy" if has_test else "val_accuracy"
    reference_rows = reference.get("rows") or []
    ref_points = [(_number(r.get(key)), _number(r.get(y_key))) for r in reference_rows]
    table = []
    for row in ordered:
        ref = _reference_match(row, reference_rows, [key])
        table.append({
            "fraction": f"{100 * row[key]:g} %" if _finite(row.get(key)) else fmt(row.get(key)),
            "status": fmt(row.get("status")), "epochs_run": fmt(row.get("epochs_run")),
            "train": pct(row.get("accuracy")), "val": pct(row.get("val_accuracy")), "test": pct(row.get("test_accuracy")),
            "test_seed": pct(_number(ref.get("test_accuracy"))) if ref else DASH,
            "diverged": is_diverged(row),
        })
    return {
        "key": key,
        "curves": figures.data_uri(figures.curves_per_fraction(panels)) if panels else None,
        "plot": figures.data_uri(figures.fraction_vs_accuracy(
            [r[key] for r in ok], [r.get(y_key) for r in ok],
            y_label=f"{'test' if has_test else 'val'} accuracy (%)", reference=ref_points)) if ok else None,
        "y_label": "test" if has_test else "val",
        "table": table,
        "other_columns": [{"name": c, "value": fmt(trials[0].get(c))} for c in columns if c != key and trials
                          and len({fmt(r.get(c)) for r in trials}) == 1],
        "diverged": _diverged_rows(trials, columns, _id_width(summary)),
    }


def _generic(store, section, experiment, reference) -> dict[str, Any]:
    """For a template this module has no builder for: its summary and trials, formatted."""
    summary = experiment["summary"]
    trials = experiment.get("trials") or []
    columns = hyperparameter_columns(trials)
    return {"summary": [{"name": k, "value": fmt(v)} for k, v in summary.items() if not isinstance(v, (dict, list))],
            "table": _trial_table(trials, columns, reference.get("rows") or [], _id_width(summary)) if trials else None}


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "curves": _curves, "effect": _effect, "top_table": _top_table, "best": _best,
    "fractions": _fractions, "generic": _generic,
}


# -- questions ----------------------------------------------------------------
def read_run(store: ResultsStore) -> dict[str, Any]:
    run = _read_json(store, "run.json")
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
    if template not in BUILDERS and template != "sklearn" and template not in known_templates:
        raise InvalidParameterError(
            f"section template {template!r} in {store.root / 'run.json'} has no report_templates/sections/{template}.html.jinja2")
    for name in (section["experiment"], section.get("compare_with")):
        if name and isinstance(name, str) and not (store.experiment_dir(name) / "summary.json").is_file():
            raise InvalidParameterError(
                f"no stored result {store.experiment_dir(name) / 'summary.json'} (needed by section {section['title']!r})")
    return section


def section_context(store: ResultsStore, run: Mapping[str, Any], section: Mapping[str, Any],
                    known_templates: Sequence[str] = ()) -> dict[str, Any]:
    section = check_section(store, section, known_templates)
    template = str(section["template"])
    experiment = _read_experiment(store, section["experiment"], section["title"])
    reference = (run.get("reference") or {}).get(section["experiment"]) or {}
    if template == "sklearn":
        values = _sklearn(store, section, experiment, reference, run)
    else:
        values = BUILDERS.get(template, _generic)(store, section, experiment, reference)
    return {"template": template, "title": section["title"], "experiment": section["experiment"],
            "kind": fmt(experiment["summary"].get("kind")),
            "description": experiment["summary"].get("title") or "", "has_reference": bool(reference), **values}


def question_context(store: ResultsStore, known_templates: Sequence[str] = ()) -> dict[str, Any]:
    """Everything one question's part of the report shows, as plain values."""
    run = read_run(store)
    dataset = run.get("dataset") or {}
    environment = run.get("environment") or {}
    splits = dataset.get("splits") or {}
    sections = run.get("sections")
    if not isinstance(sections, list):
        raise InvalidParameterError(f"{store.root / 'run.json'} has no \"sections\" list")
    for section in sections:  # fail fast, before any figure is drawn
        check_section(store, section, known_templates)
    return {
        "question": store.question,
        "anchor": f"{store.question}-{store.profile}",
        "title": str(run.get("title") or store.question),
        "seed_writeup": fmt(run.get("seed_writeup")),
        "profile": fmt(run.get("profile", store.profile)),
        "tuner": fmt(run.get("tuner")),
        "seed": fmt(run.get("seed")),
        "status": fmt(run.get("status")),
        "complete": run.get("status") == "complete",
        "started": fmt(run.get("started")),
        "finished": fmt(run.get("finished")),
        "wall_time": fmt_seconds(run.get("wall_seconds")),
        "banner": dataset.get("fallback_banner") or None,
        "dataset": {
            "name": fmt(dataset.get("name")),
            "requested": fmt(dataset.get("requested")),
            "substituted": bool(dataset.get("requested")) and dataset.get("requested") != dataset.get("name"),
            "source": fmt(dataset.get("source")),
            "splits": [{"name": k, "size": _thousands(v)} for k, v in splits.items()],
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
        "sections": [section_context(store, run, s, known_templates) for s in sections],
    }
