"""q6: a two-layer network from scratch on toy data (HLCV Exercise 2, question 1-3).

Input 4, hidden 10 (ReLU), 3 classes, 5 toy inputs, initialised as the exercise does:
the class scores and loss against the exercise's correct values, analytic gradients
against central differences and TensorFlow, and training to a loss below 0.02.
"""

from dlcv_keras.experiments import ToyTraining, TwoLayerCheck
from dlcv_keras.lessons import All, Lesson, Threshold, Value
from dlcv_keras.questions.base import Question
from dlcv_keras.scratch.two_layer import REFERENCE_LOSS, REFERENCE_SCORES

LESSONS = (
    Lesson("The fully vectorised forward pass gives the exercise's correct class scores and loss on the toy data "
           "(the exercise's own checks: scores within 1e-7, the loss within 1e-12).",
           All((Threshold(Value("check", "scores_max_abs_diff", "the largest score difference"), "<=", 1e-7),
                Threshold(Value("check", "loss_abs_diff", "the loss difference"), "<=", 1e-12)))),
    Lesson("The analytic gradients of W1, b1, W2 and b2 match central differences: each one's largest relative "
           "error is at most 1e-8 (float64).",
           Threshold(Value("check", "max_relative_error", "the largest relative error over W1, b1, W2, b2"),
                     "<=", 1e-8)),
    Lesson("Trained with SGD on the toy data (the exercise's 100 iterations, lr 0.1), the network drives its training "
           "loss below 0.02.",
           Threshold(Value("train", "final_loss", "the final training loss"), "<", 0.02)),
)

QUESTION = Question(
    name="q6",
    title="Two-layer network from scratch, toy data",
    seed_writeup="001_abbb178859d60717.txt (HLCV Exercise 2)",
    dataset=None,
    model=None,
    implementations=("scratch",),
    lessons=LESSONS,
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
