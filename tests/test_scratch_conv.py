"""scratch.conv: conv2d forward/backward against Keras, TensorFlow and finite differences;
Gaussian kernels (q4); the conv regression of q5, including its blow-up."""

import math
import warnings

import numpy as np
import pytest

from dlcv_keras.scratch.conv import (
    blur_kernel_bank,
    conv2d_backward,
    conv2d_forward,
    conv_regression,
    gaussian_kernel,
)
from dlcv_keras.validation import InvalidParameterError


def rel_error(x, y):
    """Largest relative error, cs231n's definition (with a floor so zeros compare cleanly)."""
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def numerical_gradient(f, x, df, h=1e-5):
    """Central-difference gradient of sum(f(x) * df) with respect to the array x (modified in place)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        plus = f(x).copy()
        x[ix] = old - h
        minus = f(x).copy()
        x[ix] = old
        grad[ix] = np.sum((plus - minus) * df) / (2 * h)
    return grad


def _layer(rng, n, h, w, c_in, c_out, k, dtype=np.float64):
    x = rng.uniform(0, 1, (n, h, w, c_in)).astype(dtype)
    kernel = rng.uniform(-1, 1, (k, k, c_in, c_out)).astype(dtype)
    bias = rng.uniform(-1, 1, (c_out,)).astype(dtype)
    return x, kernel, bias


# (C_in, C_out, kernel, stride, padding, H, W): both channel counts, kernels 3 and 5, strides 1 and
# 2, both paddings, odd and even sizes (stride 2 with 'same' on even and odd sizes checks Keras's
# asymmetric padding: the odd pixel goes at the bottom/right).
KERAS_CASES = [
    (1, 1, 3, 1, "same", 7, 7),
    (3, 5, 3, 1, "same", 8, 6),
    (3, 5, 5, 1, "valid", 9, 8),
    (1, 5, 5, 2, "same", 8, 8),
    (3, 1, 5, 2, "same", 9, 7),
    (3, 5, 3, 2, "same", 10, 11),
    (1, 1, 3, 2, "valid", 8, 9),
    (3, 5, 5, 2, "valid", 11, 10),
    (3, 5, 5, 1, "same", 32, 32),
]


@pytest.mark.parametrize("c_in, c_out, k, stride, padding, h, w", KERAS_CASES)
def test_forward_matches_keras_conv2d(c_in, c_out, k, stride, padding, h, w):
    keras = pytest.importorskip("keras")
    x, kernel, bias = _layer(np.random.default_rng(0), 2, h, w, c_in, c_out, k, dtype=np.float32)
    layer = keras.layers.Conv2D(c_out, k, strides=stride, padding=padding, use_bias=True,
                                data_format="channels_last")
    layer.build((None, h, w, c_in))
    layer.set_weights([kernel, bias])
    expected = keras.ops.convert_to_numpy(layer(x))

    out, _ = conv2d_forward(x, kernel, bias, stride=stride, padding=padding)

    assert out.dtype == np.float32
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def _tf_gradients(x, kernel, bias, dout, stride, padding):
    tf = pytest.importorskip("tensorflow")
    if isinstance(padding, int):
        tf_padding = [[0, 0], [padding, padding], [padding, padding], [0, 0]]
    else:
        tf_padding = padding.upper()
    x, kernel, bias = (tf.Variable(a, dtype=tf.float64) for a in (x, kernel, bias))
    with tf.GradientTape() as tape:
        out = tf.nn.conv2d(x, kernel, strides=stride, padding=tf_padding) + bias
        loss = tf.reduce_sum(out * dout)   # so d loss / d out = dout
    return out.numpy(), [g.numpy() for g in tape.gradient(loss, [x, kernel, bias])]


@pytest.mark.parametrize("c_in, c_out, k, stride, padding, h, w", [
    (1, 1, 3, 1, "same", 6, 6),
    (3, 5, 5, 2, "same", 9, 8),
    (3, 2, 3, 2, "valid", 8, 9),
    (2, 3, 3, 1, 1, 5, 6),
    (3, 2, 5, 2, 2, 7, 7),
])
def test_backward_matches_tensorflow_gradient_tape(c_in, c_out, k, stride, padding, h, w):
    rng = np.random.default_rng(1)
    x, kernel, bias = _layer(rng, 2, h, w, c_in, c_out, k)
    out, cache = conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)

    tf_out, (tf_dx, tf_dw, tf_db) = _tf_gradients(x, kernel, bias, dout, stride, padding)
    dx, dw, db = conv2d_backward(dout, cache)

    assert rel_error(out, tf_out) < 1e-10
    assert dx.shape == x.shape and dw.shape == kernel.shape and db.shape == bias.shape
    assert rel_error(dx, tf_dx) < 1e-10
    assert rel_error(dw, tf_dw) < 1e-10
    assert rel_error(db, tf_db) < 1e-10


@pytest.mark.parametrize("stride, padding", [(1, "same"), (2, "same"), (2, "valid"), (1, 1)])
def test_backward_matches_numerical_gradient(stride, padding):
    rng = np.random.default_rng(2)
    x, kernel, bias = _layer(rng, 2, 5, 4, 2, 3, 3)
    out, cache = conv2d_forward(x, kernel, bias, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)

    def forward(**replace):
        args = {"x": x, "w": kernel, "b": bias} | replace
        return conv2d_forward(args["x"], args["w"], args["b"], stride=stride, padding=padding)[0]

    assert rel_error(dx, numerical_gradient(lambda a: forward(x=a), x.copy(), dout)) < 1e-7
    assert rel_error(dw, numerical_gradient(lambda a: forward(w=a), kernel.copy(), dout)) < 1e-7
    assert rel_error(db, numerical_gradient(lambda a: forward(b=a), bias.copy(), dout)) < 1e-7


def test_int_padding_is_explicit_zero_padding():
    rng = np.random.default_rng(3)
    x, kernel, bias = _layer(rng, 2, 6, 5, 3, 2, 3)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    out, cache = conv2d_forward(x, kernel, bias, stride=2, padding=2)
    out_padded, cache_padded = conv2d_forward(padded, kernel, bias, stride=2, padding="valid")
    np.testing.assert_array_equal(out, out_padded)

    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv2d_backward(dout, cache)
    dx_padded, dw_padded, db_padded = conv2d_backward(dout, cache_padded)
    np.testing.assert_allclose(dx, dx_padded[:, 2:-2, 2:-2, :], rtol=1e-12)
    np.testing.assert_allclose(dw, dw_padded, rtol=1e-12)
    np.testing.assert_allclose(db, db_padded, rtol=1e-12)


def test_same_padding_with_stride_2_is_keras_asymmetric_rule():
    # H = 6, k = 3, stride 2: 3 outputs, 1 pixel of padding in total, all of it at the bottom.
    x = np.arange(6.0).reshape(1, 6, 1, 1)
    w = np.zeros((3, 1, 1, 1))
    w[0, 0, 0, 0] = 1.0    # picks the top pixel of each window
    out, _ = conv2d_forward(x, w, np.zeros(1), stride=2, padding="same")
    np.testing.assert_array_equal(out.ravel(), [0.0, 2.0, 4.0])


@pytest.mark.parametrize("kwargs, message", [
    ({"padding": "full"}, r"^padding must be one of 'valid', 'same', got 'full'$"),
    ({"padding": -1}, r"^padding must be 'valid', 'same' or an int >= 0, got -1$"),
    ({"stride": 0}, r"^stride must be an int in \[1, inf\], got 0$"),
    ({"w": np.zeros((3, 3, 2, 4))}, r"^w must be a kernel for 3 input channel\(s\).*got an array of shape \(3, 3, 2, 4\)$"),
    ({"b": np.zeros(3)}, r"^b must be a 1-D array of shape \(4,\).*got an array of shape \(3,\)$"),
    ({"x": np.zeros((5, 5, 3))}, r"^x must be a 4-D array \(N, H, W, C_in\), got an array of shape \(5, 5, 3\)$"),
    ({"x": np.zeros((1, 2, 2, 3)), "padding": "valid"}, r"^x must be images at least as large as the 3x3 kernel"),
])
def test_forward_rejects_bad_arguments_with_one_line(kwargs, message):
    args = {"x": np.zeros((1, 5, 5, 3)), "w": np.zeros((3, 3, 3, 4)), "b": np.zeros(4)} | kwargs
    with pytest.raises(InvalidParameterError, match=message) as info:
        conv2d_forward(**args)
    assert "\n" not in str(info.value)


# ---- q4: Gaussian kernels -----------------------------------------------------------------------

def test_gaussian_kernel_5_sigma_08():
    kernel = gaussian_kernel(5, 0.8)
    assert kernel.shape == (5, 5) and kernel.dtype == np.float64
    assert math.isclose(kernel.sum(), 1.0, rel_tol=1e-12)
    np.testing.assert_allclose(kernel, kernel.T)          # symmetric across the diagonal
    np.testing.assert_allclose(kernel, kernel[::-1, :])    # ... and up-down, left-right
    np.testing.assert_allclose(kernel, kernel[:, ::-1])
    assert kernel[2, 2] == kernel.max() and np.sum(kernel == kernel.max()) == 1

    direct = np.array([[math.exp(-((i - 2) ** 2 + (j - 2) ** 2) / (2 * 0.8 ** 2)) for j in range(5)]
                       for i in range(5)])
    np.testing.assert_allclose(kernel, direct / direct.sum(), rtol=1e-12)
    np.testing.assert_allclose(gaussian_kernel((5, 5), 0.8), kernel)
    np.testing.assert_array_equal(gaussian_kernel(1, 0.8), [[1.0]])


@pytest.mark.parametrize("size, message", [
    (4, r"^kernel_size must be an odd int >= 1 \(a square kernel has a centre pixel\), got 4$"),
    (0, r"^kernel_size must be an odd int >= 1 .*, got 0$"),
    (-1, r"^kernel_size must be an odd int >= 1 .*, got -1$"),
    (2.5, r"^kernel_size must be an odd int >= 1 .*, got 2.5$"),
    ((5, 3), r"^kernel_size must be square .*, got \(5, 3\)$"),
    ((4, 4), r"^kernel_size must be an odd int >= 1 .*, got 4$"),
    (True, r"^kernel_size must be an odd int >= 1 .*, got True$"),
])
def test_gaussian_kernel_rejects_bad_sizes(size, message):
    with pytest.raises(InvalidParameterError, match=message) as info:
        gaussian_kernel(size, 0.8)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("sigma", [0, -0.8, float("nan"), float("inf"), "0.8"])
def test_gaussian_kernel_rejects_bad_sigma(sigma):
    with pytest.raises(InvalidParameterError, match=r"^sigma must be a (finite )?number in \(0, inf\), got ") as info:
        gaussian_kernel(5, sigma)
    assert repr(sigma) in str(info.value) and "\n" not in str(info.value)


def test_blur_bank_keeps_a_constant_image_constant_inside():
    bank = blur_kernel_bank(gaussian_kernel(5, 0.8), in_channels=3, out_channels=5)
    assert bank.shape == (5, 5, 3, 5)
    np.testing.assert_allclose(bank.sum(axis=(0, 1, 2)), np.ones(5))   # each output keeps brightness

    x = np.full((2, 9, 10, 3), 100.0)
    out, _ = conv2d_forward(x, bank, np.zeros(5), padding="same")
    assert out.shape == (2, 9, 10, 5)
    np.testing.assert_allclose(out[:, 2:-2, 2:-2, :], 100.0, rtol=1e-12)   # away from the border
    assert np.all(out[:, 0, :, :] < 100.0)   # the zero padding darkens the border rows


def test_blur_bank_averages_channels_and_blurs_a_point():
    kernel = gaussian_kernel(3, 1.0)
    x = np.zeros((1, 5, 5, 2))
    x[0, 2, 2, :] = [1.0, 3.0]   # a point whose channel average is 2
    out, _ = conv2d_forward(x, blur_kernel_bank(kernel, 2, 4), np.zeros(4), padding="same")
    for channel in range(4):
        np.testing.assert_allclose(out[0, 1:4, 1:4, channel], 2.0 * kernel)


def test_blur_bank_rejects_bad_arguments():
    with pytest.raises(InvalidParameterError, match=r"^kernel must be a square 2-D array"):
        blur_kernel_bank(np.ones((3, 5)), 3, 5)
    with pytest.raises(InvalidParameterError, match=r"^out_channels must be an int in \[1, inf\], got 0$"):
        blur_kernel_bank(gaussian_kernel(), 3, 0)


# ---- q5: conv regression -------------------------------------------------------------------------

def _regression_data(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, size, size, 3)).astype(np.float64)   # raw 0-255 pixels
    target_rng = np.random.default_rng(seed + 100)
    return x, target_rng.uniform(-1, 1, (5, 5, 3, 2)), target_rng.uniform(-1, 1, (2,))


def test_raw_pixels_blow_up_to_inf_then_nan_without_warnings():
    x, target_w, target_b = _regression_data()
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # any RuntimeWarning (overflow, invalid value) fails
        result = conv_regression(x, target_w, target_b, lr=1e-5, batch_size=4, epochs=500,
                                 on_epoch=rows.append)

    losses = [row["loss"] for row in result["history"]]
    assert rows == result["history"]
    assert [row["epoch"] for row in rows] == list(range(1, len(rows) + 1))
    assert result["status"] == "diverged"
    finite = [loss for loss in losses if math.isfinite(loss)]
    assert len(finite) >= 2 and max(finite) > 1e30                  # finite but huge first...
    inf_epochs = [row["epoch"] for row in rows if math.isinf(row["loss"])]
    assert inf_epochs and inf_epochs == list(range(inf_epochs[0], inf_epochs[-1] + 1))   # ...then inf...
    assert math.isnan(losses[-1]) and len(losses) < 500              # ...then nan, and it stops there
    assert result["first_inf_epoch"] == inf_epochs[0]
    assert result["first_nan_epoch"] == len(losses)
    assert result["stop_reason"] == f"loss nan at epoch {len(losses)} (inf from epoch {inf_epochs[0]})"
    assert math.isnan(result["final_l2_norm"])


def test_mean_reduction_divides_by_every_output_number():
    x, target_w, target_b = _regression_data(n=4, size=6)
    common = {"lr": 1e-9, "batch_size": 4, "epochs": 1, "l2": 0.0}   # one step from the same start
    by_sum = conv_regression(x, target_w, target_b, reduction="sum", **common)
    by_mean = conv_regression(x, target_w, target_b, reduction="mean", **common)
    # The first (only) step's loss is measured at the initial weights.
    assert math.isclose(by_sum["history"][0]["loss"], by_sum["initial_l2_norm"] ** 2 / 4, rel_tol=1e-12)
    assert math.isclose(by_sum["history"][0]["loss"], by_mean["history"][0]["loss"] * 6 * 6 * 2,
                        rel_tol=1e-12)


def test_clipped_gradients_learn():
    x, target_w, target_b = _regression_data(n=6, size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = conv_regression(x, target_w, target_b, lr=1e-2, batch_size=2, epochs=20, clip=1.0)
    assert result["status"] == "completed" and result["stop_reason"] == "max epochs"
    assert result["first_inf_epoch"] is None and result["first_nan_epoch"] is None
    assert len(result["history"]) == 20
    assert result["final_l2_norm"] < 0.5 * result["initial_l2_norm"]
    assert result["w"].shape == target_w.shape and result["b"].shape == target_b.shape


def test_small_inputs_recover_the_target_weights():
    # Zero-mean unit-scale pixels keep the loss well conditioned: plain SGD (no penalty, no
    # clipping) finds the target layer itself, which checks the loop's gradients end to end.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 6, 6, 1))
    target_w, target_b = rng.uniform(-1, 1, (3, 3, 1, 2)), rng.uniform(-1, 1, (2,))
    result = conv_regression(x, target_w, target_b, lr=1e-2, batch_size=4, epochs=100, l2=0.0,
                             padding="valid")
    assert result["final_l2_norm"] < 1e-8 * result["initial_l2_norm"]
    np.testing.assert_allclose(result["w"], target_w, atol=1e-8)
    np.testing.assert_allclose(result["b"], target_b, atol=1e-8)


def test_should_stop_raises_keyboard_interrupt_between_batches():
    x, target_w, target_b = _regression_data(n=8, size=6)
    polls = []

    def should_stop():
        polls.append(1)
        return len(polls) == 3   # the third batch: epoch 2 (8 images, batch 4)

    rows = []
    with pytest.raises(KeyboardInterrupt):
        conv_regression(x, target_w, target_b, lr=1e-2, batch_size=4, epochs=5, clip=1.0,
                        should_stop=should_stop, on_epoch=rows.append)
    assert len(polls) == 3 and [row["epoch"] for row in rows] == [1]


def test_last_partial_batch_is_kept():
    x, target_w, target_b = _regression_data(n=5, size=6)
    polls = []
    conv_regression(x, target_w, target_b, lr=1e-2, batch_size=2, epochs=1, clip=1.0,
                    should_stop=lambda: polls.append(1) and False)
    assert len(polls) == 3   # batches of 2, 2 and 1


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0}, r"^lr must be a number in \(0, inf\), got 0$"),
    ({"batch_size": 0}, r"^batch_size must be an int in \[1, inf\], got 0$"),
    ({"epochs": 2.5}, r"^epochs must be an int in \[1, inf\], got 2.5$"),
    ({"clip": 0}, r"^clip must be a number in \(0, inf\), got 0$"),
    ({"l2": -1e-3}, r"^l2 must be a number in \[0, inf\], got -0.001$"),
    ({"reduction": "max"}, r"^reduction must be one of 'sum', 'mean', got 'max'$"),
    ({"x": np.zeros((4, 6, 6))}, r"^x must be a 4-D array \(N, H, W, C_in\), got an array of shape \(4, 6, 6\)$"),
    ({"target_w": np.zeros((5, 5, 1, 2))}, r"^target_w must be a kernel for 3 input channel\(s\)"),
    ({"init_low": 1.0}, r"^init_high must be a number > init_low=1, got 1.0$"),
    ({"should_stop": True}, r"^should_stop must be None or a function, got True$"),
])
def test_regression_rejects_bad_arguments_with_one_line(kwargs, message):
    x, target_w, target_b = _regression_data(n=4, size=6)
    args = {"x": x, "target_w": target_w, "target_b": target_b, "lr": 1e-2, "batch_size": 2,
            "epochs": 1} | kwargs
    with pytest.raises(InvalidParameterError, match=message) as info:
        conv_regression(**args)
    assert "\n" not in str(info.value)


def test_gaussian_kernel_extreme_sigmas_stay_finite_and_silent():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        delta = gaussian_kernel(5, 1e-200)        # (offset / sigma) ** 2 overflows to inf -> weight 0
        flat = gaussian_kernel(5, 100.0)
    expected = np.zeros((5, 5))
    expected[2, 2] = 1.0
    np.testing.assert_array_equal(delta, expected)
    np.testing.assert_allclose(flat, np.full((5, 5), 1 / 25), rtol=1e-3)
