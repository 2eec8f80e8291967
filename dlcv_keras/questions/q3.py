"""q3: a two-layer MLP on MNIST with q3's early-stopping rule (DS-265 DLCV, Assignment 1, part 3).

This is the package's main job (``python -m dlcv_keras.run q3``): when MNIST cannot be
had at all it runs on scikit-learn's bundled digits, and says so loudly. q1's linear model is
trained on the same data (q1's best setting), so that the lessons compare the two on the same
test images; the grid and the training subsets run from several seeds each (tuners/q3.toml).
"""

from dlcv_keras.experiments import EvaluateBest, FiniteDifferenceSweep, Search
from dlcv_keras.lessons import (NOT_REPRODUCED, REPRODUCED, All, Beats, Computed, Lesson, Model, NoWorse,
                                NotComparable, Outcome, Rises)
from dlcv_keras.questions.base import Question

FRACTIONS = (0.1, 0.2, 0.5)


def _grid(lr: float, batch_size: int) -> Model:
    """One setting of the lr x batch grid, every seed of it."""
    return Model("grid", f"lr {lr:g}, batch {batch_size}", {"lr": lr, "batch_size": batch_size})


def _fraction(share: float) -> Model:
    return Model("fractions", f"{100 * share:g} % of the data", {"train_fraction": share})


def loss_gap_shrinks_with_data(stored) -> Outcome:
    """Validation loss minus training loss at each run's last epoch, per training share: it falls from each
    share to the next larger one in every seed (the larger share's largest gap is below the smaller share's
    smallest), so the fall is more than the seed-to-seed spread."""
    gaps = {}
    for share in FRACTIONS:
        model = _fraction(share)
        rows = model.trials(stored)
        if any(r.get("loss") is None or r.get("val_loss") is None for r in rows):
            raise NotComparable(f"{model.label} stored no final training and validation loss")
        gaps[share] = [float(r["val_loss"]) - float(r["loss"]) for r in rows]
    text = " → ".join(f"{100 * share:g} %: {sum(g) / len(g):.4f} ({min(g):.4f} to {max(g):.4f}, {len(g)} "
                      f"seed{'s' if len(g) > 1 else ''})" for share, g in gaps.items())
    text = f"validation minus training loss at the last epoch, {text}"
    numbers = {"gaps": {f"{share:g}": g for share, g in gaps.items()}}
    overlaps = [f"{100 * b:g} % ({max(gaps[b]):.4f}) is not below {100 * a:g} % ({min(gaps[a]):.4f}) in every seed"
                for a, b in zip(FRACTIONS, FRACTIONS[1:]) if not max(gaps[b]) < min(gaps[a])]
    if overlaps:
        return Outcome(NOT_REPRODUCED, text, numbers, "; ".join(overlaps))
    return Outcome(REPRODUCED, text, numbers)


LESSONS = (
    Lesson("The two-layer MLP beats q1's linear softmax classifier on the same data: the grid's best MLP setting "
           "against the linear model trained with q1's seed's best setting (lr 1e-2, λ 1e-3, batch 64, 100 epochs), "
           "every seed of each, on the test split.",
           Beats(Model("grid", "the MLP (the grid's best setting)"), Model("linear", "the linear model"))),
    Lesson("Learning rate 1e-2 with batch 32 leads the grid lr {1e-2, 1e-3} x batch {32, 64}: on the test split it "
           "beats both settings at lr 1e-3 and is no worse than batch 64 at lr 1e-2.",
           All((Beats(_grid(1e-2, 32), _grid(1e-3, 32)), Beats(_grid(1e-2, 32), _grid(1e-3, 64)),
                NoWorse(_grid(1e-2, 32), _grid(1e-2, 64))))),
    Lesson("At a fixed learning rate a larger batch is no better (the seed saw a slight decrease from batch 32 to 64 "
           "at both rates): on the test split batch 32 is no worse than batch 64, at lr 1e-2 and at lr 1e-3.",
           All((NoWorse(_grid(1e-2, 32), _grid(1e-2, 64)), NoWorse(_grid(1e-3, 32), _grid(1e-3, 64))))),
    Lesson("More training data gives higher test accuracy: training on 50 % of the data beats 10 %, and no larger "
           "share is significantly worse than the next smaller one (paired tests on the test split).",
           Rises(tuple(_fraction(share) for share in FRACTIONS))),
    Lesson("With less data the net overfits more (the seed: the gap between the training and validation loss "
           "curves shrinks as the training share grows): at the last epoch, validation loss minus training loss "
           "falls from 10 % to 20 % to 50 % of the data, in every seed.",
           Computed(loss_gap_shrinks_with_data)),
)

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
    lessons=LESSONS,
    extra_experiments={"scratch": (
        FiniteDifferenceSweep("fd_sweep", "Gradient validation: finite differences with epsilon = 1/N "
                                          "on the best model's second layer"),
    )},
    experiments=(
        Search("base", "Base run: hidden 256, ReLU, lr 1e-3, L2 1e-3, batch 32, early stopping"),
        # q1's model on q3's data, so that the two are compared on the same test images. Trained as q1
        # trains it (every epoch, no stopping rule); Keras in either implementation.
        Search("linear", "q1's linear model on the same data: q1's best setting (lr 1e-2, L2 1e-3, batch 64, "
                         "100 epochs), scored on the test split", model="linear", evaluates_test=True, tuner="grid",
               early_stopping=False, implementation="keras"),
        Search("grid", "3.a Learning rate x batch size", template="effect", evaluates_test=True, tuner="grid"),
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
