"""Seeded image augmentations for training batches, as TensorFlow ops that run inside tf.data.

The six augmentations (``AUGMENTATIONS``), applied in this order, each to every image of a
float32 batch (B, H, W, C) in [0, 1] with its own random draw per image:

- ``crop``: pad 4 pixels of zeros on each side, then cut an HxW window at a random offset
  (0..8 in each direction): the CIFAR ResNet recipe (He et al. 2016).
- ``flip``: mirror left-right with probability 0.5.
- ``rotation``: rotate by an angle uniform in [-10, 10] degrees (bilinear, borders filled by
  reflection), as the cats-vs-dogs seed's ``RandomRotation``.
- ``resized_crop``: cut a window of 80-100 % of the image's area with aspect ratio
  (width / height) log-uniform in [3/4, 4/3] (capped at the image's sides) at a random
  position, and resize it back to HxW (bilinear).
- ``color_jitter``: scale brightness, then contrast (about the image's mean gray), then
  saturation (about each pixel's gray), each by a factor uniform in [0.8, 1.2], clipping to
  [0, 1] after each step (torchvision's ColorJitter(0.2, 0.2, 0.2) in a fixed order).
- ``grayscale``: with probability 0.2, replace R, G and B by the pixel's ITU-R 601 luma.

``color_jitter`` and ``grayscale`` are colour operations: on 1-channel images they raise
InvalidParameterError (asking for them there is a mistake, not something to skip silently).

Randomness: every draw is a stateless TensorFlow random op whose seed comes from the
augmenter's ``seed`` and a per-call ``key`` (``image_batches`` passes one per batch from a
seeded ``tf.data.Dataset.random``), so the same seed and keys give the same images, on
any number of tf.data threads.

A space file names a set as ``"none"``, ``"full"`` (all six) or names joined by ``+``
(``"crop+flip"``); ``parse_augment`` turns that into a tuple of names.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

from dlcv_keras.validation import InvalidParameterError, check_int

AUGMENTATIONS: tuple[str, ...] = ("crop", "flip", "rotation", "resized_crop", "color_jitter",
                                  "grayscale")
COLOR_AUGMENTATIONS = ("color_jitter", "grayscale")
CROP_PADDING = 4
FLIP_PROBABILITY = 0.5
ROTATION_DEGREES = 10.0
RESIZED_CROP_AREA = (0.8, 1.0)
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.2                    # brightness, contrast, saturation factors in [1 - JITTER, 1 + JITTER]
GRAYSCALE_PROBABILITY = 0.2
LUMA = (0.299, 0.587, 0.114)


def parse_augment(value) -> tuple[str, ...]:
    """``"none"`` -> (), ``"full"`` -> AUGMENTATIONS, ``"crop+flip"`` -> ("crop", "flip").

    Also accepts a list or tuple of names. Names come back in AUGMENTATIONS order (the order
    they are applied in), each once. Raises InvalidParameterError for anything else.
    """
    expected = (f"expected 'none', 'full' or names from {', '.join(AUGMENTATIONS)} "
                f"joined by '+'")
    if isinstance(value, (list, tuple)):
        names, shown = list(value), "+".join(map(str, value))
    elif isinstance(value, str):
        if value.strip() in ("none", ""):
            return ()
        if value.strip() == "full":
            return AUGMENTATIONS
        names, shown = value.split("+"), value
    else:
        raise InvalidParameterError(f"augment must be a string, {expected}, got {value!r}")
    for name in names:
        if not isinstance(name, str) or name.strip() not in AUGMENTATIONS:
            raise InvalidParameterError(f"augment: unknown augmentation {name!r} in {shown!r}; "
                                        f"{expected}")
    chosen = {name.strip() for name in names}
    return tuple(name for name in AUGMENTATIONS if name in chosen)


def check_channels(names: Iterable[str], channels: int) -> None:
    """InvalidParameterError if a colour augmentation is asked for on images that are not RGB."""
    colour = [name for name in names if name in COLOR_AUGMENTATIONS]
    if colour and channels != 3:
        raise InvalidParameterError(f"augment: {'+'.join(colour)} needs 3-channel (RGB) images, "
                                    f"got {channels}-channel images; expected augmentations "
                                    f"from {', '.join(n for n in AUGMENTATIONS if n not in COLOR_AUGMENTATIONS)}")


def build_augmenter(names: Iterable[str], seed: int) -> Callable:
    """``augment(images, key=0)``: a float32 batch (B, H, W, C) in [0, 1] -> the same shape,
    augmented by ``names`` (in AUGMENTATIONS order), still in [0, 1].

    ``key`` (an int or scalar int64 tensor) selects the random draws together with ``seed``:
    the same (seed, key) gives the same output for the same batch. Works eagerly and
    inside tf.data / tf.function. With no names it returns the batch unchanged.
    """
    import tensorflow as tf

    names = parse_augment(tuple(names))
    seed = check_int("seed", seed, low=0)
    ops = [_OPS[name] for name in names]

    def augment(images, key=0):
        images = tf.convert_to_tensor(images, dtype=tf.float32)
        if not ops:
            return images
        check_channels(names, int(images.shape[-1]))
        static = images.shape
        base = tf.stack([tf.constant(seed, tf.int64), tf.cast(key, tf.int64)])
        seeds = tf.random.experimental.stateless_split(base, num=len(ops))
        for i, op in enumerate(ops):
            images = op(tf, images, seeds[i])
        # The resampling ops lose the static height and width; Keras wants them.
        return tf.ensure_shape(images, static)

    return augment


def augmented_examples(x_uint8: np.ndarray, names: Iterable[str], seed: int = 0,
                       per_image: int = 4) -> np.ndarray:
    """Each image of ``x_uint8`` (N, H, W, C) augmented ``per_image`` times with different draws,
    as uint8 of shape (N, per_image, H, W, C), for a report figure."""
    x = np.asarray(x_uint8)
    if x.ndim != 4 or x.dtype != np.uint8:
        raise InvalidParameterError(f"x_uint8 must be a uint8 array (N, H, W, C), got "
                                    f"{x.dtype} of shape {x.shape}")
    per_image = check_int("per_image", per_image, low=1)
    augment = build_augmenter(names, seed)
    batch = np.repeat(x, per_image, axis=0).astype(np.float32) / 255.0
    out = np.asarray(augment(batch, 0))
    out = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    return out.reshape(len(x), per_image, *x.shape[1:])


# ----------------------------------------------------------------------------- the operations
# Each takes (tf, images (B, H, W, C) float32, seed (2,) int64) and returns the new batch.

def _uniform(tf, seed, shape, low, high):
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high, dtype=tf.float32)


def _crop(tf, images, seed):
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    pad = CROP_PADDING
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([2, batch], seed, minval=0, maxval=2 * pad + 1,
                                          dtype=tf.int32)
    rows = offsets[0][:, None] + tf.range(height)[None, :]          # (B, H)
    cols = offsets[1][:, None] + tf.range(width)[None, :]           # (B, W)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)         # (B, H, W + 2 pad, C)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)           # (B, H, W, C)


def _flip(tf, images, seed):
    flip = _uniform(tf, seed, [tf.shape(images)[0]], 0.0, 1.0) < FLIP_PROBABILITY
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def _rotation(tf, images, seed):
    shape = tf.shape(images)
    batch = shape[0]
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    limit = ROTATION_DEGREES * math.pi / 180.0
    angle = _uniform(tf, seed, [batch], -limit, limit)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): a rotation about
    # the image centre (cx, cy).
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a2 = cx - cos * cx + sin * cy
    b2 = cy - sin * cx - cos * cy
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([cos, -sin, a2, sin, cos, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3],
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="REFLECT")


def _resized_crop(tf, images, seed):
    shape = tf.shape(images)
    batch = shape[0]
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    draws = tf.random.stateless_uniform([4, batch], seed, dtype=tf.float32)
    area = RESIZED_CROP_AREA[0] + draws[0] * (RESIZED_CROP_AREA[1] - RESIZED_CROP_AREA[0])
    low, high = math.log(RESIZED_CROP_RATIO[0]), math.log(RESIZED_CROP_RATIO[1])
    ratio = tf.exp(low + draws[1] * (high - low))                   # crop width / crop height
    # As fractions of the image's sides: w * h = area and (w W) / (h H) = ratio.
    w = tf.minimum(tf.sqrt(area * ratio * height / width), 1.0)
    h = tf.minimum(area / w, 1.0)
    y0, x0 = draws[2] * (1.0 - h), draws[3] * (1.0 - w)
    # crop_and_resize's box corners are the centres of the first and last pixels sampled.
    boxes = tf.stack([y0 * height / (height - 1), x0 * width / (width - 1),
                      ((y0 + h) * height - 1) / (height - 1),
                      ((x0 + w) * width - 1) / (width - 1)], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(batch), shape[1:3],
                                    method="bilinear")


def _gray(tf, images):
    return tf.reduce_sum(images * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)


def _color_jitter(tf, images, seed):
    factors = tf.random.stateless_uniform([3, tf.shape(images)[0], 1, 1, 1], seed,
                                          minval=1 - JITTER, maxval=1 + JITTER)
    images = tf.clip_by_value(images * factors[0], 0.0, 1.0)                       # brightness
    mean = tf.reduce_mean(_gray(tf, images), axis=[1, 2, 3], keepdims=True)
    images = tf.clip_by_value(mean + (images - mean) * factors[1], 0.0, 1.0)        # contrast
    gray = _gray(tf, images)
    return tf.clip_by_value(gray + (images - gray) * factors[2], 0.0, 1.0)          # saturation


def _random_grayscale(tf, images, seed):
    chosen = _uniform(tf, seed, [tf.shape(images)[0]], 0.0, 1.0) < GRAYSCALE_PROBABILITY
    gray = tf.repeat(_gray(tf, images), 3, axis=-1)
    return tf.where(chosen[:, None, None, None], gray, images)


_OPS = {"crop": _crop, "flip": _flip, "rotation": _rotation, "resized_crop": _resized_crop,
        "color_jitter": _color_jitter, "grayscale": _random_grayscale}
