"""q4: a convolution module by hand (DS-265 DLCV, Assignment 1, part 4).

The numpy conv2d (forward and backward) is checked against Keras ``Conv2D`` and
TensorFlow's gradients, then a 5x5 Gaussian (sigma 0.8) blurs the first five training
images into five output channels. ``--kernel-size`` and ``--sigma`` change the filter.
"""

from dlcv_keras.experiments import ConvBlur
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q4",
    title="Convolution module by hand (Gaussian blur)",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="mnist",
    model=None,
    fallback_dataset="digits",
    implementations=("scratch",),
    experiments=(
        ConvBlur("blur", "Gaussian filter: the kernel, the first training images, and each blurred output channel"),
    ),
    options=("kernel_size", "sigma"),
    reference={"blur": {"kernel_size": 5, "sigma": 0.8, "images": 5, "out_channels": 5}},
)
