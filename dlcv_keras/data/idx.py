"""MNIST and Fashion-MNIST from their original IDX files.

The IDX format (yann.lecun.com/exdb/mnist) is a 4-byte magic number, one big-endian
uint32 per dimension, then the raw uint8 values:

    magic 0x00000801: labels, dims (N,)
    magic 0x00000803: images, dims (N, rows, cols)

The files may be gzipped (``.gz``) or not. A folder may hold only the test images
(the offline MNIST copy does); ``load_dataset`` then carves train/val/test out of them.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from dlcv_keras.data.base import Pool, SourceData
from dlcv_keras.validation import DataError

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (raw or gzipped) whose magic number must be ``magic``.

    Returns a uint8 array of shape (N,) for labels or (N, rows, cols) for images.
    Raises DataError naming the file for a bad gzip stream, a wrong magic number or
    a size that does not match the header.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        kind = "a gzip-compressed IDX file" if path.suffix == ".gz" else "a readable IDX file"
        raise DataError(f"cannot read {path}: {error}; expected {kind}") from None

    expected_ndim = magic & 0xFF
    header = 4 + 4 * expected_ndim
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        shown = "nothing" if found is None else f"0x{found:08x}"
        raise DataError(f"{path} has magic number {shown}; expected 0x{magic:08x} "
                        f"({'images' if magic == IMAGES_MAGIC else 'labels'} IDX file)")
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header; expected {header} header bytes")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_ndim))
    if len(data) != header + int(np.prod(dims)):
        raise DataError(f"{path} holds {len(data) - header} values; its header dims {dims} "
                        f"expect {int(np.prod(dims))}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (raw first)."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx_folder(folder: Path, class_names: list[str]) -> SourceData:
    """The train and t10k IDX pairs in ``folder``; either split may be missing."""
    pools = {}
    for split in ("train", "t10k"):
        images_path = find_idx(folder, f"{split}-images-idx3-ubyte")
        if images_path is None:
            pools[split] = None     # labels without images are of no use: ignore them
            continue
        labels_path = find_idx(folder, f"{split}-labels-idx1-ubyte")
        if labels_path is None:
            raise DataError(f"{images_path} has no labels file next to it; expected "
                            f"{folder / (split + '-labels-idx1-ubyte')}[.gz]")
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if len(images) != len(labels):
            raise DataError(f"{images_path} holds {len(images)} images but {labels_path} "
                            f"holds {len(labels)} labels; expected the same count")
        if labels.max() >= len(class_names):
            raise DataError(f"{labels_path} holds label {labels.max()}; expected labels "
                            f"0..{len(class_names) - 1}")
        pools[split] = Pool.from_arrays(images[..., np.newaxis], labels)

    if pools["train"] is None and pools["t10k"] is None:
        raise DataError(f"{folder} holds no IDX image files; expected "
                        f"train-images-idx3-ubyte[.gz] and/or t10k-images-idx3-ubyte[.gz]")
    return SourceData(pools["train"], pools["t10k"], list(class_names),
                      source=f"local IDX files in {folder}")
