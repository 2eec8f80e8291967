"""q16: MLP search and gradient validation on MNIST (IFT6135-H2019, Assignment 1, part 1).

A random search over the widths h1, h2 of a two-hidden-layer ReLU MLP (lr 0.01, batch 100)
under the seed's constraint of 0.5M to 1M parameters: a sampled setting outside it is
recorded as rejected, with its parameter count, and not trained. The best setting is
retrained, and the gradient of the first 10 weights of its second layer is checked against
central differences with epsilon = 1/N, on the Keras model rebuilt in float64.
"""

from dlcv_keras.experiments import EvaluateBest, FiniteDifferenceSweep, Search
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q16",
    title="MLP search and gradient validation, MNIST",
    seed_writeup="004_9963c858e23e4d1d.txt (IFT6135-H2019, Assignment 1)",
    dataset="mnist",
    model="mlp",
    optimizer="sgd",
    val_fraction=1 / 6,               # 50k/10k, as the seed's standard MNIST split
    experiments=(
        Search("search", "1.b Random search over h1, h2 (0.5M to 1M parameters)", evaluates_test=True,
               tuner="random"),
        EvaluateBest("best", "Best setting of the search, retrained", source="search"),
        FiniteDifferenceSweep("gradient_check", "1.c Finite differences, epsilon = 1/N, on the first 10 weights "
                                                "of the second layer (float64)", source="best"),
    ),
    reference={
        # The seed's five attempts (Tables 1 and 2); only the best is inside the constraint.
        "search": {"rows": [
            {"units_1": 512, "units_2": 512, "params": 669706, "accuracy": 0.9876, "val_accuracy": 0.9767,
             "test_accuracy": 0.9733},
            {"units_1": 256, "units_2": 256, "params": 269322, "accuracy": 0.9856, "val_accuracy": 0.9726,
             "test_accuracy": 0.9736},
            {"units_1": 512, "units_2": 256, "params": 535818, "accuracy": 0.9873, "val_accuracy": 0.9758,
             "test_accuracy": 0.9726},
            {"units_1": 64, "units_2": 64, "params": 55050, "accuracy": 0.9776, "val_accuracy": 0.9669,
             "test_accuracy": 0.9656},
            {"units_1": 32, "units_2": 32, "params": 26506, "accuracy": 0.9710, "val_accuracy": 0.9634,
             "test_accuracy": 0.9593},
        ]},
        "best": {"hyperparameters": {"units_1": 512, "units_2": 512, "lr": 0.01, "batch_size": 100, "epochs": 60},
                 "train_accuracy": 0.9876, "val_accuracy": 0.9767, "test_accuracy": 0.9733},
    },
)
