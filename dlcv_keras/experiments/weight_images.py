"""The weight-images kind (q7): a trained model's first-layer weights shown as images.

Each hidden unit of the first layer has one incoming weight per input pixel; reshaped to the
input image and scaled to [0, 1] per unit, they show what the unit responds to (the classic
CIFAR-10 "templates" picture). Reads the model an ``EvaluateBest`` of the same run trained
(``source``): a Keras model's first kernel, or a from-scratch network's ``input_weights()``
(its first weight matrix mapped back to pixels, through its PCA projection if it has one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from dlcv_keras.experiments.base import Experiment, pick, table_values
from dlcv_keras.report.format import fmt, read_arrays
from dlcv_keras.validation import InvalidParameterError


@dataclass(frozen=True)
class WeightImages(Experiment):
    source: str = "best"

    KIND: ClassVar[str] = "weight_images"
    VIEWS: ClassVar[tuple[str, ...]] = ("weight_images",)
    SETTINGS: ClassVar[Mapping[str, tuple]] = pick("count")      # units shown (default: up to 50)

    def run(self, runner) -> None:
        import numpy as np

        count = table_values(runner, self).get("count", 50)
        model = runner.models[self.source]
        weights = input_weights(model)                            # (pixels, units)
        shape = tuple(runner.data.input_shape)
        if weights.shape[0] != int(np.prod(shape)):
            raise InvalidParameterError(f"{self.name}: the first layer of {self.source!r} takes {weights.shape[0]} "
                                        f"inputs, not the {int(np.prod(shape))} pixels of a {shape} image")
        units = weights.T[:count].reshape(-1, *shape)
        low = units.min(axis=tuple(range(1, units.ndim)), keepdims=True)
        high = units.max(axis=tuple(range(1, units.ndim)), keepdims=True)
        images = (units - low) / np.where(high > low, high - low, 1.0)
        runner.store.write_arrays(self.name, images=images.astype(np.float32))
        summary = {"kind": self.KIND, "title": self.title, "source": self.source, "units": int(weights.shape[1]),
                   "shown": len(images), "input_shape": list(shape)}
        runner.store.write_experiment(self.name, summary=summary)
        runner.echo(f"[{self.name}] {len(images)} of {weights.shape[1]} first-layer units shown as images")


def input_weights(model):
    """The first layer's weights as (inputs, units), in the space of the model's input pixels."""
    import numpy as np

    if hasattr(model, "input_weights"):                 # a from-scratch network (it knows its projection)
        return np.asarray(model.input_weights())
    for layer in getattr(model, "layers", []):
        kernel = getattr(layer, "kernel", None)
        if kernel is not None:
            import keras
            return np.asarray(keras.ops.convert_to_numpy(kernel)).reshape(-1, kernel.shape[-1])
    raise InvalidParameterError(f"a model with a first weight layer, got {type(model).__name__}")


def _weight_images(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    images = read_arrays(store, section["experiment"], section["title"], ("images",))["images"]
    per_row = 10
    rows = [list(images[i:i + per_row]) for i in range(0, len(images), per_row)]
    return {"figure": figures.data_uri(figures.image_grid(rows, cell=0.8)) if rows else None,
            "shown": fmt(summary.get("shown")), "units": fmt(summary.get("units")),
            "source": fmt(summary.get("source")), "note": str(reference.get("note") or ""),
            # Nothing here is measured against anything: the images are the observation.
            "observations": []}


VIEWS = {"weight_images": _weight_images}
REQUIRED_FILES = {"weight_images": ("arrays.npz",)}
