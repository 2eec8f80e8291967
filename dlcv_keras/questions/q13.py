"""q13: activation functions and vanishing gradients on grayscale CIFAR-10 (Programming Assignment 1, question 1).

An MLP 1024 -> 256 x k -> 10 (Adam 1e-3, batch 1024, 10 epochs, a 40k/10k split in ``full``):
first sigmoid vs tanh vs ReLU vs leaky ReLU at the seed's depth, with curves and run time
(from several seeds each in ``quick``, compared image by image on the test split);
then depth k = 1..10 (every other one in ``quick``) for sigmoid and for ReLU, each with Glorot and with He initialisation,
so that the activation's effect can be told apart from the initialisation's. Every depth trial
carries the layer probe (training/instruments.py): each layer's mean |gradient| and |weight|
at initialisation and after every epoch, the figure that shows gradients vanishing toward the
input under sigmoid.
"""

from dlcv_keras.experiments import Search
from dlcv_keras.lessons import VANISHED_SHARE, All, Beats, GradientShare, Lesson, Model, Ordered, Threshold
from dlcv_keras.questions.base import Question

# The depths (hidden layers) whose gradients the lessons read, in every profile's grid: the shallowest,
# the seed's 5 and its deepest (10 linear layers, 9 hidden).
DEPTHS = (1, 5, 9)
# "Reaches": at least 10 % of the output layer's mean |gradient| reaches the first layer; ten times
# lessons.VANISHED_SHARE, so that the verdicts do not hang on a bound's exact place.
REACHES = 0.1


def _activation(name: str) -> Model:
    return Model("activations", name, {"activation": name})


def _share(activation: str, depth: int) -> GradientShare:
    return GradientShare("depth", f"{activation} at depth {depth}",
                         {"activation": activation, "depth": depth, "initializer": "glorot_uniform"})


LESSONS = (
    Lesson("At the seed's depth (5 hidden layers of 256) sigmoid trails tanh and ReLU: tanh and ReLU each beat "
           "sigmoid on the test split (paired bootstrap over the test images and 3 seeds each).",
           All((Beats(_activation("tanh"), _activation("sigmoid")),
                Beats(_activation("relu"), _activation("sigmoid"))))),
    Lesson(f"The gradient reaching sigmoid's first layer vanishes with depth: after training (Glorot "
           f"initialisation, the seed's kind of default), the first layer's share of the output layer's mean "
           f"|gradient| falls at every step of depth {', '.join(map(str, DEPTHS))} and is below "
           f"{100 * VANISHED_SHARE:g} % at depth {DEPTHS[-1]}.",
           All((Ordered(tuple(_share("sigmoid", d) for d in DEPTHS), rising=False),
                Threshold(_share("sigmoid", DEPTHS[-1]), "<", VANISHED_SHARE)))),
    Lesson(f"ReLU's gradient does not vanish: after training, at least {100 * REACHES:g} % of the output layer's "
           f"mean |gradient| reaches the first layer at every depth up to {DEPTHS[-1]} (Glorot initialisation).",
           All(tuple(Threshold(_share("relu", d), ">=", REACHES) for d in DEPTHS))),
)

QUESTION = Question(
    name="q13",
    title="Activation functions and vanishing gradients, grayscale CIFAR-10",
    seed_writeup="003_22c6e2386fbda391.txt (Programming Assignment 1, question 1)",
    dataset="cifar10_gray",
    model="mlp",
    optimizer="adam",
    val_fraction=0.2,                  # the seed's 40k/10k split of the 50k training images
    lessons=LESSONS,
    experiments=(
        Search("activations", "1.a Sigmoid vs tanh vs ReLU vs leaky ReLU: curves and run time",
               evaluates_test=True, tuner="grid"),
        Search("depth", "1.b Depth 1 to 10, sigmoid vs ReLU, Glorot vs He initialisation: loss, accuracy, "
                        "and each layer's gradients and weights over training",
               template="depth_study", tuner="grid", instruments=("gradients", "weights")),
    ),
    reference={
        "activations": {"note": "The seed shows curves only: sigmoid learns slowest, then tanh; ReLU and leaky ReLU "
                                "learn fastest and run slightly faster per epoch."},
        "depth": {"note": "Depth here counts hidden layers; the seed counts linear layers (its depth d is our "
                          "d - 1). The seed: for sigmoid the loss stops moving at its depths 9 and 10 and mean "
                          "gradients are visibly non-zero only in the last 3 layers; for ReLU the loss decreases at "
                          "every depth and gradients reach the first layer."},
    },
)
