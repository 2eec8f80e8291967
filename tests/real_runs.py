"""Real smoke runs for the report tests, and copies of them changed the way the code would change them.

``make_smoke_runs(folder)`` runs ``python -m dlcv_keras.run <q> --profile smoke`` for q1-q6 and
q3 ``--impl scratch`` in subprocesses (the command line, not the package's internals), into
``folder/results``. q3 runs offline with no MNIST anywhere, so both of its runs fall back to
digits with the banner, as on a laptop without the data.

What a smoke run cannot produce (a diverged trial, zero-padded trial ids, damaged files) is made
by copying the store (``copy_results``) and rewriting files the way the code writes them:
``mark_diverged`` follows training/callbacks.py (EpochLog), training/fit.py and tuning/search.py;
``pad_trial_ids`` follows KerasTuner's trial ids.

The formatting helpers restate the report's conventions (docs/results-store.md, report/context.py)
independently, so a test compares the report against the stored numbers, not against itself.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import markupsafe

from dlcv_keras.results import ResultsStore

REPO = Path(__file__).resolve().parent.parent
PROFILE = "smoke"
DASH = "—"
# trials.csv columns that are not hyperparameters (docs/results-store.md)
RESULT_COLUMNS = ("trial_id", "status", "params", "epochs_run", "stop_reason", "seconds", "rss_mb", "peak_rss_mb",
                  "trial_rss_mb", "trial_peak_rss_mb",
                  "learning_rate", "loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
FALLBACK_BANNER = "MNIST unavailable: ran on digits"   # pipeline.load_question_data's words for q3's fallback


def shared_data_dir() -> Path | None:
    """The real offline dataset copies: DLCV_DATA_DIR, else /work/shared/datasets; None when absent."""
    for candidate in (os.environ.get("DLCV_DATA_DIR"), "/work/shared/datasets"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def offline_data(*names: str) -> Path:
    """The offline copies' folder, holding every dataset in ``names``; the calling test skips without it."""
    import pytest

    data = shared_data_dir()
    missing = [name for name in names if data is None or not (data / name).is_dir()]
    if missing:
        pytest.skip(f"no offline copy of {', '.join(missing)} (set DLCV_DATA_DIR, e.g. /work/shared/datasets)")
    return data


def kept_runs(variable: str, stem: str, tmp_path_factory) -> tuple[Path, dict | None]:
    """A folder for a test module's real runs and the state its runs saved there, if any.

    With ``$variable`` set, runs are kept in that folder and reused by later sessions (for working on
    the tests; delete the folder after changing what a run writes); otherwise a fresh temporary one."""
    import json

    kept = os.environ.get(variable)
    folder = Path(kept).resolve() if kept else tmp_path_factory.mktemp(stem)
    saved = folder / f"{stem}-runs.json"
    return folder, (json.loads(saved.read_text()) if kept and saved.is_file() else None)


def save_runs(variable: str, stem: str, folder: Path, state: dict) -> None:
    """Keep a module's run state for ``kept_runs`` when ``$variable`` asks for it."""
    import json

    if os.environ.get(variable):
        (folder / f"{stem}-runs.json").write_text(json.dumps(state))


def smoke_commands(folder: Path) -> list[list[str]]:
    """The runs, in order: arguments after ``python -m dlcv_keras.run``."""
    results, empty = folder / "results", folder / "no-data"
    offline = ["--no-download", "--data-dir", str(empty)]    # MNIST is nowhere: q3 falls back to digits
    common = ["--profile", PROFILE, "--results", str(results), "--report", "none", "-q"]
    return [
        ["q1", "--dataset", "digits", *common],
        ["q3", *offline, *common],
        ["q2", *common],
        ["q4", *offline, *common],          # falls back to digits: compared with the seed, the cause named
        ["q5", *offline, *common],
        ["q6", *common],
        ["q3", "--impl", "scratch", *offline, *common],
    ]


def child_env(folder: Path, keras_backend: str | None) -> dict[str, str]:
    """This process's environment without the data/results folders a developer may have exported, with
    an empty TensorFlow Datasets cache; ``keras_backend`` is the one the user exported (None: each run picks)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DLCV_DATA_DIR", "DLCV_RESULTS_DIR", "KERAS_BACKEND")}
    env.update(MPLBACKEND="Agg", TFDS_DATA_DIR=str(folder / "tfds-cache"))
    if keras_backend:
        env["KERAS_BACKEND"] = keras_backend
    return env


def make_smoke_runs(folder: Path, keras_backend: str | None = None) -> dict[str, float]:
    """Run every smoke run into ``folder/results``, one after the other; returns seconds per run.

    Raises RuntimeError with the run's stderr when one exits with a non-zero status.
    """
    for sub in ("no-data", "tfds-cache"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    env = child_env(folder, keras_backend)
    timings = {}
    for args in smoke_commands(folder):
        label = "q3 --impl scratch" if "--impl" in args else args[0]
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900)
        timings[label] = round(time.perf_counter() - started, 1)
        if done.returncode != 0:
            raise RuntimeError(f"`python -m dlcv_keras.run {' '.join(args)}` exited with {done.returncode} "
                               f"after {timings[label]} s; stderr:\n{done.stderr[-6000:]}")
    return timings


def copy_results(source: Path, target: Path, *parts: str) -> Path:
    """Copy the results folder (or only ``parts`` of it, like ``"q3/smoke/scratch"``) to ``target``,
    without KerasTuner's project folders (the report never reads them)."""
    ignore = shutil.ignore_patterns("tuner")
    for part in parts or [p.name for p in Path(source).iterdir() if p.is_dir()]:
        shutil.copytree(Path(source) / part, Path(target) / part, ignore=ignore, dirs_exist_ok=True)
    return Path(target)


def store(results: Path, question: str, implementation: str | None = None) -> ResultsStore:
    return ResultsStore(results, question, PROFILE, implementation=implementation)


# -- changing a copy the way the code would ---------------------------------------------
def mark_diverged(run: ResultsStore, experiment: str, trial_id, *, epoch: int,
                  loss: float = math.inf, val_loss: float = math.nan) -> dict:
    """Make trial ``trial_id`` of a search one whose loss stopped being finite at ``epoch``, as recorded:

    EpochLog keeps that epoch and stops training (history ends there); fit_and_log sets status
    "diverged" and stop reason "diverged at epoch N (loss L, val_loss V)"; the search keeps the last
    epoch's metrics, evaluates no test split for it and lists its id in summary "diverged".
    Returns the trial's new trials.csv row.
    """
    found = run.read_experiment(experiment)
    summary, trials = found["summary"], found["trials"]
    tid = str(trial_id)
    if str(summary.get("best_trial")) == tid:
        raise ValueError(f"trial {tid} is the best of {experiment}; a diverged trial is never the best")
    history = [r for r in found["history"] if str(r["trial_id"]) != tid or r["epoch"] <= epoch]
    last = next(r for r in history if str(r["trial_id"]) == tid and r["epoch"] == epoch)
    last.update(loss=loss, val_loss=val_loss)
    row = next(r for r in trials if str(r["trial_id"]) == tid)
    row.update(status="diverged", epochs_run=epoch,
               stop_reason=f"diverged at epoch {epoch} (loss {loss}, val_loss {val_loss})",
               loss=loss, accuracy=last["accuracy"], val_loss=val_loss, val_accuracy=last["val_accuracy"])
    for key in ("test_loss", "test_accuracy"):
        if key in row:
            row[key] = None
    summary["diverged"] = [t for t in (summary.get("diverged") or []) if t != tid] + [tid]
    run.write_experiment(experiment, summary=summary, trials=trials, history=history)
    return row


def set_predictions(run: ResultsStore, experiment: str, key, correct) -> float:
    """Make one model's stored test predictions right on exactly the test images where ``correct`` is True
    (a wrong one is taken for the next class), as the code stores them: predictions.npz holds "labels" and
    each trial's predicted class by its id (search.test_predictions; "test" for an evaluation or scikit-learn),
    and the run stores the accuracy beside them (the trial's trials.csv row, or the summary). Returns it."""
    import numpy as np

    path = run.experiment_dir(experiment) / "predictions.npz"
    with np.load(path, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    labels = arrays["labels"]
    classes = len(run.read_json("run.json")["dataset"]["class_names"])
    name = next(k for k in arrays if k != "labels" and (k == str(key) or (k.isdigit() and str(key).isdigit()
                                                                          and int(k) == int(key))))
    correct = np.asarray(correct, bool)
    arrays[name] = np.where(correct, labels, (labels + 1) % classes).astype(np.int16)
    run.write_arrays(experiment, "predictions.npz", **arrays)
    accuracy = float(correct.mean())
    found = run.read_experiment(experiment)
    if found.get("trials"):
        for row in found["trials"]:
            if str(row["trial_id"]) == name or (str(row["trial_id"]).isdigit() and name.isdigit()
                                                and int(row["trial_id"]) == int(name)):
                row["test_accuracy"] = accuracy
        run.write_table(f"experiments/{experiment}/trials.csv", found["trials"])
    else:
        run.write_json(f"experiments/{experiment}/summary.json", {**found["summary"], "test_accuracy": accuracy})
    return accuracy


def pad_trial_ids(run: ResultsStore, experiment: str, width: int = 2) -> None:
    """Trial ids as KerasTuner makes them for a search of 10 or more trials ("00", "01", ...):
    zero-padded to the width of the trial count, in trials.csv, history.csv and summary.json."""
    found = run.read_experiment(experiment)
    summary = found["summary"]

    def padded(tid) -> str:
        return f"{int(tid):0{width}d}"

    for row in found["trials"] + found.get("history", []):
        row["trial_id"] = padded(row["trial_id"])
    summary["best_trial"] = padded(summary["best_trial"])
    summary["diverged"] = [padded(t) for t in summary.get("diverged") or []]
    run.write_experiment(experiment, summary=summary, trials=found["trials"], history=found.get("history"))


# -- the report's formats, restated ---------------------------------------------------------
def pct(value) -> str:
    """Accuracy fraction -> percent with 2 decimals; None -> "—"."""
    return DASH if value is None else f"{100 * float(value):.2f}"


def hp(value) -> str:
    """A hyperparameter or plain value as the report prints it: 0.001 -> "0.001", 1e-05 -> "1e-05"."""
    if value is None:
        return DASH
    return f"{value:g}" if isinstance(value, float) else str(value)


def loss4(value) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def seconds(value) -> str:
    """Times under two minutes, as the report prints them: 12.04 -> "12.0 s"."""
    assert value < 120, value
    return f"{value:.1f} s"


def sig(value, digits: int = 8) -> str:
    value = float(value)
    return f"{value:.{digits}g}" if math.isfinite(value) else str(value)


def sci(value, digits: int = 1) -> str:
    value = float(value)
    return f"{value:.{digits}e}" if math.isfinite(value) else str(value)


def thousands(value: int) -> str:
    return f"{value:,}"


def esc(text: str) -> str:
    """``text`` as the report's templates write it (Jinja autoescape)."""
    return str(markupsafe.escape(text))


def shape(values) -> str:
    """A shape as the report prints it: [None, 8, 8, 1] -> "(None, 8, 8, 1)"; a string as stored."""
    if isinstance(values, str):
        return values
    return "(" + ", ".join("None" if v is None else str(v) for v in values) + ")"


def hyperparameters(trials: list[dict]) -> list[str]:
    """trials.csv columns that are hyperparameters, in file order."""
    return [k for k in trials[0] if k not in RESULT_COLUMNS]


def varying(trials: list[dict], columns: list[str]) -> list[str]:
    return [c for c in columns if len({hp(row[c]) for row in trials}) > 1]


def seed_row(row: dict, reference_rows: list[dict], columns: list[str]) -> dict | None:
    """The seed's row for the same setting: every hyperparameter the seed's row names (of ``columns``) agrees."""
    for ref in reference_rows:
        keys = [k for k in ref if k in columns]
        if keys and all(math.isclose(float(row[k]), float(ref[k])) if not isinstance(ref[k], str)
                        else row[k] == ref[k] for k in keys):
            return ref
    return None


def text_of(html: str) -> str:
    """The visible text of a report, whitespace collapsed."""
    html = re.sub(r"<(style|script)>.*?</\1>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def between(text: str, start: str, end: str | None = None) -> str:
    """The part of ``text`` after the first ``start``, up to the next ``end`` (or the end)."""
    assert start in text, start
    part = text.split(start, 1)[1]
    return part.split(end, 1)[0] if end else part


def section_texts(text: str, run: dict) -> dict[str, str]:
    """One question part's text split at its sections' headings: experiment name -> that section's text."""
    titles = [(s["experiment"], s["title"]) for s in run["sections"]]
    out = {}
    for i, (experiment, title) in enumerate(titles):
        end = titles[i + 1][1] if i + 1 < len(titles) else None
        out[experiment] = between(text, esc(title), end and esc(end))
    return out


def images(html: str) -> int:
    return html.count('<img src="data:image/png;base64,')


# -- tables as a reader sees them ----------------------------------------------------------------
def without_repeats(headers: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]], list[str]]:
    """The report's rule for a table of two or more rows, restated: a column after the first whose cells are
    all alike is left out, and its value, unless "—", said once above the table as "<header> = <value>".
    Returns the headers and rows shown and those sayings."""
    if len(rows) < 2:
        return headers, rows, []
    dropped = [k for k in range(1, len(headers)) if len({row[k] for row in rows}) == 1]
    kept = [k for k in range(len(headers)) if k not in dropped]
    said = [f"{headers[k]} = {rows[0][k]}" for k in dropped if rows[0][k] != DASH]
    return [headers[k] for k in kept], [[row[k] for k in kept] for row in rows], said


def html_tables(html: str) -> list[dict]:
    """Every <table> of a page, in order: its class, caption text, header row (the cells of its <thead>)
    and body rows (cell texts, whitespace collapsed)."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell, self.in_caption, self.in_head = [], None, False, False

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append({"class": dict(attrs).get("class") or "", "caption": "", "headers": [],
                                    "rows": []})
            elif not self.tables:
                return
            elif tag == "caption":
                self.in_caption = True
            elif tag == "thead":
                self.in_head = True
            elif tag == "tr" and not self.in_head:
                self.tables[-1]["rows"].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag == "caption":
                self.in_caption = False
            elif tag == "thead":
                self.in_head = False
            elif tag in ("td", "th") and self.cell is not None:
                text = re.sub(r"\s+", " ", self.cell).strip()
                (self.tables[-1]["headers"] if self.in_head else self.tables[-1]["rows"][-1]).append(text)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data
            elif self.in_caption:
                self.tables[-1]["caption"] += data

    parser = Tables()
    parser.feed(html)
    for table in parser.tables:
        table["caption"] = re.sub(r"\s+", " ", table["caption"]).strip()
    return parser.tables


def as_evaluated(stored_lessons: list) -> list:
    """lessons.json's objects as lessons.evaluate returns them: without the run id lessons.write stamps."""
    return [{k: v for k, v in lesson.items() if k != "run_id"} for lesson in stored_lessons]
