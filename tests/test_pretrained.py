"""q10's pretrained backbones (dlcv_keras/models/pretrained.py): a keras-hub preset folder written
here, our own backbone's .weights.h5 file, the errors a user can cause, and the offline ImageNet
failure. Runs on the suite's backend (JAX, tests/conftest.py); no network."""

import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")
keras_hub = pytest.importorskip("keras_hub")

from dlcv_keras.models import pretrained  # noqa: E402
from dlcv_keras.models.builders import build_resnet18  # noqa: E402
from dlcv_keras.validation import InvalidParameterError  # noqa: E402

SHAPE = (32, 32, 3)


def small_resnet18_backbone():
    """ResNet-18's structure (7x7 stem, basic blocks, [2, 2, 2, 2], strides [1, 2, 2, 2]) at 64
    filters throughout (keras-hub requires 64 for the stem and first stack) to build fast."""
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 64, 64, 64],
        stackwise_num_blocks=[2, 2, 2, 2], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block")


def randomize(weights_owner, seed):
    """Every variable (trainable or not) to random values, BatchNorm variances kept positive."""
    rng = np.random.default_rng(seed)
    for variable in weights_owner.weights:
        low = 0.5 if "variance" in variable.path else -0.5
        variable.assign(rng.uniform(low, low + 1.0, size=variable.shape).astype("float32"))


def one_line_naming(error, path):
    message = str(error.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    """A keras-hub preset folder: random backbone weights and the ImageNet image converter, as the
    real preset's (converted from timm) holds it: pixels in [0, 255], x * scale + offset."""
    folder = tmp_path_factory.mktemp("preset") / "resnet18_small"
    backbone = small_resnet18_backbone()
    randomize(backbone, 1)
    backbone.save_to_preset(str(folder))
    keras_hub.layers.ResNetImageConverter(
        image_size=(224, 224), scale=[1 / 255 / s for s in pretrained.IMAGENET_STD],
        offset=[-m / s for m, s in zip(pretrained.IMAGENET_MEAN, pretrained.IMAGENET_STD)],
    ).save_to_preset(str(folder))
    return folder, [v.numpy() for v in backbone.weights]


@pytest.fixture(scope="module")
def our_weights(tmp_path_factory):
    """Our ResNet-18 (5 classes) with every weight randomized, its backbone saved."""
    model = build_resnet18(SHAPE, 5)
    randomize(model, 2)
    path = tmp_path_factory.mktemp("ours") / "cifar5.weights.h5"
    assert pretrained.save_backbone_weights(model, path) == path
    return path, model


def test_preset_folder_loads_its_weights_and_normalises_like_its_converter(preset):
    folder, saved = preset
    model, description = pretrained.build_transfer_model(SHAPE, 10, weights=str(folder), dropout_head=0.3)
    assert description["source"] == "preset folder" and description["path"] == str(folder)
    backbone = model.get_layer(description["backbone"])
    assert isinstance(backbone, keras_hub.models.ResNetBackbone)
    assert len(backbone.weights) == len(saved)
    for variable, value in zip(backbone.weights, saved):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    assert model.get_layer("logits").units == 10 and model.get_layer("dropout_head").rate == 0.3

    images = np.random.default_rng(0).uniform(size=(4, *SHAPE)).astype("float32")
    # The head outputs logits (no activation), as every classifier here: the loss applies the softmax.
    assert model.layers[-1] is model.get_layer("logits") and model.get_layer("logits").activation is keras.activations.linear
    logits = np.array(model(images))
    assert logits.shape == (4, 10) and np.isfinite(logits).all()

    converter = keras_hub.layers.ImageConverter.from_preset(str(folder))
    converter.image_size = None            # we keep 32x32; compare the arithmetic only
    ours = np.array(model.get_layer("normalize")(images))
    theirs = np.array(converter(images * 255.0))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(description["normalization"]["mean"], pretrained.IMAGENET_MEAN, atol=1e-6)
    np.testing.assert_allclose(description["normalization"]["std"], pretrained.IMAGENET_STD, atol=1e-6)
    names = description["backbone_layers"]
    assert names[0] == "normalize" and names[-1] == "pool" and "conv1_conv" in names
    assert description["early_layers"] == names[:len(names) // 2]


def test_freeze_leaves_only_the_head_trainable(preset):
    model, description = pretrained.build_transfer_model(SHAPE, 10, weights=str(preset[0]))
    assert len(model.trainable_weights) > 2
    frozen = pretrained.freeze_backbone(model, description)
    assert frozen == description["backbone_layers"]
    assert sorted(w.path for w in model.trainable_weights) == ["logits/bias", "logits/kernel"]
    # A frozen BatchNormalization runs in inference mode: training=True leaves its statistics alone.
    bn = model.get_layer(description["backbone"]).get_layer("conv1_bn")
    before = bn.moving_mean.numpy()
    model(np.random.default_rng(1).uniform(size=(4, *SHAPE)).astype("float32"), training=True)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)


def test_l2_reaches_the_hub_backbone_convolutions(preset):
    plain, _ = pretrained.build_transfer_model(SHAPE, 10, weights=str(preset[0]))
    model, description = pretrained.build_transfer_model(SHAPE, 10, weights=str(preset[0]), l2=1e-3)
    convs = [layer for layer in pretrained.backbone_layers(model, description)
             if isinstance(layer, keras.layers.Conv2D)]
    assert not plain.losses
    assert len(model.losses) == len(convs) + 1          # every conv kernel and the head's


def test_weights_file_transfers_only_the_backbone(our_weights):
    path, original = our_weights
    model, description = pretrained.build_transfer_model(SHAPE, 10, weights=str(path))
    assert description["source"] == "weights file" and description["path"] == str(path)
    names = description["backbone_layers"]
    assert names[0] == "stem_conv" and names[-1] == "pool" and "logits" not in names
    compared = 0
    for name in names:
        for mine, theirs in zip(model.get_layer(name).weights, original.get_layer(name).weights):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
            compared += 1
    assert compared == len(pretrained.backbone_of(original).weights) > 0
    head = model.get_layer("logits")
    assert head.kernel.shape == (512, 10)
    np.testing.assert_array_equal(head.bias.numpy(), 0.0)    # fresh: randomize() made them non-zero
    assert np.abs(head.kernel.numpy()).max() < 0.2           # glorot for 512 -> 10, not uniform(-.5, .5)

    frozen = pretrained.freeze_backbone(model, description)
    assert frozen == names
    assert sorted(w.path for w in model.trainable_weights) == ["logits/bias", "logits/kernel"]


def test_save_backbone_weights_is_atomic_and_checks_the_suffix(our_weights, tmp_path, monkeypatch):
    path, original = our_weights
    with pytest.raises(InvalidParameterError, match="weights.h5"):
        pretrained.save_backbone_weights(original, tmp_path / "model.h5")
    target = tmp_path / "kept.weights.h5"
    target.write_bytes(b"the previous checkpoint")

    def fail(self, filepath, *args, **kwargs):
        assert str(filepath).endswith(".weights.h5") and filepath != str(target)
        open(filepath, "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save_weights", fail)
    with pytest.raises(OSError, match="disk full"):
        pretrained.save_backbone_weights(original, target)
    assert target.read_bytes() == b"the previous checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.weights.h5"]


def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere.weights.h5"
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(missing))
    assert "does not exist" in one_line_naming(error, missing)


def test_neither_preset_nor_weights_file(tmp_path):
    other = tmp_path / "model.keras"
    other.write_bytes(b"zip")
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(other))
    assert ".weights.h5" in one_line_naming(error, other)


def test_corrupt_weights_file(tmp_path):
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(corrupt))
    assert "not an HDF5 file" in one_line_naming(error, corrupt)


def test_weights_of_another_shape(tmp_path):
    """A backbone saved at another width: same layer names, 8 stem filters instead of 64."""
    inputs = keras.Input(SHAPE)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    narrow = keras.Model(inputs, keras.layers.Dense(5, name="logits")(x))
    path = pretrained.save_backbone_weights(narrow, tmp_path / "narrow.weights.h5")
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(path))
    message = one_line_naming(error, path)
    assert "expected shape (3, 3, 3, 64), file has (3, 3, 3, 8)" in message, message
    assert len(message) < 400, message


def test_folder_that_is_not_a_resnet_preset(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(empty))
    assert "config.json" in one_line_naming(error, empty)

    other = tmp_path / "mlp_preset"
    other.mkdir()
    (other / "config.json").write_text('{"registered_name": "Functional", "config": {}}')
    (other / "model.weights.h5").write_bytes(b"")
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(other))
    assert "Functional" in one_line_naming(error, other)


def test_preset_folder_with_corrupt_weights(preset, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(preset[0], broken)
    (broken / "model.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(InvalidParameterError) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights=str(broken))
    one_line_naming(error, broken)


def test_imagenet_offline_fails_fast():
    if pretrained.imagenet_preset_cached():
        pytest.skip("the resnet_18_imagenet preset is cached: from_preset would load it")
    if pretrained._kaggle_reachable() is None:
        pytest.skip("Kaggle is reachable: this machine is online")
    started = time.perf_counter()
    with pytest.raises(pretrained.PretrainedUnavailable) as error:
        pretrained.build_transfer_model(SHAPE, 10, weights="imagenet")
    assert time.perf_counter() - started < 30     # no network timeout waited out (a hang guard)
    message = str(error.value)
    assert "\n" not in message and "resnet_18_imagenet" in message
    assert not isinstance(error.value, InvalidParameterError)
    assert error.value.offline          # the reports say so in plain words; the message is for the log


def test_a_silent_server_costs_the_probe_deadline_only(monkeypatch):
    """A gateway that accepts connections and never answers (kagglehub's requests would wait
    forever): the probe gives up after PROBE_SECONDS."""
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)                       # the kernel completes the handshake; nobody ever replies
    try:
        monkeypatch.setattr(pretrained, "imagenet_preset_cached", lambda: False)
        monkeypatch.setattr(pretrained, "KAGGLE_PROBE_URL", f"http://127.0.0.1:{server.getsockname()[1]}/")
        monkeypatch.setattr(pretrained, "PROBE_SECONDS", 0.5)
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        started = time.perf_counter()
        with pytest.raises(pretrained.PretrainedUnavailable, match="127.0.0.1") as error:
            pretrained.build_transfer_model(SHAPE, 10, weights="imagenet")
        assert time.perf_counter() - started < 30     # no network timeout waited out (a hang guard)
        assert "\n" not in str(error.value) and error.value.offline
    finally:
        server.close()
