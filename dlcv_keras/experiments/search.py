"""The search kind: a KerasTuner search over the space in tuners/<question>.toml [<profile>.<name>].

A single-point grid is a plain training run (a base run). Every trial's epochs are stored
(trials.csv, history.csv); the report shows a search as learning curves, an effect plot,
a top-k table or a training-fraction study (``VIEWS``), each ending with observations computed
from those numbers by the rules in report/observe.py.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from dlcv_keras.experiments.base import Experiment
from dlcv_keras.experiments.comparison import _epochs, mean_history, run_summary, spread
from dlcv_keras.models.options import (COMPILE_KEYS, FIT_KEYS, INSTRUMENTS, MODEL_KEYS, RUN_KEYS, SCRATCH_MODELS,
                                      SOLVER_KEYS)
from dlcv_keras.report.format import (ACCURACY_KEYS, DASH, ROW_METRIC_KEYS, as_number, by_val_accuracy,
                                      diverged_rows, fmt, fmt_seconds, histories_by_trial, hyperparameter_columns,
                                      id_width, is_diverged, is_finite, is_trained, metric_header, pct,
                                      reference_match, reference_table, require, same_value, thousands, trial_key,
                                      trial_table, varying_columns, without_constant_columns)
from dlcv_keras.lessons import Predictions
from dlcv_keras.stats import mean_and_sd
from dlcv_keras.report.observe import (DID_NOT_LEARN, SPLIT_WORDS, against_seed, at_chance, best_of, chance_test,
                                       gap_words, known_causes, noise, paired_words, points, ranking_agreement,
                                       split_size, trend)
from dlcv_keras.tuning.spaces import SEARCH_DOMAINS
from dlcv_keras.validation import InvalidParameterError

# The search's own settings: a parameter-count constraint (q16: 0.5M to 1M). A sampled setting
# outside it is recorded as "rejected" with its parameter count, and not trained.
CONSTRAINT = {"min_params": ("int", 0, 10**12, "both"), "max_params": ("int", 1, 10**12, "both")}
# ``trials``: how many settings this table's random search samples, instead of the profile's random_trials
# (q18: a few short coarse trials, then fewer long fine ones).
OWN_SETTINGS = {**CONSTRAINT, "trials": ("int", 1, 100_000, "both")}


@dataclass(frozen=True)
class Borrow:
    """Values another question's search found best (q17's MLP: the widths our q16 chose), taken when that
    question's run of the same profile in the same results folder is complete, on the same dataset, and its
    search is current; otherwise the space table's own values stand. ``found`` and ``otherwise`` say in
    words what the values are in each case (a comparison's label shows them: "q16's best")."""
    question: str
    experiment: str
    keys: tuple[str, ...]
    found: str
    otherwise: str


@dataclass(frozen=True)
class Search(Experiment):
    """``model`` names the builder (models.BUILDERS; default: the question's). ``base_from`` names an
    earlier search whose best setting fills every value this space leaves out."""
    model: str | None = None
    base_from: str | None = None
    evaluates_test: bool = False      # also score every trial on the test split
    top_k: int | None = None
    tuner: str | None = None          # "grid": every listed value must run (10/20/50 %), "random": a
                                      # random search (q16), whatever --tuner says; None: --tuner decides
    keep_models: bool = False         # save every trained trial's model (an EvaluateBest reads the best)
    narrow_from: str | None = None    # coarse to fine (q18): this search's ranges shrink around that
    narrow_factor: float = 3.0        # earlier search's best, to best/f..best*f (log) or 1/f of the width
    instruments: tuple[str, ...] = () # what training.instruments.LayerProbe measures in every trial, each
                                      # epoch (layer_stats.csv): "gradients", "weights", "activations", "symmetry"
    implementation: str | None = None  # "keras" or "scratch" (numpy, dlcv_keras.scratch) for this search
                                       # alone; None: the question's, or --impl's
    borrow: Borrow | None = None       # values another question's search found best (see Borrow)
    early_stopping: bool = True       # the question's stopping rule (Question.early_stopping) ends its fits;
                                      # False: every epoch runs (q3's linear baseline, trained as q1 trains it)

    KIND: ClassVar[str] = "search"
    # depth_study and init_study live in layer_statistics.py, beside what the instruments stored.
    VIEWS: ClassVar[tuple[str, ...]] = ("curves", "effect", "top_table", "fractions", "depth_study", "init_study")

    def model_name(self, question) -> str:
        return self.model or question.model

    def implementation_for(self, question, requested: str | None = None) -> str:
        """This search's own implementation, else the one --impl ``requested``, else the question's."""
        return self.implementation or question.implementation(requested)

    def accepted(self, question) -> Mapping[str, tuple]:
        model = self.model_name(question)
        training = SOLVER_KEYS if model in SCRATCH_MODELS else (*COMPILE_KEYS, *FIT_KEYS)
        names = (*MODEL_KEYS[model], *training, *RUN_KEYS)
        return {**{name: SEARCH_DOMAINS[name] for name in names}, **OWN_SETTINGS}

    def listable(self) -> tuple[str, ...]:
        return tuple(SEARCH_DOMAINS)          # any hyperparameter may be a grid or a range

    def check(self, question, settings, table, where: str) -> None:
        super().check(question, settings, table, where)
        if table.ranges and self.tuner == "grid":
            raise InvalidParameterError(f"{where} {sorted(table.ranges)[0]} must be a list of values "
                                        f"(this experiment runs every value, whatever --tuner says), got a range")
        low, high = table.fixed.get("min_params", 0), table.fixed.get("max_params")
        if high is not None and low > high:
            raise InvalidParameterError(f"{where} min_params must be <= max_params, got {low} > {high}")
        _check_combinations(question, settings, table, where)
        implementation = self.implementation_for(question, settings.implementation)
        self._check_instruments(implementation, where)
        if self.model_name(question) in SCRATCH_MODELS and implementation != "scratch":
            raise InvalidParameterError(f"{where} trains {self.model_name(question)!r}, a numpy model: its Search "
                                        f"must have implementation='scratch', got {implementation!r}")
        if implementation == "scratch":
            _check_scratch_model(table, where)
            if self.keep_models:
                raise InvalidParameterError(f"{where} keeps its trials' models, which only Keras models can be "
                                            f"(model.save): a numpy search needs keep_models=False, got True")

    def check_data(self, question, settings, table, data, where: str) -> None:
        """PCA fits at most as many components as the training split has rows."""
        pca, rows = table.largest("pca"), len(data.y_train)
        if pca is not None and pca > rows:
            raise InvalidParameterError(f"{where} pca must be an int in [0, {rows}] (at most the {rows} training "
                                        f"rows it is fitted on), got {pca}")

    def _check_instruments(self, implementation: str, where: str) -> None:
        if not isinstance(self.instruments, tuple):
            raise InvalidParameterError(f"{where} instruments must be a tuple of names from {INSTRUMENTS}, got "
                                        f"{self.instruments!r}")
        unknown = [name for name in self.instruments if name not in INSTRUMENTS]
        if unknown:
            raise InvalidParameterError(f"{where} instruments must be names from {INSTRUMENTS}, got {unknown[0]!r}")
        if self.instruments and implementation != "keras":
            # The hand-written solver has no callbacks to measure from: declined, not silently skipped.
            raise InvalidParameterError(f"{where} measures {', '.join(self.instruments)} inside the network, which "
                                        f"only a Keras model allows, got the {implementation!r} implementation")

    def section(self) -> dict[str, Any]:
        found = super().section()
        if self.top_k:
            found["top_k"] = self.top_k
        return found

    def run(self, runner) -> None:
        run_search(runner, self)


def _check_combinations(question, settings, table, where: str) -> None:
    """Settings that are each valid but cannot go together, caught before anything is written
    (inside a trial they would stop the search half-way)."""
    values = table.values
    one_cycle = "one_cycle" in values("schedule")
    if one_cycle and not values("max_lr") and "max_lr" not in table.ranges:
        raise InvalidParameterError(f"{where} must set max_lr for schedule 'one_cycle' (the cycle's peak rate)")
    if one_cycle and any(values("plateau_patience")):
        raise InvalidParameterError(f"{where} plateau_patience must be 0 with schedule 'one_cycle' (ReduceLROnPlateau "
                                    f"sets the rate the schedule computes), got {values('plateau_patience')!r}")
    if any(values("grad_clip")) and any(values("clipnorm")):
        raise InvalidParameterError(f"{where} must set grad_clip or clipnorm, not both, got grad_clip="
                                    f"{values('grad_clip')!r}, clipnorm={values('clipnorm')!r}")
    if (values("epochs") or "epochs" in table.ranges) and (values("iterations") or "iterations" in table.ranges):
        raise InvalidParameterError(f"{where} must set epochs or iterations, not both (each sets the run's length), "
                                    f"got epochs={values('epochs')!r}, iterations={values('iterations')!r}")
    augments = values("augment")
    dataset = settings.dataset or question.dataset
    pca = table.largest("pca")
    if pca is not None and dataset is not None:
        from dlcv_keras.data.catalog import SPECS

        spec = SPECS[dataset]
        height, width = (settings.image_size,) * 2 if settings.image_size else spec.image_size
        features = height * width * spec.channels
        if pca > features:
            raise InvalidParameterError(f"{where} pca must be an int in [0, {features}] (0 = off; {dataset} images "
                                        f"have {height}x{width}x{spec.channels} = {features} input features), "
                                        f"got {pca}")
    if augments and dataset is not None:
        from dlcv_keras.data.augment import check_channels, parse_augment
        from dlcv_keras.data.catalog import SPECS

        for value in augments:
            try:
                check_channels(parse_augment(value), SPECS[dataset].channels)
            except InvalidParameterError as error:
                raise InvalidParameterError(f"{where} augment {value!r}: {error}") from None


def _check_scratch_model(table, where: str) -> None:
    """Every value a search may try must be one the hand-written Classifier can train."""
    from dlcv_keras.scratch.nn import TRAINABLE, untrainable

    for key in sorted(set(table.ranges) & set(TRAINABLE)):
        raise InvalidParameterError(f"{where} {key} must be one of {TRAINABLE[key]!r} for --impl scratch, got a range")
    for key, value in [*table.fixed.items(), *((k, v) for k, vs in table.choices.items() for v in vs)]:
        problem = untrainable({key: value})
        if problem:
            raise InvalidParameterError(f"{where} {problem}")


# -- the run step -------------------------------------------------------------------------
def hypermodel_for(runner, model: str, constraint: tuple | None = None, implementation: str | None = None,
                   instruments: tuple = (), early_stopping: bool = True):
    """The question's hypermodel for ``model``: its optimizer, early-stopping rule and data.
    ``implementation`` is an experiment's own (``Search.implementation``); None: the run's.
    ``instruments``: what the layer probe measures in every trial (``Search.instruments``).
    ``early_stopping``: False leaves the question's stopping rule out (``Search.early_stopping``)."""
    from functools import partial

    from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

    question, data = runner.question, runner.data
    implementation = implementation or runner.implementation
    return ClassifierHyperModel(
        model, data.input_shape, data.num_classes, seed=runner.settings.seed,
        optimizer=question.optimizer, implementation=implementation,
        early_stopping=stopping_rule(runner, early_stopping),
        resplit=partial(resplit, seed=runner.settings.seed), constraint=constraint,
        input_stats=runner.input_stats(), fixed_kwargs=runner.model_kwargs.get(model), n_train=len(data.y_train),
        # A numpy (scratch) search of a Keras question trains on one CPU whatever --devices says.
        instruments=instruments, devices=runner.settings.devices if implementation == "keras" else 1)


def stopping_rule(runner, wanted: bool = True) -> dict | None:
    """The profile's [early_stopping] rule when the question applies one and the experiment wants it."""
    return runner.space.early_stopping if runner.question.early_stopping and wanted else None


def resplit(x, y, x_val, y_val, fraction, *, seed):
    """A ``train_fraction`` hyperparameter's split: that stratified share of train+val trains.
    (A module-level function, so that a hypermodel can be sent to a trial's own process.)"""
    import numpy as np

    from dlcv_keras.data import stratified_split

    x_pool, y_pool = np.concatenate([x, x_val]), np.concatenate([y, y_val])
    first, rest = stratified_split(y_pool, fraction, seed)
    return x_pool[first], y_pool[first], x_pool[rest], y_pool[rest]


def run_search(runner, experiment: Search) -> None:
    from dlcv_keras.tuning.search import count_trials, fingerprint, hyperparameters_for, make_tuner

    exp_space = runner.space.experiment(experiment.name)
    hp_space = exp_space.without(OWN_SETTINGS)
    constraint = (exp_space.fixed.get("min_params", 0), exp_space.fixed.get("max_params"))
    constraint = None if constraint == (0, None) else constraint
    base = runner.best[experiment.base_from] if experiment.base_from else {}
    if experiment.narrow_from:
        hp_space = narrowed(hp_space, runner.best[experiment.narrow_from], experiment.narrow_factor)
    borrowed = None
    if experiment.borrow is not None:
        borrowed = borrowed_values(runner, experiment.borrow)
        if borrowed["values"]:
            hp_space = hp_space.with_fixed(borrowed["values"])
        runner.echo(f"[{experiment.name}] {', '.join(f'{k}={v}' for k, v in borrowed['values'].items())} from "
                    f"{borrowed['from']}" if borrowed["values"] else f"[{experiment.name}] {borrowed['why']}")
    settings, data, question = runner.settings, runner.data, runner.question
    model = experiment.model_name(question)
    implementation = experiment.implementation_for(question, settings.implementation)
    tuner_kind = experiment.tuner or settings.tuner
    sampled = exp_space.fixed.get("trials", runner.space.settings.get("random_trials", 10))
    total = count_trials(hp_space, tuner_kind, sampled)
    hypermodel = hypermodel_for(runner, model, constraint, implementation, experiment.instruments,
                                experiment.early_stopping)
    project = f"{experiment.name}-" + fingerprint(
        question.name, model, question.optimizer, implementation, experiment.name,
        settings.profile, tuner_kind, settings.seed, data.info["content_hash"],
        # What the model starts from (q10: which weights file, and what made it), besides its settings.
        runner.model_kwargs.get(model), runner.model_sources.get(model), experiment.instruments,
        exp_space.as_dict(), hp_space.as_dict(), base, total, stopping_rule(runner, experiment.early_stopping),
        # The devices a trial trains on: a search started on one device does not resume on two.
        runner.code_versions, hypermodel.devices)
    tuner = make_tuner(tuner_kind, hypermodel, hyperparameters_for(hp_space, base),
                       directory=runner.store.tuner_dir(), project_name=project, total=total,
                       seed=settings.seed, label=experiment.name, num_classes=data.num_classes,
                       test_data=(data.x_test, data.y_test) if experiment.evaluates_test else None,
                       echo=runner.echo, progress=settings.progress, keep_models=experiment.keep_models,
                       isolate=isolate_trials(implementation, total), cluster=runner.cluster,
                       **runner.tuner_options)
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), verbose=0)
    if runner.cluster is not None and runner.cluster.is_worker:
        # The chief stores the search; a worker takes its best setting from there, for the searches after.
        summary = runner.cluster.wait_for_summary(experiment.name, project)
        runner.best[experiment.name] = summary["best_hyperparameters"]
        return
    records = tuner.records()
    if not records:
        raise RuntimeError(f"search {experiment.name!r} finished no trial; see {tuner.project_dir}")
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        from dlcv_keras.tuning.search import TrialError

        raise TrialError(f"{len(failed)} of {len(records)} trials of {experiment.name} failed on workers, the first "
                         f"{failed[0]['stop_reason']}")
    completed = [r for r in records if r["status"] == "completed"]
    if not completed and constraint is not None:
        bound = (f"{constraint[0]:,} to {constraint[1]:,}" if constraint[1] is not None
                 else f"at least {constraint[0]:,}")
        raise InvalidParameterError(f"{runner.space.source} [{runner.space.profile}.{experiment.name}] must allow "
                                    f"models with {bound} parameters, got {len(records)} sampled settings all "
                                    f"outside it")
    best, seeds_of_best = _best_record(completed) if completed else (records[0], 1)
    runner.best[experiment.name] = best["hyperparameters"]
    runner.best_records[experiment.name] = best
    if experiment.keep_models:
        runner.model_files[experiment.name] = tuner.records_dir / f"{best['trial_id']}.keras"
    if len(records) < total:
        # KerasTuner's random oracle gives up after repeated draws of settings already tried.
        runner.echo(f"[{experiment.name}] note: {len(records)} of {total} planned trials ran (the random search "
                    f"drew only settings already tried)")
    trials, history, layer_stats = records_to_tables(records)
    predictions = test_predictions(records, data.y_test) if experiment.evaluates_test else None
    summary = {
        "kind": "search", "title": experiment.title, "model": model, "implementation": implementation,
        "tuner": tuner_kind, "objective": "val_accuracy",
        "space": hp_space.choices, "ranges": {k: vars(r) for k, r in hp_space.ranges.items()},
        "narrowed_from": experiment.narrow_from,
        "fixed": {**{k: v for k, v in base.items() if k not in hp_space.choices}, **hp_space.fixed},
        "constraint": {"min_params": constraint[0], "max_params": constraint[1]} if constraint else None,
        "base_from": experiment.base_from, "n_trials": len(records), "planned_trials": total,
        "stopping_rule": stopping_rule(runner, experiment.early_stopping),
        "best_trial": best["trial_id"],
        "best_hyperparameters": best["hyperparameters"], "best_val_accuracy": best.get("val_accuracy"),
        # With seeds repeated, the setting is chosen by its mean over them and its first seed kept.
        "best_seeds": seeds_of_best,
        "best_mean_val_accuracy": _mean_val(completed, best) if seeds_of_best > 1 else None,
        "diverged": [r["trial_id"] for r in records if r["status"] == "diverged"],
        "rejected": [r["trial_id"] for r in records if r["status"] == "rejected"],
        # Training time summed over trials: the same whether the search ran at once or resumed.
        "seconds": round(sum(r.get("seconds") or 0.0 for r in records), 2),
        "evaluates_test": experiment.evaluates_test,
        "tuner_project": project,
        "instruments": list(experiment.instruments),
        "borrowed": borrowed,
    }
    runner.store.write_experiment(experiment.name, summary=summary, trials=trials, history=history,
                                  tables={"layer_stats": layer_stats} if layer_stats else None,
                                  predictions=predictions)


def borrowed_values(runner, borrow: Borrow) -> dict[str, Any]:
    """{"from", "values" (empty when not taken), "words" (``found`` or ``otherwise``), "why", "run_id"}: the
    best values of ``borrow``'s search in the same results folder and profile, when its run is complete, on
    this run's dataset, and the search is that run's (not left by an earlier one)."""
    from dlcv_keras.results import ResultsStore

    where = f"{borrow.question}'s {borrow.experiment} search"
    other = ResultsStore(runner.settings.results_dir, borrow.question, runner.settings.profile)
    found = {"from": where, "values": {}, "words": borrow.otherwise, "run_id": None}
    dataset = (runner.data.info or {}).get("name") if runner.data is not None else None
    try:
        run = other.read_json("run.json")
        summary = other.read_experiment(borrow.experiment)["summary"] \
            if (other.experiment_dir(borrow.experiment) / "summary.json").is_file() else {}
    except (OSError, ValueError):
        run, summary = None, {}
    best = summary.get("best_hyperparameters") or {}
    if not run:
        why = f"no {borrow.question} run of the {runner.settings.profile} profile in {runner.settings.results_dir}"
    elif run.get("status") != "complete":
        why = f"the {borrow.question} run in {other.root} is {run.get('status')}, not complete"
    elif (run.get("dataset") or {}).get("name") != dataset:
        why = f"the {borrow.question} run used {(run.get('dataset') or {}).get('name')}, not {dataset}"
    elif summary.get("run_id") != run.get("run_id") or not all(k in best for k in borrow.keys):
        why = f"{where} in {other.root} is not that run's (stale or missing)"
    else:
        return {**found, "values": {k: best[k] for k in borrow.keys}, "words": borrow.found, "why": None,
                "run_id": run.get("run_id")}
    return {**found, "why": f"{why}: the space file's values ({borrow.otherwise})"}


def isolate_trials(implementation: str, total: int) -> bool:
    """Several trials of a Keras model on TensorFlow run one process each (tuning/isolation.py:
    TensorFlow keeps every traced training function, about 60 MB a ResNet trial)."""
    import keras

    return total > 1 and implementation == "keras" and keras.backend.backend() == "tensorflow"


def narrowed(space, best: Mapping[str, Any], factor: float):
    """The fine stage of a coarse-to-fine search: each range shrinks around the coarse stage's best
    value, to [best / factor, best * factor] on a log scale or to 1/factor of its width on a
    linear one, and stays inside the original range. Lists and fixed values are kept."""
    from dlcv_keras.tuning.spaces import ExperimentSpace, Range

    ranges = {}
    for name, span in space.ranges.items():
        centre = best.get(name)
        if centre is None:
            ranges[name] = span
            continue
        if span.sampling == "log":
            low, high = centre / factor, centre * factor
        else:
            half = (span.high - span.low) / factor / 2
            low, high = centre - half, centre + half
        low, high = max(span.low, low), min(span.high, high)
        if isinstance(span.low, int) and isinstance(span.high, int):
            low, high = int(math.floor(low)), int(math.ceil(high))
        else:
            low, high = float(f"{low:.6g}"), float(f"{high:.6g}")
        ranges[name] = Range(low, high, span.sampling) if low < high else span
    return ExperimentSpace(space.name, dict(space.fixed), dict(space.choices), ranges)


def test_predictions(records: list[dict], labels) -> dict:
    """predictions.npz's arrays: the test split's labels and each trial's predicted class per test image
    (trials that trained to the end; lessons compare them image by image, dlcv_keras/lessons.py)."""
    import numpy as np

    found = {"labels": np.asarray(labels, np.int16)}
    for record in records:
        if record.get("test_predictions") is not None:
            found[str(record["trial_id"])] = np.asarray(record["test_predictions"], np.int16)
    return found


def records_to_tables(records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Trial records -> trials.csv rows (hyperparameters as columns), history.csv rows and, when
    the search ran instruments, layer_stats.csv rows (one per trial, epoch and layer)."""
    trials, history, layer_stats = [], [], []
    for record in records:
        row = {"trial_id": record["trial_id"], "status": record["status"], **record["hyperparameters"]}
        row.update({k: v for k, v in record.items()
                    if k not in ("trial_id", "status", "hyperparameters", "history", "layers", "test_predictions")})
        trials.append(row)
        history.extend({"trial_id": record["trial_id"], **epoch} for epoch in record["history"])
        layer_stats.extend({"trial_id": record["trial_id"], **layer} for layer in record.get("layers", ()))
    return trials, history, layer_stats


# -- report views ---------------------------------------------------------------------------
# From this many trained trials a search also gets parallel coordinates and a hyperparameter importance
# chart (and, if random, its running best); a curves section then colours its curves by a hyperparameter,
# as one colour per trial no longer tells them apart.
MANY_TRIALS = 8
# A trend over more values than this (a random search's continuous range) would list every sample.
TREND_POINTS = 8


def _curves(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    history = require(experiment, "history", store, section["experiment"], "history.csv", section["title"])
    by_trial = histories_by_trial(history)
    if summary.get("kind") == "evaluation" or "trials" not in experiment:
        trials = [{"trial_id": next(iter(by_trial), "best"), "status": "completed",
                   "epochs_run": summary.get("epochs_run"), "stop_reason": summary.get("stop_reason"),
                   "accuracy": summary.get("train_accuracy"), "val_accuracy": summary.get("val_accuracy"),
                   "loss": None, "val_loss": None, **(summary.get("hyperparameters") or {})}]
    else:
        trials = experiment["trials"]
    columns = hyperparameter_columns(trials)
    # Values every trial shares are said once ("shared"), not in each row; seed rows still match on all.
    varying = varying_columns(trials, columns)
    ok = {trial_key(row): row for row in trials if is_trained(row)}
    # Each curve is named by what sets its trial apart ("1: augment=crop+flip"), not by its id alone.
    plotted = {_curve_label(tid, ok[tid], varying): rows for tid, rows in by_trial.items() if tid in ok}
    figure = figures.data_uri(figures.learning_curves(plotted)) if plotted else None

    single = len(trials) == 1
    comparison = []
    extra: dict[str, Any] = {}
    if single:
        row = trials[0]
        comparison = [
            {"metric": "train accuracy (%)", "ours": pct(row.get("accuracy")), "seed": pct(as_number(reference.get("train_accuracy")))},
            {"metric": "val accuracy (%)", "ours": pct(row.get("val_accuracy")), "seed": pct(as_number(reference.get("val_accuracy")))},
            {"metric": "epochs run", "ours": fmt(row.get("epochs_run")), "seed": fmt(reference.get("epochs_run"))},
            {"metric": "stop reason", "ours": fmt(row.get("stop_reason")), "seed": fmt(reference.get("stop_reason"))},
        ]
        if row.get("test_accuracy") is not None or "test_accuracy" in reference:
            comparison.append({"metric": "test accuracy (%)", "ours": pct(row.get("test_accuracy")),
                               "seed": pct(as_number(reference.get("test_accuracy")))})
        extra["observations"] = _single_run_observations(run, row, by_trial.get(trial_key(row), []), reference)
    else:
        # learning_curves already gives each trial its own colour: the coloured overlay only from many trials.
        extra = _search_extras(run, summary, trials, columns, history, reference, curves_from=MANY_TRIALS,
                               store=store, name=section["experiment"])
    table = None
    if not single:
        # What every trial shares is said once above the table: the hyperparameters, then its own columns.
        table = trial_table(trials, varying or columns, reference.get("rows") or [], id_width(summary),
                            match_columns=columns,
                            settings=[(c, trials[0].get(c)) for c in columns if c not in varying] if varying else ())
    return {
        "figure": figure,
        "single": single,
        "comparison": comparison,
        "hyperparameters": [{"name": c, "value": fmt(trials[0].get(c))} for c in columns] if single else [],
        "trials": table,
        "reference_summary": _reference_summary(reference) if not single else [],
        "reference": reference_table(reference["rows"]) if not single and reference.get("rows") else None,
        "diverged": diverged_rows(trials, columns, id_width(summary)),
        **extra,
    }


def _setting(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """A trial's setting in words: "lr=0.01, batch_size=32"."""
    return ", ".join(f"{column}={fmt(row.get(column))}" for column in columns)


def _curve_label(trial_id: str, row: Mapping[str, Any], varying: Sequence[str]) -> str:
    if not varying:
        return str(trial_id)
    return f"{trial_id}: " + _setting(row, varying[:3])


def _reference_summary(reference: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for key in ("train_accuracy", "val_accuracy", "test_accuracy", "epochs_run", "stop_reason"):
        if key in reference:
            value = pct(as_number(reference[key])) if key in ACCURACY_KEYS else fmt(reference[key])
            out.append({"name": metric_header(key), "value": value})
    return out


def _search_common(store, section, experiment) -> tuple[dict, list, list[str]]:
    summary = experiment["summary"]
    trials = require(experiment, "trials", store, section["experiment"], "trials.csv", section["title"])
    return summary, trials, hyperparameter_columns(trials)


def _best_record(completed: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any], int]:
    """The trial the search keeps as its best, and how many seeds its setting ran from. With seeds repeated
    (a ``repeat`` hyperparameter), the setting with the highest mean validation accuracy over its seeds, and of
    it the first seed's trial: a seed picked for its own score would flatter the setting."""
    if not any(REPEAT in r["hyperparameters"] for r in completed):
        return max(completed, key=lambda r: r.get("val_accuracy", 0.0)), 1
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in completed:
        groups.setdefault(_setting_key(record), []).append(record)
    chosen = max(groups.values(), key=lambda rs: sum(r.get("val_accuracy", 0.0) for r in rs) / len(rs))
    return min(chosen, key=lambda r: r["hyperparameters"].get(REPEAT, 0)), len(chosen)


def _setting_key(record: Mapping[str, Any]) -> str:
    return repr(sorted((k, v) for k, v in record["hyperparameters"].items() if k != REPEAT))


def _mean_val(completed: Sequence[Mapping[str, Any]], best: Mapping[str, Any]) -> float:
    same = [r.get("val_accuracy", 0.0) for r in completed if _setting_key(r) == _setting_key(best)]
    return sum(same) / len(same)


def _search_meta(summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "tuner": fmt(summary.get("tuner")),
        "objective": fmt(summary.get("objective")),
        "space": [{"name": k, "choices": ", ".join(fmt(v) for v in (vals if isinstance(vals, list) else [vals]))}
                  for k, vals in (summary.get("space") or {}).items()],
        "fixed": [{"name": k, "value": fmt(v)} for k, v in (summary.get("fixed") or {}).items()],
        "n_trials": fmt(summary.get("n_trials", len(trials))),
        "n_diverged": sum(1 for row in trials if is_diverged(row)),
        "n_rejected": sum(1 for row in trials if row.get("status") == "rejected"),
        "constraint": _constraint_words(summary.get("constraint")),
        "best_trial": fmt(summary.get("best_trial")),
        "best_val_accuracy": pct(as_number(summary.get("best_val_accuracy"))),
        "best_seeds": summary.get("best_seeds") or 1,
        "best_mean_val_accuracy": pct(as_number(summary.get("best_mean_val_accuracy"))),
        "seconds": fmt_seconds(summary.get("seconds")),
    }


def _constraint_words(constraint: Any) -> str:
    if not isinstance(constraint, Mapping):
        return ""
    low, high = constraint.get("min_params") or 0, constraint.get("max_params")
    return f"[{thousands(low)}, {thousands(high)}]" if high is not None else f">= {thousands(low)}"


def _effect_x(varying: Sequence[str]) -> str | None:
    """The hyperparameter an effect is shown against: the learning rate when it varies, else the first that does."""
    return "lr" if "lr" in varying else (varying[0] if varying else None)


def _effect(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary, trials, columns = _search_common(store, section, experiment)
    ok = [row for row in trials if is_trained(row)]
    # A repeat grid's seeds are not a hyperparameter: one point per setting, the mean of its seeds (± their sd).
    settings = [c for c in columns if c != REPEAT]
    varying = varying_columns(trials, settings) or settings[:1]
    x = _effect_x(varying)
    group = [c for c in varying if c != x]
    if "batch_size" in group:  # one line per batch size, as in the seed's figure
        group = ["batch_size"] + [c for c in group if c != "batch_size"]
    shown, seeds = ok, 1
    if _repeated(trials):
        shown = _setting_means([row for row in ok if is_finite(row.get("val_accuracy"))], varying)
        seeds = max((row["seeds"] for row in shown), default=1)
    figure = None
    # One setting has no effect to draw (a dot against a value no trial varied).
    if x is not None and len(shown) > 1:
        figure = figures.data_uri(figures.effect_plot(shown, x, group, log_x=(x == "lr"),
                                                      spread="val_accuracy_std" if seeds > 1 else None))
    return {"figure": figure, "x": x, "group": group, "seeds": seeds,
            **_search_tables(summary, trials, trials, columns, reference),
            **_search_extras(run, summary, trials, columns, experiment.get("history"), reference, store=store,
                             name=section["experiment"])}


def _search_tables(summary, trials, shown, columns, reference) -> dict[str, Any]:
    """The search line, the ``shown`` trials' table, the seed's rows and the diverged trials."""
    reference_rows = reference.get("rows") or []
    return {
        "meta": _search_meta(summary, trials),
        # Values shared by every trial are listed once above the table ("Fixed"), not in each row.
        "table": trial_table(shown, varying_columns(trials, columns) or columns, reference_rows,
                             id_width(summary), match_columns=columns),
        "reference": reference_table(reference_rows) if reference_rows else None,
        "reference_note": str(reference.get("note") or ""),
        "diverged": diverged_rows(trials, columns, id_width(summary)),
    }


def _top_table(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary, trials, columns = _search_common(store, section, experiment)
    top_k = section.get("top_k", 5)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidParameterError(f"section {section['title']!r}: top_k must be an int >= 1, got {top_k!r}")
    ranked = sorted((row for row in trials if is_trained(row)), key=by_val_accuracy)
    # The rest follow in a table of their own, so every trial the observations read is shown once.
    rest = trial_table(ranked[top_k:], varying_columns(trials, columns) or columns, reference.get("rows") or [],
                       id_width(summary), match_columns=columns) if ranked[top_k:] else None
    # "Top 8" over two trained trials would promise rows that are not there: the heading counts what is shown.
    return {"top_k": top_k, "shown": min(top_k, len(ranked)), "n_trained": len(ranked), "rest": rest,
            "n_rest": len(ranked[top_k:]),
            **_search_tables(summary, trials, ranked[:top_k], columns, reference),
            **_search_extras(run, summary, trials, columns, experiment.get("history"), reference, store=store,
                             name=section["experiment"])}


# -- a search's figures and observations -------------------------------------------------------
@dataclass(frozen=True)
class Importance:
    """How much each varying hyperparameter matters to the validation accuracy, and how it was measured."""
    method: str                         # "main effects" (a full grid) or "permutation" (a random forest's)
    scores: dict[str, float]            # main effects: share of the variance; permutation: mean drop in R²
    interactions: float | None = None   # main effects: the share no single hyperparameter explains
    trials: int = 0                     # trained trials (settings, for a repeat grid) it was computed from
    seeds: int = 1                      # a repeat grid: the most seeds a setting's mean is taken over


def is_full_grid(trials: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bool:
    """Every combination of the values the trials list (diverged and rejected ones too) was trained (a repeat
    grid's seeds are not a hyperparameter: a setting counts when any of its seeds trained)."""
    varying = varying_columns(trials, [c for c in columns if c != REPEAT])
    if not varying:
        return False
    levels = [len({fmt(row.get(c)) for row in trials}) for c in varying]
    trained = {tuple(fmt(row.get(c)) for c in varying) for row in trials
               if is_trained(row) and is_finite(row.get("val_accuracy"))}
    return len(trained) == math.prod(levels)


def hyperparameter_importance(trials: Sequence[Mapping[str, Any]], columns: Sequence[str],
                              objective: str = "val_accuracy") -> Importance | None:
    """A full grid: its main effects, for each varying hyperparameter the variance of the mean ``objective``
    across its values (each mean weighted by its trials) over the total variance; what is left is
    interactions. Otherwise (a random search, a grid with holes): scikit-learn's permutation importance of a
    random forest fitted to the trained trials (log10 of lr-like values, categories as their rank), the mean
    drop in its R² when one hyperparameter's values are shuffled. None when nothing varies."""
    from dlcv_keras.report.figures import positions, scale_of

    # A repeat grid's seeds are not a hyperparameter: each setting counts once, as the mean of its seeds
    # (so what is left over is interactions, not seed-to-seed noise).
    columns = [c for c in columns if c != REPEAT]
    varying = varying_columns(trials, columns)
    rows = [row for row in trials if is_trained(row) and is_finite(row.get(objective))]
    seeds = 1
    if _repeated(trials):
        rows = _setting_means(rows, varying, objective)
        seeds = max((row["seeds"] for row in rows), default=1)
    ys = [float(row[objective]) for row in rows]
    mean = sum(ys) / len(ys) if ys else 0.0
    total = sum((y - mean) ** 2 for y in ys)
    if not varying or len(rows) < 2 or total == 0:
        return None
    if is_full_grid(trials, columns):
        shares = {}
        for column in varying:
            groups: dict[str, list[float]] = {}
            for row, y in zip(rows, ys):
                groups.setdefault(fmt(row.get(column)), []).append(y)
            shares[column] = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values()) / total
        return Importance("main effects", shares, max(0.0, 1.0 - sum(shares.values())), len(rows), seeds)
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    features = np.column_stack([positions(values, scale_of(values))
                                for values in ([row.get(c) for row in rows] for c in varying)])
    forest = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1).fit(features, ys)
    found = permutation_importance(forest, features, ys, n_repeats=10, random_state=0, n_jobs=1)
    return Importance("permutation", {c: float(v) for c, v in zip(varying, found.importances_mean)}, None, len(rows),
                      seeds)


def _importance_caption(importance: Importance) -> str:
    trained = (f"{importance.trials} trained trials" if importance.seeds == 1 else
               f"{importance.trials} trained settings, each the mean validation accuracy of its seeds (up to "
               f"{importance.seeds})")
    if importance.method == "main effects":
        return (f"Hyperparameter importance, main-effects share of variance (a full grid of {trained}): for each "
                f"hyperparameter, the variance of the mean validation accuracy across its values over the total "
                f"variance of validation accuracy; the grey bar is the share left to interactions.")
    return (f"Hyperparameter importance by scikit-learn's permutation importance (not a full grid, so no exact "
            f"decomposition): a random forest (RandomForestRegressor, 100 trees, random_state 0) fitted to the "
            f"validation accuracy of {trained}, log10 of lr-like values; each bar is the mean drop in the forest's "
            f"R² when that hyperparameter's values are shuffled (10 repeats).")


def _search_extras(run, summary, trials, columns, history, reference, curves_from: int = 2, store=None,
                   name: str | None = None) -> dict[str, Any]:
    """A search's figures beyond the table (drawn from trials.csv and history.csv; diverged and rejected
    trials left out) and its observations. ``curves_from``: trained trials with a history needed for the
    curves coloured by a hyperparameter. ``store`` and ``name``: where the search's test predictions are
    read from, when it scored its trials on the test split."""
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    ok = [row for row in trials if is_trained(row)]
    # A repeat grid's seeds are not a hyperparameter: no colour, axis or importance of their own.
    varying = varying_columns(trials, [c for c in columns if c != REPEAT])
    many = len(ok) >= MANY_TRIALS
    importance = hyperparameter_importance(trials, columns) if many else None
    colour_by = max(importance.scores, key=importance.scores.get) if importance else _effect_x(varying)
    by_trial = histories_by_trial(history or [])
    curves = {trial_key(row): by_trial[trial_key(row)] for row in ok if by_trial.get(trial_key(row))}
    found: dict[str, Any] = {"colour_by": colour_by, "colour_scale": None, "trial_curves": None, "parallel": None,
                             "parallel_lines": "each trained trial is a line", "importance": None,
                             "importance_caption": None, "running_best": None}
    if colour_by and len(curves) >= max(2, curves_from):
        found["colour_scale"] = figures.scale_of([row.get(colour_by) for row in ok])
        found["trial_curves"] = figures.data_uri(figures.trial_curves(
            curves, {trial_key(row): row.get(colour_by) for row in ok}, colour_by))
    if many and varying:
        lines = ok
        if _repeated(trials):      # one line per setting, at the mean of its seeds
            lines = _setting_means([row for row in ok if is_finite(row.get("val_accuracy"))], varying)
            found["parallel_lines"] = "each trained setting is a line (at the mean validation accuracy of its seeds)"
        found["parallel"] = figures.data_uri(figures.parallel_coordinates(lines, varying))
    if importance:
        main = importance.method == "main effects"
        found["importance"] = figures.data_uri(figures.importance_chart(
            importance.scores, x_label="share of the variance of val accuracy" if main else "mean drop in R² when shuffled",
            rest=("interactions", importance.interactions) if main else None))
        found["importance_caption"] = _importance_caption(importance)
    if summary.get("tuner") == "random" and len(trials) >= MANY_TRIALS and ok:
        # Trials in the order they ran; one without an accuracy (rejected, diverged) keeps its number.
        found["running_best"] = figures.data_uri(figures.running_best(
            [row.get("val_accuracy") if is_trained(row) else None for row in trials]))
    tested = (Predictions(store), name) if store is not None and name and summary.get("evaluates_test") else None
    found["observations"] = _search_observations(run, trials, columns, by_trial, reference, importance, tested)
    return found


def _search_observations(run, trials, columns, by_trial, reference, importance, tested=None) -> list[str]:
    """Whether the trials learned at all (at chance: said first, and nothing is read into their differences),
    which setting had the highest validation accuracy and by how much (the best of k, chosen on those
    images: never called significant there) and, when the trials were scored on the test split (``tested``:
    (lessons.Predictions, the search's name)), the best against the runner-up there by a paired test; the
    effect of lr (or the first varying hyperparameter), what matters most, whether the best trial's train-val
    gap grew, the seed's best setting, ranking and accuracy beside ours, and the diverged trials: every
    sentence from the stored numbers. A ``repeat`` grid's seeds of one setting count as one setting (their
    mean)."""
    ok = sorted((row for row in trials if is_trained(row) and is_finite(row.get("val_accuracy"))),
                key=by_val_accuracy)
    varying = varying_columns(trials, columns) or columns
    settings = [c for c in varying if c != REPEAT]
    means = _setting_means(ok, settings)
    out: list[str | None] = []
    learned = _chance_words(run, ok, varying)
    if learned is not None:
        out.append(learned[0])
    if means and (learned is None or learned[1]):
        best = means[0]
        out.append(best_of([(f"the setting {_setting(row, settings)}{_seeds(row)}" if len(means) > 1 else
                             _seeds(row).strip(" ()"), row["val_accuracy"]) for row in means], n=split_size(run, "val"),
                            noun="settings" if len(means) < len(ok) else "trials"))
        if tested is not None and len(means) > 1:
            out.append(_on_test(tested, best, means[1], settings, "the runner-up"))
        out.append(_effect_trend(run, means, settings))
        out.append(_importance_words(importance, ok, run))
        out.append(_gap_change(by_trial.get(trial_key(best), []), noise(run, "val", [best["val_accuracy"]]),
                               "the best trial"))
        out.extend(_against_seed_rows(run, trials, means, columns, settings, reference, tested))
    diverged = [row for row in trials if is_diverged(row)]
    if diverged:
        out.append(f"{len(diverged)} of {len(trials)} trials diverged (a loss that was not finite) and are left out "
                   f"of the ranking and the figures: {'; '.join(_setting(row, varying) for row in diverged)}.")
    rejected = [row for row in trials if row.get("status") == "rejected"]
    if rejected:
        out.append(f"{len(rejected)} of {len(trials)} sampled settings fell outside the parameter constraint and "
                   f"were not trained.")
    return [sentence for sentence in out if sentence]


REPEAT = "repeat"      # models/options.py RUN_KEYS: the same setting trained from another seed


def _repeated(trials: Sequence[Mapping[str, Any]]) -> bool:
    """The search trained its settings from several seeds (a ``repeat`` list)."""
    return len({fmt(row.get(REPEAT)) for row in trials}) > 1


def _setting_means(ok: Sequence[Mapping[str, Any]], settings: Sequence[str],
                   objective: str = "val_accuracy") -> list[dict[str, Any]]:
    """One row per setting, best (mean ``objective`` over its seeds) first: its first seed's row with the
    mean in ``objective``, their sample standard deviation in "<objective>_std" (None for one seed) and the
    number of seeds in "seeds"."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in ok:
        groups.setdefault(_setting(row, settings), []).append(row)
    means = []
    for rows in groups.values():
        mean, sd = mean_and_sd([r[objective] for r in rows])
        means.append({**rows[0], objective: mean, f"{objective}_std": sd, "seeds": len(rows)})
    return sorted(means, key=lambda row: -row[objective])


def _seeds(row: Mapping[str, Any]) -> str:
    return f" (mean of {row['seeds']} seeds)" if (row.get("seeds") or 1) > 1 else ""


def _on_test(tested, best: Mapping[str, Any], other: Mapping[str, Any], settings: Sequence[str], role: str) -> str | None:
    """The best setting against ``other`` on the test split, which played no part in choosing it: a paired
    test on the same test images (observe.paired_words); None without their stored predictions."""
    predictions, name = tested
    paired = predictions.compare((name, {k: best.get(k) for k in settings}), (name, {k: other.get(k) for k in settings}))
    if paired is None:
        return None
    comparison, sd_a, sd_b = paired
    return ("On the test split, which played no part in the choice: " + paired_words(
        f"the best setting ({_setting(best, settings)})", f"{role} ({_setting(other, settings)})", comparison,
        sd_a, sd_b) + ".")


def _chance_words(run, ok, varying) -> tuple[str, bool] | None:
    """Whether the trained trials learned, said first: (sentence, whether any learned). Every trial at chance
    on the validation split (an exact binomial test) means none learned, and no winner, trend or importance
    may be read into their differences; some at chance are named. None when none is at chance (or the
    split's size or the classes are not stored)."""
    tests = [(row, chance_test(run, "val", row.get("val_accuracy"))) for row in ok]
    if not ok or any(test is None for _, test in tests):
        return None
    flat = [(row, test) for row, test in tests if not test.above_chance()]
    if not flat:
        return None
    if len(flat) == len(ok):
        best = max((test for _, test in tests), key=lambda test: test.correct)
        return (f"No trial learned: all {len(ok)} trained trials are at chance on the validation split (the best, "
                f"{best.words()}). Their differences are noise: no setting wins, and nothing here says which "
                f"hyperparameters are better.", False)
    named = "; ".join(f"{_setting(row, varying)} ({pct(row['val_accuracy'])} %)" for row, _ in flat)
    return (f"{len(flat)} of {len(ok)} trained trials {'is' if len(flat) == 1 else 'are'} at chance on the validation "
            f"split (not above the {100 * flat[0][1].chance:.2f} % chance by the exact binomial test): {named}.", True)


def _effect_trend(run, ok, varying) -> str | None:
    """The trend of the best validation accuracy at each value of the effect's hyperparameter, the others free."""
    x = _effect_x(varying)
    best_at: dict[Any, float] = {}
    for row in ok:
        if is_finite(row.get(x)):
            best_at[row[x]] = max(best_at.get(row[x], -math.inf), row["val_accuracy"])
    if not 2 <= len(best_at) <= TREND_POINTS:
        return None
    others = [c for c in varying if c != x]
    metric = f"the best validation accuracy over {', '.join(others)}" if others else "validation accuracy"
    return trend(list(best_at.items()), x, noise(run, "val", best_at.values()), metric=metric)


def _importance_words(importance: Importance | None, ok, run) -> str | None:
    """What matters most, by the importance computed; a main effect whose values' mean accuracies are
    no further apart than one trial's noise is said to be within noise (a thin grid's shares are noise too)."""
    if importance is None or not importance.scores:
        return None
    (top, score), *rest = sorted(importance.scores.items(), key=lambda kv: -kv[1])
    if importance.method == "main effects":
        nxt = f" (next: {rest[0][0]}, {100 * rest[0][1]:.1f} %)" if rest else ""
        groups: dict[str, list[float]] = {}
        for row in ok:
            groups.setdefault(fmt(row.get(top)), []).append(row["val_accuracy"])
        means = [sum(g) / len(g) for g in groups.values()]
        noise_ = noise(run, "val", means)
        spread = points(max(means), min(means))
        hedge = ("" if noise_.separates(spread) else
                 f" Its values' mean validation accuracies are {gap_words(spread, noise_)}, so no effect is clear "
                 f"on these trials.")
        return (f"In this full grid, {top}'s main effect explains {100 * score:.1f} % of the variance of validation "
                f"accuracy, the most of any hyperparameter{nxt}; {100 * importance.interactions:.1f} % is left "
                f"to interactions.{hedge}")
    nxt = f" (next: {rest[0][0]}, {rest[0][1]:.2f})" if rest else ""
    return (f"By permutation importance of a random forest fitted to {importance.trials} trials, {top} matters most: "
            f"shuffling it lowers the forest's R² by {score:.2f}{nxt}.")


def _gap_change(history: Sequence[Mapping[str, Any]], noise_, who: str) -> str | None:
    """Whether the gap between training and validation accuracy grew in size, and which side leads.

    Counted from the second epoch when there are three or more: the first epoch's training accuracy is
    a mean over the epoch in which the model learns the most, so it lags the validation accuracy
    measured at the epoch's end, and a gap from it would grow by that artefact alone."""
    rows = [r for r in history if is_finite(r.get("accuracy")) and is_finite(r.get("val_accuracy"))]
    if len(rows) < 2:
        return None
    start = rows[1] if len(rows) >= 3 else rows[0]
    first, last = (points(r["accuracy"], r["val_accuracy"]) for r in (start, rows[-1]))
    said = (f"For {who}, training accuracy was {_lead(first)} at epoch {fmt(start.get('epoch'))} and {_lead(last)} at "
            f"epoch {fmt(rows[-1].get('epoch'))}")
    # The other side leads now, by more than the noise: say so, with the change (not the lead) in brackets.
    if first * last < 0 and noise_.separates(last - first) and noise_.separates(last):
        ahead = "training accuracy overtook validation accuracy" if last > 0 else \
            "validation accuracy overtook training accuracy"
        return f"{said}: {ahead} (a change of {gap_words(last - first, noise_)})."
    change = abs(last) - abs(first)
    if first * last < 0 and not noise_.separates(change):
        # The lead changed sides, but the last lead is no evidence of one; "the same size" would hide the swap.
        return f"{said}: the lead changed sides, but the last gap is no lead ({gap_words(last, noise_)})."
    verb = ("stayed the same size" if not noise_.separates(change) else "grew" if change > 0 else "shrank")
    return f"{said}: the gap {verb} ({gap_words(change, noise_)})."


def _lead(gap_points: float) -> str:
    """Training accuracy against validation accuracy, in words: "2.10 points above validation accuracy"."""
    if round(gap_points, 2) == 0:
        return "equal to validation accuracy"
    return f"{abs(gap_points):.2f} points {'above' if gap_points > 0 else 'below'} validation accuracy"


def _seed_best(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The seed's best row: the highest validation accuracy, else (no accuracies) the one row it chose."""
    scored = [r for r in rows if is_finite(as_number(r.get("val_accuracy")))]
    if scored:
        return max(scored, key=lambda r: as_number(r["val_accuracy"]))
    return rows[0] if len(rows) == 1 else None


def _against_seed_rows(run, trials, ok, columns, varying, reference, tested=None) -> list[str | None]:
    """Our best setting beside the seed's best (and, scored on the test split, the two against each other
    there by a paired test), our ranking of the settings both tried beside the seed's, and our best
    validation accuracy beside the seed's best. ``ok``: one row per trained setting, best first."""
    rows = reference.get("rows") or []
    seed = _seed_best(rows)
    if seed is None:
        return []
    ours = ok[0]
    out: list[str | None] = []
    keys = [k for k in seed if k not in ROW_METRIC_KEYS and k in columns]
    differ = [k for k in keys if not same_value(ours.get(k), seed[k])]
    if keys:
        seed_label = _setting(seed, keys)
        if not differ:
            out.append(f"Our best setting matches the seed's best ({seed_label}).")
        else:
            words = (f"Our best setting ({_setting(ours, keys)}) differs from the seed's best ({seed_label}) in "
                     f"{', '.join(differ)}")
            untried = [k for k in differ if not any(same_value(row.get(k), seed[k]) for row in trials)]
            if untried:
                words += (f"; we did not try the seed's {', '.join(f'{k}={fmt(seed[k])}' for k in untried)}")
            same = next((row for row in ok if reference_match(row, [seed], columns)), None)
            if same is not None:
                lead = points(ours["val_accuracy"], same["val_accuracy"])
                # Our best was chosen on these validation images: its lead there is no test.
                words += (f"; the seed's best setting reached {pct(same['val_accuracy'])} % validation accuracy here, "
                          f"{lead:.2f} points below our best (chosen on these images)")
                on_test = _on_test(tested, ours, same, varying, "the seed's best setting") if tested else None
                if on_test:
                    words += ". " + on_test[:-1]
            out.append(words + ".")
    # Our ranking of the settings the seed also reports (each named as in our table), beside the seed's.
    matched: dict[int, Mapping[str, Any]] = {}
    for row in ok:
        for i, ref in enumerate(rows):
            if is_finite(as_number(ref.get("val_accuracy"))) and i not in matched and reference_match(row, [ref], columns):
                matched[i] = row
                break
    label = {i: f"({_setting(row, varying)})" for i, row in matched.items()}
    ours_val = {label[i]: row["val_accuracy"] for i, row in matched.items()}

    def apart(a: str, b: str) -> bool:
        """Two of our settings' validation accuracies differ beyond the margin of two accuracies there."""
        margin = noise(run, "val", [ours_val[a], ours_val[b]])
        return margin.points is not None and margin.separates(points(ours_val[a], ours_val[b]))

    out.append(ranking_agreement(list(ours_val.items()),
                                 [(label[i], as_number(rows[i]["val_accuracy"])) for i in matched], apart=apart))
    like = "epochs" in seed and "epochs" in ours
    # A best setting other than the seed's best is not the seed's result, however close the numbers: name it as
    # a cause (lr and epochs are named by known_causes itself).
    rest = [k for k in differ if k not in ("lr", "epochs")]
    against = ", ".join(f"{k} {fmt(ours.get(k))} against the seed's {fmt(seed[k])}" for k in rest)
    other = [f"our best setting is not the seed's best ({against})"] if rest else []
    out.append(against_seed("best validation accuracy", ours["val_accuracy"], seed.get("val_accuracy"), run,
                            noise(run, "val", [ours["val_accuracy"]]),
                            causes=known_causes(run, epochs=ours.get("epochs") if like else ours.get("epochs_run"),
                                                seed_epochs=seed.get("epochs") if like else
                                                seed.get("epochs_run", seed.get("epochs")),
                                                lr=ours.get("lr"), seed_lr=seed.get("lr"),
                                                unstated=reference.get("unstated"), extra=other)))
    return out


def _single_run_observations(run, row, history, reference) -> list[str]:
    """One run: at chance said first; its final accuracies and their gap, whether the gap grew, and its
    accuracies beside the seed's."""
    out: list[str | None] = []
    train, val = row.get("accuracy"), row.get("val_accuracy")
    chance = at_chance("this run", run, "val", val)
    val_noise = noise(run, "val", [val])
    out.append(chance)
    if is_finite(train) and is_finite(val) and not chance:
        gap = points(train, val)
        ahead = "training" if gap >= 0 else "validation"
        apart = (f"{ahead} accuracy is ahead by " if val_noise.separates(gap) else "the two are ") + gap_words(gap, val_noise)
        out.append(f"After {fmt(row.get('epochs_run'))} epochs ({fmt(row.get('stop_reason'))}), training accuracy is "
                   f"{pct(train)} % and validation accuracy {pct(val)} %: {apart}.")
        out.append(_gap_change(history, val_noise, "this run"))
    causes = ([DID_NOT_LEARN] if chance else []) + known_causes(
        run, epochs=row.get("epochs_run"), seed_epochs=reference.get("epochs_run"), lr=row.get("lr"),
        seed_lr=(reference.get("hyperparameters") or {}).get("lr"), unstated=reference.get("unstated"))
    for split in ("val", "test"):
        key = f"{split}_accuracy"
        out.append(against_seed(f"{SPLIT_WORDS[split]} accuracy", row.get(key), reference.get(key), run,
                                noise(run, split, [row.get(key)]), causes=causes))
    return [sentence for sentence in out if sentence]


def _fractions(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary, trials, columns = _search_common(store, section, experiment)
    settings = [c for c in columns if c != REPEAT]
    key = "train_fraction" if "train_fraction" in columns else (settings[0] if settings else None)
    if key is None:
        raise InvalidParameterError(
            f"{store.experiment_dir(section['experiment']) / 'trials.csv'} has no train_fraction column")
    ordered = sorted(trials, key=lambda r: r.get(key) if is_finite(r.get(key)) else math.inf)
    history = experiment.get("history") or []
    repeated = _repeated(trials)
    # A repeat grid: one row, panel and point per fraction, the mean over its seeds that completed.
    shown = _per_value(ordered, key, history) if repeated else ordered
    by_trial = {trial_key(row): row["history"] for row in shown} if repeated else histories_by_trial(history)
    ok = [row for row in shown if is_trained(row)]
    panels = [(f"{100 * row[key]:g} % of training data" if is_finite(row.get(key)) else fmt(row.get(key)),
               by_trial.get(trial_key(row), [])) for row in ok]
    panels = [p for p in panels if p[1]]
    has_test = any(row.get("test_accuracy") is not None for row in ok)
    y_key = "test_accuracy" if has_test else "val_accuracy"
    reference_rows = reference.get("rows") or []
    ref_points = [(as_number(r.get(key)), as_number(r.get(y_key))) for r in reference_rows]
    rows = []
    for row in shown:
        ref = reference_match(row, reference_rows, [key])
        fraction = f"{100 * row[key]:g} %" if is_finite(row.get(key)) else fmt(row.get(key))
        seed_test = pct(as_number(ref.get("test_accuracy"))) if ref else DASH
        if repeated:
            statuses = Counter(fmt(t.get("status")) for t in row["trials"])
            status = next(iter(statuses)) if len(statuses) == 1 else ", ".join(
                f"{name} ({count} of {len(row['trials'])})" for name, count in statuses.items())
            cells = [fraction, fmt(row["seeds"]), status, spread(row, "epochs_run", _epochs),
                     *(spread(row, k, pct) for k in ("accuracy", "val_accuracy", "test_accuracy")), seed_test]
        else:
            cells = [fraction, fmt(row.get("status")), fmt(row.get("epochs_run")), pct(row.get("accuracy")),
                     pct(row.get("val_accuracy")), pct(row.get("test_accuracy")), seed_test]
        rows.append({"cells": cells, "diverged": is_diverged(row)})
    headers = ["training data", *(["seeds"] if repeated else []), "status", "epochs run", "train acc. (%)",
               "val acc. (%)", "test acc. (%)", "seed test acc. (%)"]
    notes = ["The data not used for training is the validation split."]
    if repeated:
        notes.append("Each row is one training fraction trained from several seeds (repeat): the numbers are the "
                     "mean ± sample standard deviation over its seeds that completed (seeds: how many).")
    # The settings every run shares, then the columns every row has alike, are said once above the table.
    table = without_constant_columns(
        {"headers": headers, "rows": rows, "notes": notes},
        noun="fraction" if repeated else "run",
        settings=[(c, trials[0].get(c)) for c in columns
                  if c != key and trials and len({fmt(r.get(c)) for r in trials}) == 1])
    return {
        "key": key,
        "seeds": max((row.get("seeds") or 1 for row in ok), default=1),
        "curves": figures.data_uri(figures.curves_per_fraction(panels)) if panels else None,
        "plot": figures.data_uri(figures.fraction_vs_accuracy(
            [r[key] for r in ok], [r.get(y_key) for r in ok],
            y_label=f"{'test' if has_test else 'val'} accuracy (%)", reference=ref_points,
            spread=[r.get(f"{y_key}_std") for r in ok] if repeated else ())) if ok else None,
        "y_label": "test" if has_test else "val",
        "table": table,
        "diverged": diverged_rows(trials, columns, id_width(summary)),
        "observations": _fraction_observations(run, ok, key, y_key, reference_rows,
                                               (Predictions(store), section["experiment"]) if has_test else None),
    }


def _per_value(ordered: Sequence[Mapping[str, Any]], key: str, history) -> list[dict[str, Any]]:
    """A repeat grid's trials as one row per value of ``key``, in their order: its first seed's row with
    comparison.run_summary of its seeds over it (status, the mean and "<metric>_std" of each number over the
    completed ones), "seeds" (how many completed), "trials" (every seed, whatever its status) and "history"
    (comparison.mean_history: the mean per epoch, "<metric>_min"/"_max" the lowest and highest seed)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in ordered:
        groups.setdefault(fmt(row.get(key)), []).append(row)
    found = []
    for rows in groups.values():
        summary = run_summary(rows)
        completed = sum(1 for row in rows if row.get("status") == "completed")
        found.append({**rows[0], **summary, "seeds": completed, "trials": rows,
                      "history": mean_history(str(rows[0].get("trial_id")), rows, history)})
    return found


def _fraction_observations(run, ok, key, y_key, reference_rows, tested=None) -> list[str]:
    """Fractions whose model is at chance, said first; accuracy against the training fraction as a trend
    (each step by a paired test on the same test images when ``tested``, (lessons.Predictions, the search's
    name), holds the trials' test predictions, every seed of each fraction; else against the margin of two
    binomial accuracies); each fraction's accuracy beside the seed's. ``ok``: one trained row per fraction
    (a repeat grid's the mean of its seeds, with "seeds")."""
    split = "test" if y_key == "test_accuracy" else "val"
    n = None
    if split == "val":
        # The validation split is the rest of the train+val pool: smallest (noisiest) at the largest fraction.
        pool = (split_size(run, "train") or 0) + (split_size(run, "val") or 0)
        largest = max((row[key] for row in ok if is_finite(row.get(key))), default=None)
        n = round(pool * (1 - largest)) if pool and largest is not None and largest < 1 else None
    noise_ = noise(run, split, [row.get(y_key) for row in ok], n=n)
    chance = [words for row in ok if is_finite(row.get(key)) and
              (words := at_chance(f"training on {100 * row[key]:g} % of the data{_seeds(row)}", run, split,
                                  row.get(y_key), n))]
    ordered = sorted((row for row in ok if is_finite(row.get(key)) and is_finite(row.get(y_key))), key=lambda r: r[key])
    steps = None
    if tested is not None and len(ordered) > 1:
        predictions, name = tested
        steps = [predictions.compare((name, {key: b[key]}), (name, {key: a[key]})) for a, b in zip(ordered, ordered[1:])]
        steps = None if any(step is None for step in steps) else [step[0] for step in steps]
    out = [*chance]
    if len(chance) < len(ordered):
        counts = sorted({row.get("seeds") or 1 for row in ordered})
        seeds = ("" if counts == [1] else f" (mean of {counts[0]} seeds)" if len(counts) == 1 else
                 f" (mean of {counts[0]} to {counts[-1]} seeds)")
        out.append(trend([(row[key], row[y_key]) for row in ordered], key, noise_,
                         metric=f"{SPLIT_WORDS[split]} accuracy{seeds}", steps=steps))
    for row in ok:
        ref = reference_match(row, reference_rows, [key])
        if ref and is_finite(row.get(key)):
            stuck = [DID_NOT_LEARN] if at_chance("it", run, split, row.get(y_key), n) else []
            out.append(against_seed(f"{SPLIT_WORDS[split]} accuracy with {100 * row[key]:g} % of the training "
                                    f"data{_seeds(row)}",
                                    row.get(y_key), ref.get(y_key), run, noise_,
                                    causes=stuck + known_causes(run, epochs=row.get("epochs_run"),
                                                                seed_epochs=ref.get("epochs_run"), lr=row.get("lr"),
                                                                seed_lr=ref.get("lr"))))
    return [sentence for sentence in out if sentence]


VIEWS = {"curves": _curves, "effect": _effect, "top_table": _top_table, "fractions": _fractions}
