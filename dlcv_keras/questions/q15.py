"""q15: weight initialisation on an MNIST MLP (IFT6135-H2019, Assignment 1, problem 1.a).

The seed's MLP (two hidden layers, ReLU, SGD) trained from zero, standard normal and Glorot
initial weights, plus He: loss and accuracy curves side by side. The layer probe
(training/instruments.py) measures each layer's activations at initialisation and, every
epoch, how far apart a layer's units are: with zero weights every unit of a layer stays the
same unit, which is why that network cannot learn. A second, 10-layer network shows how each
initialisation scales the activations layer after layer.
"""

from dlcv_keras.experiments import Search
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q15",
    title="Weight initialisation, MNIST MLP",
    seed_writeup="004_9963c858e23e4d1d.txt (IFT6135-H2019, Assignment 1)",
    dataset="mnist",
    model="mlp",
    optimizer="sgd",
    val_fraction=1 / 6,                # MNIST's 60k training images as 50k/10k, as the assignment
    experiments=(
        Search("init", "1.a Zero vs normal vs Glorot vs He initialisation", template="init_study",
               evaluates_test=True, tuner="grid", instruments=("activations", "weights", "symmetry", "gradients")),
        Search("init_depth", "Activations at initialisation in a 10-layer network", template="init_study",
               tuner="grid", instruments=("activations",)),
    ),
    reference={
        "init": {"note": "The seed shows curves only: with zero weights the loss and accuracy do not change and "
                         "training accuracy stays at chance (about 10 %); normal and Glorot both train, normal "
                         "plateauing on validation after about 4 epochs. Its \"normal\" is the assignment's "
                         "N(0, 1) (standard_normal here); Keras's own random_normal is N(0, 0.05^2). With N(0, 1) "
                         "weights the output layer's inputs are in the hundreds, so the softmax saturates. Our "
                         "models output logits and the loss is computed from them (log-softmax, as PyTorch's "
                         "cross-entropy does), so a saturated softmax still passes a gradient; a loss computed "
                         "from clipped probabilities would pass none. The mean |gradient| column of the table "
                         "below shows what this run's training saw."},
        "init_depth": {"note": "Not in the seed: the same initialisations in a deeper network, to show how each "
                               "one scales the activations from layer to layer at initialisation."},
    },
)
