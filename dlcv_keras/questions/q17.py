"""q17: CNN vs MLP on MNIST (IFT6135-H2019, Assignment 1, part 2).

The seed's CNN (1->18->36->72->72, 3x3 convs, max pooling after conv 2, 3 and 4, FC 648-750-10:
570,436 parameters) and its tiny CNN (2,066 parameters) against the best MLP of q16 (our q16's
widths when its run of the same profile is in the results folder, else the seed's 512-512), each
trained 10 epochs and scored on the test split; then both CNNs trained longer (100 epochs in
``full``) for their learning curves. Labels and the per-layer parameter table are read from the
trained models.
"""

from dlcv_keras.experiments import ParameterTable, RunComparison, Search
from dlcv_keras.experiments.search import Borrow
from dlcv_keras.lessons import Beats, Lesson, Model
from dlcv_keras.questions.base import Question

# Labels are filled in from each run's stored model (RunComparison): its parameter count, and for the MLP
# its widths and where they came from.
CNN, TINY = "CNN ({params} parameters)", "tiny CNN ({params} parameters)"
TEN_EPOCHS = (("cnn", CNN), ("tiny_cnn", TINY), ("mlp", "MLP {units_1}-{units_2}, {source} ({params} parameters)"))
LONG = (("cnn_long", CNN), ("tiny_cnn_long", TINY))
# What the seed does not say about training its CNNs.
CNN_UNSTATED = ("optimizer", "learning rate", "batch size")
Q16_BEST = Borrow("q16", "search", ("units_1", "units_2"), found="our q16's best",
                  otherwise="the seed's q16 best")

LESSONS = (
    Lesson("After 10 epochs each, the CNN (570,436 parameters) beats the MLP (q16's best: the seed's 512-512, "
           "669,706 parameters, or our q16's widths when its run is stored) on the test split (paired, McNemar).",
           Beats(Model("cnn", "the CNN"), Model("mlp", "the MLP"))),
    Lesson("After 10 epochs each, the tiny CNN, with 2,066 parameters, beats the MLP (q16's best, with hundreds of "
           "thousands) on the test split (paired, McNemar).",
           Beats(Model("tiny_cnn", "the tiny CNN"), Model("mlp", "the MLP"))),
    Lesson("The full CNN beats its 2,066-parameter version after the same 10 epochs (the seed: 98.59 % against "
           "97.1 %), on the test split (paired, McNemar).",
           Beats(Model("cnn", "the CNN"), Model("tiny_cnn", "the tiny CNN"))),
)

QUESTION = Question(
    name="q17",
    title="CNN vs MLP, MNIST",
    seed_writeup="004_9963c858e23e4d1d.txt (IFT6135-H2019, Assignment 1)",
    dataset="mnist",
    model="cnn",
    optimizer="sgd",
    val_fraction=1 / 6,
    uint8_images=True,
    lessons=LESSONS,
    experiments=(
        Search("cnn", "The CNN, 10 epochs", model="cnn", show=False, evaluates_test=True, tuner="grid"),
        Search("tiny_cnn", "The tiny CNN, 10 epochs", model="tiny_cnn", show=False, evaluates_test=True, tuner="grid"),
        Search("mlp", "The best q16 MLP, 10 epochs", model="mlp", show=False, evaluates_test=True, tuner="grid",
               borrow=Q16_BEST),
        ParameterTable("parameters", "2.a The two CNNs, layer by layer",
                       models=(("cnn", "CNN 1-18-36-72-72, FC 648-750-10"), ("tiny_cnn", "tiny CNN"))),
        RunComparison("compare", "2.a CNN vs tiny CNN vs MLP: test accuracy after 10 epochs", runs=TEN_EPOCHS),
        Search("cnn_long", "The CNN, long run", model="cnn", show=False, evaluates_test=True, tuner="grid"),
        Search("tiny_cnn_long", "The tiny CNN, long run", model="tiny_cnn", show=False, evaluates_test=True,
               tuner="grid"),
        RunComparison("curves", "2.b Learning curves of both CNNs (100 epochs in full)", runs=LONG),
    ),
    reference={
        "parameters": {"totals": {"cnn": 570436, "tiny_cnn": 2066}},
        "compare": {"rows": [
            # The CNNs' optimizer settings are ours (tuners/q17.toml): near the seed's is consistent, not reproduced.
            {"experiment": "cnn", "test_accuracy": 0.9859, "unstated": CNN_UNSTATED},
            {"experiment": "tiny_cnn", "test_accuracy": 0.971, "unstated": CNN_UNSTATED},
            {"experiment": "mlp", "test_accuracy": 0.94},
        ], "note": "10 epochs each. The seed's MLP is its q16 best, 512-512 (669,706 parameters); its figure is "
                   "the text's \"around 94 % after 10 epochs\" (97.33 % after its 60 epochs in q16). Our MLP has "
                   "our q16's widths when our q16 run of the same profile is stored, else the seed's. The seed "
                   "gives no optimizer settings for the CNNs; tuners/q17.toml says what we chose."},
        "curves": {"note": "the seed shows 100-epoch learning curves for both CNNs and no test numbers for them."},
    },
)
