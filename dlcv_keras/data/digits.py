"""scikit-learn's bundled 8x8 digits: always available, no files, no network.

1797 images, pixel values 0..16. The dataset of last resort: a question that cannot
get MNIST may fall back to it (and its report says so).
"""

from __future__ import annotations

import numpy as np

from dlcv_keras.data.base import Pool, SourceData


def read_digits() -> SourceData:
    # Imported here: scikit-learn takes about a second to import.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., np.newaxis]      # (1797, 8, 8, 1), 0..16
    return SourceData(train=Pool.from_arrays(images, bunch.target), test=None,
                      class_names=[str(c) for c in bunch.target_names],
                      source=f"scikit-learn bundled digits ({len(images)} 8x8 images)",
                      max_value=16.0)
