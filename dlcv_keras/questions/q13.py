"""q13: activation functions and vanishing gradients on grayscale CIFAR-10 (Programming Assignment 1, question 1).

An MLP 1024 -> 256 x k -> 10 (Adam 1e-3, batch 1024, 10 epochs, a 40k/10k split in ``full``):
first sigmoid vs tanh vs ReLU vs leaky ReLU at the seed's depth, with curves and run time;
then depth k = 1..10 for sigmoid and for ReLU, each with Glorot and with He initialisation,
so that the activation's effect can be told apart from the initialisation's. Every depth trial
carries the layer probe (training/instruments.py): each layer's mean |gradient| and |weight|
at initialisation and after every epoch, the figure that shows gradients vanishing toward the
input under sigmoid.
"""

from dlcv_keras.experiments import Search
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q13",
    title="Activation functions and vanishing gradients, grayscale CIFAR-10",
    seed_writeup="003_22c6e2386fbda391.txt (Programming Assignment 1, question 1)",
    dataset="cifar10_gray",
    model="mlp",
    optimizer="adam",
    val_fraction=0.2,                  # the seed's 40k/10k split of the 50k training images
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
