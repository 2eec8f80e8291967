"""The activation-maps kind (q12): what early and late layers of trained models respond to.

It reads other questions' stored best models (``results/<q>/<profile>/experiments/<exp>/model.keras``,
written by ``EvaluateBest(save_model=True)``) and, for a few test images, stores
- each model's activations at an early layer (right after the first convolution) and a late one
  (the last feature map before global pooling), a few channels each, every map scaled to [0, 1];
- the first convolution's filters, each scaled to [0, 1].
Over every test image of the run and every channel it measures each layer's maps (``MapStatistics``):
their resolution, how much of their variation is fine detail, how alike neighbouring positions are,
how many activations are zero, and how closely they follow the image's edges; the input images are
measured alike. The summary stores these numbers, and the observations and q12's lessons are read
from them.
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


# Fine detail is variation within patches of this many input pixels across: what a map holding one
# value per patch (a CIFAR ResNet-18's last stage, stride 8) cannot show.
DETAIL_PATCH = 8
# Test images per forward pass while measuring: a full-width ResNet-18's early maps are then 13 MB
# (float32), about 100 MB with the float64 copies the statistics take.
MEASURE_BATCH = 50


class MapStatistics:
    """What one layer's maps look like, over batches of maps (images, H, W, C) of images ``image_size``
    pixels across: ``add`` each batch (with the input images, (images, H, W, channels) in [0, 1], for the
    edges), then ``result()``:

    - height, width, positions (H x W) and stride (input pixels per position, image_size / H);
    - detail: the share of the maps' spatial variance (each map's own mean removed, pooled over maps)
      that lies within patches of DETAIL_PATCH x DETAIL_PATCH input pixels: variation finer than a
      patch, which a map with one value per patch cannot hold (0 then);
    - neighbour_correlation: Pearson r of horizontally and vertically adjacent positions (each map's
      own mean removed, pooled), None for 1 x 1 maps;
    - zero_share: the share of activations that are exactly 0 (a ReLU's "off");
    - edge_correlation: how closely the best channel follows the image's edges: the channel whose
      map correlates best, on average over the images, with the image's gradient magnitude (Sobel, on
      its luma, averaged over each position's stride x stride pixels), and that mean Pearson r.
    """

    def __init__(self, image_size: int):
        self.image_size = image_size
        self.shape = None
        self.sums = {"total": 0.0, "within": 0.0, "pairs": 0.0, "left": 0.0, "right": 0.0, "zeros": 0.0,
                     "values": 0.0, "images": 0}
        self.edge_r = None            # per channel, the sum over images of r(map, edges)

    def add(self, maps, images) -> None:
        import numpy as np

        maps = np.asarray(maps, np.float64)
        batch, height, width, channels = maps.shape
        self.shape = (height, width, channels)
        stride = self.image_size // height
        centred = maps - maps.mean(axis=(1, 2), keepdims=True)
        total = float((centred ** 2).sum())
        k = DETAIL_PATCH // stride
        within, measured = 0.0, total
        if k >= 2 and height >= k and width >= k:
            # Whole patches only (a 28-pixel map keeps its first 24 rows and columns here).
            kept = centred[:, :height - height % k, :width - width % k]
            measured = float((kept ** 2).sum())
            within = measured - float((_pooled(kept, k) ** 2).sum()) * k * k
        sums = self.sums
        sums["total"] += measured
        sums["within"] += within
        for a, b in ((centred[:, :, :-1], centred[:, :, 1:]), (centred[:, :-1], centred[:, 1:])):
            sums["pairs"] += float((a * b).sum())
            sums["left"] += float((a ** 2).sum())
            sums["right"] += float((b ** 2).sum())
        sums["zeros"] += float((maps == 0).sum())
        sums["values"] += maps.size
        sums["images"] += batch
        edges = _pooled(_edges(images)[:, :height * stride, :width * stride], stride)     # (images, H, W)
        edges = edges - edges.mean(axis=(1, 2), keepdims=True)
        product = (centred * edges[..., None]).sum(axis=(1, 2))        # (images, C)
        norm = np.sqrt((centred ** 2).sum(axis=(1, 2)) * (edges ** 2).sum(axis=(1, 2))[:, None])
        r = np.where(norm > 0, product / np.where(norm > 0, norm, 1), 0.0).sum(axis=0)
        self.edge_r = r if self.edge_r is None else self.edge_r + r

    def result(self) -> dict:
        import math

        sums = self.sums
        height, width, channels = self.shape
        mean_r = self.edge_r / sums["images"]
        best = int(mean_r.argmax())
        pair_norm = math.sqrt(sums["left"] * sums["right"])
        return {"height": height, "width": width, "channels": channels, "positions": height * width,
                "stride": self.image_size // height,
                "detail": sums["within"] / sums["total"] if sums["total"] > 0 else 0.0,
                "neighbour_correlation": sums["pairs"] / pair_norm if pair_norm > 0 else None,
                "zero_share": sums["zeros"] / sums["values"],
                "edge_correlation": float(mean_r[best]), "edge_channel": best, "images": sums["images"]}


def _edges(images):
    """Gradient magnitude (3x3 Sobel, edges replicated) of each image's luma: (images, H, W)."""
    import numpy as np

    images = np.asarray(images, np.float64)
    gray = images[..., 0] if images.shape[-1] == 1 else images @ np.array([0.299, 0.587, 0.114])
    p = np.pad(gray, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:]) - (p[:, :-2, :-2] + 2 * p[:, 1:-1, :-2] + p[:, 2:, :-2])
    gy = (p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:]) - (p[:, :-2, :-2] + 2 * p[:, :-2, 1:-1] + p[:, :-2, 2:])
    return np.hypot(gx, gy)


def _pooled(maps, k: int):
    """(images, H, W, ...) averaged over k x k blocks (H and W multiples of k)."""
    if k == 1:
        return maps
    n, h, w, *rest = maps.shape
    return maps.reshape(n, h // k, k, w // k, k, *rest).mean(axis=(2, 4))


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
    # Every test image of the run is measured (the figures show a few).
    measured = [batch for batch, _ in image_batches(data.x_test, data.y_test, batch_size=MEASURE_BATCH, shuffle=False)]
    inputs = MapStatistics(images.shape[1])
    for batch in measured:
        inputs.add(np.asarray(batch), np.asarray(batch))
    statistics = {"input": inputs.result()}
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
        statistics[source] = _measure(probe, measured)
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
               "channels": channels, "class_names": data.class_names, "statistics": statistics,
               "measured_images": len(data.y_test), "detail_patch": DETAIL_PATCH}
    runner.store.write_experiment(experiment.name, summary=summary)


def _measure(probe, batches) -> dict:
    """{"early": ..., "late": ...}: MapStatistics of the probe's two outputs over ``batches`` of images."""
    import keras
    import numpy as np

    found = None
    for batch in batches:
        maps = [np.asarray(keras.ops.convert_to_numpy(a)) for a in probe(batch, training=False)]
        if found is None:
            found = [MapStatistics(batch.shape[1]) for _ in maps]
        for statistics, layer_maps in zip(found, maps):
            statistics.add(layer_maps, np.asarray(batch))
    return {"early": found[0].result(), "late": found[1].result()}


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
    return {"inputs": figures.data_uri(inputs), "models": shown, "patch": summary.get("detail_patch") or DETAIL_PATCH,
            "observations": [_model_observation(model, arrays[f"early_{i}"], arrays[f"late_{i}"],
                                                (summary.get("statistics") or {}).get(model.get("question")),
                                                (summary.get("statistics") or {}).get("input"),
                                                summary.get("detail_patch") or DETAIL_PATCH)
                             for i, model in enumerate(models)]}


def _model_observation(model: Mapping[str, Any], early, late, statistics: Mapping[str, Any] | None = None,
                       inputs: Mapping[str, Any] | None = None, patch: int = DETAIL_PATCH) -> str:
    """What the maps measured (``statistics``: this model's {"early", "late"} MapStatistics results,
    ``inputs``: the input images' alike), and how many of the shown channels are flat on every image
    shown (one value over the map, a dead ReLU's 0 say: ``_scaled`` stores such a map as 0)."""
    def flat(maps) -> int:
        return int((maps.reshape(maps.shape[0], maps.shape[1], -1).max(axis=(0, 2)) == 0).sum())

    label, question = str(model.get("label")), str(model.get("question"))
    label = label if question in label else f"{label} ({question})"
    flat_words = (f"{flat(early)} of the {early.shape[1]} early channels shown and {flat(late)} of the "
                  f"{late.shape[1]} late ones are flat (one value over the whole map) on all {early.shape[0]} images.")
    found = statistics or {}
    e, l = found.get("early"), found.get("late")
    if not (isinstance(e, Mapping) and isinstance(l, Mapping)):
        # Stored before the maps were measured: what the shown maps' shapes say.
        early_shape, late_shape = model.get("early_shape") or [], model.get("late_shape") or []
        sentence = f"{label}: "
        if len(early_shape) >= 2 and len(late_shape) >= 2 and late_shape[0]:
            sentence += (f"the late maps are {late_shape[0]} x {late_shape[1]} against the early {early_shape[0]} x "
                         f"{early_shape[1]}, {early_shape[0] / late_shape[0]:g} times coarser; ")
        return sentence + flat_words
    images = e.get("images")
    sentence = (f"{label}, measured on {images:,} test images and every channel: the early maps "
                f"({fmt(model.get('early_layer'))}) are {e['height']} x {e['width']}; {_share(e['detail'])} of their "
                f"variance is finer than {patch} x {patch}-pixel patches")
    if isinstance(inputs, Mapping):
        sentence += (f" ({'more' if e['detail'] > inputs['detail'] else 'no more'} than the input images' own "
                     f"{_share(inputs['detail'])})")
    sentence += (f", and the early channel that follows the image's edges most closely correlates with its gradient "
                 f"magnitude at r = {_r(e['edge_correlation'])} on average")
    if isinstance(inputs, Mapping):
        sentence += f" (the raw colour channels: {_r(inputs['edge_correlation'])})"
    ratio = e["positions"] / l["positions"] if l["positions"] else float("nan")
    sentence += (f". The late maps ({fmt(model.get('late_layer'))}) are {l['height']} x {l['width']}, one value per "
                 f"{l['stride']} x {l['stride']}-pixel patch ({ratio:g} times fewer positions), ")
    sentence += (f"so none of their variance is finer than {patch} x {patch} pixels" if l["stride"] >= patch else
                 f"with {_share(l['detail'])} of their variance finer than {patch} x {patch} pixels")
    if l.get("neighbour_correlation") is not None and e.get("neighbour_correlation") is not None:
        sentence += (f"; neighbouring positions ({_pixels(l['stride'])} apart) correlate at "
                     f"r = {_r(l['neighbour_correlation'])}, against {_r(e['neighbour_correlation'])} in the early maps "
                     f"({_pixels(e['stride'])} apart)")
    sentence += (f". {_share(e['zero_share'])} of the early activations and {_share(l['zero_share'])} of the late "
                 f"ones are zero. In the figures, {flat_words}")
    return sentence


def _share(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _r(value: float) -> str:
    return f"{round(value, 2) + 0.0:.2f}"       # + 0.0: no "-0.00"


def _pixels(stride: int) -> str:
    return f"{stride} pixel{'s' if stride != 1 else ''}"


VIEWS = {"activation_maps": _activation_maps}
REQUIRED_FILES = {"activation_maps": ("arrays.npz",)}
