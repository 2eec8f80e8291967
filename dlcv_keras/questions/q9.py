"""q9: ResNet-18 from scratch on CIFAR-10 (ELL-793, Assignment 2, part 2.1).

The seed trains a ResNet-18 with the one-cycle learning-rate policy, weight decay and gradient
clipping (its log's "last_lr" lines are those of the PyTorch one-cycle recipe: Adam, OneCycleLR,
weight_decay in the optimizer, clip_grad_value_), reaching val accuracy 0.7692 after 250 epochs.
We do the same in Keras: the CIFAR ResNet-18 (3x3 stem, no max pooling), the OneCycle schedule,
PyTorch's coupled weight decay (the seed: "an extra term added to the loss") and clipping by
value. The trained model is stored for q12.
"""

from dlcv_keras.experiments import EvaluateBest, Search
from dlcv_keras.lessons import OVERFIT_RISE, Accuracy, All, Gap, Lesson, Model, NoOverfitting, Value
from dlcv_keras.questions.base import Question

# "Close": the training images' accuracy runs at most this many points ahead of the test accuracy (the
# upper end of the gap's 95 % interval). A network that memorises its training set runs far ahead.
CLOSE_POINTS = 5.0
# "Far above chance": at least five times the 10 % chance of CIFAR-10's ten classes.
FAR_ABOVE_CHANCE = 0.5

LESSONS = (
    Lesson(f"ResNet-18 trained from scratch with the one-cycle policy learns far above chance: its test accuracy is "
           f"above chance (exact binomial test) and at least {100 * FAR_ABOVE_CHANCE:g} % (five times chance).",
           Accuracy(Model("best", "the trained ResNet-18"), at_least=FAR_ABOVE_CHANCE)),
    Lesson(f"Training and held-out accuracy stay close (no overfitting): accuracy on its own training images "
           f"(without augmentation) runs at most {CLOSE_POINTS:g} points ahead of its test accuracy (the upper end of "
           f"the gap's 95 % interval), and its validation loss at the last epoch is at most {100 * OVERFIT_RISE:.0f} % "
           f"above its minimum (the seed's criterion: both losses keep falling).",
           All((Gap(Value("best", "train_accuracy", "training accuracy"), Model("best", "test accuracy"), CLOSE_POINTS),
                NoOverfitting(Model("scratch", "the one-cycle run"))))),
)

QUESTION = Question(
    name="q9",
    title="ResNet-18 from scratch, CIFAR-10",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="cifar10",
    model="resnet18",
    optimizer="adam",
    val_fraction=0.1,
    uint8_images=True,
    lessons=LESSONS,
    experiments=(
        Search("scratch", "2.1 ResNet-18 from scratch: one-cycle learning rate, weight decay, gradient clipping",
               model="resnet18", tuner="grid", keep_models=True),
        EvaluateBest("best", "The trained ResNet-18 on the test split", source="scratch", save_model=True),
    ),
    reference={
        "scratch": {"val_accuracy": 0.7692, "epochs_run": 250,
                    "note": "Epoch [249], last_lr: 0.00000, train_loss: 1.5164, val_loss: 1.6909, val_acc: 0.7692"},
        "best": {"val_accuracy": 0.7692},
    },
)
