"""Tests for dlcv_keras.data: splits, IDX and image-folder readers, sources, load_dataset.

Everything but the last section builds its own tiny files under tmp_path. The last
section reads the real offline copies and runs only when DLCV_DATA_DIR points at them
(e.g. DLCV_DATA_DIR=/work/shared/datasets).
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcv_keras.data import (DATASETS, DataUnavailable, cap_per_class, load_dataset, read_idx,
                             read_image_folder, stratified_split, stratified_subsample)
from dlcv_keras.data import tfds_source
from dlcv_keras.data.idx import IMAGES_MAGIC, LABELS_MAGIC
from dlcv_keras.validation import DataError, InvalidParameterError

# Unbalanced on purpose: 50, 30, 15, 4, 1 samples.
UNBALANCED = np.repeat(np.arange(5), [50, 30, 15, 4, 1])


# ----------------------------------------------------------------------------- splits

@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5, 0.8])
def test_stratified_split_keeps_class_proportions(fraction):
    first, rest = stratified_split(UNBALANCED, fraction, seed=3)
    assert len(np.intersect1d(first, rest)) == 0
    assert np.array_equal(np.sort(np.concatenate([first, rest])), np.arange(len(UNBALANCED)))
    for c, n in zip(*np.unique(UNBALANCED, return_counts=True)):
        k = np.sum(UNBALANCED[first] == c)
        assert abs(k - fraction * n) <= 1, (c, k, fraction * n)
        if n >= 2:
            assert 1 <= k <= n - 1          # both parts see every class that can be split
        else:
            assert k == 0                   # a single sample stays in the rest


def test_stratified_split_is_deterministic_and_seeded():
    a = stratified_split(UNBALANCED, 0.2, seed=0)
    b = stratified_split(UNBALANCED, 0.2, seed=0)
    c = stratified_split(UNBALANCED, 0.2, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(np.sort(a[0]), np.sort(c[0]))
    # Shuffled, not grouped by class: a model fed in this order sees classes mixed.
    assert not np.all(np.diff(UNBALANCED[a[1]]) >= 0)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), "0.2"])
def test_stratified_split_rejects_bad_fraction(fraction):
    with pytest.raises(InvalidParameterError, match="fraction must be"):
        stratified_split(UNBALANCED, fraction, seed=0)


@pytest.mark.parametrize("n", [1, 7, 33, 99])
def test_stratified_subsample_matches_class_quotas(n):
    idx = stratified_subsample(UNBALANCED, n, seed=5)
    assert len(idx) == n == len(np.unique(idx))
    for c, count in zip(*np.unique(UNBALANCED, return_counts=True)):
        assert abs(np.sum(UNBALANCED[idx] == c) - n * count / len(UNBALANCED)) < 1
    assert np.array_equal(idx, stratified_subsample(UNBALANCED, n, seed=5))


def test_stratified_subsample_of_everything_and_bad_n():
    assert np.array_equal(np.sort(stratified_subsample(UNBALANCED, 10_000, seed=0)),
                          np.arange(len(UNBALANCED)))
    with pytest.raises(InvalidParameterError, match="n must be"):
        stratified_subsample(UNBALANCED, 0, seed=0)


def test_cap_per_class():
    idx = cap_per_class(UNBALANCED, 10, seed=0)
    assert np.bincount(UNBALANCED[idx]).tolist() == [10, 10, 10, 4, 1]


# ----------------------------------------------------------------------------- IDX files

def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write uint8 ``array`` as an IDX file; gzipped when the name ends in .gz."""
    magic = 0x0800 | array.ndim
    data = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_digits(n: int, num_classes: int = 10, side: int = 6):
    """Images whose pixel [0, 0] is their index (so splits can be traced back) and
    pixel [0, 1] is 255 (so scaling can be checked); labels i % num_classes."""
    images = np.zeros((n, side, side), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    images[:, 0, 1] = 255
    return images, (np.arange(n) % num_classes).astype(np.uint8)


def make_mnist_folder(root: Path, *, train: int | None = 100, test: int | None = 50,
                      gz: bool = True) -> Path:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", train), ("t10k", test)):
        if n is not None:
            images, labels = make_digits(n)
            write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
            write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return folder


def original_index(x: np.ndarray) -> np.ndarray:
    return np.rint(x[:, 0, 0, 0] * 255).astype(int)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    make_mnist_folder(tmp_path, train=100, test=50, gz=gz)
    data = load_dataset("mnist", data_dir=tmp_path, val_fraction=0.2, seed=0)

    assert data.input_shape == (6, 6, 1) and data.num_classes == 10
    assert data.info["splits"] == {"train": 80, "val": 20, "test": 50}
    splits = ((data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test))
    for x, y in splits:
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.ndim == 4
        assert x.min() == 0.0 and np.all(x[:, 0, 1, 0] == 1.0)         # 255 -> 1.0
        assert np.array_equal(y, original_index(x) % 10)                # labels follow images
    used = np.concatenate([original_index(data.x_train), original_index(data.x_val)])
    assert np.array_equal(np.sort(used), np.arange(100))                # train/val cover train
    assert np.array_equal(np.sort(original_index(data.x_test)), np.arange(50))
    assert data.info["source"] == f"local IDX files in {tmp_path / 'mnist'}"
    assert data.info["content_hash"].startswith("sha256:")


def test_read_idx_returns_the_written_array(tmp_path):
    images, labels = make_digits(12)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.gz", images), IMAGES_MAGIC), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", labels), LABELS_MAGIC), labels)


def test_missing_train_images_are_carved_from_test(tmp_path):
    folder = make_mnist_folder(tmp_path, train=None, test=200)
    # The real offline copy also has train labels without train images: ignored.
    write_idx(folder / "train-labels-idx1-ubyte.gz", make_digits(60)[1])

    first = load_dataset("mnist", data_dir=tmp_path, seed=0)
    again = load_dataset("mnist", data_dir=tmp_path, seed=0)
    other = load_dataset("mnist", data_dir=tmp_path, seed=1)

    assert any(note.startswith("train images missing") and "200-image test split" in note
               for note in first.info["notes"])
    # 20 per class: 4 to test; of the 16 left, round(0.2 * 16) = 3 to val.
    assert first.info["splits"] == {"train": 130, "val": 30, "test": 40}
    parts = [original_index(x) for x in (first.x_train, first.x_val, first.x_test)]
    assert sum(len(p) for p in parts) == 200
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(200))   # disjoint, complete
    for y, n in ((first.y_train, 130), (first.y_val, 30), (first.y_test, 40)):
        assert np.all(np.abs(np.bincount(y, minlength=10) - n / 10) <= 1)   # stratified

    assert first.info["content_hash"] == again.info["content_hash"]
    assert np.array_equal(first.x_train, again.x_train)
    assert other.info["content_hash"] != first.info["content_hash"]
    assert not np.array_equal(np.sort(original_index(other.x_val)), np.sort(parts[1]))
    # The test split does not move with the seed: runs stay comparable.
    assert np.array_equal(other.x_test, first.x_test)


def test_missing_test_images_are_carved_from_train(tmp_path):
    make_mnist_folder(tmp_path, train=100, test=None)
    data = load_dataset("mnist", data_dir=tmp_path)
    # 10 per class: 2 to test; of the 8 left, round(0.2 * 8) = 2 to val.
    assert data.info["splits"] == {"train": 60, "val": 20, "test": 20}
    assert any(note.startswith("no test split") for note in data.info["notes"])


def test_max_train_caps_before_the_val_split_and_max_test_caps_test(tmp_path):
    make_mnist_folder(tmp_path, train=100, test=50)
    data = load_dataset("mnist", data_dir=tmp_path, val_fraction=0.25, max_train=40, max_test=20)
    assert data.info["splits"] == {"train": 30, "val": 10, "test": 20}
    assert np.bincount(data.y_test).tolist() == [2] * 10
    notes = " | ".join(data.info["notes"])
    assert "max_train=40 of 100" in notes and "max_test=20 of 50" in notes


def test_corrupt_gzip_names_the_file(tmp_path):
    folder = make_mnist_folder(tmp_path)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)


def test_wrong_magic_names_the_file_and_the_expected_magic(tmp_path):
    folder = make_mnist_folder(tmp_path, gz=False)
    # A labels file where the images should be: magic 0x801 instead of 0x803.
    write_idx(folder / "train-images-idx3-ubyte", np.zeros(100, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte has magic number 0x00000801; "
                                        r"expected 0x00000803"):
        load_dataset("mnist", data_dir=tmp_path)


def test_truncated_idx_file_is_a_data_error(tmp_path):
    path = write_idx(tmp_path / "x-images", make_digits(10)[0])
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match="x-images holds 353 values"):
        read_idx(path, IMAGES_MAGIC)


def test_image_and_label_counts_must_agree(tmp_path):
    folder = make_mnist_folder(tmp_path)
    write_idx(folder / "train-labels-idx1-ubyte.gz", make_digits(99)[1])
    with pytest.raises(DataError, match="100 images but .*train-labels.* 99 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_images_without_labels_is_a_data_error(tmp_path):
    folder = make_mnist_folder(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz has no labels file"):
        load_dataset("mnist", data_dir=tmp_path)


def test_empty_dataset_folder_is_a_data_error_not_a_fallthrough(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError, match="holds no IDX image files"):
        load_dataset("mnist", data_dir=tmp_path, allow_download=False)


# ----------------------------------------------------------------------------- arguments

def test_nonexistent_data_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"data directory {missing} does not exist"):
        load_dataset("mnist", data_dir=missing)


def test_unknown_dataset():
    with pytest.raises(InvalidParameterError) as error:
        load_dataset("foo")
    assert str(error.value) == ("dataset must be one of " + ", ".join(map(repr, DATASETS))
                                + ", got 'foo'")


@pytest.mark.parametrize("kwargs, name", [
    ({"val_fraction": 0}, "val_fraction"), ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": "0.2"}, "val_fraction"), ({"max_train": 0}, "max_train"),
    ({"max_test": 2.5}, "max_test"), ({"seed": -1}, "seed"),
])
def test_bad_arguments(kwargs, name):
    with pytest.raises(InvalidParameterError, match=f"^{name} must be"):
        load_dataset("digits", **kwargs)


# ----------------------------------------------------------------------------- image folders

def save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def one_bit(value: int, size=(32, 32)) -> Image.Image:
    """A 1-bit image like the Gurmukhi files: white with a black square."""
    image = Image.new("1", size, 1)
    image.paste(0, (8, 8, 8 + value + 4, 24))
    return image


def test_read_image_folder_reads_every_format(tmp_path):
    rgb = Image.new("RGB", (32, 32), (200, 100, 50))
    save(one_bit(1), tmp_path / "0" / "a.bmp")
    save(one_bit(2), tmp_path / "0" / "b.tiff")
    save(one_bit(3), tmp_path / "0" / "c.TIF")
    save(rgb, tmp_path / "1" / "a.png")
    save(rgb, tmp_path / "1" / "b.jpg")
    save(rgb, tmp_path / "1" / "c.JPEG")
    save(rgb.convert("P"), tmp_path / "1" / "d.gif")
    (tmp_path / "1" / "README.txt").write_text("not an image")
    (tmp_path / "10").mkdir()
    save(rgb.resize((40, 20)), tmp_path / "10" / "a.png")     # resized on read

    x, y, names = read_image_folder(tmp_path, (32, 32), "L")
    assert names == ["0", "1", "10"]            # numeric class folders sort numerically
    assert x.shape == (8, 32, 32, 1) and x.dtype == np.uint8
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 1, 2]
    assert set(np.unique(x[:3])) == {0, 255}    # 1-bit BMP and TIFF -> 0/255
    assert x[1].mean() < x[0].mean()            # b.tiff's black square is wider than a.bmp's

    x_rgb, _, _ = read_image_folder(tmp_path, (16, 16), "RGB")
    assert x_rgb.shape == (8, 16, 16, 3)
    assert np.array_equal(x_rgb[3, 0, 0], [200, 100, 50])    # PNG is lossless


def test_corrupt_image_names_the_file(tmp_path):
    save(Image.new("L", (8, 8)), tmp_path / "a" / "fine.png")
    bad = tmp_path / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    with pytest.raises(DataError, match="cannot decode image .*broken.jpg"):
        read_image_folder(tmp_path, (8, 8), "L")


def test_folder_without_classes_or_images(tmp_path):
    with pytest.raises(DataError, match="has no class sub-folders"):
        read_image_folder(tmp_path, (8, 8), "L")
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="class folder .*cat holds no images"):
        read_image_folder(tmp_path, (8, 8), "L")


def make_gurmukhi(root: Path, train_per_class=10, val_per_class=3) -> None:
    for digit in range(10):
        for i in range(train_per_class):
            save(one_bit(digit), root / "gurmukhi" / "train" / str(digit) / f"{i}.bmp")
        for i in range(val_per_class):
            # Like the real copy: TIFF for classes 0-8, BMP for class 9.
            suffix = "bmp" if digit == 9 else "tiff"
            save(one_bit(digit), root / "gurmukhi" / "val" / str(digit) / f"{i}.{suffix}")


def test_gurmukhi_val_folder_is_the_test_split_tiff_included(tmp_path):
    make_gurmukhi(tmp_path)
    data = load_dataset("gurmukhi", data_dir=tmp_path)
    assert data.info["splits"] == {"train": 80, "val": 20, "test": 30}
    assert np.bincount(data.y_test).tolist() == [3] * 10
    assert data.input_shape == (32, 32, 1)
    assert set(np.unique(data.x_test)) == {0.0, 1.0}
    assert any("val/ folder is the test split" in note for note in data.info["notes"])


def test_train_and_test_class_names_must_agree(tmp_path):
    make_gurmukhi(tmp_path)
    (tmp_path / "gurmukhi" / "val" / "9").rename(tmp_path / "gurmukhi" / "val" / "nine")
    with pytest.raises(DataError, match="expected the same classes"):
        load_dataset("gurmukhi", data_dir=tmp_path)


def test_cats_vs_dogs_images_of_any_size_become_64x64(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("training_set", "test_set"):
        for animal in ("cats", "dogs"):
            for i in range(5):
                w, h = rng.integers(70, 300, size=2)
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                path = tmp_path / "cats_vs_dogs" / split / animal / f"{i}.jpg"
                save(Image.fromarray(pixels), path)
    data = load_dataset("cats_vs_dogs", data_dir=tmp_path)
    assert data.class_names == ["cats", "dogs"]
    assert data.x_train.shape[1:] == (64, 64, 3) and data.x_test.shape == (10, 64, 64, 3)


# ----------------------------------------------------------------------------- digits

def test_digits_needs_no_files_and_hashes_its_content():
    a = load_dataset("digits")
    b = load_dataset("digits")
    c = load_dataset("digits", seed=1)
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    assert sum(a.info["splits"].values()) == 1797
    assert a.x_train.max() == 1.0 and a.x_train.min() == 0.0
    assert a.info["source"] == "scikit-learn bundled digits (1797 8x8 images)"
    assert len(a.info["content_hash"]) >= len("sha256:") + 16
    assert a.info["content_hash"] == b.info["content_hash"]
    assert c.info["content_hash"] != a.info["content_hash"]
    assert np.array_equal(a.x_test, c.x_test)


def test_dataset_info_has_every_key():
    data = load_dataset("digits", max_train=300)
    assert set(data.info) >= {"name", "requested", "source", "notes", "splits", "class_counts", "class_names",
                              "input_shape", "content_hash", "fallback_banner"}
    # Each split's images per class (the report's chance level is the most common class's share)
    for split in ("train", "val", "test"):
        y = getattr(data, f"y_{split}")
        assert data.info["class_counts"][split] == [int(np.sum(y == k)) for k in range(10)]
        assert sum(data.info["class_counts"][split]) == data.info["splits"][split]
    assert data.info["input_shape"] == [8, 8, 1] and data.info["fallback_banner"] is None
    assert "Dataset('digits', train=240, val=60, test=359" in repr(data)


# ----------------------------------------------------------------------------- TFDS and offline

@pytest.fixture
def empty_tfds_cache(tmp_path, monkeypatch):
    cache = tmp_path / "tfds"
    cache.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(cache))
    return cache


def test_offline_mnist_is_unavailable_within_seconds(empty_tfds_cache):
    if tfds_source.is_online():
        pytest.skip("this machine reaches storage.googleapis.com; the test is for offline machines")
    start = time.monotonic()
    with pytest.raises(DataUnavailable) as error:
        load_dataset("mnist", data_dir=None, allow_download=True)
    assert time.monotonic() - start < 30
    assert not isinstance(error.value, InvalidParameterError)     # not the user's fault
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("mnist unavailable: no local copy (DLCV_DATA_DIR not set), ")
    assert f"not in the TensorFlow Datasets cache ({empty_tfds_cache})" in message
    assert "unreachable (offline?)" in message


def test_no_download_when_not_allowed(empty_tfds_cache, tmp_path):
    with pytest.raises(DataUnavailable, match=f"no local copy in {tmp_path / 'cifar10'}, "
                                              f"not in the TensorFlow Datasets cache .* "
                                              f"download not allowed"):
        load_dataset("cifar10", data_dir=tmp_path, allow_download=False)


def test_gurmukhi_has_no_tfds_source(tmp_path):
    with pytest.raises(DataUnavailable, match="no TensorFlow Datasets source for gurmukhi"):
        load_dataset("gurmukhi", data_dir=tmp_path)


def test_tfds_that_cannot_be_imported_is_an_unavailable_source(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)    # import raises ImportError
    with pytest.raises(DataUnavailable, match="tensorflow_datasets cannot be imported"):
        load_dataset("mnist")


class FakeBuilder:
    """Stands in for a tfds DatasetBuilder; records how it was used."""

    def __init__(self, splits: dict, names: list[str], prepared: bool = True):
        self.splits, self.prepared, self.calls = splits, prepared, []
        self.info = types.SimpleNamespace(
            splits=splits, features={"label": types.SimpleNamespace(names=names)})

    def is_prepared(self):
        return self.prepared

    def download_and_prepare(self):
        raise ConnectionError("connection reset by peer\nmore detail")

    def as_dataset(self, split, as_supervised, batch_size=None):
        self.calls.append((split, batch_size))
        images, labels = self.splits[split]
        return (images, labels) if batch_size == -1 else list(zip(images, labels))


def fake_tfds(monkeypatch, builder: FakeBuilder) -> dict:
    seen = {}

    def make_builder(name, data_dir=None):
        seen.update(name=name, data_dir=data_dir)
        return builder

    module = types.SimpleNamespace(builder=make_builder, as_numpy=lambda ds: ds)
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", module)
    return seen


def test_tfds_cats_vs_dogs_has_only_train_so_test_is_carved(monkeypatch, empty_tfds_cache):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(rng.integers(65, 120), 90, 3), dtype=np.uint8)
              for _ in range(20)]
    builder = FakeBuilder({"train": (images, np.arange(20) % 2)}, ["cat", "dog"])
    seen = fake_tfds(monkeypatch, builder)

    data = load_dataset("cats_vs_dogs", allow_download=False)
    assert seen == {"name": "cats_vs_dogs", "data_dir": str(empty_tfds_cache)}
    assert builder.calls == [("train", None)]       # varying sizes: read one by one
    assert data.x_train.shape[1:] == (64, 64, 3) and data.info["splits"]["test"] == 4
    assert data.class_names == ["cat", "dog"]
    assert data.info["source"] == f"TensorFlow Datasets cache ({empty_tfds_cache})"
    notes = data.info["notes"]
    assert any(note.startswith("no test split in TensorFlow Datasets") for note in notes)


def test_tfds_cifar10_gray_matches_pillow_gray(monkeypatch, empty_tfds_cache):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(30, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(30) % 10
    builder = FakeBuilder({"train": (rgb[:20], labels[:20]), "test": (rgb[20:], labels[20:])},
                          [f"c{i}" for i in range(10)])
    fake_tfds(monkeypatch, builder)
    data = load_dataset("cifar10_gray", allow_download=False)
    assert builder.calls == [("train", -1), ("test", -1)]
    pillow = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in rgb[20:]])
    assert data.input_shape == (32, 32, 1)
    assert np.array_equal(np.rint(data.x_test[..., 0] * 255).astype(np.uint8), pillow)


def test_tfds_download_failure_is_reported_in_one_line(monkeypatch, empty_tfds_cache):
    fake_tfds(monkeypatch, FakeBuilder({}, [], prepared=False))
    monkeypatch.setattr(tfds_source, "is_online", lambda: True)
    with pytest.raises(DataUnavailable) as error:
        load_dataset("fashion_mnist")
    assert str(error.value).endswith(
        "download failed (ConnectionError: connection reset by peer)")


def test_importing_the_package_does_not_import_tensorflow():
    code = ("import sys, dlcv_keras; before = 'tensorflow' in sys.modules; "
            "import dlcv_keras.data; print(before, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    if out[0] == "True":
        pytest.skip("dlcv_keras itself imports tensorflow; cannot tell what dlcv_keras.data adds")
    assert out == ["False", "False"]


# ----------------------------------------------------------------------------- real copies

@pytest.fixture
def real_data_dir() -> Path:
    value = os.environ.get("DLCV_DATA_DIR")
    if not value:
        pytest.skip("DLCV_DATA_DIR not set: point it at the real copies "
                    "(e.g. /work/shared/datasets) to run the real-data tests")
    return Path(value)


def need(real_data_dir: Path, folder: str) -> None:
    if not (real_data_dir / folder).is_dir():
        pytest.skip(f"no {folder}/ in DLCV_DATA_DIR={real_data_dir}")


def test_real_mnist_test_split_copy(real_data_dir):
    need(real_data_dir, "mnist")
    data = load_dataset("mnist", data_dir=real_data_dir)
    assert data.num_classes == 10 and data.input_shape == (28, 28, 1)
    assert sum(data.info["splits"].values()) == 10_000
    assert any(note.startswith("train images missing") for note in data.info["notes"])
    assert data.x_train.max() == 1.0 and data.x_train.min() == 0.0
    every_label = np.concatenate([data.y_train, data.y_val, data.y_test])
    # The official test split's class counts (SOURCE.md).
    assert np.bincount(every_label).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                 974, 1009]


def test_real_gurmukhi_reads_all_178_test_images(real_data_dir):
    need(real_data_dir, "gurmukhi")
    data = load_dataset("gurmukhi", data_dir=real_data_dir)
    assert data.info["splits"] == {"train": 800, "val": 200, "test": 178}
    assert np.bincount(data.y_test).tolist() == [18, 16, 17, 17, 18, 18, 18, 18, 18, 20]
    assert data.input_shape == (32, 32, 1)
    white = data.x_train.mean()
    assert 0.6 < white < 0.85           # black digits on a mostly white background


def test_real_cifar10_subset(real_data_dir):
    need(real_data_dir, "cifar10")
    data = load_dataset("cifar10", data_dir=real_data_dir, max_train=500, max_test=200)
    assert data.input_shape == (32, 32, 3)
    assert data.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                "horse", "ship", "truck"]
    assert data.info["splits"] == {"train": 400, "val": 100, "test": 200}


def test_real_cats_vs_dogs(real_data_dir):
    need(real_data_dir, "cats_vs_dogs")
    data = load_dataset("cats_vs_dogs", data_dir=real_data_dir, max_train=100, max_test=50)
    assert data.input_shape == (64, 64, 3) and data.class_names == ["cats", "dogs"]
    assert np.bincount(data.y_test).tolist() == [25, 25]


@pytest.mark.slow
def test_real_cifar10_variants_in_full(real_data_dir):
    need(real_data_dir, "cifar10")
    tiny = load_dataset("tiny_cifar10", data_dir=real_data_dir)
    assert np.bincount(np.concatenate([tiny.y_train, tiny.y_val])).tolist() == [500] * 10
    assert tiny.info["splits"]["test"] == 10_000
    gray = load_dataset("cifar10_gray", data_dir=real_data_dir, max_test=100)
    assert gray.input_shape == (32, 32, 1) and gray.info["splits"]["train"] == 8000


@pytest.mark.parametrize("kwargs, message", [
    ({"max_test": 9}, r"max_test must be at least the number of classes \(10\) of digits, so that every class is tested, got 9"),
    ({"max_train": 19}, r"max_train must be at least twice the number of classes \(10\) of digits, .* got 19"),
])
def test_caps_too_small_to_hold_every_class_are_rejected(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        load_dataset("digits", **kwargs)
