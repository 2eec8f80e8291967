"""q7: a two-layer network on CIFAR-10 (HLCV Exercise 2, questions 3 and 4).

First the exercise's numpy two-layer net (q6's ``TwoLayerNet``, fed pixel values 0-255 minus the
training mean image) trained by the package's own solver with a learning-rate decay per epoch:
the default run, a search over hidden size, iterations, learning rate, reg and decay (top-4
table), its best setting evaluated on the test split with its first-layer weights as images,
and three variants against the same setting, plain: PCA input, flip augmentation, early
stopping. Then Keras MLPs of 2 to 5 layers (1 to 4 hidden) as a depth search; the report says
whether deeper nets collapse to chance as the seed's did, and how much gradient reaches their
first layer. In ``quick`` the default run, the best setting and its flip variant, and the MLPs
repeat from 3 seeds, and every model is scored on all 10,000 test images, so that the lessons'
paired tests can separate a point or two.
"""

from dlcv_keras.experiments import EvaluateBest, RunComparison, Search, WeightImages
from dlcv_keras.lessons import VANISHED_SHARE, All, AtChance, Beats, GradientShare, Lesson, Model, Threshold
from dlcv_keras.questions.base import Question

NUMPY = dict(model="two_layer", implementation="scratch")
VARIANTS = (("plain", "plain"), ("pca", "PCA input"), ("flip", "flip augmentation"),
            ("early_stop", "early stopping"))
# The seed's collapsed nets: its 4- and 5-layer MLPs, 3 and 4 hidden layers here.
COLLAPSED = (3, 4)


def _layers(hidden: int) -> Model:
    return Model("depth", f"the {hidden + 1}-layer MLP", {"depth": hidden})


LESSONS = (
    Lesson("Tuning lifts accuracy well above the default run's: the search's best setting beats the exercise's "
           "default setting on the test split (each trained from several seeds; paired bootstrap over the test "
           "images and the seeds).",
           Beats(Model("plain", "the tuned best setting"), Model("default", "the default setting"))),
    Lesson("Flip augmentation helps: the best setting trained with random horizontal flips beats it trained plain "
           "on the test split (each from several seeds; paired bootstrap over the test images and the seeds).",
           Beats(Model("flip", "with flips"), Model("plain", "plain"))),
    Lesson(f"The seed's 4- and 5-layer Keras MLPs collapse to chance (about 8 %), which it puts down to gradients "
           f"vanishing: both stay at chance on the test split, and less than {100 * VANISHED_SHARE:g} % of the "
           f"output layer's mean |gradient| reaches the 5-layer MLP's first layer after training.",
           All((*(AtChance(_layers(hidden)) for hidden in COLLAPSED),
                Threshold(GradientShare("depth", "the 5-layer MLP's first-layer gradient share",
                                        {"depth": COLLAPSED[-1]}), "<", VANISHED_SHARE)))),
)

QUESTION = Question(
    name="q7",
    title="Two-layer network on CIFAR-10",
    seed_writeup="001_abbb178859d60717.txt (HLCV Exercise 2)",
    dataset="cifar10",
    model="mlp",
    optimizer="adam",                  # the Keras MLPs' (the numpy net trains with its own SGD solver)
    val_fraction=0.1,
    lessons=LESSONS,
    experiments=(
        Search("default", "3.b The default run: hidden 50, 1000 iterations, batch 200, lr 1e-4, decay 0.95, "
                          "reg 0.25", evaluates_test=True, tuner="grid", **NUMPY),
        # A random search, as the seed's 24 hand-picked experiments sampled its grid (random_trials).
        Search("search", "3.c Tuning hidden size, iterations, learning rate, reg and learning-rate decay",
               template="top_table", top_k=4, tuner="random", **NUMPY),
        EvaluateBest("best", "3.c The best setting: train, validation and test accuracy", source="search"),
        WeightImages("weights", "The best network's first-layer weights as images", source="best"),
        *(Search(name, f"The best setting, {label}", base_from="search", show=False, evaluates_test=True,
                 tuner="grid", **NUMPY) for name, label in VARIANTS),
        RunComparison("variants", "3.c With and without PCA, flip augmentation and early stopping", runs=VARIANTS),
        Search("depth", "4.c Keras MLPs of 2 to 5 layers (1 to 4 hidden)", template="depth_study",
               evaluates_test=True, tuner="grid", instruments=("gradients", "weights")),
    ),
    reference={
        "default": {"val_accuracy": 0.287},
        "search": {"rows": [
            {"units": 80, "iterations": 2000, "lr": 0.0025, "l2": 0.25, "val_accuracy": 0.497},
            {"units": 70, "iterations": 2000, "lr": 0.0025, "l2": 0.25, "val_accuracy": 0.487},
            {"units": 80, "iterations": 4500, "lr": 0.0015, "l2": 0.29, "val_accuracy": 0.53},
            {"units": 80, "iterations": 4500, "lr": 0.0025, "l2": 0.25, "val_accuracy": 0.495},
        ], "note": "24 experiments; every one with batch 1000 and learning-rate decay 0.8."},
        "best": {"hyperparameters": {"units": 80, "iterations": 4500, "batch_size": 1000, "lr": 0.0015, "l2": 0.29,
                                     "lr_decay": 0.8},
                 "val_accuracy": 0.53, "test_accuracy": 0.508},
        "weights": {"note": "The seed shows no weight images; the exercise asks for them."},
        "variants": {"note": "The seed: early stopping gave no convincing gain, PCA to about 640 components made "
                             "it slightly worse on top of L2, flip augmentation (flipped copies added to the "
                             "training data) helped; it gives no numbers for these."},
        "depth": {"rows": [
            {"depth": 1, "units": 50, "val_accuracy": 0.519, "accuracy": 0.488},
            {"depth": 1, "units": 30, "val_accuracy": 0.487, "accuracy": 0.463},
            {"depth": 1, "units": 70, "val_accuracy": 0.523, "accuracy": 0.5011},
            {"depth": 2, "units": "50,70", "val_accuracy": 0.517, "accuracy": 0.466},
            {"depth": 2, "units": 70, "val_accuracy": 0.536, "accuracy": 0.493, "test_accuracy": 0.535},
            {"depth": 3, "units": "50,70,50", "val_accuracy": 0.079, "accuracy": 0.098},
            {"depth": 4, "units": "50,70,70,50", "val_accuracy": 0.078, "accuracy": 0.099},
        ], "note": "The seed counts layers with weights (our depth + 1): its 4- and 5-layer nets fell to about 8 % "
                   "validation and 10 % training accuracy, which it puts down to gradients approaching zero. The "
                   "probe below measures how much gradient reaches the first layer: where a fair share of it "
                   "does, vanishing gradients cannot explain a collapse, which then points to the training setup "
                   "(a learning rate or initialisation the seed does not report)."},
    },
)
