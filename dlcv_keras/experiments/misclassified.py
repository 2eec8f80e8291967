"""The misclassified-gallery kind (q18): test images the retrained best model gets wrong.

Reads the model an ``EvaluateBest`` of the same run kept (``source``), predicts the test split
through the same input pipeline, and stores the most confidently wrong images with their true
class, predicted class and predicted probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from dlcv_keras.experiments.base import Experiment, pick, table_values
from dlcv_keras.report.format import pct, read_arrays, require


@dataclass(frozen=True)
class MisclassifiedGallery(Experiment):
    source: str = "best"

    KIND: ClassVar[str] = "misclassified"
    VIEWS: ClassVar[tuple[str, ...]] = ("misclassified",)
    SETTINGS: ClassVar[Mapping[str, tuple]] = pick("count")

    def run(self, runner) -> None:
        import numpy as np

        from dlcv_keras.training.fit import predict_probabilities

        count = table_values(runner, self).get("count", 16)
        data = runner.data
        model = runner.models[self.source]
        probabilities = predict_probabilities(model, data.x_test)
        predicted = probabilities.argmax(axis=1)
        wrong = np.flatnonzero(predicted != data.y_test)
        # Most confident mistakes first: the ones that say most about what the model learned.
        order = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count]
        runner.store.write_arrays(self.name, images=data.x_test[order], true=data.y_test[order],
                                  predicted=predicted[order], probabilities=probabilities[order].astype(np.float32),
                                  indices=order)
        rows = [{"test_index": int(i), "true": data.class_names[int(data.y_test[i])],
                 "predicted": data.class_names[int(predicted[i])],
                 **{f"p_{name}": float(probabilities[i, k]) for k, name in enumerate(data.class_names)}}
                for i in order]
        summary = {"kind": self.KIND, "title": self.title, "source": self.source, "test_images": len(data.y_test),
                   "wrong": len(wrong), "shown": len(order), "test_accuracy": float(np.mean(predicted == data.y_test)),
                   "class_names": data.class_names}
        runner.store.write_experiment(self.name, summary=summary, tables={"gallery": rows})
        runner.echo(f"[{self.name}] {len(wrong)} of {len(data.y_test)} test images wrong; {len(order)} shown")


def _misclassified(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    rows = require(experiment, "gallery", store, section["experiment"], "gallery.csv", section["title"])
    arrays = read_arrays(store, section["experiment"], section["title"], ("images", "true", "predicted", "probabilities"))
    names = summary.get("class_names") or []
    images = arrays["images"] / 255.0
    per_row = 6
    titles = [f"{row['true']} → {row['predicted']}\n{100 * float(row['p_' + str(row['predicted'])]):.0f} %"
              for row in rows]
    grid = [list(images[i:i + per_row]) for i in range(0, len(images), per_row)]
    title_rows = [titles[i:i + per_row] for i in range(0, len(titles), per_row)]
    figure = figures.data_uri(figures.image_grid(grid, titles=title_rows, cell=1.5)) if len(images) else None
    table = [{"index": row["test_index"], "true": row["true"], "predicted": row["predicted"],
              "probabilities": ", ".join(f"{n} {pct(row.get('p_' + n))} %" for n in names)} for row in rows]
    return {"figure": figure, "table": table, "wrong": summary.get("wrong"), "total": summary.get("test_images"),
            "accuracy": pct(summary.get("test_accuracy"))}


VIEWS = {"misclassified": _misclassified}
REQUIRED_FILES = {"misclassified": ("gallery.csv", "arrays.npz")}
