"""The tf.data input pipeline: uint8 images in memory, float32 only one batch at a time.

    data = load_dataset("cifar10", data_dir=..., keep_uint8=True)
    train = image_batches(data.x_train, data.y_train, batch_size=128,
                          augment=parse_augment("full"), seed=0)
    val = image_batches(data.x_val, data.y_val, batch_size=128, shuffle=False)
    model.fit(train, validation_data=val, epochs=...)

Stages: ``from_tensor_slices`` over the uint8 arrays -> ``shuffle`` over the whole split
(seeded, reshuffled every epoch) -> ``batch`` -> one map per batch that casts to float32,
divides by 255 and applies the augmentations (``dlcv_keras.data.augment``) -> ``prefetch``.
The float32 copy of an epoch (600 MB for CIFAR-10's 50k images) never exists: only the
uint8 data (and the shuffle buffer's uint8 elements) plus a few float32 batches in flight.

Deterministic: a fresh pipeline built with the same arrays, batch_size, augment and seed
yields the same batches, in the same order, with the same augmented pixels, epoch after
epoch (epoch k of one run equals epoch k of another; epochs differ from each other), on
this TensorFlow version and CPU. The shuffle is tf.data's seeded shuffle; every random
draw of the augmentations is a stateless op seeded by ``seed`` and a per-batch key from a
seeded ``tf.data.Dataset.random``, so the number of tf.data threads does not matter.
Not covered: other TensorFlow versions or machines (bilinear resampling may round
differently), and a model's own randomness (dropout, initialisation).

Imports TensorFlow when called (not when imported): ``dlcv_keras.data`` does not import
this module.
"""

from __future__ import annotations

import numpy as np

from dlcv_keras.data.augment import build_augmenter, check_channels, parse_augment
from dlcv_keras.validation import InvalidParameterError, check_int


def image_batches(x: np.ndarray, y: np.ndarray, *, batch_size: int, augment=(), seed: int = 0,
                  shuffle: bool = True):
    """A ``tf.data.Dataset`` of (float32 images (B, H, W, C) in [0, 1], int32 labels (B,)).

    - x: uint8 (N, H, W, C) images, scaled by 1/255 per batch; or float32 (N, H, W, C) in
      [0, 1], passed through unscaled (but batched, shuffled and augmented alike)
    - y: integer labels (N,)
    - batch_size: images per batch; the last batch of an epoch may be smaller
    - augment: augmentation names (see ``dlcv_keras.data.augment``; a string such as
      "crop+flip" or "full" is parsed), applied to each training batch. Pass () for
      validation and test splits.
    - seed: seeds the shuffle and the augmentations
    - shuffle: reshuffle the whole split every epoch; False keeps x's order
    """
    import tensorflow as tf

    x = _check_images(x)
    y = np.asarray(y)
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise InvalidParameterError(f"y must be integer labels of shape ({len(x)},) to match x, "
                                    f"got {y.dtype} of shape {y.shape}")
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_int("seed", seed, low=0)
    if not isinstance(shuffle, bool):
        raise InvalidParameterError(f"shuffle must be True or False, got {shuffle!r}")
    names = parse_augment(augment)
    check_channels(names, x.shape[-1])
    augmenter = build_augmenter(names, seed)
    scale = x.dtype == np.uint8

    data = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)

    def to_float(images):
        images = tf.cast(images, tf.float32)
        return images / 255.0 if scale else images

    if names:
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        data = tf.data.Dataset.zip((data, keys)).map(
            lambda batch, key: (augmenter(to_float(batch[0]), key), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    else:
        data = data.map(lambda images, labels: (to_float(images), labels),
                        num_parallel_calls=tf.data.AUTOTUNE)
    return data.prefetch(tf.data.AUTOTUNE)


def _check_images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype not in (np.uint8, np.float32) or len(x) == 0:
        raise InvalidParameterError(f"x must be a non-empty uint8 (or float32 in [0, 1]) array of "
                                    f"shape (N, H, W, C), got {x.dtype} of shape {x.shape}")
    if x.shape[-1] not in (1, 3):
        raise InvalidParameterError(f"x must have 1 or 3 channels (N, H, W, C), got shape {x.shape}")
    return x
