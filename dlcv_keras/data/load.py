"""load_dataset: find a dataset, then cut it into train / val / test.

## Where the data comes from (first that works)
1. Local files in ``data_dir/<folder>`` (the CLI's --data-dir or DLCV_DATA_DIR).
   A folder that exists but holds broken data is an error, not a reason to look
   elsewhere: the user pointed us at it.
2. The TensorFlow Datasets cache, then a TFDS download if allowed and online.
3. Nothing: ``DataUnavailable``, naming everything that was tried.
(``digits`` always comes from scikit-learn.)

## How it is cut (every step is written to ``info["notes"]``)
1. A source without a test split (or without a train split) gets one carved out:
   a stratified 20 % of what there is.
2. The train pool is capped: ``tiny_cifar10`` keeps 500 per class, then
   ``max_train`` keeps a stratified subsample.
3. A stratified ``val_fraction`` of the train pool becomes the validation split.
4. ``max_test`` keeps a stratified subsample of the test split.

Steps that touch the test split always use seed 0, so runs with different seeds are
scored on the same test images; the train/val steps use ``seed``.

## Size and type of what comes back
- ``image_size=N`` resizes the images of an image-folder or TFDS source to NxN (Pillow,
  bilinear) instead of the catalog's size, and says so in ``info["notes"]``. IDX (MNIST,
  Fashion-MNIST) and scikit-learn digits are never resized: a different size is an error.
- ``keep_uint8=True`` returns the images as decoded, uint8 (N, H, W, C) (gray conversion
  applied), for an input pipeline that scales each batch itself
  (``dlcv_keras.data.images.image_batches``); by default they are float32 in [0, 1].
  ``info["dtype"]`` says which, and ``info["content_hash"]`` is over what is returned.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dlcv_keras.data import tfds_source
from dlcv_keras.data.base import DataUnavailable, Dataset, Pool, SourceData, split_sizes
from dlcv_keras.data.catalog import SPECS, DatasetSpec
from dlcv_keras.data.digits import read_digits
from dlcv_keras.data.folders import read_split_folders
from dlcv_keras.data.idx import read_idx_folder
from dlcv_keras.data.splits import cap_per_class, stratified_split, stratified_subsample
from dlcv_keras.data.transforms import content_hash, rgb_to_gray, to_unit_float
from dlcv_keras.validation import (DataError, InvalidParameterError, check_choice, check_float,
                                   check_int)

DATASETS: tuple[str, ...] = tuple(SPECS)
TEST_FRACTION = 0.2     # share carved out as test when a source has no test split
TEST_SEED = 0


def load_dataset(name: str, *, data_dir: Path | None = None, val_fraction: float = 0.2,
                 seed: int = 0, max_train: int | None = None, max_test: int | None = None,
                 allow_download: bool = True, image_size: int | None = None,
                 keep_uint8: bool = False) -> Dataset:
    """Load ``name`` as float32 NHWC images in [0, 1] (or uint8, see keep_uint8) and int64 labels.

    Inputs:
    - name: one of DATASETS
    - data_dir: folder holding <name>/ sub-folders of local copies, or None
    - val_fraction: share of the train pool used for validation, in (0, 1)
    - seed: seeds the train/val split and the max_train subsample
    - max_train, max_test: cap the train pool (before the val split) and the test split
    - allow_download: may TensorFlow Datasets download when its cache lacks the data
    - image_size: resize to (image_size, image_size) instead of the catalog's size (image
      folders and TFDS only; None keeps the catalog's size, e.g. 64 for cats_vs_dogs)
    - keep_uint8: return x_* as uint8 as decoded (0..255; 0..16 for digits) instead of
      float32 in [0, 1]

    Raises InvalidParameterError for bad arguments, DataError for a missing data_dir or
    broken local files, DataUnavailable when no source has the data.
    """
    check_choice("dataset", name, DATASETS)
    val_fraction = check_float("val_fraction", val_fraction, low=0, high=1, closed="neither")
    seed = check_int("seed", seed, low=0)
    for cap_name, cap in (("max_train", max_train), ("max_test", max_test)):
        if cap is not None:
            check_int(cap_name, cap, low=1)
    if image_size is not None:
        check_int("image_size", image_size, low=1)
    if not isinstance(keep_uint8, bool):
        raise InvalidParameterError(f"keep_uint8 must be True or False, got {keep_uint8!r}")
    data_dir = _check_data_dir(data_dir, name)

    spec = _sized_spec(name, SPECS[name], image_size)
    raw = _read_source(name, spec, data_dir, allow_download)
    notes = list(spec.notes) + list(raw.notes)
    if keep_uint8 and raw.max_value != 255:
        notes.append(f"images kept as uint8 (keep_uint8): pixel values run 0..{raw.max_value:g}, "
                     f"not 0..255")
    train, test = _complete_splits(raw, notes)
    # Caps that leave a class out of a split make per-class results meaningless.
    classes = len(raw.class_names)
    if max_test is not None and max_test < classes:
        raise InvalidParameterError(f"max_test must be at least the number of classes ({classes}) of "
                                    f"{name}, so that every class is tested, got {max_test}")
    if max_train is not None and max_train < 2 * classes:
        raise InvalidParameterError(f"max_train must be at least twice the number of classes ({classes}) "
                                    f"of {name}, so that every class is in train and val, got {max_train}")

    if spec.per_class_cap is not None:
        train = train.subset(cap_per_class(train.y, spec.per_class_cap, seed))
        notes.append(f"train pool capped at {spec.per_class_cap} images per class "
                     f"({len(train)} in all, seed {seed})")
    if max_train is not None and max_train < len(train):
        notes.append(f"train pool capped at max_train={max_train} of {len(train)} images "
                     f"(stratified, seed {seed})")
        train = train.subset(stratified_subsample(train.y, max_train, seed))
    val_idx, train_idx = stratified_split(train.y, val_fraction, seed)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise InvalidParameterError(f"val_fraction {val_fraction:g} of a {len(train)}-image "
                                    f"train pool leaves an empty split; "
                                    f"expected more images (or a larger max_train)")
    notes.append(f"val: stratified {val_fraction * 100:g}% of the {len(train)}-image "
                 f"train pool ({len(val_idx)} images, seed {seed})")
    if max_test is not None and max_test < len(test):
        notes.append(f"test capped at max_test={max_test} of {len(test)} images "
                     f"(stratified, seed {TEST_SEED})")
        test = test.subset(stratified_subsample(test.y, max_test, TEST_SEED))

    arrays = {}
    for split, pool in (("train", train.subset(train_idx)), ("val", train.subset(val_idx)),
                        ("test", test)):
        arrays[f"x_{split}"] = _finish_images(pool.materialize(), spec, raw.max_value, keep_uint8)
        arrays[f"y_{split}"] = pool.y.astype(np.int64)
    return _make_dataset(name, arrays, raw, notes)


def _sized_spec(name: str, spec: DatasetSpec, image_size: int | None) -> DatasetSpec:
    """``spec`` with its image size replaced by (image_size, image_size), its notes saying so."""
    if image_size is None or (image_size, image_size) == spec.image_size:
        return spec
    height, width = spec.image_size
    if spec.layout in ("idx", "sklearn"):
        raise InvalidParameterError(
            f"image_size must be None or {height} for {name} (its {spec.layout} images are not "
            f"resized), got {image_size}")
    resized = f"images resized to {image_size}x{image_size} (bilinear; image_size={image_size}, " \
              f"instead of the default {height}x{width})"
    notes = tuple(n for n in spec.notes if not n.startswith("images resized to")) + (resized,)
    # Image folders decode at the spec's size; TFDS images of one size are resized only if asked.
    return dataclasses.replace(spec, image_size=(image_size, image_size), notes=notes,
                               resize_tfds=True)


def _check_data_dir(data_dir, name: str) -> Path | None:
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist; expected a folder holding "
                        f"{SPECS[name].folder or name}/ and the other datasets' folders")
    return data_dir


def _read_source(name: str, spec: DatasetSpec, data_dir: Path | None,
                 allow_download: bool) -> SourceData:
    """The first source that has the data (see the module docstring)."""
    if spec.layout == "sklearn":
        return read_digits()

    tried = []
    if data_dir is None:
        tried.append("no local copy (DLCV_DATA_DIR not set)")
    elif not (data_dir / spec.folder).is_dir():
        tried.append(f"no local copy in {data_dir / spec.folder}")
    else:
        # From here on, broken files raise DataError instead of falling through.
        raw = _read_local(spec, data_dir / spec.folder)
        raw.notes.extend(spec.local_notes)
        return raw

    if spec.tfds_name is None:
        tried.append(f"no TensorFlow Datasets source for {name}")
    else:
        size = spec.image_size if spec.resize_tfds else None
        try:
            return tfds_source.read_tfds(spec.tfds_name, allow_download=allow_download,
                                         image_size=size)
        except DataUnavailable as reason:
            tried.append(str(reason))
    raise DataUnavailable(f"{name} unavailable: {', '.join(tried)}")


def _read_local(spec: DatasetSpec, folder: Path) -> SourceData:
    if spec.layout == "idx":
        return read_idx_folder(folder, list(spec.class_names))
    return read_split_folders(folder, spec.split_folders, spec.image_size, spec.mode)


def _complete_splits(raw: SourceData, notes: list[str]) -> tuple[Pool, Pool]:
    """Carve a test split out of the train split, or the other way round, if one is missing."""
    if raw.train is not None and raw.test is not None:
        return raw.train, raw.test
    if raw.train is None:
        test_idx, train_idx = stratified_split(raw.test.y, TEST_FRACTION, TEST_SEED)
        notes.append(f"train images missing in {raw.source}: train/val/test built from the "
                     f"{len(raw.test)}-image test split ({TEST_FRACTION:.0%} kept as test, "
                     f"stratified, seed {TEST_SEED})")
        return raw.test.subset(train_idx), raw.test.subset(test_idx)
    test_idx, train_idx = stratified_split(raw.train.y, TEST_FRACTION, TEST_SEED)
    notes.append(f"no test split in {raw.source}: a stratified {TEST_FRACTION:.0%} of the "
                 f"{len(raw.train)} train images is the test split (seed {TEST_SEED})")
    return raw.train.subset(train_idx), raw.train.subset(test_idx)


def _finish_images(x: np.ndarray, spec: DatasetSpec, max_value: float,
                   keep_uint8: bool) -> np.ndarray:
    # Files are read in the spec's mode already; TFDS hands over RGB for cifar10_gray.
    if x.shape[-1] == 3 and spec.channels == 1:
        x = rgb_to_gray(x)
    if keep_uint8:
        return np.ascontiguousarray(x, dtype=np.uint8)
    return to_unit_float(x, max_value)


def _make_dataset(name: str, arrays: dict, raw: SourceData, notes: list[str]) -> Dataset:
    input_shape = tuple(int(d) for d in arrays["x_train"].shape[1:])
    order = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    info = {
        "name": name,
        "requested": name,
        "source": raw.source,
        "notes": notes,
        **split_sizes({split: arrays[f"y_{split}"] for split in ("train", "val", "test")}, len(raw.class_names)),
        "class_names": list(raw.class_names),
        "input_shape": list(input_shape),
        "dtype": str(arrays["x_train"].dtype),
        "content_hash": content_hash(*(arrays[key] for key in order)),
        "fallback_banner": None,
    }
    return Dataset(name=name, **arrays, class_names=list(raw.class_names),
                   input_shape=input_shape, info=info)
