"""Stratified, seeded index selection: splits and subsamples that keep class balance.

Every function takes labels ``y`` of shape (N,) and returns *indices* into it, so the
same selection can be applied to images that have not been decoded yet.

Why stratify: the seeds train on 10/20/50 % of MNIST and on 100 images of CIFAR-10;
a plain random cut of a small subset can leave a class nearly empty, and then the
per-class accuracy tables measure the cut rather than the model.

The returned indices come in a shuffled (seeded) order rather than sorted by class,
so data read from class folders is not fed to a model one class at a time.
"""

from __future__ import annotations

import numpy as np

from dlcv_keras.validation import check_float, check_int, fail


def stratified_split(y, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into two disjoint parts, class by class.

    Inputs:
    - y: labels, shape (N,)
    - fraction: share of every class that goes to the first part, in (0, 1)
    - seed: the same seed and labels always give the same split

    Returns (idx_first, idx_rest), int64 arrays that together cover range(N).
    Each class with n samples puts round(fraction * n) into idx_first, clamped to
    [1, n - 1] when n >= 2 so that both parts see every class; a class with a single
    sample goes to idx_rest.
    """
    y = _labels(y)
    fraction = check_float("fraction", fraction, low=0, high=1, closed="neither")
    rng = np.random.default_rng(seed)
    first, rest = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n = len(members)
        k = int(np.floor(fraction * n + 0.5))     # round half up, not to even
        if n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = 0
        first.append(members[:k])
        rest.append(members[k:])
    return _shuffled(first, rng), _shuffled(rest, rng)


def stratified_subsample(y, n: int, seed: int = 0) -> np.ndarray:
    """Pick n indices whose class proportions match those of y.

    Each class gets its quota n * n_c / N rounded down, and the samples still
    missing go to the classes with the largest remainders, so the total is exactly
    n and every class is within one sample of its quota. n >= N returns every index.
    """
    y = _labels(y)
    n = check_int("n", n, low=1)
    rng = np.random.default_rng(seed)
    if n >= len(y):
        return rng.permutation(len(y)).astype(np.int64)
    classes, counts = np.unique(y, return_counts=True)
    quota = n * counts / counts.sum()
    take = np.floor(quota).astype(int)
    # Largest remainder first; a stable sort breaks ties by class order, so the
    # result depends only on y, n and seed.
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - take.sum()]] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return _shuffled(chosen, rng)


def cap_per_class(y, k: int, seed: int = 0) -> np.ndarray:
    """At most k indices of every class (tiny_cifar10 keeps 500 images per class)."""
    y = _labels(y)
    k = check_int("k", k, low=1)
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c in np.unique(y)]
    return _shuffled(chosen, rng)


def _labels(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        fail("y", "a non-empty 1-D array of labels", f"array of shape {y.shape}")
    return y


def _shuffled(parts: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    joined = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return rng.permutation(joined).astype(np.int64)
