"""q1: a single-layer (linear softmax) classifier on MNIST (DS-265 DLCV, Assignment 1, part 1)."""

from dlcv_keras.experiments import EvaluateBest, Search, SklearnLogistic
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q1",
    title="Single-layer (linear softmax) classifier, MNIST",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="mnist",
    model="linear",
    optimizer="sgd",
    val_fraction=0.2,
    experiments=(
        Search("base", "Base run: lr 1e-4, L2 1e-3, batch 32, 80/20 train/val"),
        Search("lr_batch", "1.a Effect of learning rate and batch size", template="effect"),
        Search("full_grid", "1.a Full grid: lr x L2 x epochs x batch", template="top_table", top_k=5),
        EvaluateBest("best", "Best configuration of the full grid", source="full_grid"),
        SklearnLogistic("sklearn", "1.b scikit-learn LogisticRegression", compare_with="best"),
        Search("fractions", "1.c Training on 10/20/50 % of the data (rest validation)",
               template="fractions", base_from="full_grid", evaluates_test=True, tuner="grid"),
    ),
    reference={
        "base": {"val_accuracy": 0.8556},
        "full_grid": {"rows": [
            {"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 64, "val_accuracy": 0.9151},
            {"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 32, "val_accuracy": 0.9142},
            {"lr": 0.01, "l2": 0.001, "epochs": 50, "batch_size": 32, "val_accuracy": 0.9141},
            {"lr": 0.1, "l2": 0.001, "epochs": 50, "batch_size": 64, "val_accuracy": 0.9130},
            {"lr": 0.1, "l2": 0.001, "epochs": 100, "batch_size": 64, "val_accuracy": 0.9127},
        ]},
        "best": {"hyperparameters": {"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 64},
                 "train_accuracy": 0.9173, "val_accuracy": 0.9147, "test_accuracy": 0.9181,
                 "best_class": {"name": "0", "accuracy": 0.9786},
                 "worst_class": {"name": "5", "accuracy": 0.8666}},
        "sklearn": {"train_accuracy": 0.9365, "test_accuracy": 0.9257},
    },
)
