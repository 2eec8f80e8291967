"""Pretrained ResNet-18 backbones for q10's fine-tuning: where the weights come from, and the
model that fine-tunes them.

Three sources of weights, one entry point (``build_transfer_model``):

* ``"imagenet"``: keras-hub's ``resnet_18_imagenet`` preset (ImageNet-1k, converted from timm's
  ``resnet18.a1_in1k``). It downloads from Kaggle on first use; offline this raises
  ``PretrainedUnavailable`` within a few seconds (the caller then falls back to a checkpoint of its own).
* a keras-hub preset folder, as ``ResNetBackbone.save_to_preset(folder)`` writes it.
* a ``.weights.h5`` file with the weights of our CIFAR ResNet-18's backbone
  (``dlcv_keras.models.builders.build_resnet18`` up to its "pool" layer), as ``save_backbone_weights``
  writes it.

A keras-hub backbone sits inside a functional model: image in [0, 1] -> Normalization (the preset's
image converter, rewritten for [0, 1] input) -> backbone -> "pool" -> logits head. keras-hub's
converter takes raw pixels in [0, 255], channels last, and computes ``x * scale + offset`` with
``scale = 1 / (255 * std)`` and ``offset = -mean / std``; our Normalization computes
``(x - mean) / std`` on ``x / 255``, the same numbers. The converter also resizes to 224x224; we do
not (CIFAR images stay 32x32, the backbone's pooled map is then 1x1).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import keras
from keras import layers

from dlcv_keras.models.builders import OUTPUT_LAYER, logits_layer
from dlcv_keras.validation import InvalidParameterError, check_float, check_int

IMAGENET_PRESET = "resnet_18_imagenet"
# ImageNet's per-channel statistics in [0, 1] units (RGB), as timm's resnet18.a1_in1k states them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WEIGHTS_SUFFIX = ".weights.h5"
PRESET_CONFIG = "config.json"
PRESET_WEIGHTS = "model.weights.h5"
IMAGE_CONVERTER_CONFIG = "image_converter.json"
# kagglehub gives requests no timeout: with packets dropped, or a gateway that accepts connections
# and never answers, a download waits minutes or forever. One HTTPS request bounded by this many
# seconds (name lookup included) decides first; with no network at all it fails at once.
PROBE_SECONDS = 3.0
KAGGLE_PROBE_URL = "https://api.kaggle.com/"


class PretrainedUnavailable(Exception):
    """The ImageNet preset cannot be had here (no network, Kaggle refused). Not a user error:
    the caller decides on a fallback."""


# ----------------------------------------------------------------------------------- our backbone

def backbone_of(model: keras.Model) -> keras.Model:
    """The feature extractor of one of our ResNet-18 models: its input to its "pool" layer. It shares
    the model's layers, so loading weights into it loads them into the model."""
    try:
        pool = model.get_layer("pool")
    except ValueError:
        raise InvalidParameterError(
            f"model must have a layer named 'pool' (the pooled features), got {model.name!r} "
            f"with layers {[layer.name for layer in model.layers][:6]}...") from None
    return keras.Model(model.inputs, pool.output, name=f"{model.name}_backbone")


def save_backbone_weights(model: keras.Model, path) -> Path:
    """Write the weights of ``model``'s backbone (``backbone_of``) to ``path``, a ``.weights.h5`` file,
    atomically: a temporary file in the same folder (its name ends in ``.weights.h5`` too, as Keras
    requires), then ``os.replace``. A reader never sees half a file. Returns the path."""
    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX) or path.name == WEIGHTS_SUFFIX:
        raise InvalidParameterError(f"path must be a file name ending in {WEIGHTS_SUFFIX!r}, got {str(path)!r}")
    backbone = backbone_of(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:-len(WEIGHTS_SUFFIX)]}-",
                                         suffix=WEIGHTS_SUFFIX)
    os.close(handle)
    try:
        backbone.save_weights(temporary)
        os.chmod(temporary, 0o644)          # mkstemp makes it private; results are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------- the model

def build_transfer_model(input_shape, num_classes: int, *, weights: str, dropout_head: float = 0.0,
                         l2: float = 0.0, **builder_kwargs) -> tuple[keras.Model, dict]:
    """A ResNet-18 with pretrained backbone weights and a fresh head (``builders.logits_layer``: dense,
    no activation, named "logits") on the pooled features, ready to compile and fine-tune; and a
    description of what was loaded.

    ``weights`` is ``"imagenet"``, a keras-hub preset folder or a ``.weights.h5`` file of our
    backbone (``save_backbone_weights``). ``builder_kwargs`` go to ``build_resnet18`` (weights-file
    case only; a keras-hub backbone's architecture is its preset's). ``l2`` regularises every
    convolution kernel and the head's kernel, as ``build_resnet18`` does.

    The description: {"source": "imagenet" | "preset folder" | "weights file", "path", "preset",
    "backbone": the nested backbone layer's name (keras-hub) or None, "backbone_layers": the names of
    the layers computing the pooled features, input to "pool", "early_layers": the first half of
    them, "normalization": {"mean", "std"} or None, "notes": [...]}. ``backbone_layers`` resolves the
    names to layers.
    """
    check_int("num_classes", num_classes, low=2)
    check_float("dropout_head", dropout_head, low=0, high=1, closed="left")
    check_float("l2", l2, low=0)
    if not isinstance(weights, (str, os.PathLike)):
        raise InvalidParameterError(f"weights must be 'imagenet' or a path, got {weights!r}")
    weights = os.fspath(weights)
    if weights == "imagenet":
        backbone, converter = _imagenet_backbone()
        return _hub_model(input_shape, num_classes, backbone, converter, dropout_head, l2, builder_kwargs,
                          {"source": "imagenet", "path": None, "preset": IMAGENET_PRESET})
    path = Path(weights).expanduser()
    if not path.exists():
        raise InvalidParameterError(f"weights path {weights!r} does not exist (expected 'imagenet', a "
                                    f"keras-hub preset folder or a {WEIGHTS_SUFFIX} file)")
    if path.is_dir():
        backbone, converter = _preset_folder_backbone(path)
        return _hub_model(input_shape, num_classes, backbone, converter, dropout_head, l2, builder_kwargs,
                          {"source": "preset folder", "path": str(path), "preset": str(path)})
    if path.name.endswith(WEIGHTS_SUFFIX):
        _check_hdf5(path)                  # before building: a corrupt file fails in milliseconds
        return _weights_file_model(input_shape, num_classes, path, dropout_head, l2, builder_kwargs)
    raise InvalidParameterError(f"weights path {weights!r} must be a keras-hub preset folder or a file "
                                f"ending in {WEIGHTS_SUFFIX!r}")


def backbone_layers(model: keras.Model, description: dict) -> list:
    """The layers named in ``description["backbone_layers"]``, in order (inside the nested keras-hub
    backbone when there is one)."""
    owner = model.get_layer(description["backbone"]) if description.get("backbone") else None
    found = []
    for name in description["backbone_layers"]:
        if owner is not None:
            try:
                found.append(owner.get_layer(name))
                continue
            except ValueError:
                pass
        found.append(model.get_layer(name))
    return found


def freeze_backbone(model: keras.Model, description: dict) -> list[str]:
    """Set ``trainable = False`` on every backbone layer (and the nested keras-hub backbone), leaving
    the head trainable. Frozen BatchNormalization layers run in inference mode in Keras 3 (their
    moving statistics stay as loaded). Compile after freezing. Returns the frozen layers' names."""
    if description.get("backbone"):
        model.get_layer(description["backbone"]).trainable = False
    frozen = backbone_layers(model, description)
    for layer in frozen:
        layer.trainable = False
    return [layer.name for layer in frozen]


# ------------------------------------------------------------------------------ weights file (ours)

def _weights_file_model(input_shape, num_classes, path: Path, dropout_head, l2, builder_kwargs):
    from dlcv_keras.models.builders import build_resnet18

    extra = dict(builder_kwargs)
    if dropout_head:                       # only when asked: older build_resnet18 has no such argument
        extra["dropout_head"] = dropout_head
    model = build_resnet18(input_shape, num_classes, l2=l2, **extra)
    backbone = backbone_of(model)
    _load_weights_file(backbone, path)
    names = [layer.name for layer in backbone.layers if not isinstance(layer, layers.InputLayer)]
    notes = [f"backbone weights from {path.name}; head {OUTPUT_LAYER!r} freshly initialised ({num_classes} classes)"]
    return model, _description("weights file", str(path), None, None, names, None, notes)


def _check_hdf5(path: Path) -> None:
    import h5py
    try:
        readable = h5py.is_hdf5(str(path))
    except OSError as error:
        raise InvalidParameterError(f"weights file {str(path)!r} cannot be read ({_one_line(error, 150)})") from None
    if not readable:
        raise InvalidParameterError(f"weights file {str(path)!r} is not an HDF5 file: expected Keras "
                                    f"{WEIGHTS_SUFFIX} weights (as save_backbone_weights writes)")


def _load_weights_file(backbone: keras.Model, path: Path) -> None:
    """Load a ``.weights.h5`` file into ``backbone``; Keras's failures become one-line
    InvalidParameterErrors naming the file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            backbone.load_weights(str(path))
        except ValueError as error:        # shapes or layers that do not fit
            raise InvalidParameterError(f"weights file {str(path)!r} does not fit the ResNet-18 backbone "
                                        f"built here: {_condense(error)}") from None
        except (OSError, KeyError, TypeError) as error:   # h5py: not an HDF5 file, truncated, wrong layout
            raise InvalidParameterError(f"weights file {str(path)!r} cannot be read as Keras weights "
                                        f"({type(error).__name__}: {_one_line(error)})") from None
    for warning in caught:                 # a load that worked keeps its warnings
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


_SHAPES = re.compile(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))")
_OBJECT = re.compile(r"Example error message for object <(\w+) name=([^,>]+)")
_TOTAL = re.compile(r"A total of (\d+) objects could not be loaded")


def _condense(error: Exception) -> str:
    """Keras's load failures run to pages (they print the target variable's values): keep the count,
    the first layer and its expected vs saved shapes."""
    text = str(error)
    total, obj, shapes = _TOTAL.search(text), _OBJECT.search(text), _SHAPES.search(text)
    if obj is None:
        return _one_line(error)
    summary = f"{total.group(1) if total else 'some'} layers could not be loaded, first {obj.group(2)!r} ({obj.group(1)})"
    if shapes:
        return f"{summary}: expected shape {shapes.group(1)}, file has {shapes.group(2)}"
    detail = text.split(f"name={obj.group(2)}", 1)[-1].split("\n\n", 2)
    return f"{summary}: {_one_line(detail[1] if len(detail) > 1 else text, limit=200)}"


def _one_line(error, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ------------------------------------------------------------------------------------ keras-hub

def _resnet_backbone_class():
    import keras_hub
    return keras_hub.models.ResNetBackbone


def imagenet_preset_cached() -> bool:
    """Whether kagglehub's cache already holds the ImageNet preset's config and weights
    (``from_preset`` then needs no network)."""
    try:
        from kagglehub.cache import Cache
        from kagglehub.handle import parse_model_handle
        handle = _resnet_backbone_class().presets[IMAGENET_PRESET]["kaggle_handle"]
        parsed = parse_model_handle(handle.removeprefix("kaggle://"))
        return all(Cache().load_from_cache(parsed, name) for name in (PRESET_CONFIG, PRESET_WEIGHTS))
    except Exception:                      # kagglehub's internals moved: let from_preset decide
        return False


def _kaggle_reachable() -> str | None:
    """None when Kaggle's API answers an HTTPS request (any status) within PROBE_SECONDS, else why
    not, in one line. The request runs in a daemon thread joined with a deadline, so a name lookup
    or a gateway that accepts connections and never answers cannot hold the caller longer."""
    outcome: list[str | None] = []

    def probe():
        try:
            urllib.request.urlopen(KAGGLE_PROBE_URL, timeout=PROBE_SECONDS).close()
            outcome.append(None)
        except urllib.error.HTTPError:     # Kaggle answered (404 for the bare host): reachable
            outcome.append(None)
        except Exception as error:         # URLError, timeouts, TLS errors
            outcome.append(f"{type(error).__name__}: {_one_line(getattr(error, 'reason', error), 150)}")

    thread = threading.Thread(target=probe, name="kaggle-probe", daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS + 0.5)
    if not outcome:
        return f"no answer from {KAGGLE_PROBE_URL} within {PROBE_SECONDS:g} s"
    return None if outcome[0] is None else f"cannot reach {KAGGLE_PROBE_URL} ({outcome[0]})"


def _imagenet_backbone():
    ResNetBackbone = _resnet_backbone_class()
    if not imagenet_preset_cached():
        why = _kaggle_reachable()
        if why:
            raise PretrainedUnavailable(f"keras-hub preset {IMAGENET_PRESET!r} is not cached and cannot be "
                                        f"downloaded: {why}")
    try:
        backbone = ResNetBackbone.from_preset(IMAGENET_PRESET)
    except Exception as error:             # requests, kagglehub and keras-hub errors alike: no weights
        raise PretrainedUnavailable(f"keras-hub preset {IMAGENET_PRESET!r} could not be loaded "
                                    f"({type(error).__name__}: {_one_line(error, 200)})") from error
    return backbone, _image_converter(IMAGENET_PRESET)


def _preset_folder_backbone(path: Path):
    config_file = path / PRESET_CONFIG
    expected = f"a keras-hub ResNetBackbone preset folder ({PRESET_CONFIG} + {PRESET_WEIGHTS}, as save_to_preset writes)"
    if not config_file.is_file():
        raise InvalidParameterError(f"weights folder {str(path)!r} has no {PRESET_CONFIG}: expected {expected}")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidParameterError(f"weights folder {str(path)!r}: {PRESET_CONFIG} is not readable JSON "
                                    f"({_one_line(error, 150)}): expected {expected}") from None
    registered = config.get("registered_name") if isinstance(config, dict) else None
    ResNetBackbone = _resnet_backbone_class()
    found = keras.saving.get_registered_object(registered) if isinstance(registered, str) else None
    if not (isinstance(found, type) and issubclass(found, ResNetBackbone)):
        raise InvalidParameterError(f"weights folder {str(path)!r} holds a {registered or 'non-Keras'} "
                                    f"config, expected {expected}")
    if not (path / PRESET_WEIGHTS).is_file() and not list(path.glob("model_*.weights.h5")):
        raise InvalidParameterError(f"weights folder {str(path)!r} has no {PRESET_WEIGHTS}: expected {expected}")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            backbone = ResNetBackbone.from_preset(str(path))
        except ValueError as error:
            raise InvalidParameterError(f"weights folder {str(path)!r}: its weights do not fit its "
                                        f"config: {_condense(error)}") from None
        except (OSError, KeyError, TypeError) as error:
            raise InvalidParameterError(f"weights folder {str(path)!r} cannot be loaded "
                                        f"({type(error).__name__}: {_one_line(error)})") from None
    if getattr(backbone, "data_format", "channels_last") != "channels_last":
        raise InvalidParameterError(f"weights folder {str(path)!r} holds a {backbone.data_format} backbone, "
                                    "expected channels_last")
    converter = _image_converter(str(path)) if (path / IMAGE_CONVERTER_CONFIG).is_file() else None
    return backbone, converter


def _image_converter(preset: str):
    try:
        import keras_hub
        return keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception:                      # no converter in the preset: ImageNet statistics
        return None


def normalization_of(converter) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel, for images in [0, 1], equal to a keras-hub image converter that takes
    pixels in [0, 255] and computes ``x * scale + offset``: std = 1 / (255 * scale),
    mean = -offset * std. A missing scale is 1, a missing offset 0."""
    scale = _per_channel(converter.scale, 1.0)
    if 0.0 in scale:
        raise InvalidParameterError(f"image converter scale must be non-zero, got {converter.scale!r}")
    offset = _per_channel(converter.offset, 0.0)
    std = tuple(1.0 / (255.0 * s) for s in scale)
    mean = tuple(-o * d for o, d in zip(offset, std))
    return mean, std


def _per_channel(value, default: float) -> tuple[float, ...]:
    if value is None:
        value = default
    values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise InvalidParameterError(f"image converter scale/offset must be 1 or 3 finite numbers, got {value!r}")
    return tuple(values)


def _hub_model(input_shape, num_classes, backbone, converter, dropout_head, l2, builder_kwargs, where):
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise InvalidParameterError(f"input_shape must be (height, width, 3) for a keras-hub ResNet backbone, "
                                    f"got {input_shape!r}")
    notes = []
    if builder_kwargs:
        notes.append(f"ignored {sorted(builder_kwargs)}: a keras-hub backbone's architecture is its preset's")
    if converter is not None:
        mean, std = normalization_of(converter)
        notes.append("input normalised as the preset's image converter does (pixels/255 - mean) / std; "
                     f"the converter's resize to {converter.image_size} is not applied")
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        notes.append("the preset has no image converter: input normalised with ImageNet's mean and std")
    regularizer = keras.regularizers.L1L2(l2=l2) if l2 else None
    if regularizer is not None:
        for layer in backbone.layers:
            if isinstance(layer, layers.Conv2D):
                layer.kernel.regularizer = regularizer

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Normalization(mean=list(mean), variance=[s * s for s in std], name="normalize")(inputs)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout_head > 0:
        x = layers.Dropout(dropout_head, name="dropout_head")(x)
    outputs = logits_layer(num_classes, kernel_regularizer=regularizer)(x)
    model = keras.Model(inputs, outputs, name="resnet18_pretrained")

    inner = [layer.name for layer in backbone.layers if not isinstance(layer, layers.InputLayer)]
    names = ["normalize", *inner, "pool"]
    config = {key: getattr(backbone, key, None) for key in
              ("block_type", "stackwise_num_blocks", "stackwise_num_filters", "input_conv_filters")}
    notes.append(f"keras-hub ResNetBackbone {config}")
    return model, _description(where["source"], where["path"], where["preset"], backbone.name, names,
                               {"mean": list(mean), "std": list(std)}, notes)


def _description(source, path, preset, backbone_name, names, normalization, notes) -> dict:
    return {"source": source, "path": path, "preset": preset, "backbone": backbone_name,
            "backbone_layers": names, "early_layers": names[:len(names) // 2],
            "normalization": normalization, "notes": notes}


# ------------------------------------------------------------------------------ q10's builder

def build_resnet18_transfer(input_shape, num_classes: int, *, weights: str, mode: str = "finetune",
                            **kwargs) -> keras.Model:
    """The model q10 tunes: ``build_transfer_model`` used one of three ways (``mode``):
    "frozen" (only the head trains), "finetune" (everything trains) or "layerwise" (everything
    trains, the early half of the backbone at a lower learning rate: ``early_layer_names`` says
    which layers, ``compile_model``'s ``early_lr_factor`` how much lower)."""
    from dlcv_keras.validation import check_choice

    from dlcv_keras.models.options import TRANSFER_MODES

    check_choice("mode", mode, TRANSFER_MODES)
    model, description = build_transfer_model(input_shape, num_classes, weights=weights, **kwargs)
    if mode == "frozen":
        freeze_backbone(model, description)
    # A tuple of names: what compile_model needs, kept on the model that owns them.
    model._dlcv_early_layers = tuple(description.get("early_layers") or ())
    return model


def early_layer_names(model: keras.Model) -> tuple[str, ...]:
    """The early backbone layers of a model ``build_resnet18_transfer`` built (empty for others)."""
    return tuple(getattr(model, "_dlcv_early_layers", ()))
