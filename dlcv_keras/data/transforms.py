"""Small array transforms shared by every source."""

from __future__ import annotations

import hashlib

import numpy as np


def to_unit_float(x: np.ndarray, max_value: float = 255.0) -> np.ndarray:
    """uint8 (or small int) images -> float32 in [0, 1], same shape."""
    return (x.astype(np.float32) / np.float32(max_value)).clip(0.0, 1.0)


def rgb_to_gray(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> uint8 (N, H, W, 1) with ITU-R 601 luma weights.

    The same integer formula Pillow's ``convert("L")`` uses, so gray images from
    TensorFlow Datasets match gray images read from files.
    """
    rgb = x.astype(np.uint32)
    gray = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return gray.astype(np.uint8)[..., np.newaxis]


def content_hash(*arrays: np.ndarray) -> str:
    """"sha256:<hex>" over the arrays' dtypes, shapes and bytes, in order.

    Two runs that report the same hash trained and tested on exactly the same data.
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))    # a view: no copy of large arrays
    return "sha256:" + digest.hexdigest()


def channel_stats(x: np.ndarray, max_value: float = 255.0) -> tuple[list[float], list[float]]:
    """Per-channel mean and variance of images scaled to [0, 1], for a model's Normalization layer.

    Summed in float64 over chunks, so 50k CIFAR images never become one float copy.
    """
    channels = x.shape[-1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    count = 0
    for start in range(0, len(x), 4096):
        chunk = x[start:start + 4096].reshape(-1, channels).astype(np.float64) / max_value
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
        count += len(chunk)
    mean = total / max(count, 1)
    variance = np.maximum(squares / max(count, 1) - np.square(mean), 1e-12)
    return [float(m) for m in mean], [float(v) for v in variance]
