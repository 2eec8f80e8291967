"""The conv-blur kind (q4): the hand-written conv2d checked against Keras Conv2D and TensorFlow's
gradients, then a Gaussian blur of the first training images into several output channels."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dlcv_keras.experiments.base import RELATIVE_TOLERANCE, Experiment, pick, table_values, tolerance_words
from dlcv_keras.report.format import DASH, fmt, fmt_sci, fmt_sig, read_arrays, settings_rows
from dlcv_keras.validation import InvalidParameterError


@dataclass(frozen=True)
class ConvBlur(Experiment):
    KIND: ClassVar[str] = "conv_blur"
    VIEWS: ClassVar[tuple[str, ...]] = ("conv_blur",)
    SETTINGS: ClassVar = pick("kernel_size", "sigma", "images", "filters", "stride")

    def check(self, question, settings, table, where: str) -> None:
        from dlcv_keras.scratch.conv import gaussian_kernel

        super().check(question, settings, table, where)
        values = {**table.fixed, **table.choices}
        try:
            gaussian_kernel(_kernel_size(settings, values), _sigma(settings, values))
        except InvalidParameterError as exc:   # the CLI checked its own values: this is the file's
            raise InvalidParameterError(f"{where} {exc}") from None

    def run(self, runner) -> None:
        conv_blur(runner, self)


def _kernel_size(settings, values) -> int:
    return settings.kernel_size if settings.kernel_size is not None else values.get("kernel_size", 5)


def _sigma(settings, values) -> float:
    return settings.sigma if settings.sigma is not None else values.get("sigma", 0.8)


def conv_blur(runner, experiment: ConvBlur) -> None:
    from dlcv_keras.scratch.conv import blur_kernel_bank, conv2d_forward, gaussian_kernel

    values = table_values(runner, experiment)
    size, sigma = _kernel_size(runner.settings, values), _sigma(runner.settings, values)
    count, filters, stride = values.get("images", 5), values.get("filters", 5), values.get("stride", 1)
    started = time.perf_counter()
    kernel = gaussian_kernel(size, sigma)
    originals = runner.data.x_train[:count].astype(np.float64)
    weights = blur_kernel_bank(kernel, originals.shape[-1], filters)
    blurred, _ = conv2d_forward(originals, weights, np.zeros(filters), stride=stride, padding="same")
    keras_diff, keras_scale, backward_error = check_conv_against_tensorflow(originals, weights, stride,
                                                                           runner.settings.seed)
    measures = blur_measures(originals, blurred, stride)
    summary = {
        "kind": "conv_blur", "title": experiment.title, "dataset": runner.data.info["name"],
        "kernel_size": size, "sigma": sigma, "stride": stride, "padding": "same",
        "images": len(originals), "out_channels": filters,
        "keras_max_abs_diff": keras_diff, "keras_max_rel_diff": keras_diff / keras_scale,
        "backward_max_rel_error": backward_error,
        # The least blurred image and channel: every other one's ratio is lower.
        "tv_ratio": max(r["tv_ratio"] for r in measures),
        "high_frequency_ratio": max(r["high_frequency_ratio"] for r in measures),
        "seconds": round(time.perf_counter() - started, 3),
    }
    runner.store.write_experiment(experiment.name, summary=summary, tables={"measures": measures},
                                  arrays={"kernel": kernel, "originals": originals, "blurred": blurred})
    runner.echo(f"[{experiment.name}] {size}x{size} Gaussian, sigma {sigma:g}: {len(originals)} images -> "
                f"{blurred.shape[1:]} ({filters} channels); conv2d vs Keras Conv2D max |diff| {keras_diff:.1e}, "
                f"backward vs TensorFlow max relative error {backward_error:.1e}")


# The highest frequencies, those above half the Nyquist frequency (0.25 cycles per pixel): where a blur
# takes energy away (a 5x5 Gaussian with sigma 0.8 keeps under a fifth of it there).
HIGH_FREQUENCY = 0.25


def blur_measures(originals: np.ndarray, blurred: np.ndarray, stride: int = 1) -> list[dict]:
    """How much each output channel is smoother than its image: one row per image and channel.

    A blur channel is the blur of the image's channel average (``blur_kernel_bank``), so each is compared
    with that gray image (sampled at the conv's stride):
    - ``tv_ratio``: total variation (mean |horizontal| + |vertical| neighbour difference) of the blurred
      channel over the original's;
    - ``high_frequency_ratio``: the energy of the 2-D spectrum (mean removed) at radial frequencies above
      ``HIGH_FREQUENCY`` cycles per pixel, blurred over original.
    Below 1 means smoother; an image with no variation at all gives nan (nothing to blur).
    """
    gray = originals.mean(axis=-1)[:, ::stride, ::stride]
    rows = []
    for i, image in enumerate(gray):
        tv, energy = _total_variation(image), _high_frequency_energy(image)
        for c in range(blurred.shape[-1]):
            channel = blurred[i, :image.shape[0], :image.shape[1], c]
            with np.errstate(divide="ignore", invalid="ignore"):
                rows.append({"image": i + 1, "channel": c + 1, "tv_original": tv, "tv_blurred": _total_variation(channel),
                             "tv_ratio": float(np.float64(_total_variation(channel)) / tv),
                             "hf_original": energy, "hf_blurred": _high_frequency_energy(channel),
                             "high_frequency_ratio": float(np.float64(_high_frequency_energy(channel)) / energy)})
    return rows


def _total_variation(image: np.ndarray) -> float:
    return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


def _high_frequency_energy(image: np.ndarray) -> float:
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(image.shape[0]), np.fft.fftfreq(image.shape[1]), indexing="ij")
    return float(power[np.hypot(fy, fx) > HIGH_FREQUENCY].sum() / image.size)


def check_conv_against_tensorflow(x, weights, stride: int, seed: int) -> tuple[float, float, float]:
    """Forward: max |ours - keras.layers.Conv2D| in float32, and the scale it is measured against (the
    largest output, at least 1: the check adds a bias of unit size). Backward: max relative error of
    dx, dw, db against tf.GradientTape in float64, for a random upstream gradient."""
    import keras
    import tensorflow as tf

    from dlcv_keras.scratch.conv import conv2d_backward, conv2d_forward
    from dlcv_keras.scratch.gradient_check import rel_error

    rng = np.random.default_rng(seed)
    bias = rng.normal(size=weights.shape[-1])
    ours, cache = conv2d_forward(x, weights, bias, stride=stride, padding="same")
    layer = keras.layers.Conv2D(weights.shape[-1], weights.shape[:2], strides=stride, padding="same")
    layer.build(x.shape)
    layer.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    theirs = np.asarray(layer(x.astype(np.float32)))
    forward_diff = float(np.max(np.abs(ours.astype(np.float32) - theirs)))
    scale = max(1.0, float(np.max(np.abs(theirs))))

    upstream = rng.normal(size=ours.shape)
    dx, dw, db = conv2d_backward(upstream, cache)
    tx, tw, tb = (tf.Variable(v, dtype=tf.float64) for v in (x, weights, bias))
    with tf.GradientTape() as tape:
        out = tf.nn.conv2d(tx, tw, strides=stride, padding="SAME") + tb
        total = tf.reduce_sum(out * upstream)
    gx, gw, gb = tape.gradient(total, [tx, tw, tb])
    backward_error = max(rel_error(dx, gx.numpy()), rel_error(dw, gw.numpy()), rel_error(db, gb.numpy()))
    return forward_diff, scale, float(backward_error)


# -- report view ------------------------------------------------------------------------------
MAX_IMAGES = 8  # rows of the blur grid; more images are listed by count only


def _image_stack(array: Any, path, key: str, section_title: str):
    """(n, H, W, C) float array; a channel axis is added to (n, H, W)."""
    import numpy as np

    stack = np.asarray(array, dtype=float)
    if stack.ndim == 3:
        stack = stack[..., None]
    if stack.ndim != 4 or stack.shape[0] == 0:
        raise InvalidParameterError(f"{path}: array {key!r} must have shape (n, H, W, C), got {tuple(stack.shape)} "
                                    f"(needed by section {section_title!r})")
    return stack


def _conv_blur(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    import numpy as np

    summary = experiment["summary"]
    name, title = section["experiment"], section["title"]
    arrays = read_arrays(store, name, title, ("kernel", "originals", "blurred"))
    path = store.experiment_dir(name) / "arrays.npz"
    kernel = np.asarray(arrays["kernel"], dtype=float)
    if kernel.ndim == 3 and kernel.shape[-1] == 1:
        kernel = kernel[..., 0]
    if kernel.ndim != 2:
        raise InvalidParameterError(f"{path}: array 'kernel' must have shape (k, k), got {tuple(kernel.shape)} "
                                    f"(needed by section {title!r})")
    originals = _image_stack(arrays["originals"], path, "originals", title)
    blurred = _image_stack(arrays["blurred"], path, "blurred", title)
    shown = min(len(originals), len(blurred), MAX_IMAGES)
    notes = []
    if len(originals) != len(blurred):
        notes.append(f"arrays.npz holds {len(originals)} originals but {len(blurred)} blurred images; "
                     f"the first {shown} are shown.")
    elif len(originals) > shown:
        notes.append(f"The first {shown} of {len(originals)} images are shown.")
    bad = int(np.size(blurred) - np.isfinite(blurred).sum())
    if bad:
        notes.append(f"{bad} blurred pixel values are nan or inf; they are left blank in the figure.")
    checks = [
        {"check": "forward: max |Δ| vs Keras Conv2D", "value": fmt_sci(summary.get("keras_max_abs_diff"))},
        {"check": "backward: max relative error vs TensorFlow autodiff",
         "value": fmt_sci(summary.get("backward_max_rel_error"))},
    ]
    finite_kernel = kernel[np.isfinite(kernel)]
    names = {"kernel_size": "kernel size", "sigma": "sigma", "stride": "stride", "padding": "padding",
             "images": "images", "out_channels": "output channels"}
    return {
        "settings": settings_rows(summary, {"dataset": "dataset", "seconds": "time"}),
        "comparison": [{"metric": label, "ours": fmt(summary.get(key)), "seed": fmt(reference.get(key))}
                       for key, label in names.items() if key in summary or key in reference],
        "shapes": f"originals {fmt(list(originals.shape))} → blurred {fmt(list(blurred.shape))}",
        "kernel_shape": fmt(list(kernel.shape)),
        "kernel_sum": fmt_sig(float(finite_kernel.sum()), 6) if finite_kernel.size else DASH,
        "kernel_figure": figures.data_uri(figures.kernel_heatmap(kernel.tolist())),
        "originals_figure": figures.data_uri(figures.image_row(list(originals[:shown]),
                                                               [f"image {i + 1}" for i in range(shown)])),
        "grid_figure": figures.data_uri(figures.blur_grid(originals[:shown], blurred[:shown])),
        "checks": checks,
        "notes": notes,
        "reference_note": str(reference.get("note") or ""),
        "observations": _observations(summary, reference, blurred, names),
    }


# Keras Conv2D computes in float32: agreement to this fraction of the largest output (at least 1: the
# check adds a bias of unit size) is float32 rounding; numpy's allclose default rtol.
FLOAT32_RELATIVE = 1e-5


def _observations(summary, reference, blurred, names) -> list[str]:
    """Forward against Keras Conv2D (float32 rounding of the largest output), backward against TensorFlow
    (the float64 tolerance), and whether our settings are the seed's."""
    import numpy as np

    finite = blurred[np.isfinite(blurred)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    sentences = [
        tolerance_words("The forward pass", "Keras Conv2D", summary.get("keras_max_abs_diff"), FLOAT32_RELATIVE * scale,
                        "largest absolute difference in float32", f"outputs up to {fmt_sig(scale, 3)}"),
        tolerance_words("The backward pass (dx, dw, db)", "TensorFlow's autodiff", summary.get("backward_max_rel_error"),
                        RELATIVE_TOLERANCE, "largest relative error in float64"),
    ]
    sentences.append(_blur_words(summary))
    shared = [key for key in names if key in summary and key in reference]
    differ = [f"{names[key]} {fmt(summary[key])} (the seed's {fmt(reference[key])})" for key in shared
              if fmt(summary[key]) != fmt(reference[key])]
    if differ:
        sentences.append(f"Our settings differ from the seed's: {'; '.join(differ)}.")
    elif shared:
        sentences.append("Every setting the seed printed is ours: "
                         + ", ".join(f"{names[key]} {fmt(summary[key])}" for key in shared) + ".")
    return [sentence for sentence in sentences if sentence]


def _blur_words(summary) -> str | None:
    """Whether every output channel is smoother than its image, by the least blurred one's ratios."""
    from dlcv_keras.report.format import as_number, is_finite

    tv, hf = as_number(summary.get("tv_ratio")), as_number(summary.get("high_frequency_ratio"))
    if not (is_finite(tv) and is_finite(hf)):
        return None
    where = (f"every output channel of the {fmt(summary.get('images'))} images against the image's channel "
             f"average: total variation is at most {tv:.3f} of the original's, and the energy above "
             f"{HIGH_FREQUENCY:g} cycles per pixel at most {hf:.3f} of it")
    if tv < 1 and hf < 1:
        return f"The kernel blurs {where}."
    return f"The kernel does not make every image smoother: measured over {where}."


VIEWS = {"conv_blur": _conv_blur}
REQUIRED_FILES = {"conv_blur": ("arrays.npz",)}
