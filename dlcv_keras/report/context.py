"""Results store -> plain dict for the templates (pytest-html's ReportData idea).

``question_context(store)`` reads ``run.json`` and, for each entry of its "sections",
that experiment's files (docs/results-store.md), and returns strings and numbers
ready to print plus figures as ``data:`` URIs. Templates only lay them out.

Conventions:
- accuracies are fractions in the store and are printed as percent, 2 decimals;
- the seed write-up's number sits beside ours; "—" where the seed reports none;
- diverged trials (status "diverged", nan/inf losses) are listed with their losses
  and left out of every plot;
- the from-scratch questions print gradients and scores with 8 significant digits
  (``fmt_sig``) and differences / relative errors in scientific notation (``fmt_sci``).

A question may hold several implementations (q3 with Keras layers and with
hand-written numpy modules, ``--impl scratch``): each is a run of its own, and
``compare_implementations`` builds the table that sets them side by side.
"""

from __future__ import annotations

import csv
import json
import math
import zipfile
import zlib
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


def fmt_sig(value: Any, digits: int = 8) -> str:
    """A computed value with ``digits`` significant digits: 2/3 -> "0.66666667", 8.0 -> "8"; nan -> "nan"."""
    value = _number(value)
    if value is None or value == "":
        return DASH
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def fmt_sci(value: Any, digits: int = 1) -> str:
    """A difference or relative error in scientific notation: 3.1e-15; nan/inf as text."""
    value = _number(value)
    if value is None or value == "":
        return DASH
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}e}" if math.isfinite(value) else str(value)
    return str(value)


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
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidParameterError(f"{store.experiment_dir(name)} holds an unreadable CSV file "
                                    f"({type(error).__name__}; needed by section {section_title!r})") from None


def _read_arrays(store: ResultsStore, name: str, section_title: str, keys: Sequence[str]) -> dict[str, Any]:
    """``experiments/<name>/arrays.npz`` with every array in ``keys``, or a one-line error naming the file."""
    path = store.experiment_dir(name) / "arrays.npz"
    try:
        arrays = store.read_arrays(name)
    except FileNotFoundError as error:
        raise InvalidParameterError(f"{error} (needed by section {section_title!r})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise InvalidParameterError(f"{path} is not a readable .npz archive ({type(error).__name__}; "
                                    f"needed by section {section_title!r})") from None
    for key in keys:
        if key not in arrays:
            raise InvalidParameterError(f"{path} holds no array {key!r} (it holds {sorted(arrays)}; "
                                        f"needed by section {section_title!r})")
    return arrays


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


# -- from-scratch questions -----------------------------------------------------------
# Their experiments store what a hand-written engine computed next to what TensorFlow (or
# central differences) computed for the same inputs; the seed's numbers, where it printed
# any, come from run.json "reference" as for every other section.
NO_REFERENCE = "The seed write-up prints no numbers for this part."


def _settings(summary: Mapping[str, Any], names: Mapping[str, str]) -> list[dict[str, str]]:
    """Summary values to list above a section: ``names`` maps summary key -> label; absent keys skipped."""
    out = []
    for key, label in names.items():
        if key in summary:
            value = summary[key]
            if key == "clip" and value is None:
                shown = "none"
            elif key == "seconds":
                shown = fmt_seconds(value)
            else:
                shown = fmt(value)
            out.append({"name": label, "value": shown})
    return out


def _largest(values: Sequence[Any]) -> Any:
    """The largest value; a nan/inf among them wins, so a broken point is never hidden."""
    values = [_number(v) for v in values if _number(v) is not None]
    odd = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    if odd:
        return odd[0]
    numbers = [v for v in values if _finite(v)]
    return max(numbers) if numbers else None


def _summary_or(summary: Mapping[str, Any], key: str, rows: Sequence[Mapping[str, Any]]) -> Any:
    """``summary[key]`` when stored, else the largest ``key`` over ``rows``."""
    if summary.get(key) is not None:
        return summary[key]
    return _largest([row.get(key) for row in rows])


LARGEST_DIFFERENCES = {  # summary.json / points.csv key -> label; the relative one vs TensorFlow is optional
    "max_abs_diff_tf": "max |Δ| vs TensorFlow autodiff",
    "max_rel_diff_tf": "max relative difference vs TensorFlow autodiff",
    "max_abs_diff_numeric": "max |Δ| vs central differences",
    "max_rel_diff_numeric": "max relative difference vs central differences",
}


def _scalar_gradients(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    points = _require(experiment, "points", store, section["experiment"], "points.csv", section["title"])
    variables = [str(v) for v in summary.get("variables") or []]
    if not variables and points:
        variables = [k[len("df_d"):] for k in points[0] if k.startswith("df_d")]
    rows, details = [], []
    for row in points:
        label = row.get("point")
        if not isinstance(label, str) or not label:
            label = fmt([row.get(v) for v in variables])
        rows.append({"point": label, "value": fmt_sig(row.get("value")),
                     "gradient": [fmt_sig(row.get(f"df_d{v}")) for v in variables],
                     "tf": fmt_sci(row.get("max_abs_diff_tf")), "numeric": fmt_sci(row.get("max_abs_diff_numeric"))})
        details.append({"point": label, "quantity": "f", "ours": fmt_sig(row.get("value")),
                        "tf": fmt_sig(row.get("tf_value")), "numeric": DASH})
        for v in variables:
            details.append({"point": label, "quantity": f"df/d{v}", "ours": fmt_sig(row.get(f"df_d{v}")),
                            "tf": fmt_sig(row.get(f"tf_df_d{v}")), "numeric": fmt_sig(row.get(f"numeric_df_d{v}"))})
    return {
        "expression": str(summary.get("expression") or DASH),
        "variables": variables,
        "step": fmt(summary.get("step")),
        "rows": rows,
        "details": details,
        "largest": [{"name": name, "value": fmt_sci(_summary_or(summary, key, points))}
                    for key, name in LARGEST_DIFFERENCES.items()
                    if key in summary or any(key in row for row in points)],
        "reference_note": str(reference.get("note") or NO_REFERENCE),
        "seconds": fmt_seconds(summary.get("seconds")),
    }


MAX_IMAGES = 8  # rows of the blur grid; more images are listed by count only


def _image_stack(array: Any, path, key: str, section_title: str):
    """(n, H, W, C) float array; a channel axis is added to (n, H, W)."""
    import numpy as np

    stack = np.asarray(array, dtype=float)
    if stack.ndim == 3:
        stack = stack[..., None]
    if stack.ndim != 4 or stack.shape[0] == 0:
        raise InvalidParameterError(f"{path}: array {key!r} must have shape (n, H, W, C), got {tuple(stack.shape)} "
                                    f"(needed by section {section_title!r})")
    return stack


def _conv_blur(store, section, experiment, reference) -> dict[str, Any]:
    import numpy as np

    summary = experiment["summary"]
    name, title = section["experiment"], section["title"]
    arrays = _read_arrays(store, name, title, ("kernel", "originals", "blurred"))
    path = store.experiment_dir(name) / "arrays.npz"
    kernel = np.asarray(arrays["kernel"], dtype=float)
    if kernel.ndim == 3 and kernel.shape[-1] == 1:
        kernel = kernel[..., 0]
    if kernel.ndim != 2:
        raise InvalidParameterError(f"{path}: array 'kernel' must have shape (k, k), got {tuple(kernel.shape)} "
                                    f"(needed by section {title!r})")
    originals = _image_stack(arrays["originals"], path, "originals", title)
    blurred = _image_stack(arrays["blurred"], path, "blurred", title)
    shown = min(len(originals), len(blurred), MAX_IMAGES)
    notes = []
    if len(originals) != len(blurred):
        notes.append(f"arrays.npz holds {len(originals)} originals but {len(blurred)} blurred images; "
                     f"the first {shown} are shown.")
    elif len(originals) > shown:
        notes.append(f"The first {shown} of {len(originals)} images are shown.")
    bad = int(np.size(blurred) - np.isfinite(blurred).sum())
    if bad:
        notes.append(f"{bad} blurred pixel values are nan or inf; they are left blank in the figure.")
    checks = [
        {"check": "forward: max |Δ| vs Keras Conv2D", "value": fmt_sci(summary.get("keras_max_abs_diff"))},
        {"check": "backward: max relative error vs TensorFlow autodiff",
         "value": fmt_sci(summary.get("backward_max_rel_error"))},
    ]
    finite_kernel = kernel[np.isfinite(kernel)]
    names = {"kernel_size": "kernel size", "sigma": "sigma", "stride": "stride", "padding": "padding",
             "images": "images", "out_channels": "output channels"}
    return {
        "settings": _settings(summary, {"dataset": "dataset", "seconds": "time"}),
        "comparison": [{"metric": label, "ours": fmt(summary.get(key)), "seed": fmt(reference.get(key))}
                       for key, label in names.items() if key in summary or key in reference],
        "shapes": f"originals {fmt(list(originals.shape))} → blurred {fmt(list(blurred.shape))}",
        "kernel_shape": fmt(list(kernel.shape)),
        "kernel_sum": fmt_sig(float(finite_kernel.sum()), 6) if finite_kernel.size else DASH,
        "kernel_figure": figures.data_uri(figures.kernel_heatmap(kernel.tolist())),
        "originals_figure": figures.data_uri(figures.image_row(list(originals[:shown]),
                                                               [f"image {i + 1}" for i in range(shown)])),
        "grid_figure": figures.data_uri(figures.blur_grid(originals[:shown], blurred[:shown])),
        "checks": checks,
        "notes": notes,
        "reference_note": str(reference.get("note") or ""),
    }


LOG_LINES = 40  # a longer loss log shows its first and last lines


def _first_epoch(rows: Sequence[Mapping[str, Any]], test: Callable[[float], bool]) -> Any:
    for row in rows:
        loss = row.get("loss")
        if isinstance(loss, float) and test(loss):
            return row.get("epoch")
    return None


def _seed_loss(value: Any) -> str:
    """A loss the way the seed printed it: 1.41e+30, inf, nan."""
    value = _number(value)
    if _finite(value):
        return f"{value:.3g}"
    return DASH if value is None or value == "" else str(value)


def _conv_l2_divergence(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    history = _require(experiment, "history", store, section["experiment"], "history.csv", section["title"])
    by_trial = _histories(history)
    rows = next(iter(by_trial.values()), [])
    derived = {"first_inf_epoch": _first_epoch(rows, math.isinf), "first_nan_epoch": _first_epoch(rows, math.isnan)}
    ours = {key: summary[key] if key in summary else value for key, value in derived.items()}
    log = [f"epoch = {fmt(row.get('epoch'))}, loss = {_seed_loss(row.get('loss'))}" for row in rows]
    if len(log) > LOG_LINES:
        head, tail = LOG_LINES * 2 // 3, LOG_LINES // 4
        log = log[:head] + [f"... ({len(log) - head - tail} epochs not shown)"] + log[-tail:]
    first_loss = rows[0].get("loss") if rows else None

    def epoch(value: Any) -> str:
        return "none" if value is None else fmt(value)

    comparison = [
        {"metric": "loss after the first epoch", "ours": _seed_loss(first_loss), "seed": _seed_loss(reference.get("first_loss"))},
        {"metric": "first epoch with loss = inf", "ours": epoch(ours["first_inf_epoch"]),
         "seed": fmt(reference.get("first_inf_epoch"))},
        {"metric": "first epoch with loss = nan", "ours": epoch(ours["first_nan_epoch"]),
         "seed": fmt(reference.get("first_nan_epoch"))},
        {"metric": "epochs run", "ours": fmt(summary.get("epochs_run", len(rows) or None)), "seed": fmt(reference.get("epochs_run"))},
        {"metric": "final L2 norm between the outputs", "ours": _seed_loss(summary.get("final_l2_norm")),
         "seed": _seed_loss(reference.get("final_l2_norm"))},
        {"metric": "status", "ours": fmt(summary.get("status")), "seed": fmt(reference.get("status"))},
        {"metric": "stop reason", "ours": fmt(summary.get("stop_reason")), "seed": fmt(reference.get("stop_reason"))},
    ]
    return {
        "settings": _settings(summary, {"lr": "lr", "batch_size": "batch size", "epochs": "epochs", "l2": "l2",
                                        "clip": "gradient clipping", "images": "images", "kernel_size": "kernel size",
                                        "filters": "filters", "pixel_scale": "pixel scale", "seconds": "time"}),
        "log": log,
        "figure": figures.data_uri(figures.divergence_plot(rows, first_inf=ours["first_inf_epoch"],
                                                           first_nan=ours["first_nan_epoch"])) if rows else None,
        "comparison": comparison,
        "reference_note": str(reference.get("note") or ""),
    }


def _conv_l2_batches(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    name, title = section["experiment"], section["title"]
    trials = _require(experiment, "trials", store, name, "trials.csv", title)
    by_trial = _histories(_require(experiment, "history", store, name, "history.csv", title))
    trials = sorted(trials, key=lambda r: r.get("batch_size") if _finite(r.get("batch_size")) else math.inf)
    final_l2 = summary.get("final_l2_norm") or {}
    reference_rows = reference.get("rows") or []
    table, ours_points, curves = [], [], {}
    for row in trials:
        size = row.get("batch_size")
        l2_norm = _number(row.get("l2_norm"))
        if l2_norm is None and isinstance(final_l2, Mapping):
            l2_norm = _number(final_l2.get(fmt(size)))
        ref = _reference_match(row, reference_rows, ["batch_size"])
        table.append({"batch_size": fmt(size), "status": fmt(row.get("status")), "l2_norm": _fixed(l2_norm),
                      "seed": _fixed(_number(ref.get("l2_norm"))) if ref else DASH,
                      "loss": fmt_sig(row.get("loss"), 6), "epochs_run": fmt(row.get("epochs_run")),
                      "seconds": fmt_seconds(row.get("seconds")), "diverged": is_diverged(row)})
        if not is_diverged(row):
            ours_points.append((size, l2_norm))
            if by_trial.get(_trial_id(row)):
                curves[f"batch size {fmt(size)}"] = by_trial[_trial_id(row)]
    seed_points = [(_number(r.get("batch_size")), _number(r.get("l2_norm"))) for r in reference_rows]
    panels = [("loss", "loss"), ("l2_norm", "L2 norm between the outputs")]
    return {
        "settings": _settings(summary, {"lr": "lr", "epochs": "epochs", "l2": "l2", "clip": "gradient clipping",
                                        "images": "images", "seconds": "time"}),
        "curves": figures.data_uri(figures.per_epoch_lines(curves, panels)) if curves else None,
        "plot": figures.data_uri(figures.value_vs_batch_size(ours_points, seed_points)) if ours_points else None,
        "table": table,
        "diverged": _diverged_rows(trials, ["batch_size"]),
    }


def _fixed(value: Any, digits: int = 2) -> str:
    """A value like an L2 norm with ``digits`` decimals: 429.5912 -> "429.59"."""
    value = _number(value)
    if _finite(value):
        return f"{value:.{digits}f}"
    return DASH if value is None or value == "" else str(value)


def _matrix(values: Any) -> list[list[str]]:
    """A score matrix with 8 decimals, as the seed printed its reference scores."""
    if not isinstance(values, list):
        return []
    return [[_fixed(v, 8) for v in row] if isinstance(row, list) else [_fixed(row, 8)] for row in values]


def _two_layer_check(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    ours, tf, seed = (summary.get("relative_errors") or {}, summary.get("tf_relative_errors") or {},
                      reference.get("relative_errors") or {})
    names = list(ours) + [k for k in (*tf, *seed) if k not in ours]
    names = list(dict.fromkeys(names))
    return {
        "settings": _settings(summary, {"input_size": "input size", "hidden_size": "hidden size",
                                        "num_classes": "classes", "num_inputs": "inputs", "reg": "reg",
                                        "step": "finite-difference step", "seconds": "time"}),
        "scores": _matrix(summary.get("scores")),
        "reference_scores": _matrix(reference.get("scores")),
        "comparison": [
            {"metric": "loss", "ours": fmt_sig(summary.get("loss"), 12), "seed": fmt_sig(reference.get("loss"), 12)},
            {"metric": "|loss - seed loss|", "ours": fmt_sci(summary.get("loss_abs_diff")), "seed": DASH},
            {"metric": "max |scores - seed scores|", "ours": fmt_sci(summary.get("scores_max_abs_diff")), "seed": DASH},
        ],
        "errors": [{"name": n, "numeric": fmt_sci(ours.get(n), 2), "tf": fmt_sci(tf.get(n), 2),
                    "seed": fmt_sci(seed.get(n), 2)} for n in names],
        "max_relative_error": fmt_sci(summary.get("max_relative_error"), 2),
    }


def _yes_no(value: Any) -> str:
    return DASH if value is None else ("yes" if value else "no")


def _toy_training(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    history = _require(experiment, "history", store, section["experiment"], "history.csv", section["title"])
    rows = next(iter(_histories(history).values()), [])
    target = _number(summary.get("target_loss"))
    final = _number(summary.get("final_loss", rows[-1].get("loss") if rows else None))
    reached = summary.get("reached_target")
    if reached is None and _finite(final) and _finite(target):
        reached = final <= target
    seed_final = _number(reference.get("final_loss"))
    seed_reached = reference.get("reached_target")
    if seed_reached is None and _finite(seed_final) and _finite(target):
        seed_reached = seed_final <= target
    return {
        "settings": _settings(summary, {"lr": "lr", "lr_decay": "lr decay", "reg": "reg", "iterations": "iterations",
                                        "batch_size": "batch size", "seconds": "time"}),
        "target": fmt(target),
        "figure": figures.data_uri(figures.loss_vs_iteration(rows, target=target)) if rows else None,
        "comparison": [
            {"metric": "final loss", "ours": fmt_sig(final, 4), "seed": fmt_sig(seed_final, 4)},
            {"metric": f"reached the target loss {fmt(target)}", "ours": _yes_no(reached), "seed": _yes_no(seed_reached)},
            {"metric": "train accuracy (%)", "ours": pct(_number(summary.get("train_accuracy"))),
             "seed": pct(_number(reference.get("train_accuracy")))},
            {"metric": "iterations", "ours": fmt(summary.get("iterations")), "seed": fmt(reference.get("iterations"))},
        ],
    }


def _by_number(mapping: Any, key: Any) -> Any:
    """``mapping["10"]`` for N = 10 (JSON keys are strings), also when written "10.0" or "1e+01"."""
    if not isinstance(mapping, Mapping):
        return None
    for k, v in mapping.items():
        if str(k) == str(key) or _same(_parse_number(k), key):
            return v
    return None


def _parse_number(text: Any) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _finite_difference(store, section, experiment, reference) -> dict[str, Any]:
    summary = experiment["summary"]
    sweep = _require(experiment, "sweep", store, section["experiment"], "sweep.csv", section["title"])
    by_n: dict[Any, list[Mapping[str, Any]]] = {}
    for row in sweep:
        by_n.setdefault(row.get("N"), []).append(row)
    table, points, skipped = [], [], []
    for n in sorted(by_n, key=lambda v: v if _finite(v) else math.inf):
        rows = by_n[n]
        stored = _by_number(summary.get("max_abs_gap"), n)
        gap = _number(stored) if stored is not None else _largest([abs(r["abs_gap"]) if _finite(r.get("abs_gap"))
                                                                  else r.get("abs_gap") for r in rows])
        table.append({"n": fmt(n), "epsilon": fmt(rows[0].get("epsilon")), "gap": fmt_sci(gap, 2)})
        if _finite(n) and n > 0 and _finite(gap) and gap > 0:
            points.append((n, gap))
        else:
            skipped.append(f"N = {fmt(n)} (max |gap| {fmt_sci(gap, 2)})")
    series: dict[Any, list[Mapping[str, Any]]] = {}
    for row in sweep:
        series.setdefault(fmt(row.get("index")), []).append(row)
    return {
        "settings": _settings(summary, {"parameter": "parameter", "count": "entries checked",
                                        "examples": "examples in the loss", "seconds": "time"}),
        "gap_figure": figures.data_uri(figures.gap_vs_n(points)) if points else None,
        "skipped": skipped,
        "numeric_figure": figures.data_uri(figures.numeric_vs_n(series)) if series else None,
        "table": table,
    }


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "curves": _curves, "effect": _effect, "top_table": _top_table, "best": _best,
    "fractions": _fractions, "generic": _generic,
    "scalar_gradients": _scalar_gradients, "conv_blur": _conv_blur, "conv_l2_divergence": _conv_l2_divergence,
    "conv_l2_batches": _conv_l2_batches, "two_layer_check": _two_layer_check, "toy_training": _toy_training,
    "finite_difference": _finite_difference,
}

# Files a template needs besides summary.json, checked before any figure is drawn.
REQUIRED_FILES: dict[str, tuple[str, ...]] = {
    "scalar_gradients": ("points.csv",), "conv_blur": ("arrays.npz",), "conv_l2_divergence": ("history.csv",),
    "conv_l2_batches": ("trials.csv", "history.csv"), "toy_training": ("history.csv",),
    "finite_difference": ("sweep.csv",),
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
    implementation = implementation_key(store, run)
    return {
        "question": store.question,
        "anchor": "-".join([store.question, store.profile] + ([store.implementation] if store.implementation else [])),
        "implementation": implementation,
        "implementation_label": implementation_label(implementation),
        # report_context also names it when the question has several implementations
        "show_implementation": bool(store.implementation),
        "comparison": None,  # set on a question's last part when it has several implementations
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
            "present": bool(dataset),
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


# -- several implementations of one question -------------------------------------
IMPLEMENTATION_LABELS = {"keras": "Keras layers", "scratch": "hand-written numpy modules (--impl scratch)"}


def implementation_key(store: ResultsStore, run: Mapping[str, Any]) -> str:
    """"keras" for the default run (run.json may say so or not), else the subfolder's name."""
    if store.implementation:
        return str(store.implementation)
    return str(run.get("implementation") or "keras")


def implementation_label(key: str) -> str:
    return IMPLEMENTATION_LABELS.get(key) or f"{key} (--impl {key})"


def _evaluation(store: ResultsStore, run: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The run's evaluation of its best setting: the "best" section's experiment, else the experiment
    named "best", else the last section whose summary kind is "evaluation"."""
    sections = [s for s in run.get("sections") or [] if isinstance(s, Mapping) and isinstance(s.get("experiment"), str)]
    candidates = [s["experiment"] for s in sections if s.get("template") == "best"] + ["best"]
    candidates += [s["experiment"] for s in reversed(sections)]
    for name in dict.fromkeys(candidates):
        if "/" in name or name.startswith(".") or not (store.experiment_dir(name) / "summary.json").is_file():
            continue
        summary = _read_json(store, f"experiments/{name}/summary.json")
        if isinstance(summary, Mapping) and summary.get("kind") == "evaluation":
            return name, dict(summary)
    return None, {}


def _best_comparison(runs, labels) -> dict[str, Any]:
    found = [_evaluation(store, run) for store, run in runs]
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
        rows.append({"metric": f"{split} accuracy (%)", "cells": [pct(_number(s.get(key))) for _, s in found],
                     "seed": pct(_number(seed.get(key)))})
    rows.append({"metric": "epochs run", "cells": [fmt(s.get("epochs_run")) for _, s in found],
                 "seed": fmt(seed.get("epochs_run"))})
    rows.append({"metric": "stop reason", "cells": [fmt(s.get("stop_reason")) for _, s in found],
                 "seed": fmt(seed.get("stop_reason"))})
    rows.append({"metric": "training time", "cells": [fmt_seconds(s.get("seconds")) for _, s in found], "seed": DASH})
    return {"headers": labels, "rows": rows, "found": any(name for name, _ in found)}


def _search_comparison(runs, labels, name: str, title: str) -> dict[str, Any] | None:
    """Val accuracy per setting of search ``name`` in each run that has it (None when fewer than two do)."""
    tables: list[list[Mapping[str, Any]] | None] = []
    for store, _ in runs:
        path = store.experiment_dir(name) / "summary.json"
        summary = _read_json(store, f"experiments/{name}/summary.json") if path.is_file() else None
        if isinstance(summary, Mapping) and summary.get("kind") == "search":
            tables.append(_read_experiment(store, name, title).get("trials") or [])
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
            ref = _reference_match(probe, reference_rows, common)
            seed = pct(_number(ref.get("val_accuracy"))) if ref else DASH
        rows.append({"setting": setting, "cells": cells[key], "seed": seed})
    return {"experiment": name, "title": title, "headers": labels, "rows": rows, "has_seed": bool(reference_rows)}


def compare_implementations(stores: Sequence[ResultsStore]) -> dict[str, Any]:
    """Implementations of one question side by side: best evaluation, and each shared search's val accuracy."""
    runs = [(store, read_run(store)) for store in stores]
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
    return {
        "anchor": f"{first.question}-{first.profile}-implementations",
        "question": first.question,
        "title": str(runs[0][1].get("title") or first.question),
        "labels": labels,
        "best": _best_comparison(runs, labels),
        "searches": searches,
    }
