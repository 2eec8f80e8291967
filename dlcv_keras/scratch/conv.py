"""A 2-D convolution by hand in numpy: forward, backward, Gaussian blur (q4), conv regression (q5).

Layout follows Keras, so the numbers can be checked against ``keras.layers.Conv2D``:

- images are NHWC: ``x`` has shape (N, H, W, C_in);
- the kernel is ``w`` of shape (KH, KW, C_in, C_out) and the bias ``b`` has shape (C_out,);
- like every deep-learning "convolution", this is a cross-correlation (the kernel is not flipped).

The forward pass is im2col: ``sliding_window_view`` shows every KH x KW patch of the padded input
without copying, and one ``tensordot`` multiplies all patches by the kernel at once. The backward
pass is the transpose: ``dw`` is the same product with the upstream gradient, and ``dx`` is
col2im, a sum over the KH*KW kernel offsets (the only Python loop; none over pixels or images).

Layer functions come in cs231n pairs: ``conv2d_forward(...) -> (out, cache)`` and
``conv2d_backward(dout, cache) -> (dx, dw, db)``.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dlcv_keras.validation import InvalidParameterError, check_choice, check_float, check_int, fail

# Images per chunk when a whole data set goes through the layer at once (target outputs, the
# end-of-epoch L2 norm): im2col copies every patch, which is KH*KW times the input's size.
_EVAL_CHUNK = 128


# ----------------------------------------------------------------------------------------------
# Convolution forward / backward
# ----------------------------------------------------------------------------------------------

def conv2d_forward(x, w, b, stride=1, padding="same"):
    """Forward pass of a 2-D convolution (cross-correlation), NHWC like Keras.

    Inputs:
    - x: images, shape (N, H, W, C_in)
    - w: kernel, shape (KH, KW, C_in, C_out) (the layout of a Keras Conv2D kernel)
    - b: bias, shape (C_out,)
    - stride: int >= 1, the same step along rows and columns
    - padding: "valid" (no padding), "same" (Keras's rule: the output has ceil(H / stride) rows;
      when the padding needed is odd, the extra row/column goes at the bottom/right), or an
      int p >= 0 (p zero rows/columns on every side)

    Returns a tuple of:
    - out: shape (N, H_out, W_out, C_out)
    - cache: (x_padded, w, stride, pads), what conv2d_backward needs
    """
    x, w, b = _check_layer_arrays(x, w, b)
    stride = check_int("stride", stride, low=1)
    pads = _paddings(x.shape[1:3], w.shape[:2], stride, padding)
    return _forward(x, w, b, stride, pads)


def conv2d_backward(dout, cache):
    """Backward pass of conv2d_forward.

    Inputs:
    - dout: upstream gradient dL/dout, shape (N, H_out, W_out, C_out)
    - cache: the cache returned by conv2d_forward

    Returns a tuple of:
    - dx: gradient with respect to x, shape (N, H, W, C_in)
    - dw: gradient with respect to w, shape (KH, KW, C_in, C_out)
    - db: gradient with respect to b, shape (C_out,)
    """
    dout = np.asarray(dout)
    x_padded, w, stride, pads = cache
    n, h_out, w_out, c_out = _output_shape(x_padded.shape, w.shape, stride)
    if dout.shape != (n, h_out, w_out, c_out):
        expected = f"an array of shape {(n, h_out, w_out, c_out)} (the forward output's shape)"
        _fail_shape("dout", expected, dout)
    return _backward(dout, cache, need_dx=True)


def _forward(x, w, b, stride, pads):
    """conv2d_forward without the argument checks (the training loop calls this)."""
    top, bottom, left, right = pads
    x_padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    patches = _patches(x_padded, w.shape[0], w.shape[1], stride)   # (N, H_out, W_out, C_in, KH, KW)
    # One matrix product: every patch (C_in*KH*KW numbers) times the kernel (-> C_out numbers).
    out = np.tensordot(patches, w, axes=([3, 4, 5], [2, 0, 1])) + b
    return out, (x_padded, w, stride, pads)


def _backward(dout, cache, need_dx=True):
    """conv2d_backward without the checks; need_dx=False skips col2im (training never needs dx)."""
    x_padded, w, stride, (top, bottom, left, right) = cache
    kh, kw = w.shape[:2]
    h_out, w_out = dout.shape[1:3]

    # The bias is added to every output pixel of its channel.
    db = dout.sum(axis=(0, 1, 2))

    # out = patches . w, so dw = patches^T . dout, summed over images and output pixels.
    patches = _patches(x_padded, kh, kw, stride)                  # (N, H_out, W_out, C_in, KH, KW)
    dw = np.tensordot(patches, dout, axes=([0, 1, 2], [0, 1, 2]))  # (C_in, KH, KW, C_out)
    dw = dw.transpose(1, 2, 0, 3)                                  # (KH, KW, C_in, C_out)
    if not need_dx:
        return None, dw, db

    # col2im: kernel offset (i, j) touched input pixel (i + stride*r, j + stride*c) for every
    # output pixel (r, c), so that pixel gets dout[r, c] . w[i, j]^T. Overlapping patches add up.
    dx_padded = np.zeros(x_padded.shape, dtype=np.result_type(dout, w))
    rows_end, cols_end = stride * (h_out - 1) + 1, stride * (w_out - 1) + 1
    for i in range(kh):
        for j in range(kw):
            dx_padded[:, i:i + rows_end:stride, j:j + cols_end:stride, :] += dout @ w[i, j].T
    # Gradients that landed on the zero padding belong to no input pixel: crop them away.
    height, width = x_padded.shape[1:3]
    dx = dx_padded[:, top:height - bottom, left:width - right, :]
    return dx, dw, db


def _patches(x_padded, kh, kw, stride):
    """Every kh x kw patch of x_padded as a view (no copy): shape (N, H_out, W_out, C_in, KH, KW)."""
    windows = sliding_window_view(x_padded, (kh, kw), axis=(1, 2))
    return windows[:, ::stride, ::stride]


def _output_shape(padded_shape, w_shape, stride):
    n, height, width, _ = padded_shape
    kh, kw, _, c_out = w_shape
    return n, (height - kh) // stride + 1, (width - kw) // stride + 1, c_out


def _paddings(image_hw, kernel_hw, stride, padding):
    """(top, bottom, left, right) zero rows/columns for a padding mode, following Keras exactly."""
    if isinstance(padding, str):
        check_choice("padding", padding, ["valid", "same"])
    else:
        if isinstance(padding, np.integer):
            padding = int(padding)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            fail("padding", "'valid', 'same' or an int >= 0", padding)

    pads = []
    for size, k in zip(image_hw, kernel_hw):
        if padding == "valid":
            before = after = 0
        elif padding == "same":
            # Keras/TensorFlow: ceil(size / stride) outputs; any odd pixel of padding goes after.
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            before, after = total // 2, total - total // 2
        else:
            before = after = padding
        if size + before + after < k:
            raise InvalidParameterError(
                f"x must be images at least as large as the {kernel_hw[0]}x{kernel_hw[1]} kernel once "
                f"padded (padding={padding!r}), got images of {image_hw[0]}x{image_hw[1]}")
        pads += [before, after]
    return tuple(pads)


def _check_layer_arrays(x, w, b, names=("x", "w", "b")):
    x_name, w_name, b_name = names
    x, w, b = np.asarray(x), np.asarray(w), np.asarray(b)
    if x.ndim != 4:
        _fail_shape(x_name, "a 4-D array (N, H, W, C_in)", x)
    if w.ndim != 4:
        _fail_shape(w_name, "a 4-D array (KH, KW, C_in, C_out)", w)
    if w.shape[2] != x.shape[3]:
        c_in = x.shape[3]
        _fail_shape(w_name, f"a kernel for {c_in} input channel(s) (shape (KH, KW, {c_in}, C_out))", w)
    if b.shape != (w.shape[3],):
        _fail_shape(b_name, f"a 1-D array of shape ({w.shape[3]},) (one bias per output channel)", b)
    return x, w, b


def _fail_shape(name, expected, array):
    """validation.fail's message shape, naming an array by its shape rather than its values."""
    raise InvalidParameterError(f"{name} must be {expected}, got an array of shape {np.shape(array)}")


# ----------------------------------------------------------------------------------------------
# q4: Gaussian blur
# ----------------------------------------------------------------------------------------------

def gaussian_kernel(kernel_size=5, sigma=0.8):
    """A square Gaussian filter, normalised so its entries sum to 1.

    Inputs:
    - kernel_size: odd int >= 1, or a pair (h, w) with h == w (a square kernel with a centre pixel)
    - sigma: standard deviation in pixels, a finite number > 0

    Returns:
    - kernel: shape (kernel_size, kernel_size), float64; kernel[i, j] is proportional to
      exp(-((i - c)^2 + (j - c)^2) / (2 sigma^2)) with c = size // 2
    """
    size = _check_kernel_size(kernel_size)
    sigma = check_float("sigma", sigma, low=0, closed="neither")
    offsets = np.arange(size) - size // 2                        # e.g. [-2, -1, 0, 1, 2]
    with np.errstate(over="ignore"):                             # a tiny sigma: offsets/sigma -> inf -> weight 0
        g = np.exp(-0.5 * (offsets / sigma) ** 2)                # a 1-D Gaussian (no sigma**2: it overflows)
    kernel = np.outer(g, g)                                      # separable: g(i) * g(j)
    return kernel / kernel.sum()


def _check_kernel_size(size):
    expected = "an odd int >= 1 (a square kernel has a centre pixel)"
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            fail("kernel_size", "an int or a pair (h, w)", tuple(size))
        h, w = (int(s) if isinstance(s, np.integer) else s for s in size)
        if h != w:
            fail("kernel_size", "square (h == w, e.g. 5 or (5, 5))", tuple(size))
        size = h
    if isinstance(size, np.integer):
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or size % 2 == 0:
        fail("kernel_size", expected, size)
    return size


def blur_kernel_bank(kernel, in_channels, out_channels):
    """Copy one 2-D filter into a conv kernel that blurs into every output channel.

    Each output channel is the blur of the *average* of the input channels, so the filter is
    divided by in_channels: with a filter that sums to 1, a flat grey image stays the same grey.

    Inputs:
    - kernel: shape (k, k), e.g. gaussian_kernel(5, 0.8)
    - in_channels, out_channels: ints >= 1

    Returns:
    - w: shape (k, k, in_channels, out_channels), float64, ready for conv2d_forward
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
        _fail_shape("kernel", "a square 2-D array (k, k)", kernel)
    in_channels = check_int("in_channels", in_channels, low=1)
    out_channels = check_int("out_channels", out_channels, low=1)
    bank = kernel[:, :, None, None] / in_channels
    return np.broadcast_to(bank, kernel.shape + (in_channels, out_channels)).copy()


# ----------------------------------------------------------------------------------------------
# q5: a conv layer trained with an L2 loss to copy a fixed conv layer
# ----------------------------------------------------------------------------------------------

def conv_regression(x, target_w, target_b, *, lr, batch_size, epochs, l2=1e-3, clip=None,
                    reduction="sum", seed=0, init_low=-1.0, init_high=1.0, stride=1, padding="same",
                    on_epoch=None, should_stop=None):
    """Train a student conv layer to reproduce a fixed (target) conv layer's outputs, with SGD.

    The student starts from w, b ~ U[init_low, init_high] (``np.random.default_rng(seed)``), with
    the target's shapes. Each step takes a minibatch of n images (order reshuffled every epoch by
    the same rng; the last, smaller batch is kept) and minimises

        loss = sum((out_student - out_target) ** 2) / count  +  l2 * sum(w ** 2)

    with count = n for reduction="sum" (the squared error summed over an image's pixels and
    channels, averaged over the batch's images) or count = out_student.size for reduction="mean"
    (averaged over every output number, like Keras's mean squared error), plus a weight penalty
    on w (not b). The gradient comes from conv2d_backward; with ``clip``, each entry of dw and db
    is clipped to [-clip, clip]; then w -= lr * dw, b -= lr * db. All in float64.

    With raw 0-255 pixels and weights in [-1, 1], the outputs are in the thousands and so is the
    curvature of this loss: a step of lr=1e-5 overshoots, every step multiplies the error, the loss
    overflows to inf and then inf - inf gives nan. The reduction sets how fast: "sum" multiplies
    the loss by about 1e8 per step, "mean" (5 output channels) by about 10 (CIFAR-10, 5x5 kernel).
    Overflow is expected here, so numpy's warnings are silenced and the epochs are logged as they
    are: training continues through inf epochs and stops after the first nan epoch (nothing can
    change after that).

    Inputs:
    - x: images, shape (N, H, W, C_in) (values as given, e.g. 0-255)
    - target_w: the fixed layer's kernel, shape (KH, KW, C_in, C_out); target_b: shape (C_out,)
    - lr: learning rate > 0; batch_size: int >= 1; epochs: int >= 1
    - l2: weight-penalty coefficient >= 0; clip: None or a number > 0
    - reduction: "sum" or "mean", how the squared errors are averaged (see above)
    - seed: int for the initial weights and the shuffling
    - init_low < init_high: the uniform range of the initial weights and biases
    - stride, padding: as in conv2d_forward (the same for both layers)
    - on_epoch: None or a function called with each log row after its epoch (progress printing)
    - should_stop: None or a function polled between batches; if it returns True, training
      raises KeyboardInterrupt (the CLI's Ctrl-C)

    Returns a dict with:
    - history: one row per epoch, {"epoch": 1-based, "loss": mean of the epoch's step losses (may
      be inf or nan), "l2_norm": ||out_student - out_target||_2 over all of x at the epoch's end,
      "seconds": the epoch's wall time}
    - status: "completed" (the last epoch's loss is finite) or "diverged" (it is inf or nan)
    - stop_reason: "max epochs" or e.g. "loss nan at epoch 11 (inf from epoch 6)"
    - first_inf_epoch: first epoch in which a step's loss overflowed to inf, or None
    - first_nan_epoch: first epoch whose loss is nan, or None
    - initial_l2_norm: the L2 norm before training (the student's random initial weights)
    - final_l2_norm: the last row's l2_norm
    - w, b: the student's final weights, shapes (KH, KW, C_in, C_out) and (C_out,)
    """
    x, target_w, target_b = _check_layer_arrays(x, target_w, target_b,
                                                names=("x", "target_w", "target_b"))
    lr = check_float("lr", lr, low=0, closed="neither")
    batch_size = check_int("batch_size", batch_size, low=1)
    epochs = check_int("epochs", epochs, low=1)
    l2 = check_float("l2", l2, low=0)
    if clip is not None:
        clip = check_float("clip", clip, low=0, closed="neither")
    reduction = check_choice("reduction", reduction, ["sum", "mean"])
    seed = check_int("seed", seed, low=0)
    init_low = check_float("init_low", init_low)
    init_high = check_float("init_high", init_high)
    if init_high <= init_low:
        fail("init_high", f"a number > init_low={init_low:g}", init_high)
    stride = check_int("stride", stride, low=1)
    pads = _paddings(x.shape[1:3], target_w.shape[:2], stride, padding)
    for name, fn in (("on_epoch", on_epoch), ("should_stop", should_stop)):
        if fn is not None and not callable(fn):
            fail(name, "None or a function", fn)
    if x.shape[0] == 0:
        _fail_shape("x", "at least one image", x)

    x = x.astype(np.float64)
    target_w, target_b = target_w.astype(np.float64), target_b.astype(np.float64)
    rng = np.random.default_rng(seed)
    w = rng.uniform(init_low, init_high, size=target_w.shape)
    b = rng.uniform(init_low, init_high, size=target_b.shape)

    n_images = x.shape[0]
    history, first_inf_epoch, first_nan_epoch = [], None, None
    # Overflow to inf and inf - inf = nan are the experiment's outcome, not bugs: no warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        target = _forward_in_chunks(x, target_w, target_b, stride, pads)
        initial_l2_norm = _l2_distance(_forward_in_chunks(x, w, b, stride, pads), target)
        for epoch in range(1, epochs + 1):
            start_time = time.perf_counter()
            order = rng.permutation(n_images)
            step_losses = []
            for start in range(0, n_images, batch_size):
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt(f"conv_regression stopped at epoch {epoch}")
                idx = order[start:start + batch_size]
                loss, w, b = _sgd_step(x[idx], target[idx], w, b, lr, l2, clip, reduction,
                                       stride, pads)
                step_losses.append(loss)
                if first_inf_epoch is None and math.isinf(loss):
                    first_inf_epoch = epoch
            epoch_loss = float(np.mean(step_losses))
            out = _forward_in_chunks(x, w, b, stride, pads)
            row = {"epoch": epoch, "loss": epoch_loss,
                   "l2_norm": _l2_distance(out, target),
                   "seconds": time.perf_counter() - start_time}
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if math.isnan(epoch_loss):
                first_nan_epoch = epoch
                break

    if first_nan_epoch is not None:
        since = f" (inf from epoch {first_inf_epoch})" if first_inf_epoch is not None else ""
        stop_reason = f"loss nan at epoch {first_nan_epoch}{since}"
    else:
        stop_reason = "max epochs"
    return {
        "history": history,
        "status": "completed" if math.isfinite(history[-1]["loss"]) else "diverged",
        "stop_reason": stop_reason,
        "first_inf_epoch": first_inf_epoch,
        "first_nan_epoch": first_nan_epoch,
        "initial_l2_norm": initial_l2_norm,
        "final_l2_norm": history[-1]["l2_norm"],
        "w": w,
        "b": b,
    }


def _sgd_step(x, target, w, b, lr, l2, clip, reduction, stride, pads):
    """One SGD step on a minibatch; returns (loss, new w, new b)."""
    out, cache = _forward(x, w, b, stride, pads)
    diff = out - target
    # "sum": squared errors summed over an image's outputs, averaged over the batch's images;
    # "mean": averaged over every output number (Keras's mean squared error).
    count = diff.size if reduction == "mean" else diff.shape[0]
    loss = float(np.sum(diff ** 2) / count + l2 * np.sum(w ** 2))
    _, dw, db = _backward(2.0 * diff / count, cache, need_dx=False)   # the input x is not trained
    dw = dw + 2.0 * l2 * w
    if clip is not None:
        dw, db = np.clip(dw, -clip, clip), np.clip(db, -clip, clip)
    return loss, w - lr * dw, b - lr * db


def _l2_distance(a, b):
    """||a - b||_2 over every number, as a float (inf or nan once training has blown up)."""
    return float(np.sqrt(np.sum((a - b) ** 2)))


def _forward_in_chunks(x, w, b, stride, pads):
    """conv forward over a whole data set, a chunk of images at a time to bound im2col's memory."""
    chunks = [_forward(x[i:i + _EVAL_CHUNK], w, b, stride, pads)[0]
              for i in range(0, x.shape[0], _EVAL_CHUNK)]
    return np.concatenate(chunks, axis=0)
