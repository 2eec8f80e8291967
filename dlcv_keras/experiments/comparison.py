"""The run-comparison kind (q8): several single-setting runs side by side.

Each compared run is a ``Search`` of its own (one setting, scored on the test split), so it
resumes and stores its epochs like any search; this kind gathers their stored results into
one table (test loss and accuracy, epochs run, why each stopped) and one figure with every
run's curves overlaid. The compared searches are usually declared with ``show=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dlcv_keras.experiments.base import Experiment
from dlcv_keras.validation import InvalidParameterError
from dlcv_keras.report.format import (DASH, as_number, fmt, fmt_loss, histories_by_trial, pct, require)


@dataclass(frozen=True)
class RunComparison(Experiment):
    """``runs``: (experiment name, label) pairs, in table order; each names a single-trial Search."""
    runs: tuple[tuple[str, str], ...] = ()

    KIND: ClassVar[str] = "run_comparison"
    VIEWS: ClassVar[tuple[str, ...]] = ("run_comparison",)
    HAS_TABLE: ClassVar[bool] = False

    def check_question(self, question, settings, space) -> None:
        for name, _ in self.runs:
            table = space.experiment(name)
            varying = sorted({*table.choices, *table.ranges})
            if varying:
                raise InvalidParameterError(f"{space.source} [{space.profile}.{name}] {varying[0]} must be a single "
                                            f"value ({self.name} compares one run of each), got several")

    def run(self, runner) -> None:
        compare_runs(runner, self)


def compare_runs(runner, experiment: RunComparison) -> None:
    rows, history, settings = [], [], {}
    stored_runs = {name: runner.store.read_experiment(name) for name, _ in experiment.runs}
    for name, _ in experiment.runs:
        settings[name] = stored_runs[name]["summary"].get("best_hyperparameters") or {}
    # What every run shares is said once; each row shows what sets it apart.
    shared = {k: v for k, v in settings[experiment.runs[0][0]].items()
              if all(k in s and s[k] == v for s in settings.values())}
    for name, label in experiment.runs:
        stored = stored_runs[name]
        trial = (stored.get("trials") or [{}])[0]
        own = {k: v for k, v in settings[name].items() if k not in shared}
        rows.append({"run": label, "experiment": name, "status": trial.get("status"),
                     "settings": ", ".join(f"{k}={fmt(v)}" for k, v in own.items()) or "none of these",
                     **{k: trial.get(k) for k in ("epochs_run", "stop_reason", "loss", "accuracy", "val_loss",
                                                  "val_accuracy", "test_loss", "test_accuracy", "seconds")}})
        history.extend({**row, "trial_id": label} for row in stored.get("history") or [])
    summary = {"kind": "run_comparison", "title": experiment.title, "runs": [label for _, label in experiment.runs],
               "experiments": [name for name, _ in experiment.runs], "shared": shared,
               "best_test_accuracy": max((r["test_accuracy"] for r in rows if r.get("test_accuracy") is not None),
                                         default=None)}
    runner.store.write_experiment(experiment.name, summary=summary, trials=rows, history=history)
    for row in rows:
        runner.echo(f"[{experiment.name}] {row['run']}: test loss {fmt_loss(row['test_loss'])}, "
                    f"test accuracy {pct(row['test_accuracy'])} % after {row['epochs_run']} epochs ({row['stop_reason']})")


# -- report view ------------------------------------------------------------------------------
def _run_comparison(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    trials = require(experiment, "trials", store, section["experiment"], "trials.csv", section["title"])
    by_run = histories_by_trial(experiment.get("history") or [])
    seed = {str(r.get("run")): r for r in reference.get("rows") or []}
    table = []
    for row in trials:
        ref = seed.get(str(row.get("run")), {})
        table.append({"run": fmt(row.get("run")), "settings": fmt(row.get("settings")),
                      "test_loss": fmt_loss(row.get("test_loss")), "test_loss_seed": fmt_loss(ref.get("test_loss")),
                      "test_accuracy": pct(row.get("test_accuracy")),
                      "test_accuracy_seed": pct(as_number(ref.get("test_accuracy"))),
                      "val_accuracy": pct(row.get("val_accuracy")), "epochs_run": fmt(row.get("epochs_run")),
                      "epochs_seed": fmt(ref.get("epochs_run")), "stop_reason": fmt(row.get("stop_reason")),
                      "status": fmt(row.get("status"))})
    curves = {str(row.get("run")): by_run[str(row.get("run"))] for row in trials
              if str(row.get("run")) in by_run and row.get("status") == "completed"}
    shared = experiment["summary"].get("shared") or {}
    return {"table": table, "shared": ", ".join(f"{k} = {fmt(v)}" for k, v in shared.items()),
            "figure": figures.data_uri(figures.learning_curves(curves)) if curves else None,
            "note": str(reference.get("note") or DASH)}


VIEWS = {"run_comparison": _run_comparison}
REQUIRED_FILES = {"run_comparison": ("trials.csv", "history.csv")}
