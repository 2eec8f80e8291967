"""The image input pipeline: load_dataset's image_size and keep_uint8, the augmentations, image_batches.

Real-data tests read DLCV_DATA_DIR (or /work/shared/datasets) and skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcv_keras.data import load_dataset
from dlcv_keras.data.augment import (AUGMENTATIONS, augmented_examples, build_augmenter,
                                     parse_augment)
from dlcv_keras.data.images import image_batches
from dlcv_keras.validation import DataError, InvalidParameterError

tf = pytest.importorskip("tensorflow")


@pytest.fixture
def data_dir() -> Path:
    folder = Path(os.environ.get("DLCV_DATA_DIR") or "/work/shared/datasets")
    if not folder.is_dir():
        pytest.skip(f"no offline datasets at {folder} (set DLCV_DATA_DIR)")
    return folder


def need(folder: Path, name: str) -> None:
    if not (folder / name).is_dir():
        pytest.skip(f"no {name}/ in {folder}")


def random_images(n=64, size=32, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def batches(dataset) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(x), np.asarray(y)) for x, y in dataset]


# ----------------------------------------------------------------------------- load_dataset

def test_real_cifar10_keep_uint8_is_the_float_path_times_255(data_dir):
    need(data_dir, "cifar10")
    floats = load_dataset("cifar10", data_dir=data_dir, max_train=200, max_test=100)
    ints = load_dataset("cifar10", data_dir=data_dir, max_train=200, max_test=100, keep_uint8=True)
    assert floats.info["dtype"] == "float32" and ints.info["dtype"] == "uint8"
    for split in ("train", "val", "test"):
        x_float, x_int = getattr(floats, f"x_{split}"), getattr(ints, f"x_{split}")
        assert x_int.dtype == np.uint8 and x_float.dtype == np.float32
        assert x_int.shape == x_float.shape and x_int.shape[1:] == (32, 32, 3)
        assert np.array_equal(np.rint(x_float * 255).astype(np.uint8), x_int)
        assert np.array_equal(getattr(floats, f"y_{split}"), getattr(ints, f"y_{split}"))
    assert x_int.max() > 200            # really 0..255, not 0..1
    # The hash is over what is returned: same images, other dtype, other hash.
    assert floats.info["content_hash"] != ints.info["content_hash"]


def test_real_cats_vs_dogs_image_size(data_dir):
    need(data_dir, "cats_vs_dogs")
    data = load_dataset("cats_vs_dogs", data_dir=data_dir, max_train=20, max_test=10,
                        image_size=40, keep_uint8=True)
    assert data.x_train.shape == (16, 40, 40, 3) and data.x_test.shape == (10, 40, 40, 3)
    assert data.input_shape == (40, 40, 3) and data.info["input_shape"] == [40, 40, 3]
    notes = " | ".join(data.info["notes"])
    assert "resized to 40x40" in notes and "instead of the default 64x64" in notes
    assert "resized to 64x64" not in notes
    default = load_dataset("cats_vs_dogs", data_dir=data_dir, max_train=20, max_test=10,
                           image_size=64)
    assert default.input_shape == (64, 64, 3)
    assert not any("image_size=" in note for note in default.info["notes"])


def test_image_size_is_checked_in_one_line():
    with pytest.raises(InvalidParameterError) as caught:
        load_dataset("cifar10", image_size=0)
    assert str(caught.value) == "image_size must be an int in [1, inf], got 0"
    with pytest.raises(InvalidParameterError, match="image_size must be an int"):
        load_dataset("cifar10", image_size=32.0)


@pytest.mark.parametrize("name, size", [("mnist", 28), ("digits", 8)])
def test_idx_and_digits_are_not_resized(name, size):
    with pytest.raises(InvalidParameterError) as caught:
        load_dataset(name, image_size=size * 2)
    message = str(caught.value)
    assert message == (f"image_size must be None or {size} for {name} (its "
                       f"{'idx' if name == 'mnist' else 'sklearn'} images are not resized), "
                       f"got {size * 2}")


def test_digits_keep_uint8_says_its_values_run_to_16():
    data = load_dataset("digits", keep_uint8=True)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 16
    assert any("0..16" in note for note in data.info["notes"])


def save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def make_cats_vs_dogs(root: Path, per_class=5) -> Path:
    rng = np.random.default_rng(0)
    for split in ("training_set", "test_set"):
        for animal in ("cats", "dogs"):
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(50 + i, 70, 3), dtype=np.uint8)
                save(Image.fromarray(pixels), root / "cats_vs_dogs" / split / animal / f"{i}.png")
    return root / "cats_vs_dogs"


def test_a_resized_folder_matches_pillow_bilinear(tmp_path):
    make_cats_vs_dogs(tmp_path)
    data = load_dataset("cats_vs_dogs", data_dir=tmp_path, image_size=24, keep_uint8=True,
                        val_fraction=0.2)
    first = tmp_path / "cats_vs_dogs" / "test_set" / "cats" / "0.png"
    expected = np.asarray(Image.open(first).convert("RGB").resize((24, 24), Image.Resampling.BILINEAR))
    assert np.array_equal(data.x_test[0], expected)


def test_unreadable_image_is_one_line_naming_the_file(tmp_path):
    folder = make_cats_vs_dogs(tmp_path)
    bad = folder / "test_set" / "dogs" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError) as caught:
        load_dataset("cats_vs_dogs", data_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot decode image {bad}:")


def test_class_folder_without_images_is_one_line(tmp_path):
    folder = make_cats_vs_dogs(tmp_path)
    (folder / "training_set" / "birds").mkdir()
    with pytest.raises(DataError) as caught:
        load_dataset("cats_vs_dogs", data_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"class folder {folder / 'training_set' / 'birds'} holds no images")


# ----------------------------------------------------------------------------- augmentations

def test_parse_augment():
    assert parse_augment("none") == ()
    assert parse_augment("full") == AUGMENTATIONS
    assert parse_augment("flip+crop") == ("crop", "flip")      # applied in AUGMENTATIONS order
    assert parse_augment(("grayscale",)) == ("grayscale",)
    with pytest.raises(InvalidParameterError) as caught:
        parse_augment("crop+blur")
    assert str(caught.value) == (
        "augment: unknown augmentation 'blur' in 'crop+blur'; expected 'none', 'full' or names "
        "from crop, flip, rotation, resized_crop, color_jitter, grayscale joined by '+'")
    with pytest.raises(InvalidParameterError, match="unknown augmentation ''"):
        parse_augment("crop+")


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_changes_images_but_not_shape_type_or_range(name):
    x = random_images(200).astype(np.float32) / 255
    out = np.asarray(build_augmenter([name], seed=3)(x, 0))
    assert out.shape == x.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    changed = np.mean(np.any(np.abs(out - x) > 1e-6, axis=(1, 2, 3)))
    # flip and grayscale touch a random half and a fifth; the others nearly every image
    # (crop keeps an image whole only at offset (4, 4), 1 in 81).
    low, high = {"flip": (0.35, 0.65), "grayscale": (0.1, 0.3)}.get(name, (0.95, 1.0))
    assert low <= changed <= high, changed


def test_crop_and_flip_move_pixels_without_changing_them():
    x = random_images(100).astype(np.float32) / 255
    flipped = np.asarray(build_augmenter(["flip"], seed=0)(x, 0))
    for original, out in zip(x, flipped):
        assert np.array_equal(out, original) or np.array_equal(out, original[:, ::-1])
    cropped = np.asarray(build_augmenter(["crop"], seed=0)(x, 0))
    # A pad-4 crop of zeros: each output is a shifted window, with zeros where it left the image.
    for original, out in zip(x[:20], cropped[:20]):
        padded = np.pad(original, ((4, 4), (4, 4), (0, 0)))
        assert any(np.array_equal(out, padded[r:r + 32, c:c + 32]) for r in range(9) for c in range(9))


def test_grayscale_hits_about_a_fifth_of_the_images():
    x = random_images(500).astype(np.float32) / 255
    out = np.asarray(build_augmenter(["grayscale"], seed=7)(x, 0))
    gray = np.all(out[..., 0] == out[..., 1], axis=(1, 2)) & np.all(out[..., 1] == out[..., 2], axis=(1, 2))
    # Binomial(500, 0.2): mean 100, sd 8.9; 60..140 is 4.5 sd either side.
    assert 60 <= gray.sum() <= 140
    assert np.array_equal(out[~gray], x[~gray])


def test_colour_augmentations_refuse_gray_images():
    x = random_images(8, channels=1).astype(np.float32) / 255
    with pytest.raises(InvalidParameterError, match="color_jitter needs 3-channel"):
        build_augmenter(["crop", "color_jitter"], seed=0)(x, 0)
    with pytest.raises(InvalidParameterError, match="grayscale needs 3-channel"):
        image_batches(random_images(8, channels=1), np.zeros(8, int), batch_size=4, augment="grayscale")
    out = np.asarray(build_augmenter(["crop", "flip", "rotation", "resized_crop"], seed=0)(x, 0))
    assert out.shape == x.shape


def test_augmented_examples_for_a_figure():
    x = random_images(3)
    out = augmented_examples(x, ("crop", "flip", "color_jitter"), seed=0, per_image=4)
    assert out.shape == (3, 4, 32, 32, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[0, 1])             # different draws per copy
    assert np.array_equal(out, augmented_examples(x, ("crop", "flip", "color_jitter"), seed=0,
                                                  per_image=4))
    assert np.array_equal(augmented_examples(x, (), per_image=2)[:, 1], x)


# ----------------------------------------------------------------------------- image_batches

def test_val_pipeline_is_the_input_over_255_in_order():
    x, y = random_images(70), np.arange(70) % 10
    found = batches(image_batches(x, y, batch_size=32, augment=(), shuffle=False))
    assert [len(b[1]) for b in found] == [32, 32, 6]
    images = np.concatenate([b[0] for b in found])
    assert images.dtype == np.float32 and np.array_equal(images, x.astype(np.float32) / 255)
    labels = np.concatenate([b[1] for b in found])
    assert labels.dtype == np.int32 and np.array_equal(labels, y)


def test_float_input_passes_through_unscaled():
    x = random_images(10).astype(np.float32) / 255
    found = batches(image_batches(x, np.zeros(10, int), batch_size=4, shuffle=False))
    assert np.array_equal(np.concatenate([b[0] for b in found]), x)


def test_same_seed_same_batches_other_seed_other_batches():
    x, y = random_images(96), np.arange(96) % 10

    def two_epochs(seed):
        dataset = image_batches(x, y, batch_size=32, augment="full", seed=seed)
        return batches(dataset), batches(dataset)

    first, again, other = two_epochs(5), two_epochs(5), two_epochs(6)
    for epoch in range(2):
        for (xa, ya), (xb, yb) in zip(first[epoch], again[epoch]):
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    assert not np.array_equal(first[0][0][0], other[0][0][0])
    # Epochs differ: reshuffled and redrawn.
    assert not np.array_equal(first[0][0][0], first[1][0][0])
    # Shuffling keeps every image once per epoch.
    assert sorted(np.concatenate([b[1] for b in first[1]]).tolist()) == sorted(y.tolist())


def test_uint8_input_stays_uint8_until_a_batch_is_formed(monkeypatch):
    sliced = []
    original = tf.data.Dataset.from_tensor_slices

    def spy(tensors, name=None):
        sliced.append(tensors)
        return original(tensors, name=name)

    monkeypatch.setattr(tf.data.Dataset, "from_tensor_slices", staticmethod(spy))
    x = random_images(300)
    dataset = image_batches(x, np.zeros(300, int), batch_size=16, augment="crop+flip")
    assert len(sliced) == 1 and sliced[0][0].dtype == np.uint8 and sliced[0][0] is x
    images_spec, labels_spec = dataset.element_spec
    assert images_spec.dtype == tf.float32 and images_spec.shape.as_list() == [None, 32, 32, 3]
    assert labels_spec.dtype == tf.int32
    assert max(len(b[1]) for b in batches(dataset)) == 16


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be an int in [1, inf], got 0"),
    ({"batch_size": 4, "augment": "crop+blur"}, "augment: unknown augmentation 'blur'"),
    ({"batch_size": 4, "seed": -1}, "seed must be an int in [0, inf], got -1"),
])
def test_image_batches_arguments(kwargs, message):
    with pytest.raises(InvalidParameterError) as caught:
        image_batches(random_images(8), np.zeros(8, int), **kwargs)
    assert str(caught.value).startswith(message)


def test_image_batches_rejects_other_arrays():
    with pytest.raises(InvalidParameterError, match="x must be a non-empty uint8"):
        image_batches(np.zeros((4, 8, 8, 3), np.float64), np.zeros(4, int), batch_size=2)
    with pytest.raises(InvalidParameterError, match=r"y must be integer labels of shape \(4,\)"):
        image_batches(random_images(4), np.zeros(5, int), batch_size=2)
