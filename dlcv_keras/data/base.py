"""The nouns of the data package: what a source hands over, and what a caller gets.

A source (local files, TensorFlow Datasets, scikit-learn) produces a ``SourceData``:
a train ``Pool`` and a test ``Pool``, either of which may be missing. ``load_dataset``
then carves, caps and splits those pools into the six arrays of a ``Dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np


class DataUnavailable(Exception):
    """No source could provide the dataset.

    Not a user error: the data simply cannot be had here (no local copy, no
    TensorFlow Datasets cache, no internet). A caller may fall back to ``digits``.
    """


@dataclass
class Pool:
    """Labels now, images on demand.

    ``fetch(indices)`` returns the images at those indices as uint8 NHWC. Pools from
    image folders decode files only when fetched, so capping a 25k-image pool to
    500 images decodes 500 files.
    """

    y: np.ndarray
    fetch: Callable[[np.ndarray], np.ndarray]

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray) -> "Pool":
        return cls(np.asarray(y, dtype=np.int64), lambda idx: x[idx])

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> "Pool":
        idx = np.asarray(idx, dtype=np.int64)
        return Pool(self.y[idx], lambda inner: self.fetch(idx[inner]))

    def materialize(self) -> np.ndarray:
        return self.fetch(np.arange(len(self.y)))


@dataclass
class SourceData:
    """What one source provides before any splitting."""

    train: Pool | None
    test: Pool | None
    class_names: list[str]
    source: str                      # human words, e.g. "local IDX files in /data/mnist"
    notes: list[str] = field(default_factory=list)
    max_value: float = 255.0         # pixel value that maps to 1.0 (16 for sklearn digits)


@dataclass(repr=False)
class Dataset:
    """Train/val/test arrays ready for Keras.

    - x_*: shape (N, H, W, C); float32 with values in [0, 1] by default, or uint8 as
      decoded (0..255; 0..16 for digits) when loaded with ``keep_uint8=True``;
      ``info["dtype"]`` says which ("float32" or "uint8")
    - y_*: int64, shape (N,), labels 0..num_classes-1
    - info: where the data came from and every step applied to it (see load_dataset)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    input_shape: tuple[int, ...]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:
        # The default dataclass repr would print every pixel.
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
                f"test={len(self.y_test)}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes})")


def split_sizes(labels: Mapping[str, np.ndarray], classes: int) -> dict:
    """What run.json says of each split's labels: ``{"splits": {split: images}, "class_counts": {split: [images
    of class 0, 1, ...]}}``. The class counts give a split's chance level (its most common class's share,
    ``stats.chance_level``) to the report, which never reads the arrays."""
    return {"splits": {split: len(y) for split, y in labels.items()},
            "class_counts": {split: np.bincount(np.asarray(y, np.int64).ravel(), minlength=classes).tolist()
                             for split, y in labels.items()}}
