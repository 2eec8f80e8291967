"""q11: Tiny-CIFAR-10 with augmentation and dropout (ELL-793, Assignment 2, part 2.3).

500 training images per class. First an augmentation ablation: none, the seed's pad-4 random
crop + horizontal flip, and the full list (adding rotation, random resized crop, colour jitter
and random grayscale). Then the seed's dropout grid, after the first convolution x before the
classifier, on the network without augmentation: dropout is a regulariser, and it is there that
the network overfits. (Measured in quick: with crop + flip the short runs still underfit, and
dropout 0.2 / 0.6 lowered the test accuracy from 50.2 % to 35.6 %; without augmentation it raised
it from 41.2 % to 43.7 %, and 0.2 / 0.2 to 45.7 %.) The dropout grid's best model is stored for q12.
"""

from dlcv_keras.experiments import AugmentedExamples, EvaluateBest, Search
from dlcv_keras.lessons import OVERFIT_RISE, Beats, Lesson, Model, Overfits
from dlcv_keras.questions.base import Question

NO_AUGMENTATION = Model("augmentation", "no augmentation", {"augment": "none"})
# The same trained network, as the dropout grid's reference: no augmentation and no dropout.
NO_DROPOUT = Model("augmentation", "no dropout (and no augmentation)", {"augment": "none"})

LESSONS = (
    Lesson("Without augmentation the network overfits Tiny-CIFAR-10: its validation loss rises after its minimum "
           f"(more than {100 * OVERFIT_RISE:.0f} % above it at the last epoch).",
           Overfits(NO_AUGMENTATION)),
    Lesson("Augmentation beats none on Tiny-CIFAR-10: trained for the same epochs, the seed's pad-4 random crop + "
           "horizontal flip beats no augmentation on the test split.",
           Beats(Model("augmentation", "crop + flip", {"augment": "crop+flip"}), NO_AUGMENTATION)),
    Lesson("Some dropout beats none: without augmentation, where the network overfits, the dropout search's best "
           "setting (chosen on validation; quick tries one, 0.2 after the first convolution and 0.2 before the "
           "classifier) beats the same network without dropout, trained for the same epochs, on the test split.",
           Beats(Model("dropout", "the best dropout setting"), NO_DROPOUT)),
)

QUESTION = Question(
    name="q11",
    title="Tiny-CIFAR-10 with augmentation and dropout",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="tiny_cifar10",
    model="resnet18",
    optimizer="adam",
    val_fraction=0.1,
    uint8_images=True,
    lessons=LESSONS,
    experiments=(
        AugmentedExamples("examples", "2.3 What the augmentation does to training images"),
        Search("augmentation", "2.3 Augmentation: none, pad-4 crop + flip, the full list", model="resnet18",
               tuner="grid", template="curves", evaluates_test=True),
        Search("dropout", "2.3 Dropout after the first convolution x before the classifier, without augmentation",
               model="resnet18", tuner="grid", base_from="augmentation", keep_models=True, template="effect",
               evaluates_test=True),
        EvaluateBest("best", "The best dropout setting on the test split", source="dropout", save_model=True),
    ),
    reference={
        "dropout": {"rows": [{"dropout_first": 0.2, "dropout_head": 0.6}],
                    "note": "the seed's best of {0.2, 0.6, 0.8} x {0.2, 0.6, 0.8} and no dropout, chosen by the gap "
                            "between training and validation loss (it gives no accuracies)."},
    },
)
