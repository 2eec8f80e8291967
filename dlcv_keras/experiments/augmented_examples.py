"""The augmented-examples kind (q11): a few training images, each shown as the pipeline augments it.

The augmentation is the one training uses (``data.augment``, the same seeded layers), so the
figure shows what the model saw. Stores the originals and their augmented copies as uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from dlcv_keras.experiments.base import Experiment, already_done, experiment_fingerprint, pick, table_values
from dlcv_keras.report.format import read_arrays
from dlcv_keras.validation import InvalidParameterError


@dataclass(frozen=True)
class AugmentedExamples(Experiment):
    KIND: ClassVar[str] = "augmented_examples"
    VIEWS: ClassVar[tuple[str, ...]] = ("augmented_examples",)
    SETTINGS: ClassVar[Mapping[str, tuple]] = {**pick("images", "count"), "augment": ("augment",)}
    REQUIRED: ClassVar[tuple[str, ...]] = ("augment",)

    def check(self, question, settings, table, where: str) -> None:
        super().check(question, settings, table, where)
        from dlcv_keras.data.augment import parse_augment
        try:
            parse_augment(table.fixed["augment"])
        except InvalidParameterError as error:
            raise InvalidParameterError(f"{where} {error}") from None

    def run(self, runner) -> None:
        import numpy as np

        from dlcv_keras.data.augment import augmented_examples, parse_augment

        values = table_values(runner, self)
        fingerprint = experiment_fingerprint(runner, self, values)
        if already_done(runner, self, fingerprint):
            return
        names = parse_augment(values["augment"])
        x = runner.data.x_train
        # One image of each of the first classes, so the figure shows different things.
        picked = [int(np.flatnonzero(runner.data.y_train == k)[0]) for k in range(runner.data.num_classes)
                  if np.any(runner.data.y_train == k)][:values.get("images", 4)]
        per_image = values.get("count", 6)
        augmented = augmented_examples(x[picked], names, runner.settings.seed, per_image)
        runner.store.write_arrays(self.name, originals=x[picked], augmented=augmented,
                                  labels=runner.data.y_train[picked])
        summary = {"kind": self.KIND, "title": self.title, "augment": list(names), "images": len(picked),
                   "per_image": per_image, "class_names": runner.data.class_names, "fingerprint": fingerprint}
        runner.store.write_experiment(self.name, summary=summary)
        runner.echo(f"[{self.name}] {len(picked)} images x {per_image} augmentations ({'+'.join(names) or 'none'})")


def _augmented_examples(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    arrays = read_arrays(store, section["experiment"], section["title"], ("originals", "augmented", "labels"))
    originals, augmented = arrays["originals"] / 255.0, arrays["augmented"] / 255.0
    names = summary.get("class_names") or []
    rows = [[originals[i], *augmented[i]] for i in range(len(originals))]
    labels = [names[int(k)] if int(k) < len(names) else str(int(k)) for k in arrays["labels"]]
    columns = ["original", *(f"augmented {j + 1}" for j in range(augmented.shape[1]))]
    return {"figure": figures.data_uri(figures.image_grid(rows, row_labels=labels, col_labels=columns)),
            "augment": ", ".join(summary.get("augment") or []) or "none",
            "observations": _observations(arrays["originals"], arrays["augmented"])}


def _observations(originals, augmented) -> list[str]:
    """How many augmented copies came out identical to their original (a random transform can draw
    "no change"), and how far the others moved a pixel on average (0-255 pixel values)."""
    import numpy as np

    if augmented.ndim != originals.ndim + 1 or not augmented.size:
        return []
    difference = np.abs(augmented.astype(np.float64) - originals[:, None].astype(np.float64))
    per_copy = difference.reshape(augmented.shape[0] * augmented.shape[1], -1).mean(axis=1)
    changed = per_copy[per_copy > 0]
    by = f"by {changed.mean():.1f} of 255 per pixel value on average" if len(changed) else ""
    if len(changed) == len(per_copy):
        return [f"All {len(per_copy)} augmented copies differ from their original, {by}."]
    sentence = f"{len(per_copy) - len(changed)} of the {len(per_copy)} augmented copies are identical to their original"
    return [sentence + (f"; the others differ from it {by}." if by else ".")]


VIEWS = {"augmented_examples": _augmented_examples}
REQUIRED_FILES = {"augmented_examples": ("arrays.npz",)}
