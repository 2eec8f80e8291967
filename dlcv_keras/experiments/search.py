"""The search kind: a KerasTuner search over the space in tuners/<question>.toml [<profile>.<name>].

A single-point grid is a plain training run (a base run). Every trial's epochs are stored
(trials.csv, history.csv); the report shows a search as learning curves, an effect plot,
a top-k table or a training-fraction study (``VIEWS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from dlcv_keras.experiments.base import Experiment
from dlcv_keras.models.options import (COMPILE_KEYS, FIT_KEYS, INSTRUMENTS, MODEL_KEYS, RUN_KEYS, SCRATCH_MODELS,
                                      SOLVER_KEYS)
from dlcv_keras.report.format import (ACCURACY_KEYS, DASH, as_number, diverged_rows, fmt, fmt_seconds,
                                      hyperparameter_columns, histories_by_trial, id_width, is_diverged, is_finite, is_trained,
                                      metric_header, pct, reference_match, reference_table, require, trial_key,
                                      thousands, trial_table, by_val_accuracy, varying_columns)
from dlcv_keras.tuning.spaces import SEARCH_DOMAINS
from dlcv_keras.validation import InvalidParameterError

# The search's own settings: a parameter-count constraint (q16: 0.5M to 1M). A sampled setting
# outside it is recorded as "rejected" with its parameter count, and not trained.
CONSTRAINT = {"min_params": ("int", 0, 10**12, "both"), "max_params": ("int", 1, 10**12, "both")}


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
        return {**{name: SEARCH_DOMAINS[name] for name in names}, **CONSTRAINT}

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
                   instruments: tuple = ()):
    """The question's hypermodel for ``model``: its optimizer, early-stopping rule and data.
    ``implementation`` is an experiment's own (``Search.implementation``); None: the run's.
    ``instruments``: what the layer probe measures in every trial (``Search.instruments``)."""
    from functools import partial

    from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

    question, data = runner.question, runner.data
    return ClassifierHyperModel(
        model, data.input_shape, data.num_classes, seed=runner.settings.seed,
        optimizer=question.optimizer, implementation=implementation or runner.implementation,
        early_stopping=runner.space.early_stopping if question.early_stopping else None,
        resplit=partial(resplit, seed=runner.settings.seed), constraint=constraint,
        input_stats=runner.input_stats(), fixed_kwargs=runner.model_kwargs.get(model), n_train=len(data.y_train),
        instruments=instruments)


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
    hp_space = exp_space.without(CONSTRAINT)
    constraint = (exp_space.fixed.get("min_params", 0), exp_space.fixed.get("max_params"))
    constraint = None if constraint == (0, None) else constraint
    base = runner.best[experiment.base_from] if experiment.base_from else {}
    if experiment.narrow_from:
        hp_space = narrowed(hp_space, runner.best[experiment.narrow_from], experiment.narrow_factor)
    settings, data, question = runner.settings, runner.data, runner.question
    model = experiment.model_name(question)
    implementation = experiment.implementation_for(question, settings.implementation)
    tuner_kind = experiment.tuner or settings.tuner
    total = count_trials(hp_space, tuner_kind, runner.space.settings.get("random_trials", 10))
    project = f"{experiment.name}-" + fingerprint(
        question.name, model, question.optimizer, implementation, experiment.name,
        settings.profile, tuner_kind, settings.seed, data.info["content_hash"],
        # What the model starts from (q10: which weights file, and what made it), besides its settings.
        runner.model_kwargs.get(model), runner.model_sources.get(model), experiment.instruments,
        exp_space.as_dict(), hp_space.as_dict(), base, total, runner.space.early_stopping if question.early_stopping else None,
        runner.code_versions)
    tuner = make_tuner(tuner_kind, hypermodel_for(runner, model, constraint, implementation, experiment.instruments),
                       hyperparameters_for(hp_space, base),
                       directory=runner.store.tuner_dir(), project_name=project, total=total,
                       seed=settings.seed, label=experiment.name, num_classes=data.num_classes,
                       test_data=(data.x_test, data.y_test) if experiment.evaluates_test else None,
                       echo=runner.echo, progress=settings.progress, keep_models=experiment.keep_models,
                       isolate=isolate_trials(implementation, total), **runner.tuner_options)
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), verbose=0)
    records = tuner.records()
    if not records:
        raise RuntimeError(f"search {experiment.name!r} finished no trial; see {tuner.project_dir}")
    completed = [r for r in records if r["status"] == "completed"]
    if not completed and constraint is not None:
        bound = (f"{constraint[0]:,} to {constraint[1]:,}" if constraint[1] is not None
                 else f"at least {constraint[0]:,}")
        raise InvalidParameterError(f"{runner.space.source} [{runner.space.profile}.{experiment.name}] must allow "
                                    f"models with {bound} parameters, got {len(records)} sampled settings all "
                                    f"outside it")
    best = max(completed, key=lambda r: r.get("val_accuracy", 0.0)) if completed else records[0]
    runner.best[experiment.name] = best["hyperparameters"]
    runner.best_records[experiment.name] = best
    if experiment.keep_models:
        runner.model_files[experiment.name] = tuner.records_dir / f"{best['trial_id']}.keras"
    if len(records) < total:
        # KerasTuner's random oracle gives up after repeated draws of settings already tried.
        runner.echo(f"[{experiment.name}] note: {len(records)} of {total} planned trials ran (the random search "
                    f"drew only settings already tried)")
    trials, history, layer_stats = records_to_tables(records)
    summary = {
        "kind": "search", "title": experiment.title, "model": model, "implementation": implementation,
        "tuner": tuner_kind, "objective": "val_accuracy",
        "space": hp_space.choices, "ranges": {k: vars(r) for k, r in hp_space.ranges.items()},
        "narrowed_from": experiment.narrow_from,
        "fixed": {**{k: v for k, v in base.items() if k not in hp_space.choices}, **hp_space.fixed},
        "constraint": {"min_params": constraint[0], "max_params": constraint[1]} if constraint else None,
        "base_from": experiment.base_from, "n_trials": len(records), "planned_trials": total,
        "best_trial": best["trial_id"],
        "best_hyperparameters": best["hyperparameters"], "best_val_accuracy": best.get("val_accuracy"),
        "diverged": [r["trial_id"] for r in records if r["status"] == "diverged"],
        "rejected": [r["trial_id"] for r in records if r["status"] == "rejected"],
        # Training time summed over trials: the same whether the search ran at once or resumed.
        "seconds": round(sum(r.get("seconds") or 0.0 for r in records), 2),
        "evaluates_test": experiment.evaluates_test,
        "tuner_project": project,
        "instruments": list(experiment.instruments),
    }
    runner.store.write_experiment(experiment.name, summary=summary, trials=trials, history=history,
                                  tables={"layer_stats": layer_stats} if layer_stats else None)


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


def records_to_tables(records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Trial records -> trials.csv rows (hyperparameters as columns), history.csv rows and, when
    the search ran instruments, layer_stats.csv rows (one per trial, epoch and layer)."""
    trials, history, layer_stats = [], [], []
    for record in records:
        row = {"trial_id": record["trial_id"], "status": record["status"], **record["hyperparameters"]}
        row.update({k: v for k, v in record.items()
                    if k not in ("trial_id", "status", "hyperparameters", "history", "layers")})
        trials.append(row)
        history.extend({"trial_id": record["trial_id"], **epoch} for epoch in record["history"])
        layer_stats.extend({"trial_id": record["trial_id"], **layer} for layer in record.get("layers", ()))
    return trials, history, layer_stats


# -- report views ---------------------------------------------------------------------------

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
    return {
        "figure": figure,
        "single": single,
        "comparison": comparison,
        "hyperparameters": [{"name": c, "value": fmt(trials[0].get(c))} for c in columns] if single else [],
        "trials": trial_table(trials, varying or columns, reference.get("rows") or [],
                              id_width(summary), match_columns=columns) if not single else None,
        "shared": [{"name": c, "value": fmt(trials[0].get(c))} for c in columns if c not in varying]
        if not single and varying else [],
        "reference_summary": _reference_summary(reference) if not single else [],
        "reference": reference_table(reference["rows"]) if not single and reference.get("rows") else None,
        "diverged": diverged_rows(trials, columns, id_width(summary)),
    }


def _curve_label(trial_id: str, row: Mapping[str, Any], varying: Sequence[str]) -> str:
    if not varying:
        return str(trial_id)
    return f"{trial_id}: " + ", ".join(f"{column}={fmt(row.get(column))}" for column in varying[:3])


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
        "seconds": fmt_seconds(summary.get("seconds")),
    }


def _constraint_words(constraint: Any) -> str:
    if not isinstance(constraint, Mapping):
        return ""
    low, high = constraint.get("min_params") or 0, constraint.get("max_params")
    return f"[{thousands(low)}, {thousands(high)}]" if high is not None else f">= {thousands(low)}"


def _effect(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary, trials, columns = _search_common(store, section, experiment)
    ok = [row for row in trials if is_trained(row)]
    varying = varying_columns(trials, columns) or columns[:1]
    x = "lr" if "lr" in varying else (varying[0] if varying else None)
    group = [c for c in varying if c != x]
    if "batch_size" in group:  # one line per batch size, as in the seed's figure
        group = ["batch_size"] + [c for c in group if c != "batch_size"]
    figure = None
    if x is not None and ok:
        figure = figures.data_uri(figures.effect_plot(ok, x, group, log_x=(x == "lr")))
    return {"figure": figure, "x": x, "group": group, **_search_tables(summary, trials, trials, columns, reference)}


def _search_tables(summary, trials, shown, columns, reference) -> dict[str, Any]:
    """The search line, the ``shown`` trials' table, the seed's rows and the diverged trials."""
    reference_rows = reference.get("rows") or []
    return {
        "meta": _search_meta(summary, trials),
        # Values shared by every trial are listed once above the table ("Fixed"), not in each row.
        "table": trial_table(shown, varying_columns(trials, columns) or columns, reference_rows,
                             id_width(summary), match_columns=columns),
        "reference": reference_table(reference_rows) if reference_rows else None,
        "diverged": diverged_rows(trials, columns, id_width(summary)),
    }


def _top_table(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary, trials, columns = _search_common(store, section, experiment)
    top_k = section.get("top_k", 5)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidParameterError(f"section {section['title']!r}: top_k must be an int >= 1, got {top_k!r}")
    ranked = sorted((row for row in trials if is_trained(row)), key=by_val_accuracy)[:top_k]
    return {"top_k": top_k, **_search_tables(summary, trials, ranked, columns, reference)}


def _fractions(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary, trials, columns = _search_common(store, section, experiment)
    key = "train_fraction" if "train_fraction" in columns else (columns[0] if columns else None)
    if key is None:
        raise InvalidParameterError(
            f"{store.experiment_dir(section['experiment']) / 'trials.csv'} has no train_fraction column")
    ordered = sorted(trials, key=lambda r: r.get(key) if is_finite(r.get(key)) else math.inf)
    by_trial = histories_by_trial(experiment.get("history") or [])
    ok = [row for row in ordered if is_trained(row)]
    panels = [(f"{100 * row[key]:g} % of training data" if is_finite(row.get(key)) else fmt(row.get(key)),
               by_trial.get(trial_key(row), [])) for row in ok]
    panels = [p for p in panels if p[1]]
    has_test = any(row.get("test_accuracy") is not None for row in ok)
    y_key = "test_accuracy" if has_test else "val_accuracy"
    reference_rows = reference.get("rows") or []
    ref_points = [(as_number(r.get(key)), as_number(r.get(y_key))) for r in reference_rows]
    table = []
    for row in ordered:
        ref = reference_match(row, reference_rows, [key])
        table.append({
            "fraction": f"{100 * row[key]:g} %" if is_finite(row.get(key)) else fmt(row.get(key)),
            "status": fmt(row.get("status")), "epochs_run": fmt(row.get("epochs_run")),
            "train": pct(row.get("accuracy")), "val": pct(row.get("val_accuracy")), "test": pct(row.get("test_accuracy")),
            "test_seed": pct(as_number(ref.get("test_accuracy"))) if ref else DASH,
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
        "diverged": diverged_rows(trials, columns, id_width(summary)),
    }



VIEWS = {"curves": _curves, "effect": _effect, "top_table": _top_table, "fractions": _fractions}
