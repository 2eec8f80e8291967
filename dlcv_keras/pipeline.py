"""run_question: load data, run every experiment of a question, store the results, report.

The one place that ties the parts together: questions declare, ``data`` loads,
``tuning`` searches, ``training`` fits and evaluates, ``results`` stores, and
``report`` renders from the store alone.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from dlcv_keras.data import DataUnavailable, Dataset, load_dataset, stratified_split
from dlcv_keras.questions import EvaluateBest, Question, Search, SklearnLogistic
from dlcv_keras.resources import packaged_dir
from dlcv_keras.results import SCHEMA_VERSION, ResultsStore
from dlcv_keras.settings import Settings
from dlcv_keras.tuning.spaces import ProfileSpace, load_space
from dlcv_keras.validation import InvalidParameterError

PACKAGES = ("tensorflow", "keras", "keras-tuner", "numpy", "scikit-learn", "tensorflow-datasets",
            "matplotlib", "jinja2", "weasyprint")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    Its native libraries print start-up lines ("oneDNN custom operations are on", "Could not
    find cuda drivers") straight to fd 2 before any log level applies; they bury the
    progress lines on a CPU machine. An import error still raises as usual.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def space_file(question: Question, settings: Settings) -> Path:
    return settings.space_file or packaged_dir("tuners") / f"{question.name}.toml"


def prepare(question: Question, settings: Settings, echo=print) -> tuple[ProfileSpace, Dataset | None]:
    """Everything that can fail on bad input, before anything is written.

    The dataset is None for a question that makes its own data (q2, q6).
    """
    from dlcv_keras import scratch_experiments

    space = load_space(space_file(question, settings), settings.profile,
                       experiments=question.space_tables(settings.implementation), tuner=settings.tuner)
    for experiment in question.experiments_for(settings.implementation):
        ranges = space.experiment(experiment.name).ranges if isinstance(experiment, Search) else {}
        if ranges and experiment.grid_only:
            name = sorted(ranges)[0]
            raise InvalidParameterError(
                f"{space.source} [{settings.profile}.{experiment.name}] {name} must be a list of values "
                f"(this experiment runs every value, whatever --tuner says), got a range")
    if question.early_stopping and space.early_stopping is None:
        raise InvalidParameterError(
            f"{space.source} [{settings.profile}] must have an [{settings.profile}.early_stopping] table "
            f"(min_epochs, min_delta) for {question.name}, got none")
    scratch_experiments.check(question, settings, space)
    if question.dataset is None and settings.dataset is None:
        return space, None
    import_tensorflow_quietly()   # TensorFlow Datasets may import it while loading
    return space, load_question_data(question, settings, space, echo)


def load_question_data(question: Question, settings: Settings, space: ProfileSpace, echo=print) -> Dataset:
    name = settings.dataset or question.dataset
    caps = dict(data_dir=settings.data_dir, val_fraction=question.val_fraction, seed=settings.seed,
                max_train=space.settings.get("max_train"), max_test=space.settings.get("max_test"),
                allow_download=settings.allow_download)
    try:
        return load_dataset(name, **caps)
    except DataUnavailable as exc:
        fallback = question.fallback_dataset
        if fallback is None or settings.dataset is not None or not settings.allow_fallback:
            hint = " (--no-fallback is set)" if fallback and not settings.allow_fallback else ""
            raise InvalidParameterError(
                f"{exc}; point --data-dir or DLCV_DATA_DIR at a folder holding {name}/{hint}") from None
        banner = f"{name.upper()} unavailable: ran on {fallback}"
        echo("\n" + "!" * 72 + f"\n!!  {banner}\n!!  ({exc})\n!!  Use --no-fallback to make this an error.\n" + "!" * 72 + "\n")
        data = load_dataset(fallback, **caps)
        data.info["fallback_banner"] = banner
        data.info["notes"].insert(0, f"{banner}: {exc}")
        return data


def results_store(question: Question, settings: Settings) -> ResultsStore:
    """results/<q>/<profile>/, or a subfolder for an implementation other than the question's default."""
    implementation = question.implementation(settings.implementation)
    return ResultsStore(settings.results_dir, question.name, settings.profile,
                        implementation=None if implementation == question.implementations[0] else implementation)


def run_question(question: Question, settings: Settings, *, space: ProfileSpace | None = None,
                 data: Dataset | None = None, echo=print) -> ResultsStore:
    if space is None or (data is None and question.dataset is not None):
        space, data = prepare(question, settings, echo)
    import_tensorflow_quietly()
    # Every trial builds a new model, so tf.function retracing is expected, not a problem to warn of.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    store = results_store(question, settings)
    implementation = question.implementation(settings.implementation)
    dataset = data.info if data is not None else dict(question.generated_data or {"name": "none"})
    started = time.perf_counter()
    run = {
        "schema_version": SCHEMA_VERSION, "question": question.name, "title": question.title,
        "seed_writeup": question.seed_writeup, "profile": settings.profile, "tuner": settings.tuner,
        "implementation": implementation, "seed": settings.seed, "status": "running",
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "finished": None, "wall_seconds": None, "space_file": space.source,
        "dataset": dataset, "environment": environment(settings), "sections": question.sections(implementation),
        "reference": question.reference,
    }
    store.write_json("run.json", run)
    where = (f"{dataset['name']} {dataset['splits']} from {dataset['source']}" if "splits" in dataset
             else dataset.get("source", "no dataset"))
    echo(f"{question.name}: {question.title} | {implementation} | profile {settings.profile}, "
         f"tuner {settings.tuner}, seed {settings.seed} | {where}")
    for note in dataset.get("notes", []):
        echo(f"  note: {note}")

    runner = _ExperimentRunner(question, settings, space, data, store, echo)
    try:
        for experiment in question.experiments_for(implementation):
            runner.run(experiment)
    except BaseException as stopped:
        run["status"] = "interrupted" if isinstance(stopped, KeyboardInterrupt) else "failed"
        store.write_json("run.json", run)
        raise
    run["status"] = "complete"
    run["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    run["wall_seconds"] = round(time.perf_counter() - started, 1)
    store.write_json("run.json", run)
    echo(f"{question.name}: done in {run['wall_seconds']:.0f} s; results in {store.root}")
    return store


class _ExperimentRunner:
    """Runs one question's experiments in order, remembering each search's best setting."""

    def __init__(self, question, settings, space, data, store, echo):
        self.question, self.settings, self.space = question, settings, space
        self.data, self.store, self.echo = data, store, echo
        self.implementation = question.implementation(settings.implementation)
        self.best: dict[str, dict] = {}
        self.models: dict[str, object] = {}       # retrained best models, for experiments that inspect one

    def run(self, experiment) -> None:
        from dlcv_keras import scratch_experiments

        started = time.perf_counter()
        if isinstance(experiment, Search):
            self.search(experiment)
        elif isinstance(experiment, EvaluateBest):
            self.evaluate_best(experiment)
        elif isinstance(experiment, SklearnLogistic):
            self.sklearn(experiment)
        else:
            scratch_experiments.run(self, experiment)
        self.echo(f"[{experiment.name}] finished in {time.perf_counter() - started:.1f} s")

    def hypermodel(self):
        from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

        seed = self.settings.seed

        def resplit(x, y, x_val, y_val, fraction):
            import numpy as np
            x_pool, y_pool = np.concatenate([x, x_val]), np.concatenate([y, y_val])
            first, rest = stratified_split(y_pool, fraction, seed)
            return x_pool[first], y_pool[first], x_pool[rest], y_pool[rest]

        return ClassifierHyperModel(
            self.question.model, self.data.input_shape, self.data.num_classes, seed=seed,
            optimizer=self.question.optimizer, implementation=self.implementation,
            early_stopping=self.space.early_stopping if self.question.early_stopping else None,
            resplit=resplit)

    def search(self, experiment: Search) -> None:
        from dlcv_keras.tuning.search import count_trials, fingerprint, hyperparameters_for, make_tuner

        exp_space = self.space.experiment(experiment.name)
        base = self.best[experiment.base_from] if experiment.base_from else {}
        settings, data = self.settings, self.data
        tuner_kind = "grid" if experiment.grid_only else settings.tuner
        total = count_trials(exp_space, tuner_kind, self.space.settings.get("random_trials", 10))
        project = f"{experiment.name}-" + fingerprint(
            self.question.name, self.question.model, self.question.optimizer, self.implementation, experiment.name,
            settings.profile, tuner_kind, settings.seed, data.info["content_hash"],
            exp_space.as_dict(), base, total, self.space.early_stopping if self.question.early_stopping else None)
        tuner = make_tuner(tuner_kind, self.hypermodel(), hyperparameters_for(exp_space, base),
                           directory=self.store.tuner_dir(), project_name=project, total=total,
                           seed=settings.seed, label=experiment.name, num_classes=data.num_classes,
                           test_data=(data.x_test, data.y_test) if experiment.evaluates_test else None,
                           echo=self.echo)
        tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), verbose=0)
        records = tuner.records()
        if not records:
            raise RuntimeError(f"search {experiment.name!r} finished no trial; see {tuner.project_dir}")
        completed = [r for r in records if r["status"] == "completed"]
        best = max(completed, key=lambda r: r.get("val_accuracy", 0.0)) if completed else records[0]
        self.best[experiment.name] = best["hyperparameters"]
        trials, history = records_to_tables(records)
        summary = {
            "kind": "search", "title": experiment.title, "tuner": tuner_kind, "objective": "val_accuracy",
            "space": exp_space.choices, "ranges": {k: vars(r) for k, r in exp_space.ranges.items()},
            "fixed": {**{k: v for k, v in base.items() if k not in exp_space.choices}, **exp_space.fixed},
            "base_from": experiment.base_from, "n_trials": len(records), "best_trial": best["trial_id"],
            "best_hyperparameters": best["hyperparameters"], "best_val_accuracy": best.get("val_accuracy"),
            "diverged": [r["trial_id"] for r in records if r["status"] != "completed"],
            # Training time summed over trials: the same whether the search ran at once or resumed.
            "seconds": round(sum(r.get("seconds") or 0.0 for r in records), 2),
            "evaluates_test": experiment.evaluates_test,
            "tuner_project": project,
        }
        self.store.write_experiment(experiment.name, summary=summary, trials=trials, history=history)

    def evaluate_best(self, experiment: EvaluateBest) -> None:
        import keras_tuner

        from dlcv_keras.models import parameter_table
        from dlcv_keras.training.fit import evaluate_classifier

        values = self.best[experiment.source]
        data = self.data
        hp = keras_tuner.HyperParameters()
        for name, value in values.items():
            hp.Fixed(name, value)
        hypermodel = self.hypermodel()
        self.echo(f"[{experiment.name}] retraining the best setting of {experiment.source}: {values}")
        model = hypermodel.build(hp)
        result = hypermodel.fit(hp, model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val))
        train = evaluate_classifier(model, data.x_train, data.y_train, data.num_classes)
        val = evaluate_classifier(model, data.x_val, data.y_val, data.num_classes)
        test = evaluate_classifier(model, data.x_test, data.y_test, data.num_classes)
        names = data.class_names
        per_class = test["per_class_accuracy"]
        tested = [k for k, accuracy in enumerate(per_class) if accuracy is not None]
        best_i = max(tested, key=per_class.__getitem__)
        worst_i = min(tested, key=per_class.__getitem__)
        table = model.parameter_table() if hasattr(model, "parameter_table") else parameter_table(model)
        self.models[experiment.name] = model
        summary = {
            "kind": "evaluation", "title": experiment.title, "from_experiment": experiment.source,
            "hyperparameters": values, "status": result.status,
            "train_accuracy": train["accuracy"], "val_accuracy": val["accuracy"],
            "test_accuracy": test["accuracy"], "test_loss": test["loss"],
            "epochs_run": result.epochs_run, "stop_reason": result.stop_reason, "seconds": result.seconds,
        }
        metrics = {
            "class_names": names, "per_class_accuracy": per_class,
            "best_class": {"index": best_i, "name": names[best_i], "accuracy": per_class[best_i]},
            "worst_class": {"index": worst_i, "name": names[worst_i], "accuracy": per_class[worst_i]},
            "confusion_matrix": test["confusion_matrix"],
            "parameter_table": table, "total_params": sum(r["params"] for r in table),
        }
        history = [{"trial_id": "best", **row} for row in result.history]
        self.store.write_experiment(experiment.name, summary=summary, history=history, metrics=metrics)
        self.echo(f"[{experiment.name}] train {train['accuracy']:.4f}, val {val['accuracy']:.4f}, "
                  f"test {test['accuracy']:.4f} after {result.epochs_run} epochs ({result.stop_reason})")

    def sklearn(self, experiment: SklearnLogistic) -> None:
        from dlcv_keras.training.baselines import logistic_regression

        data = self.data
        self.echo(f"[{experiment.name}] scikit-learn LogisticRegression on {len(data.y_train)} images")
        result = logistic_regression(data.x_train, data.y_train, data.x_test, data.y_test, seed=self.settings.seed)
        summary = {"kind": "sklearn", "title": experiment.title, **result}
        self.store.write_experiment(experiment.name, summary=summary)
        self.echo(f"[{experiment.name}] train {result['train_accuracy']:.4f}, test {result['test_accuracy']:.4f}")


def records_to_tables(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Trial records -> trials.csv rows (hyperparameters as columns) and history.csv rows."""
    trials, history = [], []
    for record in records:
        row = {"trial_id": record["trial_id"], "status": record["status"], **record["hyperparameters"]}
        row.update({k: v for k, v in record.items()
                    if k not in ("trial_id", "status", "hyperparameters", "history")})
        trials.append(row)
        history.extend({"trial_id": record["trial_id"], **epoch} for epoch in record["history"])
    return trials, history


def environment(settings: Settings) -> dict:
    import keras

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "keras_backend": keras.backend.backend(), "packages": versions,
            "git_revision": git_revision(), "seed": settings.seed, "command": " ".join(sys.argv)}


def git_revision() -> str | None:
    """The checkout's commit when run from one (with "-dirty" for uncommitted changes), else None."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
