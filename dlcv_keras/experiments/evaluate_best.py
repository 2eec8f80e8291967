"""The evaluate-best kind: retrain the best setting of a search, evaluate it on train, val and test.

Stores the per-class accuracy, confusion matrix and per-layer parameter table, and keeps the
trained model for later experiments of the run (q16's gradient check reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from dlcv_keras.experiments.base import Experiment, run_causes, seed_observations
from dlcv_keras.report.format import (DASH, as_number, fmt, fmt_loss, fmt_seconds, is_finite, parameter_parts, pct,
                                      require, thousands)
from dlcv_keras.report.observe import DID_NOT_LEARN, SPLIT_WORDS, Noise, at_chance, gap_words, noise, points


@dataclass(frozen=True)
class EvaluateBest(Experiment):
    """``source`` is the search whose best setting is retrained; the model is that search's.

    When the search kept its trained models (``Search(keep_models=True)``), the best one is read
    back and evaluated instead of trained again. ``save_model`` stores it as ``model.keras`` in
    this experiment's folder, for a later question (q12 reads q9-q11's).
    """
    source: str = ""
    save_model: bool = False

    KIND: ClassVar[str] = "evaluation"
    VIEWS: ClassVar[tuple[str, ...]] = ("best",)
    HAS_TABLE: ClassVar[bool] = False

    def run(self, runner) -> None:
        evaluate_best(runner, self)


def evaluate_best(runner, experiment: EvaluateBest) -> None:
    import keras_tuner

    from dlcv_keras.experiments.search import hypermodel_for
    from dlcv_keras.models import parameter_table
    from dlcv_keras.training.fit import evaluate_classifier

    values = runner.best[experiment.source]
    source = runner.question.experiment(experiment.source)
    model_name = source.model_name(runner.question)
    data = runner.data
    stored = runner.model_files.get(experiment.source)
    kept = stored is not None and stored.is_file()
    if kept:
        from dlcv_keras.training.fit import FitResult
        from dlcv_keras.tuning.search import load_trained_model

        record = runner.best_records[experiment.source]
        runner.echo(f"[{experiment.name}] evaluating the best trial of {experiment.source} "
                    f"(trial {record['trial_id']}, kept by the search): {values}")
        model = load_trained_model(stored)
        result = FitResult(history=record.get("history") or [], status=record["status"],
                           stop_reason=record.get("stop_reason") or "", seconds=record.get("seconds") or 0.0)
    else:
        hp = keras_tuner.HyperParameters()
        for name, value in values.items():
            hp.Fixed(name, value)
        hypermodel = hypermodel_for(runner, model_name,
                                    implementation=source.implementation_for(runner.question, runner.settings.implementation))
        runner.echo(f"[{experiment.name}] retraining the best setting of {experiment.source}: {values}")
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
    runner.models[experiment.name] = model
    summary = {
        "kind": "evaluation", "title": experiment.title, "from_experiment": experiment.source, "model": model_name,
        "hyperparameters": values, "status": result.status,
        "train_accuracy": train["accuracy"], "val_accuracy": val["accuracy"],
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "val_loss": val["loss"],
        "loss_includes": test.get("loss_includes"),
        "epochs_run": result.epochs_run, "stop_reason": result.stop_reason, "seconds": result.seconds,
        # The search's own trained model, read back, or the best setting trained again.
        "kept_trial": runner.best_records[experiment.source]["trial_id"] if kept else None,
    }
    metrics = {
        "class_names": names, "per_class_accuracy": per_class,
        "best_class": {"index": best_i, "name": names[best_i], "accuracy": per_class[best_i]},
        "worst_class": {"index": worst_i, "name": names[worst_i], "accuracy": per_class[worst_i]},
        "confusion_matrix": test["confusion_matrix"],
        "parameter_table": table, "total_params": sum(r["params"] for r in table),
    }
    history = [{"trial_id": "best", **row} for row in result.history]
    if experiment.save_model:
        from dlcv_keras.tuning.search import save_model_atomically
        save_model_atomically(model, runner.store.experiment_dir(experiment.name) / "model.keras")
        summary["model_file"] = "model.keras"
    runner.store.write_experiment(experiment.name, summary=summary, history=history, metrics=metrics,
                                  predictions={"labels": data.y_test, "test": test["predicted"]})
    runner.echo(f"[{experiment.name}] train {train['accuracy']:.4f}, val {val['accuracy']:.4f}, "
                f"test {test['accuracy']:.4f} after {result.epochs_run} epochs ({result.stop_reason})")


# -- report view ------------------------------------------------------------------------------
def _class_entry(entry: Any) -> dict[str, str]:
    if not isinstance(entry, Mapping):
        return {"name": DASH, "accuracy": DASH}
    return {"name": fmt(entry.get("name")), "accuracy": pct(as_number(entry.get("accuracy")))}


def _budget(summary: Mapping[str, Any], reference: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """How long and how fast we trained against the seed, like for like (as observe.known_causes takes them):
    the epochs setting when both name one, else the epochs run; the learning rate when both name one;
    fewer iterations as a cause of its own."""
    ours_hp, ref_hp = summary.get("hyperparameters") or {}, reference.get("hyperparameters") or {}
    if "epochs" in ref_hp and "epochs" in ours_hp:
        epochs = {"epochs": ours_hp["epochs"], "seed_epochs": ref_hp["epochs"]}
    else:
        epochs = {"epochs": summary.get("epochs_run"), "seed_epochs": reference.get("epochs_run")}
    epochs.update(lr=ours_hp.get("lr"), seed_lr=ref_hp.get("lr"))
    ours, seed = as_number(ours_hp.get("iterations")), as_number(ref_hp.get("iterations"))
    extra = [f"fewer iterations ({fmt(ours)} against the seed's {fmt(seed)})"] \
        if is_finite(ours) and is_finite(seed) and ours < seed else []
    return epochs, extra


def _class_counts(matrix: Any) -> list[int]:
    """Test images per true class: the confusion matrix's row sums."""
    if not isinstance(matrix, list):
        return []
    return [int(sum(v for v in row if is_finite(v))) if isinstance(row, list) else 0 for row in matrix]


def _observations(store, summary, metrics, reference, run) -> list[str]:
    """A model at chance said first; our accuracies against the seed's; then, for a model that learned, the
    train-test gap and the best and worst class, each against the binomial noise of the split (or class)
    it was measured on."""
    epochs, extra = _budget(summary, reference)
    # A model that did not learn is said to be at chance before anything is read into its numbers.
    chance = at_chance("the model", run, "test", summary.get("test_accuracy"))
    causes = ([DID_NOT_LEARN] if chance else []) + run_causes(store, run, extra=extra,
                                                              unstated=reference.get("unstated"), **epochs)
    items = []
    for split in ("test", "val", "train"):
        ours, seed = as_number(summary.get(f"{split}_accuracy")), as_number(reference.get(f"{split}_accuracy"))
        items.append((f"{SPLIT_WORDS[split]} accuracy", ours, seed, noise(run, split, [ours, seed]), causes))
    sentences = ([chance] if chance else []) + seed_observations(items, run)
    if chance:
        return sentences      # no gap or hardest class is read from a model at chance
    train, test = as_number(summary.get("train_accuracy")), as_number(summary.get("test_accuracy"))
    if is_finite(train) and is_finite(test):
        test_noise = noise(run, "test", [test])
        gap = points(train, test)
        words = (f"Training accuracy is {'above' if gap >= 0 else 'below'} test accuracy by {gap_words(gap, test_noise)}"
                 if test_noise.separates(gap) else f"Training and test accuracy are {gap_words(gap, test_noise)}")
        seed_train, seed_test = as_number(reference.get("train_accuracy")), as_number(reference.get("test_accuracy"))
        if is_finite(seed_train) and is_finite(seed_test):
            change = gap - points(seed_train, seed_test)
            same = Noise(test_noise.points, "the same margin")
            words += f"; the seed's gap was {points(seed_train, seed_test):.2f} points, " + (
                f"so ours is {'wider' if change > 0 else 'narrower'} by {gap_words(change, same)}"
                if same.separates(change) else f"and ours and the seed's gap are {gap_words(change, same)}")
        sentences.append(words + ".")
    sentences.extend(_class_observations(metrics, reference))
    return sentences


def _class_observations(metrics, reference) -> list[str]:
    """Best and worst class, whether they are the seed's, and whether their spread beats the noise of
    a class's few hundred test images (the smaller class of the two)."""
    names = [str(c) for c in metrics.get("class_names") or []]
    accuracy = [as_number(a) for a in metrics.get("per_class_accuracy") or []]
    counts = _class_counts(metrics.get("confusion_matrix"))
    tested = [k for k, a in enumerate(accuracy) if is_finite(a) and k < len(names)]
    if len(tested) < 2:
        return []
    best, worst = max(tested, key=accuracy.__getitem__), min(tested, key=accuracy.__getitem__)

    def class_noise(*classes):
        # A class's own images, never the whole split's: without the matrix there is no measure.
        sizes = [counts[k] for k in classes if k < len(counts) and counts[k] > 0]
        return noise({}, "test", [accuracy[k] for k in classes], n=min(sizes) if len(sizes) == len(classes) else None)

    spread = class_noise(best, worst)
    lead = points(accuracy[best], accuracy[worst])
    sentences = [f"Best class {names[best]} ({pct(accuracy[best])} %), worst {names[worst]} "
                 f"({pct(accuracy[worst])} %): " + (f"{gap_words(lead, spread)}." if spread.separates(lead) else
                                                    f"{gap_words(lead, spread)}, so no class is reliably the hardest.")]
    for role, ours, entry in (("best", best, reference.get("best_class")), ("worst", worst, reference.get("worst_class"))):
        seed_name = str(entry.get("name")) if isinstance(entry, Mapping) and entry.get("name") is not None else None
        if seed_name is None:
            continue
        if seed_name == names[ours]:
            sentences.append(f"Our {role} class is the seed's ({seed_name}: ours {pct(accuracy[ours])} %, the seed's "
                             f"{pct(as_number(entry.get('accuracy')))} %).")
        elif seed_name in names and is_finite(accuracy[names.index(seed_name)]):
            theirs = names.index(seed_name)
            difference = points(accuracy[ours], accuracy[theirs])
            sentences.append(f"Our {role} class is {names[ours]} ({pct(accuracy[ours])} %), not the seed's {seed_name}, "
                             f"which reaches {pct(accuracy[theirs])} % here: "
                             f"{gap_words(difference, class_noise(ours, theirs))}.")
        else:
            sentences.append(f"The seed's {role} class ({seed_name}) is not one of ours.")
    return sentences


def _best(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    metrics = require(experiment, "metrics", store, section["experiment"], "metrics.json", section["title"])
    ours_hp = summary.get("hyperparameters") or {}
    ref_hp = reference.get("hyperparameters") or {}
    names = list(ours_hp) + [k for k in ref_hp if k not in ours_hp]
    accuracies = [{"metric": f"{split} accuracy (%)", "ours": pct(as_number(summary.get(f"{split}_accuracy"))),
                   "seed": pct(as_number(reference.get(f"{split}_accuracy")))} for split in ("train", "val", "test")]
    accuracies.append({"metric": "val loss", "ours": fmt_loss(summary.get("val_loss")),
                       "seed": fmt_loss(reference.get("val_loss"))})
    accuracies.append({"metric": "test loss", "ours": fmt_loss(summary.get("test_loss")),
                       "seed": fmt_loss(reference.get("test_loss"))})
    accuracies.append({"metric": "epochs run", "ours": fmt(summary.get("epochs_run")), "seed": fmt(reference.get("epochs_run"))})
    accuracies.append({"metric": "stop reason", "ours": fmt(summary.get("stop_reason")), "seed": fmt(reference.get("stop_reason"))})

    class_names = [str(c) for c in metrics.get("class_names") or []]
    per_class = [as_number(a) for a in metrics.get("per_class_accuracy") or []]
    if not class_names:
        class_names = [str(i) for i in range(len(per_class))]
    ref_per_class = reference.get("per_class_accuracy") or []
    per_class_rows = [{"name": name, "ours": pct(acc),
                       "seed": pct(as_number(ref_per_class[i])) if i < len(ref_per_class) else DASH}
                      for i, (name, acc) in enumerate(zip(class_names, per_class))]
    layers = metrics.get("parameter_table") or []
    parameters = [{"layer": fmt(p.get("layer")), "type": fmt(p.get("type")),
                   "output_shape": fmt(p.get("output_shape")), "params": thousands(p.get("params"))} for p in layers]
    parts = parameter_parts(layers)
    history = experiment.get("history") or []
    matrix = metrics.get("confusion_matrix")
    return {
        "from_experiment": fmt(summary.get("from_experiment")),
        "hyperparameters": [{"name": n, "ours": fmt(ours_hp.get(n)), "seed": fmt(ref_hp.get(n))} for n in names],
        "accuracies": accuracies,
        # Computed as Keras computes val_loss: what it holds is said once, under the table.
        "loss_note": (f"Val and test loss are computed as Keras computes its validation loss: "
                      f"{summary['loss_includes']}.") if summary.get("loss_includes") else None,
        "curves": figures.data_uri(figures.learning_curves({"best": history})) if history else None,
        "parameters": parameters,
        # A long table (a ResNet's 70 layers) by part here; the write-up puts every layer in its appendix.
        "parameter_parts": [{**part, "params": thousands(part["params"])} for part in parts] if parts else None,
        "layers_in_appendix": None,     # the write-up's anchor of the per-layer table when it moved it there
        "total_params": thousands(metrics.get("total_params")),
        "per_class": per_class_rows,
        "per_class_figure": figures.data_uri(figures.per_class_bars(class_names, per_class)) if per_class else None,
        "best_class": {"ours": _class_entry(metrics.get("best_class")), "seed": _class_entry(reference.get("best_class"))},
        "worst_class": {"ours": _class_entry(metrics.get("worst_class")), "seed": _class_entry(reference.get("worst_class"))},
        "confusion": figures.data_uri(figures.confusion_matrix(matrix, class_names)) if matrix else None,
        "seconds": fmt_seconds(summary.get("seconds")),
        "kept_trial": summary.get("kept_trial"),
        "observations": _observations(store, summary, metrics, reference, run),
    }


VIEWS = {"best": _best}
