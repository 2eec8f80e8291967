"""q18: cats vs dogs (IFT6135-H2019, Assignment 1, part 3).

64x64 colour images (``--image-size`` changes it), a VGG-style network (3x3 convolutions, 2x2
max pooling, FC 4096-4096-2 at full width), the seed's augmentation (rotation 10 degrees,
horizontal flip, random resized crop 0.8-1, colour jitter, random grayscale p 0.2), dropout 0.5,
SGD with momentum 0.9, L2 1.5e-3, ReduceLROnPlateau (factor 0.05, patience 10) and early
stopping. A coarse random search, then a fine one around its best; the best model is evaluated
and its most confident mistakes shown.
"""

from dlcv_keras.experiments import EvaluateBest, MisclassifiedGallery, Search
from dlcv_keras.questions.base import Question

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
    experiments=(
        Search("coarse", "3 Coarse random search: learning rate and L2 lambda over wide ranges", model="vgg",
               tuner="random", template="effect"),
        Search("fine", "3 Fine random search around the coarse search's best", model="vgg", tuner="random",
               narrow_from="coarse", keep_models=True, template="top_table"),
        EvaluateBest("best", "The best setting on the test split", source="fine"),
        MisclassifiedGallery("gallery", "3 Misclassified test images", source="best"),
    ),
    reference={
        "coarse": {"rows": [{"lr": 0.01, "l2": 0.0015, "val_accuracy": 0.93}],
                   "note": "the seed's final setting."},
        "fine": {"rows": [{"lr": 0.01, "l2": 0.0015, "val_accuracy": 0.93}]},
        "best": {"hyperparameters": {"lr": 0.01, "l2": 0.0015, "dropout": 0.5, "momentum": 0.9},
                 "val_accuracy": 0.93, "test_accuracy": 0.944},
    },
)
