"""q6: a two-layer network from scratch on toy data (HLCV Exercise 2, question 1-3).

Input 4, hidden 10 (ReLU), 3 classes, 5 toy inputs, initialised as the exercise does:
the class scores and loss against the exercise's correct values, analytic gradients
against central differences and TensorFlow, and training to a loss below 0.02.
"""

from dlcv_keras.experiments import ToyTraining, TwoLayerCheck
from dlcv_keras.questions.base import Question
from dlcv_keras.scratch.two_layer import REFERENCE_LOSS, REFERENCE_SCORES

QUESTION = Question(
    name="q6",
    title="Two-layer network from scratch, toy data",
    seed_writeup="001_abbb178859d60717.txt (HLCV Exercise 2)",
    dataset=None,
    model=None,
    implementations=("scratch",),
    generated_data={"name": "toy", "splits": {"toy": 5},
                    "source": "generated: 5 inputs of 4 features, 10 * standard normal (the exercise's init_toy_data, seed 1)"},
    experiments=(
        TwoLayerCheck("check", "Scores, loss and gradient check on the toy data"),
        ToyTraining("train", "Training on the toy data"),
    ),
    reference={
        "check": {
            "scores": REFERENCE_SCORES.tolist(),
            "loss": REFERENCE_LOSS,
            "relative_errors": {"W1": 3.561318e-09, "b1": 1.555470e-09, "W2": 3.440708e-09, "b2": 3.865070e-11},
        },
        "train": {"final_loss": 0.017},
    },
)
