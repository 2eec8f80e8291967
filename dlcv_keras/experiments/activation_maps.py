"""The activation-maps kind (q12): what early and late layers of trained models respond to.

It reads other questions' stored best models (``results/<q>/<profile>/experiments/<exp>/model.keras``,
written by ``EvaluateBest(save_model=True)``) and, for a few test images, stores
- each model's activations at an early layer (right after the first convolution) and a late one
  (the last feature map before global pooling), a few channels each, every map scaled to [0, 1];
- the first convolution's filters, each scaled to [0, 1].
Without a stored model it names the question to run first (before anything is written).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

from dlcv_keras.experiments.base import Experiment, pick, table_values
from dlcv_keras.report.format import fmt, read_arrays
from dlcv_keras.validation import InvalidParameterError


@dataclass(frozen=True)
class ActivationMaps(Experiment):
    """``sources``: (question, experiment, label) triples naming stored models."""
    sources: tuple[tuple[str, str, str], ...] = ()

    KIND: ClassVar[str] = "activation_maps"
    VIEWS: ClassVar[tuple[str, ...]] = ("activation_maps",)
    SETTINGS: ClassVar[Mapping[str, tuple]] = {**pick("images", "count")}

    def model_name(self, question) -> str:
        return question.model            # the stored models' kind: it picks the backend (TensorFlow)

    def model_file(self, settings, question: str, experiment: str) -> Path:
        return Path(settings.results_dir) / question / settings.profile / "experiments" / experiment / "model.keras"

    def check_question(self, question, settings, space) -> None:
        for source, experiment, _ in self.sources:
            path = self.model_file(settings, source, experiment)
            if source not in settings.runs_after and not path.is_file():
                raise InvalidParameterError(
                    f"{question.name} reads {source}'s stored model {path}, which does not exist; run "
                    f"'python -m dlcv_keras.run {source} --profile {settings.profile}' first")

    def run(self, runner) -> None:
        activation_maps(runner, self)


def _layers(model):
    """(early, late) layer of a convolutional model: the first activation after the first
    convolution, and the last 4-D feature map before global pooling."""
    import keras

    spatial = [layer for layer in model.layers
               if not isinstance(layer, keras.layers.InputLayer) and len(getattr(layer.output, "shape", ())) == 4]
    convs = [i for i, layer in enumerate(spatial) if isinstance(layer, keras.layers.Conv2D)]
    if not spatial:
        raise InvalidParameterError(f"model {model.name!r} has no convolutional feature maps to show")
    start = convs[0] if convs else 0
    early = next((layer for layer in spatial[start:] if isinstance(layer, keras.layers.Activation)), spatial[start])
    return early, spatial[-1], (spatial[convs[0]] if convs else None)


def _scaled(maps, axes=(-2, -1)):
    """Each map (over ``axes``) scaled to [0, 1] on its own: a dead channel stays 0."""
    import numpy as np

    low = maps.min(axis=axes, keepdims=True)
    span = maps.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0).astype(np.float16)


def activation_maps(runner, experiment: ActivationMaps) -> None:
    import keras
    import numpy as np

    from dlcv_keras.data.images import image_batches
    from dlcv_keras.tuning.search import load_trained_model

    values = table_values(runner, experiment)
    count, channels = values.get("images", 4), values.get("count", 8)
    data = runner.data
    # One test image of each of the first classes.
    picked = [int(np.flatnonzero(data.y_test == k)[0]) for k in range(data.num_classes) if np.any(data.y_test == k)][:count]
    images = data.x_test[picked]
    arrays = {"images": images, "labels": data.y_test[picked]}
    models = []
    for i, (source, name, label) in enumerate(experiment.sources):
        path = experiment.model_file(runner.settings, source, name)
        try:
            model = load_trained_model(path)
        except Exception as error:       # a torn or foreign file: say which, in one line
            raise InvalidParameterError(f"cannot load {path}: {type(error).__name__}: "
                                        f"{str(error).splitlines()[0] if str(error) else ''}; run "
                                        f"'python -m dlcv_keras.run {source} --profile {runner.settings.profile}' again") from None
        expected = tuple(model.inputs[0].shape[1:])
        if expected != tuple(images.shape[1:]):
            raise InvalidParameterError(f"{path} takes images of shape {expected}, but {data.name} test images "
                                        f"are {tuple(images.shape[1:])}")
        early, late, first_conv = _layers(model)
        probe = keras.Model(model.inputs, [early.output, late.output])
        batch = next(iter(image_batches(images, np.zeros(len(images), np.int64), batch_size=len(images), shuffle=False)))[0]
        early_maps, late_maps = (np.asarray(keras.ops.convert_to_numpy(a)) for a in probe(batch, training=False))
        # (images, H, W, C) -> (images, C, H, W), the first ``channels`` channels.
        arrays[f"early_{i}"] = _scaled(np.moveaxis(early_maps, -1, 1)[:, :channels])
        arrays[f"late_{i}"] = _scaled(np.moveaxis(late_maps, -1, 1)[:, :channels])
        if first_conv is not None:
            kernel = keras.ops.convert_to_numpy(first_conv.kernel)          # (k, k, in, out)
            arrays[f"filters_{i}"] = _scaled(np.moveaxis(kernel, -1, 0), axes=(1, 2, 3))   # (out, k, k, in)
        models.append({"question": source, "experiment": name, "label": label, "file": str(path),
                       "early_layer": early.name, "early_shape": list(early_maps.shape[1:]),
                       "late_layer": late.name, "late_shape": list(late_maps.shape[1:]),
                       "first_conv": first_conv.name if first_conv is not None else None,
                       "filters": int(first_conv.kernel.shape[-1]) if first_conv is not None else 0})
        runner.echo(f"[{experiment.name}] {label}: {early.name} {tuple(early_maps.shape[1:])}, "
                    f"{late.name} {tuple(late_maps.shape[1:])}")
    runner.store.write_arrays(experiment.name, **arrays)
    summary = {"kind": experiment.KIND, "title": experiment.title, "models": models, "images": len(picked),
               "channels": channels, "class_names": data.class_names}
    runner.store.write_experiment(experiment.name, summary=summary)


def _activation_maps(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    models = summary.get("models") or []
    keys = ["images", "labels", *(f"{kind}_{i}" for i in range(len(models)) for kind in ("early", "late"))]
    arrays = read_arrays(store, section["experiment"], section["title"], keys)
    names = summary.get("class_names") or []
    labels = [names[int(k)] if int(k) < len(names) else str(int(k)) for k in arrays["labels"]]
    inputs = figures.image_row(list(arrays["images"] / 255.0), labels)
    shown = []
    for i, model in enumerate(models):
        panels = []
        for kind in ("early", "late"):
            maps = arrays[f"{kind}_{i}"].astype(float)           # (images, channels, H, W)
            rows = [list(maps[j]) for j in range(len(maps))]
            columns = [f"channel {c + 1}" for c in range(maps.shape[1])]
            panels.append({"kind": kind, "layer": fmt(model.get(f"{kind}_layer")),
                           "shape": " x ".join(str(d) for d in model.get(f"{kind}_shape") or []),
                           "figure": figures.data_uri(figures.image_grid(rows, row_labels=labels, col_labels=columns))})
        filters = arrays.get(f"filters_{i}")
        filter_figure = None
        if filters is not None:
            filters = filters.astype(float)
            per_row = 16
            rows = [list(filters[r:r + per_row]) for r in range(0, len(filters), per_row)]
            filter_figure = figures.data_uri(figures.image_grid(rows, cell=0.55))
        shown.append({"label": model.get("label"), "question": model.get("question"), "panels": panels,
                      "filters": filter_figure, "first_conv": fmt(model.get("first_conv")),
                      "n_filters": model.get("filters")})
    return {"inputs": figures.data_uri(inputs), "models": shown,
            "observations": [_model_observation(model, arrays[f"early_{i}"], arrays[f"late_{i}"])
                             for i, model in enumerate(models)]}


def _model_observation(model: Mapping[str, Any], early, late) -> str:
    """How much coarser the late maps are than the early ones, and how many of the shown channels are flat
    on every image (one value over the map, a dead ReLU's 0 say: ``_scaled`` stores such a map as 0)."""
    def flat(maps) -> int:
        return int((maps.reshape(maps.shape[0], maps.shape[1], -1).max(axis=(0, 2)) == 0).sum())

    label, question = str(model.get("label")), str(model.get("question"))
    label = label if question in label else f"{label} ({question})"
    early_shape, late_shape = model.get("early_shape") or [], model.get("late_shape") or []
    sentence = f"{label}: "
    if len(early_shape) >= 2 and len(late_shape) >= 2 and late_shape[0]:
        sentence += (f"the late maps are {late_shape[0]} x {late_shape[1]} against the early {early_shape[0]} x "
                     f"{early_shape[1]}, {early_shape[0] / late_shape[0]:g} times coarser; ")
    images = early.shape[0]
    return sentence + (f"{flat(early)} of the {early.shape[1]} early channels shown and {flat(late)} of the "
                       f"{late.shape[1]} late ones are flat (one value over the whole map) on all {images} images.")


VIEWS = {"activation_maps": _activation_maps}
REQUIRED_FILES = {"activation_maps": ("arrays.npz",)}
