"""q1: a single-layer (linear softmax) classifier on MNIST (DS-265 DLCV, Assignment 1, part 1)."""

from dlcv_keras.experiments import EvaluateBest, Search, SklearnLogistic
from dlcv_keras.lessons import OVERFIT_RISE, All, Beats, Lesson, Model, NoOverfitting, NoWorse, Rises
from dlcv_keras.questions.base import Question


def _lr(lr: float, **more) -> Model:
    """The lr x batch grid's best trial at ``lr`` (over the batch sizes, unless ``more`` pins one)."""
    pinned = "".join(f", batch {v}" for v in more.values())
    return Model("lr_batch", f"lr {lr:g}{pinned}", {"lr": lr, **more})


def _fraction(share: float) -> Model:
    return Model("fractions", f"{100 * share:g} % of the data", {"train_fraction": share})


LESSONS = (
    Lesson("Trained for the seed's 50 epochs with λ 1e-3, learning rate 1e-2 is the best of the grid lr {1e-2, 1e-3, "
           "1e-4} x batch {32, 64, 128}: its best setting beats the best of each smaller rate on the test split.",
           All((Beats(_lr(1e-2), _lr(1e-3)), Beats(_lr(1e-2), _lr(1e-4))))),
    Lesson("At a fixed number of epochs a larger batch is no better: at lr 1e-2, batch 128 does not beat batch 32 "
           "(batch 32 is no worse than batch 128).",
           NoWorse(_lr(1e-2, batch_size=32), _lr(1e-2, batch_size=128))),
    Lesson("More training data gives higher test accuracy: training on 50 % of the data beats 10 %, and no larger "
           "share is significantly worse than the next smaller one (paired tests on the test split).",
           Rises((_fraction(0.1), _fraction(0.2), _fraction(0.5)))),
    # Judged on the grid's best setting at the seed's epochs, a model that learned (the base run's lr 1e-4 is
    # still far from trained at 50 epochs, so its loss could not have risen yet).
    Lesson("The linear model does not overfit: at lr 1e-2 with batch 32 (the seed's 50 epochs), the validation loss "
           f"at the last epoch is at most {100 * OVERFIT_RISE:.0f} % above its minimum (in every seed the run stores).",
           NoOverfitting(_lr(1e-2, batch_size=32))),
)

QUESTION = Question(
    name="q1",
    title="Single-layer (linear softmax) classifier, MNIST",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="mnist",
    model="linear",
    optimizer="sgd",
    val_fraction=0.2,
    lessons=LESSONS,
    experiments=(
        Search("base", "Base run: lr 1e-4, L2 1e-3, batch 32, 80/20 train/val"),
        Search("lr_batch", "1.a Effect of learning rate and batch size", template="effect", evaluates_test=True),
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
