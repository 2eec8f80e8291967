"""One folder per question and profile; every file is written atomically.

Layout (see README "Outputs")::

    results/<question>/<profile>/
        run.json                          configuration, dataset, environment, status, reference numbers
        experiments/<name>/summary.json   what the experiment was and its headline numbers
        experiments/<name>/trials.csv     one row per trial: hyperparameters, status, metrics
        experiments/<name>/history.csv    one row per trial and epoch
        experiments/<name>/metrics.json   evaluations (per-class accuracy, confusion matrix, ...)
        tuner/                            KerasTuner projects (resume state), not read by the report

A write goes to a temporary file in the same folder and is renamed over the
target, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = 1
PREDICTIONS = "predictions.npz"    # experiments/<name>/: "labels" and each model's predicted class per test image


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)   # mkstemp makes files private; results are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays become Python ones, NaN/inf become strings."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": valid JSON, and a diverged loss stays visible
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


class ResultsStore:
    """Reads and writes the files of one question run (one question, one profile)."""

    def __init__(self, root: Path, question: str, profile: str, implementation: str | None = None):
        # A second implementation of a question (q3 --impl scratch) is a run of its own,
        # kept beside the default one so a report can show both.
        self.root = Path(root) / question / profile
        if implementation:
            self.root = self.root / implementation
        self.question = question
        self.profile = profile
        self.implementation = implementation
        # The run writing here (run.json "run_id"): stamped on every summary, so a report can tell
        # this run's results from those an earlier run with other settings left behind.
        self.run_id: str | None = None

    # -- paths ---------------------------------------------------------------
    def experiment_dir(self, experiment: str) -> Path:
        return self.root / "experiments" / experiment

    def tuner_dir(self) -> Path:
        return self.root / "tuner"

    def exists(self) -> bool:
        return (self.root / "run.json").is_file()

    # -- JSON ----------------------------------------------------------------
    def write_json(self, relative: str, obj: Any) -> Path:
        path = self.root / relative
        atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")
        return path

    def read_json(self, relative: str, default: Any = None) -> Any:
        path = self.root / relative
        if not path.is_file():
            if default is not None:
                return default
            raise FileNotFoundError(f"no stored result {path}")
        return json.loads(path.read_text(encoding="utf-8"))

    # -- CSV -----------------------------------------------------------------
    def write_table(self, relative: str, rows: Iterable[Mapping[str, Any]],
                    columns: list[str] | None = None) -> Path:
        rows = [dict(_jsonable(r)) for r in rows]
        if columns is None:
            columns = []
            for row in rows:
                columns.extend(k for k in row if k not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        path = self.root / relative
        atomic_write_text(path, buffer.getvalue())
        return path

    def read_table(self, relative: str) -> list[dict[str, Any]]:
        """Rows as dicts; numbers come back as int or float, empty cells as None."""
        path = self.root / relative
        if not path.is_file():
            raise FileNotFoundError(f"no stored result {path}")
        with path.open(newline="", encoding="utf-8") as handle:
            return [{k: _parse_cell(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    # -- experiments -------------------------------------------------------------
    def write_experiment(self, experiment: str, *, summary: Mapping[str, Any],
                         trials: list[Mapping[str, Any]] | None = None,
                         history: list[Mapping[str, Any]] | None = None,
                         metrics: Mapping[str, Any] | None = None,
                         tables: Mapping[str, list[Mapping[str, Any]]] | None = None,
                         arrays: Mapping[str, Any] | None = None,
                         predictions: Mapping[str, Any] | None = None) -> None:
        """Write an experiment's files; summary.json last, so its presence means complete.

        ``tables`` are further CSVs by stem (q2's ``points``); ``arrays`` go to arrays.npz; ``predictions``
        (the test labels and each model's predicted class per test image) to predictions.npz. CSVs and a
        predictions.npz of the experiment's folder that this write does not include are removed (left by an
        earlier run).
        """
        base = f"experiments/{experiment}"
        csvs = {"trials": trials, "history": history, **(tables or {})}
        for stem, rows in csvs.items():
            if rows is not None:
                self.write_table(f"{base}/{stem}.csv", rows)
        # A table an earlier run wrote and this one did not (a search run again without instruments)
        # would otherwise be read back as this run's.
        written = {f"{stem}.csv" for stem, rows in csvs.items() if rows is not None}
        for stale in self.experiment_dir(experiment).glob("*.csv"):
            if stale.name not in written:
                stale.unlink()
        if arrays:
            self.write_arrays(experiment, **arrays)
        if predictions:
            self.write_arrays(experiment, PREDICTIONS, **predictions)
        else:
            (self.experiment_dir(experiment) / PREDICTIONS).unlink(missing_ok=True)
        if metrics is not None:
            self.write_json(f"{base}/metrics.json", metrics)
        if self.run_id is not None:
            summary = {**summary, "run_id": self.run_id}
        self.write_json(f"{base}/summary.json", summary)

    def read_experiment(self, experiment: str) -> dict[str, Any]:
        """summary, metrics and every CSV of an experiment, keyed by file stem ("trials", "history", ...)."""
        base = self.experiment_dir(experiment)
        found: dict[str, Any] = {"summary": self.read_json(f"experiments/{experiment}/summary.json")}
        for table in sorted(base.glob("*.csv")):
            found[table.stem] = self.read_table(f"experiments/{experiment}/{table.name}")
        if (base / "metrics.json").is_file():
            found["metrics"] = self.read_json(f"experiments/{experiment}/metrics.json")
        return found

    # -- arrays (images, kernels) ----------------------------------------------------
    def write_arrays(self, experiment: str, filename: str = "arrays.npz", /, **arrays) -> Path:
        """``experiments/<name>/arrays.npz`` (or ``filename``): images and kernels a figure needs, test
        predictions (``np.load`` opens it)."""
        import numpy as np

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        path = self.experiment_dir(experiment) / filename
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def read_arrays(self, experiment: str) -> dict[str, Any]:
        import numpy as np

        path = self.experiment_dir(experiment) / "arrays.npz"
        if not path.is_file():
            raise FileNotFoundError(f"no stored result {path}")
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}

    def experiments(self) -> list[str]:
        folder = self.root / "experiments"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "summary.json").is_file())


def _parse_cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    return text
