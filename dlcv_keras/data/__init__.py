"""Datasets for the questions: local copies first, then TensorFlow Datasets.

    from dlcv_keras.data import load_dataset
    data = load_dataset("mnist", data_dir=Path("datasets"), max_train=5000)
    data.x_train.shape      # (4000, 28, 28, 1) float32 in [0, 1]
    data.info["notes"]      # every carve, cap and split that was applied

Modules, one job each:
- catalog.py: the table of datasets (folder, layout, image size, TFDS name)
- idx.py, folders.py, digits.py, tfds_source.py: the sources
- splits.py: stratified, seeded index selection
- transforms.py: scaling, gray conversion, content hash
- load.py: load_dataset, which ties them together
- images.py, augment.py: the tf.data input pipeline over uint8 images and its seeded
  augmentations (they import TensorFlow, so they are not imported here: import
  ``dlcv_keras.data.images`` / ``dlcv_keras.data.augment`` directly)

Importing this package does not import TensorFlow (TFDS is imported only when a
dataset is not found locally), so tests and reports that need no data stay fast.
"""

from dlcv_keras.data.base import DataUnavailable, Dataset
from dlcv_keras.data.folders import IMAGE_SUFFIXES, read_image_folder
from dlcv_keras.data.idx import read_idx
from dlcv_keras.data.load import DATASETS, load_dataset
from dlcv_keras.data.splits import cap_per_class, stratified_split, stratified_subsample

__all__ = [
    "DATASETS", "DataUnavailable", "Dataset", "IMAGE_SUFFIXES", "cap_per_class", "load_dataset",
    "read_idx", "read_image_folder", "stratified_split", "stratified_subsample",
]
