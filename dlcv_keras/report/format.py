"""Shared report helpers: number formatting, reading stored experiments, trial tables and
matching our rows to the seed's. Every experiment kind's report view (dlcv_keras/experiments/)
builds on these; none of them imports Keras.

Conventions:
- accuracies are fractions in the store and are printed as percent, 2 decimals (``pct``);
- the seed write-up's number sits beside ours; "—" where the seed reports none;
- diverged trials (status "diverged", nan/inf losses) are listed with their losses
  and left out of every plot;
- gradients and scores print with 8 significant digits (``fmt_sig``), differences and
  relative errors in scientific notation (``fmt_sci``).
"""

from __future__ import annotations

import csv
import json
import math
import re
import zipfile
import zlib
from typing import Any, Mapping, Sequence

from dlcv_keras.report.render import pct
from dlcv_keras.results import ResultsStore
from dlcv_keras.validation import InvalidParameterError

__all__ = ["pct"]  # and every public name below

DASH = "—"


# trials.csv columns that are not hyperparameters (docs/results-store.md).
RESULT_COLUMNS = ("trial_id", "status", "params", "epochs_run", "stop_reason", "loss", "accuracy", "val_loss",
                  "val_accuracy", "seconds", "test_loss", "test_accuracy", "learning_rate", "rss_mb", "peak_rss_mb",
                  "trial_rss_mb", "trial_peak_rss_mb")


ACCURACY_KEYS = ("accuracy", "train_accuracy", "val_accuracy", "test_accuracy")


ROW_METRIC_KEYS = ACCURACY_KEYS + ("params", "loss", "val_loss", "test_loss", "epochs_run", "stop_reason", "seconds")


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
    if not is_finite(value):
        return DASH
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def fmt_sig(value: Any, digits: int = 8) -> str:
    """A computed value with ``digits`` significant digits: 2/3 -> "0.66666667", 8.0 -> "8"; nan -> "nan"."""
    value = as_number(value)
    if value is None or value == "":
        return DASH
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def fmt_sci(value: Any, digits: int = 1) -> str:
    """A difference or relative error in scientific notation: 3.1e-15; nan/inf as text."""
    value = as_number(value)
    if value is None or value == "":
        return DASH
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{digits}e}" if math.isfinite(value) else str(value)
    return str(value)


def tuner_words(run: Mapping[str, Any]) -> str:
    """The algorithm the run's searches used (run.json "tuners": search -> "grid" | "random"): one word
    when all used the same, else each with its searches, "random (search); grid (default, plain)";
    "—" for a run without a search. A run.json from before "tuners" was recorded gives its "tuner"."""
    tuners = run.get("tuners")
    if not isinstance(tuners, Mapping):
        return fmt(run.get("tuner"))
    by_kind: dict[str, list[str]] = {}
    for search, kind in tuners.items():
        by_kind.setdefault(str(kind), []).append(str(search))
    if len(by_kind) <= 1:
        return next(iter(by_kind), DASH)
    return "; ".join(f"{kind} ({', '.join(searches)})" for kind, searches in by_kind.items())


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def as_number(value: Any) -> Any:
    """Store JSON writes nan/inf as strings; give them back as floats."""
    if isinstance(value, str) and value.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        return float(value)
    return value


def same_value(a: Any, b: Any) -> bool:
    a, b = as_number(a), as_number(b)
    if is_finite(a) and is_finite(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


# -- reading ------------------------------------------------------------------
def read_json(store: ResultsStore, relative: str) -> Any:
    try:
        return store.read_json(relative)
    except FileNotFoundError as error:
        raise InvalidParameterError(str(error)) from None
    except json.JSONDecodeError as error:
        raise InvalidParameterError(f"{store.root / relative} is not valid JSON ({error.msg}, line {error.lineno})") from None
    except UnicodeDecodeError:
        raise InvalidParameterError(f"{store.root / relative} is not UTF-8 text, so not JSON") from None


def read_experiment(store: ResultsStore, name: str, section_title: str) -> dict[str, Any]:
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


def read_arrays(store: ResultsStore, name: str, section_title: str, keys: Sequence[str]) -> dict[str, Any]:
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


def require(experiment: Mapping[str, Any], key: str, store: ResultsStore, name: str, filename: str,
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


def is_trained(row: Mapping[str, Any]) -> bool:
    """A trial with numbers to plot or rank: neither diverged nor rejected untrained (a constraint)."""
    return row.get("status") != "rejected" and not is_diverged(row)


def is_diverged(row: Mapping[str, Any]) -> bool:
    if row.get("status") == "diverged":
        return True
    return any(isinstance(row.get(k), float) and not math.isfinite(row[k]) for k in ("loss", "val_loss"))


def histories_by_trial(history: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    by_trial: dict[str, list[Mapping[str, Any]]] = {}
    for row in history:
        by_trial.setdefault(str(row.get("trial_id")), []).append(row)
    for rows in by_trial.values():
        rows.sort(key=lambda r: r.get("epoch") if is_finite(r.get("epoch")) else 0)
    return by_trial


def trial_key(row: Mapping[str, Any]) -> str:
    """The key that joins trials.csv and history.csv rows.

    read_table turns "0001" into 1 in both files, so str() of both sides matches.
    """
    return str(row.get("trial_id"))


def id_width(summary: Mapping[str, Any]) -> int:
    """Width of zero-padded trial ids, from the ids summary.json keeps as strings ("0001" -> 4)."""
    for tid in [summary.get("best_trial"), *(summary.get("diverged") or [])]:
        if isinstance(tid, str) and tid.isdigit():
            return len(tid)
    return 0


def show_id(row: Mapping[str, Any], width: int = 0) -> str:
    tid = row.get("trial_id")
    if isinstance(tid, int) and not isinstance(tid, bool) and width:
        return f"{tid:0{width}d}"
    return fmt(tid)


def reference_match(row: Mapping[str, Any], reference_rows: Sequence[Mapping[str, Any]],
                     columns: Sequence[str]) -> Mapping[str, Any] | None:
    """The seed's row with the same hyperparameters (on the columns both share), if any."""
    for ref in reference_rows:
        keys = [k for k in ref if k not in ROW_METRIC_KEYS and k in columns]
        if keys and all(same_value(row.get(k), ref[k]) for k in keys):
            return ref
    return None


def reference_table(reference_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    columns: list[str] = []
    for ref in reference_rows:
        columns.extend(k for k in ref if k not in ROW_METRIC_KEYS and k not in columns)
    metrics = [k for k in ROW_METRIC_KEYS if any(k in ref for ref in reference_rows)]
    rows = []
    for ref in reference_rows:
        cells = [fmt(ref.get(c)) for c in columns]
        cells += [pct(as_number(ref.get(k))) if k in ACCURACY_KEYS else thousands(ref.get(k)) if k == "params"
                  else fmt(ref.get(k)) for k in metrics]
        rows.append(cells)
    headers = columns + [metric_header(k) for k in metrics]
    return {"headers": headers, "rows": rows}


def metric_header(key: str) -> str:
    names = {"accuracy": "train acc. (%)", "train_accuracy": "train acc. (%)", "val_accuracy": "val acc. (%)",
             "test_accuracy": "test acc. (%)", "epochs_run": "epochs run", "stop_reason": "stop reason"}
    return names.get(key, key.replace("_", " "))


def diverged_rows(trials: Sequence[Mapping[str, Any]], columns: Sequence[str], width: int = 0) -> list[dict[str, Any]]:
    out = []
    for row in trials:
        if is_diverged(row):
            out.append({"trial_id": show_id(row, width), "hyperparameters": ", ".join(f"{c}={fmt(row.get(c))}" for c in columns),
                        "epochs_run": fmt(row.get("epochs_run")), "stop_reason": fmt(row.get("stop_reason")),
                        "loss": fmt_loss(row.get("loss")), "val_loss": fmt_loss(row.get("val_loss"))})
    return out


SEED_VAL_HEADER = "seed val acc. (%)"


def trial_table(trials: Sequence[Mapping[str, Any]], columns: Sequence[str],
                 reference_rows: Sequence[Mapping[str, Any]], width: int = 0,
                 match_columns: Sequence[str] | None = None,
                 settings: Sequence[tuple[str, Any]] = ()) -> dict[str, Any]:
    """Trials with hyperparameters, metrics and the seed's val accuracy for the same setting.

    ``columns`` are shown; a seed row matches on ``match_columns`` (default: the shown ones),
    so a value left out of the table because every trial shares it still has to agree. A column
    every trial shares, and the ``settings`` (name, value) they share, are said once above the
    table (``without_constant_columns``).
    """
    match_columns = list(match_columns or columns)
    if len(trials) == 1 and columns:
        # One trial: its settings are a line above its row, not a row twenty columns wide.
        named = {name for name, _ in settings}
        settings = [*settings, *((c, trials[0].get(c)) for c in columns if c not in named)]
        columns = []
    has_test = any(row.get("test_accuracy") is not None for row in trials)
    # Parameter counts only where they differ (a width search such as q16's), not a column of one value.
    has_params = len({row.get("params") for row in trials}) > 1
    headers = ["trial", "status"] + list(columns) + (["parameters"] if has_params else [])
    headers += ["epochs run", "train acc. (%)", "val acc. (%)"]
    if has_test:
        headers.append("test acc. (%)")
    headers += ["val loss", "train time", SEED_VAL_HEADER]
    rows, matched = [], False
    for row in trials:
        ref = reference_match(row, reference_rows, match_columns)
        matched = matched or ref is not None
        cells = [show_id(row, width), fmt(row.get("status"))] + [fmt(row.get(c)) for c in columns]
        if has_params:
            cells.append(thousands(row.get("params")))
        cells += [fmt(row.get("epochs_run")), pct(row.get("accuracy")), pct(row.get("val_accuracy"))]
        if has_test:
            cells.append(pct(row.get("test_accuracy")))
        cells += [fmt_loss(row.get("val_loss")), fmt_seconds(row.get("seconds")),
                  pct(as_number(ref.get("val_accuracy"))) if ref else DASH]
        rows.append({"cells": cells, "diverged": is_diverged(row)})
    table = without_constant_columns({"headers": headers, "rows": rows}, noun="trial", settings=settings)
    seed_left_out = SEED_VAL_HEADER not in table["headers"] + [item["name"] for item in table["shared"]]
    if reference_rows and seed_left_out and not matched:     # "—" in every row: the seed has none of these
        table["notes"].append("None of these settings is one the seed write-up reports.")
    return table


def without_constant_columns(table: Mapping[str, Any], noun: str = "row", keep: int = 1,
                             settings: Sequence[tuple[str, Any]] = ()) -> dict[str, Any]:
    """``table`` ({"headers", "rows": [{"cells", ...}]}) less every column whose cells are all the same
    or all empty ("—"), from column ``keep`` on (the first columns name the rows). What every row shares
    is said once, above the table, in ``shared`` ({"name", "value"}: "every trial below: status =
    completed"): first ``settings`` (name, value) the caller knows every row shares though no column
    shows it (a search's fixed hyperparameters), then the left-out columns' values; an empty column
    carries nothing to say. A table of one row keeps its columns: a single value repeats nothing.
    ``notes`` (a list) is for sentences a caller adds about what was left out.
    """
    headers, rows = list(table["headers"]), list(table["rows"])
    dropped = []
    if len(rows) > 1:
        dropped = [k for k in range(keep, len(headers))
                   if len({str(row["cells"][k]).strip() for row in rows}) == 1]
    kept = [k for k in range(len(headers)) if k not in dropped]
    shared = [{"name": name, "value": fmt(value)} for name, value in settings]
    shared += [{"name": headers[k], "value": rows[0]["cells"][k]} for k in dropped
               if str(rows[0]["cells"][k]).strip() not in ("", DASH)]
    return {**table, "headers": [headers[k] for k in kept],
            "rows": [{**row, "cells": [row["cells"][k] for k in kept]} for row in rows],
            "shared": shared, "noun": noun, "notes": list(table.get("notes") or [])}


# -- per-layer parameter tables ------------------------------------------------------
# A table of more layers than this (a ResNet-18's 70) is shown by part in a write-up's chapter, the
# per-layer table in its appendix.
LAYERS_SHOWN_WHOLE = 30
_PART = re.compile(r"(?P<word>[A-Za-z]+)(?P<number>[0-9]*)_")


def parameter_parts(layers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """A long per-layer table (``parameter_table`` rows: layer, type, output_shape, params) by part:
    each run of consecutive layers whose names share the word before their first "_" ("stem_conv",
    "stem_bn": stem; "stage2_block0_a_conv": stage 2) is one part, the lone layers before the first
    run are "input" and those after the last "head". Each part: its layers, the output shape of its
    last layer and its parameters (their sum). None for a table of ``LAYERS_SHOWN_WHOLE`` rows or
    fewer, or one whose names fall into fewer than two runs: it is shown whole."""
    if len(layers) <= LAYERS_SHOWN_WHOLE:
        return None
    prefixes = [(match.group("word") + match.group("number")) if (match := _PART.match(str(row.get("layer") or "")))
                else None for row in layers]
    runs: list[tuple[str, list[Mapping[str, Any]]]] = []
    for prefix, row in zip(prefixes, layers):
        if runs and prefix is not None and runs[-1][0] == prefix:
            runs[-1][1].append(row)
        else:
            runs.append((prefix or str(row.get("layer")), [row]))
    grouped = [k for k, (_, rows) in enumerate(runs) if len(rows) > 1]
    if len(grouped) < 2:
        return None
    parts = ([("input", [row for _, rows in runs[:grouped[0]] for row in rows])] if grouped[0] else [])
    parts += [(runs[k][0], runs[k][1]) for k in range(grouped[0], grouped[-1] + 1)]
    if grouped[-1] + 1 < len(runs):
        parts.append(("head", [row for _, rows in runs[grouped[-1] + 1:] for row in rows]))
    return [{"part": _part_name(name), "layers": len(rows),
             "output_shape": fmt(rows[-1].get("output_shape")),
             "params": sum(row["params"] for row in rows if is_finite(row.get("params")))}
            for name, rows in parts]


def _part_name(prefix: str) -> str:
    """"stage0" -> "stage 0"; "stem", "input", a lone layer's own name unchanged."""
    match = re.fullmatch(r"([A-Za-z]+)([0-9]+)", prefix)
    return f"{match.group(1)} {match.group(2)}" if match else prefix


def by_val_accuracy(row: Mapping[str, Any]) -> float:
    value = row.get("val_accuracy")
    return -value if is_finite(value) else math.inf


def thousands(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else fmt(value)


# -- from-scratch questions -----------------------------------------------------------
# Their experiments store what a hand-written engine computed next to what TensorFlow (or
# central differences) computed for the same inputs; the seed's numbers, where it printed
# any, come from run.json "reference" as for every other section.
NO_REFERENCE = "The seed write-up prints no numbers for this part."


def settings_rows(summary: Mapping[str, Any], names: Mapping[str, str]) -> list[dict[str, str]]:
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


def largest(values: Sequence[Any]) -> Any:
    """The largest value; a nan/inf among them wins, so a broken point is never hidden."""
    values = [as_number(v) for v in values if as_number(v) is not None]
    odd = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    if odd:
        return odd[0]
    numbers = [v for v in values if is_finite(v)]
    return max(numbers) if numbers else None


def summary_or(summary: Mapping[str, Any], key: str, rows: Sequence[Mapping[str, Any]]) -> Any:
    """``summary[key]`` when stored, else the largest ``key`` over ``rows``."""
    if summary.get(key) is not None:
        return summary[key]
    return largest([row.get(key) for row in rows])


def fixed_decimals(value: Any, digits: int = 2) -> str:
    """A value like an L2 norm with ``digits`` decimals: 429.5912 -> "429.59"."""
    value = as_number(value)
    if is_finite(value):
        return f"{value:.{digits}f}"
    return DASH if value is None or value == "" else str(value)


def by_number(mapping: Any, key: Any) -> Any:
    """``mapping["10"]`` for N = 10 (JSON keys are strings), also when written "10.0" or "1e+01"."""
    if not isinstance(mapping, Mapping):
        return None
    for k, v in mapping.items():
        if str(k) == str(key) or same_value(parse_number(k), key):
            return v
    return None


def parse_number(text: Any) -> Any:
    try:
        return float(text)
    except (TypeError, ValueError):
        return text
