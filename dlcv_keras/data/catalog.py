"""Every dataset the package knows, as data: where its files live and what shape it has.

One table instead of one module per dataset: the datasets differ only in these
fields, and seeing them side by side makes the differences easy to spot.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcv_keras.data.idx import FASHION_MNIST_CLASSES


@dataclass(frozen=True)
class DatasetSpec:
    folder: str | None                  # sub-folder of data_dir; None: no local files
    layout: str                         # "idx" files, class "folders", or "sklearn"
    image_size: tuple[int, int]         # (height, width)
    mode: str                           # "L" (1 channel) or "RGB" (3 channels)
    tfds_name: str | None = None        # None: TensorFlow Datasets does not have it
    split_folders: tuple[str, str] = ("train", "test")   # layout "folders": train, test
    class_names: tuple[str, ...] = ()   # layout "idx": the files carry no names
    per_class_cap: int | None = None    # keep at most this many train images per class
    resize_tfds: bool = False           # TFDS images vary in size: resize each one
    notes: tuple[str, ...] = ()         # said of this dataset whatever the source
    local_notes: tuple[str, ...] = ()   # said only when read from local files

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3


DIGIT_NAMES = tuple(str(d) for d in range(10))
_CIFAR10 = dict(folder="cifar10", layout="folders", image_size=(32, 32), tfds_name="cifar10")

SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(folder="mnist", layout="idx", image_size=(28, 28), mode="L",
                         tfds_name="mnist", class_names=DIGIT_NAMES),
    "fashion_mnist": DatasetSpec(folder="fashion_mnist", layout="idx", image_size=(28, 28),
                                 mode="L", tfds_name="fashion_mnist",
                                 class_names=tuple(FASHION_MNIST_CLASSES)),
    "cifar10": DatasetSpec(mode="RGB", **_CIFAR10),
    "cifar10_gray": DatasetSpec(mode="L", **_CIFAR10,
                                notes=("CIFAR-10 converted to 1-channel gray (ITU-R 601 luma)",)),
    "tiny_cifar10": DatasetSpec(mode="RGB", per_class_cap=500, **_CIFAR10),
    "gurmukhi": DatasetSpec(folder="gurmukhi", layout="folders", image_size=(32, 32), mode="L",
                            split_folders=("train", "val"),
                            local_notes=("the val/ folder is the test split, as in the seed",)),
    "cats_vs_dogs": DatasetSpec(folder="cats_vs_dogs", layout="folders", image_size=(64, 64),
                                mode="RGB", tfds_name="cats_vs_dogs",
                                split_folders=("training_set", "test_set"), resize_tfds=True,
                                notes=("images resized to 64x64 (bilinear)",)),
    "digits": DatasetSpec(folder=None, layout="sklearn", image_size=(8, 8), mode="L"),
}
