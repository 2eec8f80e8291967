"""q11: Tiny-CIFAR-10 with augmentation and dropout (ELL-793, Assignment 2, part 2.3).

500 training images per class. First an augmentation ablation: none, the seed's pad-4 random
crop + horizontal flip, and the full list (adding rotation, random resized crop, colour jitter
and random grayscale). Then, with the best of those, the seed's dropout grid: after the first
convolution x before the classifier, with no dropout among the points. The best model is
stored for q12.
"""

from dlcv_keras.experiments import AugmentedExamples, EvaluateBest, Search
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q11",
    title="Tiny-CIFAR-10 with augmentation and dropout",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="tiny_cifar10",
    model="resnet18",
    optimizer="adam",
    val_fraction=0.1,
    uint8_images=True,
    experiments=(
        AugmentedExamples("examples", "2.3 What the augmentation does to training images"),
        Search("augmentation", "2.3 Augmentation: none, pad-4 crop + flip, the full list", model="resnet18",
               tuner="grid", template="curves"),
        Search("dropout", "2.3 Dropout after the first convolution x before the classifier", model="resnet18",
               tuner="grid", base_from="augmentation", keep_models=True, template="effect"),
        EvaluateBest("best", "The best dropout setting on the test split", source="dropout", save_model=True),
    ),
    reference={
        "dropout": {"rows": [{"dropout_first": 0.2, "dropout_head": 0.6}],
                    "note": "the seed's best of {0.2, 0.6, 0.8} x {0.2, 0.6, 0.8} and no dropout, chosen by the gap "
                            "between training and validation loss (it gives no accuracies)."},
    },
)
