"""q4: a convolution module by hand (DS-265 DLCV, Assignment 1, part 4).

The numpy conv2d (forward and backward) is checked against Keras ``Conv2D`` and
TensorFlow's gradients, then a 5x5 Gaussian (sigma 0.8) blurs the first five training
images into five output channels. ``--kernel-size`` and ``--sigma`` change the filter.
"""

from dlcv_keras.experiments import ConvBlur
from dlcv_keras.experiments.base import RELATIVE_TOLERANCE
from dlcv_keras.experiments.conv_blur import FLOAT32_RELATIVE, HIGH_FREQUENCY
from dlcv_keras.lessons import All, Lesson, Threshold, Value
from dlcv_keras.questions.base import Question

LESSONS = (
    Lesson(f"The hand-written convolution equals Keras's: its forward pass matches Conv2D to float32 rounding "
           f"(largest difference at most {FLOAT32_RELATIVE:g} of the largest output) and its backward pass "
           f"(dx, dw, db) matches TensorFlow's gradients (relative error at most {RELATIVE_TOLERANCE:g}).",
           All((Threshold(Value("blur", "keras_max_rel_diff", "the forward difference from Conv2D, relative to the "
                                "largest output"), "<=", FLOAT32_RELATIVE),
                Threshold(Value("blur", "backward_max_rel_error", "the backward relative error"), "<=",
                          RELATIVE_TOLERANCE)))),
    Lesson(f"The Gaussian kernel blurs: every output channel of every image is smoother than the image, with lower "
           f"total variation and less energy above {HIGH_FREQUENCY:g} cycles per pixel (the least blurred channel's "
           f"ratios to the original are below 1).",
           All((Threshold(Value("blur", "tv_ratio", "total variation, blurred over original (largest)"), "<", 1.0),
                Threshold(Value("blur", "high_frequency_ratio", "high-frequency energy, blurred over original "
                                "(largest)"), "<", 1.0)))),
)

QUESTION = Question(
    name="q4",
    title="Convolution module by hand (Gaussian blur)",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="mnist",
    model=None,
    fallback_dataset="digits",
    implementations=("scratch",),
    lessons=LESSONS,
    experiments=(
        ConvBlur("blur", "Gaussian filter: the kernel, the first training images, and each blurred output channel"),
    ),
    options=("kernel_size", "sigma"),
    reference={"blur": {"kernel_size": 5, "sigma": 0.8, "images": 5, "out_channels": 5}},
)
