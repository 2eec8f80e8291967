"""q14: regularisation on Gurmukhi digits (Programming Assignment 1, question 2).

An MLP of 6 hidden layers of 256 (ReLU, Adam 1e-3, full batch, 150 epochs in ``full``) on 900
training and 100 validation images, tested on the 178 of the val/ folder: baseline vs L1 vs L2
vs dropout. 178 test images make one run's accuracy move by whole points from seed to seed, so
each setting runs from several seeds (``repeat``) and the comparison shows mean and spread; the
lessons compare the runs image by image over all their seeds (a paired bootstrap over the test
images and the seeds), which is what can tell a gap of one or two images from noise. A search
over the L1 and L2 lambdas and the dropout rate follows.
"""

from dlcv_keras.experiments import RunComparison, Search
from dlcv_keras.lessons import OVERFIT_RISE, Beats, Lesson, Model, Overfits, Ranking
from dlcv_keras.questions.base import Question

RUNS = (("baseline", "baseline"), ("l1", "L1"), ("l2", "L2"), ("dropout", "dropout"))
# Each run is one setting from several seeds (a repeat grid): every seed's predictions count.
RUN = {name: Model(name, label) for name, label in RUNS}

LESSONS = (
    Lesson("Dropout > L2 > L1 on test accuracy, across seeds: dropout beats L2 and L2 beats L1 on the 178 test "
           "images (paired bootstrap over the images and the seeds).",
           Ranking((RUN["dropout"], RUN["l2"], RUN["l1"]))),
    Lesson("Without regularisation the 6-hidden-layer net overfits its 900 training images: the baseline's "
           f"validation loss rises after its minimum (more than {100 * OVERFIT_RISE:.0f} % above it at the last "
           "epoch, in its first seed).",
           Overfits(RUN["baseline"])),
    Lesson("Dropout raises the accuracy of the unregularised net: dropout beats the baseline on the test split "
           "(paired bootstrap over the images and the seeds).",
           Beats(RUN["dropout"], RUN["baseline"])),
    Lesson("L2 raises the accuracy to some extent: L2 beats the baseline on the test split (paired bootstrap over "
           "the images and the seeds).",
           Beats(RUN["l2"], RUN["baseline"])),
    Lesson("L1 lowers the accuracy (the worst of all): the baseline beats L1 on the test split (paired bootstrap "
           "over the images and the seeds).",
           Beats(RUN["baseline"], RUN["l1"])),
)

QUESTION = Question(
    name="q14",
    title="Regularisation, Gurmukhi digits",
    seed_writeup="003_22c6e2386fbda391.txt (Programming Assignment 1, question 2)",
    dataset="gurmukhi",
    model="mlp",
    optimizer="adam",
    val_fraction=0.1,                  # the seed's 900/100 split of the 1000 training images
    lessons=LESSONS,
    experiments=(
        *(Search(name, f"Training with {label}", show=False, evaluates_test=True, tuner="grid")
          for name, label in RUNS),
        RunComparison("compare", "2. Baseline vs L1 vs L2 vs dropout, from several seeds each", runs=RUNS),
        Search("regularisers", "Search over the L1 and L2 lambdas and the dropout rate", template="effect",
               evaluates_test=True),
    ),
    reference={
        "compare": {"ranking": ["dropout", "L2", "L1"],
                    "note": "The seed ranks dropout > L2 > L1 from one run each, curves only (no test numbers): "
                            "dropout narrows the train-validation gap and raises accuracy, L2 less so, L1 lowers "
                            "accuracy. Its coefficients: L1 1e-3, L2 1 (as a Keras penalty, 1 * sum(w^2) holds every "
                            "weight near zero; tuners/q14.toml says what we use), dropout 0.2."},
    },
)
