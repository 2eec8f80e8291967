"""The pretrained-source kind (q10): where the fine-tuned ResNet-18's starting weights come from.

In order:
1. ``--weights PATH``: a keras-hub preset folder or a ``.weights.h5`` file of our CIFAR ResNet-18
   backbone (models/pretrained.py loads either, and says in one line what does not fit).
2. ImageNet, through keras-hub's ``resnet_18_imagenet`` preset (downloaded once, when online).
3. Offline: a source checkpoint the package trains itself and caches in this experiment's
   folder. The dataset is cut in two by class: the source task (CIFAR-10 classes 0-4: airplane,
   automobile, bird, cat, deer) trains the backbone; the target task the later experiments
   fine-tune on is the other classes (5-9: dog, frog, horse, ship, truck), relabelled 0-4.
   Disjoint classes, so "pretrained" means what it means with ImageNet: features learned on
   other images and other labels, never on the target's. Both halves mix animals and vehicles,
   so the source features are relevant to the target. A banner says so on the console, in
   run.json and in the report.

``target_per_class`` (optional) keeps that many training and as many validation images of each
target class (whatever the weights' source): transfer pays most on a small target set, and the
lesson "pretrained beats scratch" is one about such sets. The test split stays whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from dlcv_keras import stats
from dlcv_keras.experiments.base import Experiment, experiment_fingerprint, table_values
from dlcv_keras.models.options import COMPILE_KEYS, FIT_KEYS, MODEL_KEYS
from dlcv_keras.report.format import DASH, fmt, pct
from dlcv_keras.tuning.spaces import SEARCH_DOMAINS
from dlcv_keras.validation import InvalidParameterError

WEIGHTS_FILE = "source.weights.h5"
# The source table's setting that shapes the target task, not the source checkpoint.
TARGET_SETTINGS = {"target_per_class": ("int", 1, 1_000_000, "both")}


@dataclass(frozen=True)
class PretrainedSource(Experiment):
    """``model``: the builder the offline source checkpoint trains (its backbone is what transfers);
    ``transfer_model``: the builder later experiments fine-tune, given the weights found here."""
    model: str = "resnet18"
    transfer_model: str = "resnet18_transfer"
    source_classes: tuple[int, ...] = (0, 1, 2, 3, 4)

    KIND: ClassVar[str] = "pretrained_source"
    PREPARES_SEARCHES: ClassVar[bool] = True      # the weights (and task) q10's transfer searches start from
    VIEWS: ClassVar[tuple[str, ...]] = ("pretrained_source",)

    def accepted(self, question) -> Mapping[str, tuple]:
        return {**{name: SEARCH_DOMAINS[name] for name in (*MODEL_KEYS[self.model], *COMPILE_KEYS, *FIT_KEYS)},
                **TARGET_SETTINGS}

    def check_question(self, question, settings, space) -> None:
        """A --weights file is loaded into the model once here, before anything is written: a
        missing, corrupt or ill-fitting file is a one-line error (exit 2)."""
        if settings.weights is None:
            return
        from pathlib import Path

        from dlcv_keras.data.catalog import SPECS
        from dlcv_keras.backends import import_tensorflow_quietly

        import_tensorflow_quietly()         # its start-up chatter would bury the one-line error
        from dlcv_keras.models import get_builder

        path = Path(settings.weights).expanduser()
        if not path.exists():
            raise InvalidParameterError(f"--weights {settings.weights} does not exist; expected a keras-hub "
                                        f"preset folder or a .weights.h5 file of this package's ResNet-18")
        spec = SPECS[settings.dataset or question.dataset]
        size = (settings.image_size,) * 2 if settings.image_size else spec.image_size
        get_builder(self.transfer_model)((*size, spec.channels), 10, weights=str(path),
                                         **_width(space.experiment(self.name).fixed, str(path)))

    def run(self, runner) -> None:
        find_weights(runner, self)


def find_weights(runner, experiment: PretrainedSource) -> None:
    from dlcv_keras.models import pretrained

    values = table_values(runner, experiment)
    per_class = values.pop("target_per_class", None)
    settings = runner.settings
    summary = {"kind": experiment.KIND, "title": experiment.title}
    if settings.weights is not None:
        path = str(settings.weights)
        runner.model_kwargs[experiment.transfer_model] = {"weights": path, **_width(values, path)}
        runner.model_sources[experiment.transfer_model] = _file_identity(path)
        summary.update(source="user", weights=path, description=f"weights given with --weights: {path}")
    else:
        reason = None
        try:
            _check_loads(runner, experiment, "imagenet", values)
        except pretrained.PretrainedUnavailable as unavailable:
            reason = unavailable
        if reason is None:
            runner.model_kwargs[experiment.transfer_model] = {"weights": "imagenet"}
            runner.model_sources[experiment.transfer_model] = pretrained.IMAGENET_PRESET
            summary.update(source="imagenet", weights=pretrained.IMAGENET_PRESET,
                           description=f"ImageNet weights, keras-hub preset {pretrained.IMAGENET_PRESET}")
        else:
            summary.update(_train_source(runner, experiment, values, reason))
    if per_class is not None:
        runner.replace_data(_few_per_class(runner.data, per_class, settings.seed), None)
        summary.update(target_per_class=per_class, target_train=len(runner.data.y_train),
                       target_val=len(runner.data.y_val))
    runner.store.write_experiment(experiment.name, summary=summary)
    runner.echo(f"[{experiment.name}] starting weights: {summary['description']}")


def _width(values: Mapping[str, Any], weights: str) -> dict:
    """A .weights.h5 file holds our ResNet-18 at the source table's width; a preset has its own."""
    return {"width": values["width"]} if "width" in values and weights.endswith(".h5") else {}


def _file_identity(path: str) -> list:
    """Name, size and modification time of a weights file, or of every file in a preset folder."""
    from pathlib import Path

    root = Path(path).expanduser()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return [[str(p.relative_to(root)) if root.is_dir() else p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def _check_loads(runner, experiment, weights: str, values: dict) -> None:
    """Build the transfer model once (for ImageNet: fetch the preset, or fail fast offline)."""
    from dlcv_keras.models import get_builder

    data = runner.data
    get_builder(experiment.transfer_model)(data.input_shape, data.num_classes, weights=weights, **_width(values, weights))


def unavailable_words(offline: bool) -> str:
    """Why the ImageNet weights are not used, in plain words for the reports; the exception's own
    text (a URLError, a traceback's last line) goes to the run's log and summary.json only."""
    if offline:
        return "they could not be downloaded (this machine could not reach Kaggle, which hosts them)"
    return "keras-hub could not load them here (the run's log and summary.json give the error)"


def _train_source(runner, experiment: PretrainedSource, values: dict, reason: Exception) -> dict[str, Any]:
    """Cut the data into a source and a target task, train (or reuse) the source checkpoint,
    and point the later experiments at the target task and the checkpoint."""
    import keras_tuner

    from dlcv_keras.data.transforms import channel_stats
    from dlcv_keras.models.pretrained import save_backbone_weights
    from dlcv_keras.training.fit import evaluate_classifier
    from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

    data = runner.data
    source_classes = [k for k in experiment.source_classes if k < data.num_classes]
    target_classes = [k for k in range(data.num_classes) if k not in source_classes]
    if len(source_classes) < 2 or len(target_classes) < 2:
        raise InvalidParameterError(f"{data.name} has {data.num_classes} classes; the offline source task needs "
                                    f"classes {list(experiment.source_classes)} and at least two others")
    source, target = _split_by_class(data, source_classes), _split_by_class(data, target_classes)
    names = data.class_names
    # The checkpoint trains on --devices devices, as a search's trials do.
    fingerprint = experiment_fingerprint(runner, experiment, {**values, "source": source_classes,
                                                              "devices": runner.settings.devices})
    folder = runner.store.experiment_dir(experiment.name)
    weights = folder / WEIGHTS_FILE
    stored = _stored_summary(runner, experiment)
    if not runner.fresh and stored.get("fingerprint") == fingerprint and weights.is_file():
        runner.echo(f"[{experiment.name}] source checkpoint already trained (stored in {weights}); reused")
        trained = {k: stored.get(k) for k in ("source_val_accuracy", "source_epochs", "source_seconds")}
    else:
        runner.echo(f"[{experiment.name}] no pretrained weights ({reason}); training a source checkpoint on "
                    f"{', '.join(names[k] for k in source_classes)}")
        hp = keras_tuner.HyperParameters()
        for name, value in values.items():
            hp.Fixed(name, value)
        hypermodel = ClassifierHyperModel(experiment.model, source.input_shape, source.num_classes,
                                          seed=runner.settings.seed, optimizer=runner.question.optimizer,
                                          input_stats=channel_stats(source.x_train), n_train=len(source.y_train),
                                          devices=runner.settings.devices)
        model = hypermodel.build(hp)
        callbacks = []
        if runner.settings.progress:
            from dlcv_keras.training.progress import EpochProgress
            callbacks.append(EpochProgress(experiment.name))
        result = hypermodel.fit(hp, model, source.x_train, source.y_train,
                                validation_data=(source.x_val, source.y_val), callbacks=callbacks)
        val = evaluate_classifier(model, source.x_val, source.y_val, source.num_classes)
        save_backbone_weights(model, weights)
        trained = {"source_val_accuracy": val["accuracy"], "source_epochs": result.epochs_run,
                   "source_seconds": result.seconds}
    why = unavailable_words(getattr(reason, "offline", False))
    banner = (f"No ImageNet weights: {why}. Instead, q10 starts from a source checkpoint, a ResNet-18 trained "
              f"here on {len(source_classes)} CIFAR-10 classes ({', '.join(names[k] for k in source_classes)}), "
              f"and fine-tunes it on the other {len(target_classes)} "
              f"({', '.join(names[k] for k in target_classes)}).")
    runner.replace_data(target, banner)
    kwargs = {"weights": str(weights)}
    if "width" in values:
        kwargs["width"] = values["width"]
    runner.model_kwargs[experiment.transfer_model] = kwargs
    runner.model_sources[experiment.transfer_model] = fingerprint
    return {"source": "self-trained", "weights": str(weights), "fingerprint": fingerprint, "banner": banner,
            "reason": why, "reason_detail": str(reason), "description": f"self-trained source checkpoint {weights.name} (classes "
                                              f"{source_classes[0]}-{source_classes[-1]})",
            "source_classes": [names[k] for k in source_classes], "target_classes": [names[k] for k in target_classes],
            "source_train": len(source.y_train), "source_val": len(source.y_val), "settings": values, **trained}


def _stored_summary(runner, experiment) -> dict:
    try:
        stored = runner.store.read_json(f"experiments/{experiment.name}/summary.json")
    except (OSError, ValueError):
        return {}
    return stored if isinstance(stored, dict) else {}


def _split_by_class(data, classes: list[int]):
    """The dataset restricted to ``classes``, relabelled 0..len(classes)-1, with a note saying so."""
    import numpy as np

    from dlcv_keras.data.base import Dataset, split_sizes
    from dlcv_keras.data.transforms import content_hash

    relabel = np.full(data.num_classes, -1, np.int64)
    relabel[classes] = np.arange(len(classes))
    arrays = {}
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        keep = np.isin(y, classes)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x[keep], relabel[y[keep]]
    names = [data.class_names[k] for k in classes]
    order = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    info = {**data.info, "class_names": names,
            **split_sizes({split: arrays[f"y_{split}"] for split in ("train", "val", "test")}, len(names)),
            "notes": [*data.info.get("notes", []), f"classes {classes[0]}-{classes[-1]} only ({', '.join(names)}), "
                                                   f"relabelled 0-{len(classes) - 1}"],
            "content_hash": content_hash(*(arrays[k] for k in order))}
    return Dataset(name=data.name, **arrays, class_names=names, input_shape=data.input_shape, info=info)


def _few_per_class(data, per_class: int, seed: int):
    """The target task with at most ``per_class`` training and as many validation images of each class
    (seeded); the test split whole, so that every comparison keeps its power."""
    from dataclasses import replace

    from dlcv_keras.data.base import split_sizes
    from dlcv_keras.data.splits import cap_per_class
    from dlcv_keras.data.transforms import content_hash

    train, val = cap_per_class(data.y_train, per_class, seed), cap_per_class(data.y_val, per_class, seed)
    arrays = {"x_train": data.x_train[train], "y_train": data.y_train[train],
              "x_val": data.x_val[val], "y_val": data.y_val[val]}
    sizes = split_sizes({"train": arrays["y_train"], "val": arrays["y_val"], "test": data.y_test}, data.num_classes)
    info = {**data.info, **sizes,
            "notes": [*data.info.get("notes", []), f"a small target set: at most {per_class} training and "
                                                   f"{per_class} validation images per class (seed {seed})"],
            "content_hash": content_hash(arrays["x_train"], arrays["y_train"], arrays["x_val"], arrays["y_val"],
                                         data.x_test, data.y_test)}
    return replace(data, **arrays, info=info)


def substitute(store, run: Mapping[str, Any] | None) -> tuple[str, str | None] | None:
    """(the cause, in words, that the question's starting weights are not the seed's ImageNet weights,
    the banner it set) when a pretrained-source section of this run found an offline substitute or
    a --weights file; None with ImageNet weights or without such a section."""
    from dlcv_keras.report.format import read_json

    for section in (run or {}).get("sections") or []:
        if not isinstance(section, Mapping) or section.get("template") != "pretrained_source":
            continue
        name = section.get("experiment")
        if not isinstance(name, str) or not (store.experiment_dir(name) / "summary.json").is_file():
            continue
        summary = read_json(store, f"experiments/{name}/summary.json")
        if not isinstance(summary, Mapping):
            continue
        if summary.get("source") == "self-trained":
            target = summary.get("target_classes") or []
            return (f"an offline substitute for the ImageNet weights (a source checkpoint trained here on "
                    f"{', '.join(summary.get('source_classes') or [])}; the target task is the other "
                    f"{len(target)} classes)", summary.get("banner"))
        if summary.get("source") == "user":
            return f"the starting weights given with --weights ({fmt(summary.get('weights'))})", None
    return None


def _observations(summary: Mapping[str, Any]) -> list[str]:
    """Where the starting weights come from; for the offline substitute, how well the source checkpoint
    learned its classes (against chance, the exact binomial test) and which task the runs below learn."""
    source = summary.get("source")
    if source == "imagenet":
        return [f"The starting weights are ImageNet's ({fmt(summary.get('description'))}), as the seed's.",
                *_target_size(summary)]
    if source == "user":
        return [f"The starting weights are the file given with --weights ({fmt(summary.get('weights'))}), "
                f"not the ImageNet weights the seed started from.", *_target_size(summary)]
    if source != "self-trained":
        return _target_size(summary)
    trained, target = summary.get("source_classes") or [], summary.get("target_classes") or []
    # Why there are no ImageNet weights is the chapter's banner; it is not said again here.
    sentences = [f"The starting weights are an offline substitute, not ImageNet's: a "
                 f"source checkpoint trained here on {len(trained)} classes ({', '.join(trained)}); the runs below "
                 f"fine-tune on the other {len(target)} ({', '.join(target)}), a {len(target)}-class task with "
                 f"chance at {100 / len(target):.0f} %, not the seed's {len(trained) + len(target)}-class task."]
    accuracy = summary.get("source_val_accuracy")
    if trained and isinstance(accuracy, (int, float)):
        # The source task's own classes and validation images; run.json's are the target task's.
        n = summary.get("source_val")
        test = stats.against_chance(round(accuracy * n), n, len(trained)) if isinstance(n, int) and n > 0 else None
        reached = (f"The source checkpoint reached {pct(accuracy)} % validation accuracy on its own classes after "
                   f"{fmt(summary.get('source_epochs'))} epochs")
        if test is not None:
            sentences.append(f"{reached}: {'above' if test.above_chance() else 'not above'} their "
                             f"{100 * test.chance:.0f} % chance ({test.words()}).")
    return sentences + _target_size(summary)


def _target_size(summary: Mapping[str, Any]) -> list[str]:
    if summary.get("target_per_class") is None:
        return []
    return [f"The runs below train on a small target set: {fmt(summary.get('target_train'))} training and "
            f"{fmt(summary.get('target_val'))} validation images (at most {fmt(summary.get('target_per_class'))} per "
            f"class each); the test split is whole."]


def _pretrained_source(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary = experiment["summary"]
    rows = [{"name": "weights", "value": fmt(summary.get("description"))}]
    if summary.get("source") == "self-trained":
        rows += [
            {"name": "source task (trains the backbone)", "value": ", ".join(summary.get("source_classes") or []) or DASH},
            {"name": "target task (fine-tuned below)", "value": ", ".join(summary.get("target_classes") or []) or DASH},
            {"name": "source images (train / val)", "value": f"{fmt(summary.get('source_train'))} / {fmt(summary.get('source_val'))}"},
            {"name": "source settings", "value": ", ".join(f"{k}={fmt(v)}" for k, v in (summary.get("settings") or {}).items())},
            {"name": "source val accuracy (%)", "value": pct(summary.get("source_val_accuracy"))},
            {"name": "source epochs", "value": fmt(summary.get("source_epochs"))},
        ]
    if summary.get("target_per_class") is not None:
        rows.append({"name": "target images (train / val)",
                     "value": f"{fmt(summary.get('target_train'))} / {fmt(summary.get('target_val'))} (at most "
                              f"{fmt(summary.get('target_per_class'))} per class each)"})
    return {"rows": rows, "banner": summary.get("banner"), "observations": _observations(summary)}


VIEWS = {"pretrained_source": _pretrained_source}
REQUIRED_FILES = {"pretrained_source": ()}
