"""q3: a two-layer MLP on MNIST with q3's early-stopping rule (DS-265 DLCV, Assignment 1, part 3).

This is the package's main job (``python -m dlcv_keras.run q3``): when MNIST cannot be
had at all it runs on scikit-learn's bundled digits, and says so loudly.
"""

from dlcv_keras.experiments import EvaluateBest, FiniteDifferenceSweep, Search
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q3",
    title="Modular vector backpropagation: 2-layer MLP, MNIST",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="mnist",
    model="mlp",
    optimizer="sgd",
    fallback_dataset="digits",
    val_fraction=0.2,
    early_stopping=True,
    # --impl scratch trains the same MLP with hand-written numpy modules (dlcv_keras.scratch)
    # and checks its backward pass with q16's finite differences.
    implementations=("keras", "scratch"),
    extra_experiments={"scratch": (
        FiniteDifferenceSweep("fd_sweep", "Gradient validation: finite differences with epsilon = 1/N "
                                          "on the best model's second layer"),
    )},
    experiments=(
        Search("base", "Base run: hidden 256, ReLU, lr 1e-3, L2 1e-3, batch 32, early stopping"),
        Search("grid", "3.a Learning rate x batch size", template="effect"),
        EvaluateBest("best", "Best configuration of the grid", source="grid"),
        Search("fractions", "3.b Training on 10/20/50 % of the data (rest validation)",
               template="fractions", base_from="grid", evaluates_test=True, tuner="grid"),
    ),
    reference={
        "base": {"val_accuracy": 0.9561, "epochs_run": 274},
        "grid": {"rows": [
            {"lr": 0.01, "batch_size": 32, "val_accuracy": 0.9756},
            {"lr": 0.01, "batch_size": 64, "val_accuracy": 0.9748},
            {"lr": 0.001, "batch_size": 32, "val_accuracy": 0.9560},
            {"lr": 0.001, "batch_size": 64, "val_accuracy": 0.9528},
        ]},
        "best": {"hyperparameters": {"lr": 0.01, "l2": 0.001, "batch_size": 32, "units": 256},
                 "train_accuracy": 0.9999, "val_accuracy": 0.9757, "test_accuracy": 0.9787,
                 "best_class": {"name": "1", "accuracy": 0.9894},
                 "worst_class": {"name": "9", "accuracy": 0.9653}},
    },
)
