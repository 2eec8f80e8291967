"""q18: cats vs dogs (IFT6135-H2019, Assignment 1, part 3).

64x64 colour images (``--image-size`` changes it), a VGG-style network (3x3 convolutions, 2x2
max pooling, FC 4096-4096-2 at full width), the seed's augmentation (rotation 10 degrees,
horizontal flip, random resized crop 0.8-1, colour jitter, random grayscale p 0.2), dropout 0.5,
SGD with momentum 0.9, L2 1.5e-3, ReduceLROnPlateau (factor 0.05, patience 10) and early
stopping. A coarse random search, then a fine one around its best; the best model is evaluated
and its most confident mistakes shown. The ``quick`` recipe (tuners/q18.toml) adds batch
normalisation and says what else it changes from the seed, and why.
"""

from dlcv_keras.experiments import EvaluateBest, MisclassifiedGallery, Search
from dlcv_keras.lessons import Accuracy, Lesson, Model, NoWorse
from dlcv_keras.questions.base import Question

LESSONS = (
    Lesson("The VGG-style net learns cats vs dogs far above chance: the best setting of the coarse-to-fine search "
           "reaches at least 70 % test accuracy (and beats 50 % by an exact binomial test).",
           Accuracy(Model("best", "the best model"), at_least=0.70)),
    Lesson("Going from the coarse search to the fine one (narrower ranges around the coarse best, trained longer) "
           "loses nothing: the fine search's best setting, chosen on validation, is no worse than the coarse "
           "search's best on the test split (paired; the 95 % interval of the difference stays above -1 point).",
           NoWorse(Model("fine", "the fine search's best"), Model("coarse", "the coarse search's best"))),
)

QUESTION = Question(
    name="q18",
    title="Cats vs dogs",
    seed_writeup="004_9963c858e23e4d1d.txt (IFT6135-H2019, Assignment 1)",
    dataset="cats_vs_dogs",
    model="vgg",
    optimizer="sgd",
    val_fraction=0.1,
    uint8_images=True,
    options=("image_size",),
    lessons=LESSONS,
    experiments=(
        Search("coarse", "3 Coarse random search: learning rate and L2 lambda over wide ranges", model="vgg",
               tuner="random", template="effect", evaluates_test=True),
        Search("fine", "3 Fine random search around the coarse search's best", model="vgg", tuner="random",
               narrow_from="coarse", keep_models=True, template="top_table", evaluates_test=True),
        EvaluateBest("best", "The best setting on the test split", source="fine"),
        MisclassifiedGallery("gallery", "3 Misclassified test images", source="best"),
    ),
    reference={
        "coarse": {"rows": [{"lr": 0.01, "l2": 0.0015, "val_accuracy": 0.93}],
                   "note": "the seed's final setting: SGD lr 0.01 (momentum 0.9), L2 1.5e-3, dropout 0.5, its whole "
                           "augmentation list, ReduceLROnPlateau and early stopping, at full width on 19,998 "
                           "training images. The quick profile trains a net 1/8 as wide on 900, for about 110 "
                           "epochs in all, and so differs: batch normalisation after each conv, a one-cycle "
                           "learning rate (its peak, max_lr, is searched instead of lr), no dropout, short coarse "
                           "trials (8 epochs) and long fine ones (45); the seed's whole augmentation list stays "
                           "(tuners/q18.toml says why, with what each change measured)."},
        "fine": {"rows": [{"lr": 0.01, "l2": 0.0015, "val_accuracy": 0.93}]},
        "best": {"hyperparameters": {"lr": 0.01, "l2": 0.0015, "dropout": 0.5, "momentum": 0.9},
                 "val_accuracy": 0.93, "test_accuracy": 0.944},
    },
)
