"""Images stored as one sub-folder per class, read with Pillow.

    <split>/<class name>/<any name>.<png|jpg|jpeg|bmp|tif|tiff|gif>

Why not ``keras.utils.image_dataset_from_directory``: it skips TIFF files, and the
Gurmukhi test split is mostly 1-bit TIFF (it finds 20 of 178 images). Pillow reads
them all, and keeps this module free of TensorFlow.

Class folders and files are sorted, so the same folder always gives the same
labels in the same order. Class folders whose names are all numbers sort
numerically ("2" before "10").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from dlcv_keras.data.base import Pool, SourceData
from dlcv_keras.validation import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
MODES = {"L": 1, "RGB": 3}     # Pillow mode -> channels


def list_image_folder(path: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The image files under ``path`` and their labels, without decoding anything.

    Returns (files, y, class_names): y is int64 of shape (len(files),), and
    class_names[y[i]] is the folder that holds files[i].
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist; expected one sub-folder per class")
    class_dirs = sorted((d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")),
                        key=_class_key)
    if not class_dirs:
        raise DataError(f"image folder {path} has no class sub-folders; "
                        f"expected {path}/<class name>/<image files>")
    files, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        images = sorted(f for f in class_dir.iterdir()
                        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                        and not f.name.startswith("."))
        if not images:
            raise DataError(f"class folder {class_dir} holds no images; expected files "
                            f"ending in {', '.join(IMAGE_SUFFIXES)}")
        files += images
        labels += [label] * len(images)
    return files, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


def decode_images(files: list[Path], size: tuple[int, int], mode: str) -> np.ndarray:
    """Decode, convert and resize images into one uint8 array of shape (N, H, W, C).

    - size: (height, width) of the output
    - mode: "L" (1 channel) or "RGB" (3 channels); 1-bit images become 0/255 under "L"
    """
    height, width = size
    out = np.empty((len(files), height, width, MODES[mode]), dtype=np.uint8)
    for i, file in enumerate(files):
        try:
            with Image.open(file) as image:
                # For JPEG, let the decoder shrink by 1/2, 1/4 or 1/8 while decoding
                # (never below the target size): 460x374 photos to 64x64 decode ~5x faster.
                image.draft(mode, (width, height))
                image = image.convert(mode)
                if image.size != (width, height):
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                out[i] = np.asarray(image).reshape(height, width, -1)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(f"cannot decode image {file}: {error}; expected a readable "
                            f"{'/'.join(s[1:] for s in IMAGE_SUFFIXES)} file") from None
    return out


def read_image_folder(path: Path, size: tuple[int, int], mode: str = "RGB"
                      ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a whole class-folder tree: (x uint8 (N, H, W, C), y int64 (N,), class_names)."""
    files, y, class_names = list_image_folder(path)
    return decode_images(files, size, mode), y, class_names


def folder_pool(path: Path, size: tuple[int, int], mode: str) -> tuple[Pool, list[str]]:
    """A Pool over a class-folder tree that decodes files only when they are fetched."""
    files, y, class_names = list_image_folder(path)
    return Pool(y, lambda idx: decode_images([files[i] for i in idx], size, mode)), class_names


def _class_key(folder: Path):
    name = folder.name
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def read_split_folders(folder: Path, split_names: tuple[str, str], size: tuple[int, int],
                       mode: str) -> SourceData:
    """A dataset folder holding a train and a test class-folder tree.

    ``split_names`` names the two sub-folders, e.g. ("train", "test") for CIFAR-10 or
    ("training_set", "test_set") for cats vs dogs. One of them may be missing (then
    ``load_dataset`` carves it out of the other); both missing is an error.
    """
    folder = Path(folder)
    pools, names = {}, {}
    for split, sub in zip(("train", "test"), split_names):
        if (folder / sub).is_dir():
            pools[split], names[split] = folder_pool(folder / sub, size, mode)
    if not pools:
        raise DataError(f"{folder} has neither {split_names[0]}/ nor {split_names[1]}/; "
                        f"expected {folder}/{split_names[0]}/<class>/<images> and "
                        f"{folder}/{split_names[1]}/<class>/<images>")
    if len(names) == 2 and names["train"] != names["test"]:
        raise DataError(f"{folder / split_names[1]} has classes {names['test']} but "
                        f"{folder / split_names[0]} has {names['train']}; "
                        f"expected the same classes")
    return SourceData(pools.get("train"), pools.get("test"), next(iter(names.values())),
                      source=f"local image folders in {folder} "
                             f"({split_names[0]}/ as train, {split_names[1]}/ as test)")
