"""q10: ResNet-18 from pretrained weights on CIFAR-10 (ELL-793, Assignment 2, part 2.2).

The starting weights come from ``--weights``, keras-hub's ImageNet ResNet-18 when online, or,
offline, a source checkpoint this package trains on CIFAR-10 classes 0-4 (the target task then
being classes 5-9; experiments/pretrained_source.py says why, and a banner says so). Three ways
of using them are compared with the same model trained from scratch: a frozen backbone (only the
classifier trains), a full fine-tune, and a 10x lower learning rate for the early layers. Then
the seed's grid over max_lr x grad_clip x weight decay (full fine-tune), whose best model is
stored for q12.

In quick the target task is a small one (the source table's ``target_per_class``: 50 training
images per class): transfer pays when the target has few images and the source learned from many
more. With 1,800 target images and a 5-epoch source, training from scratch matched every way of
using the weights.
"""

from dlcv_keras.experiments import EvaluateBest, PretrainedSource, RunComparison, Search
from dlcv_keras.lessons import Beats, Lesson, Model
from dlcv_keras.questions.base import Question

MODES = (("frozen", "frozen backbone"), ("finetune", "full fine-tune"),
         ("layerwise", "lower lr for early layers"), ("scratch", "from scratch (no pretrained weights)"))

FINETUNE = Model("finetune", "the full fine-tune")

LESSONS = (
    Lesson("Starting from pretrained weights beats training from scratch at equal epochs: on the small target set, "
           "fine-tuning the pretrained ResNet-18 beats the same network trained from random weights with the same "
           "settings, on the test split.",
           Beats(FINETUNE, Model("scratch", "from scratch"))),
    Lesson("Fine-tuning beats a frozen backbone: fine-tuning every layer beats training only the classifier on the "
           "frozen pretrained features, with the same settings, on the test split.",
           Beats(FINETUNE, Model("frozen", "the frozen backbone"))),
)

QUESTION = Question(
    name="q10",
    title="ResNet-18 from pretrained weights, CIFAR-10",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="cifar10",
    model="resnet18_transfer",
    optimizer="adam",
    val_fraction=0.1,
    uint8_images=True,
    options=("weights", "image_size"),
    lessons=LESSONS,
    experiments=(
        PretrainedSource("source", "2.2 The pretrained weights"),
        *(Search(name, label, model="resnet18_transfer", show=False, evaluates_test=True, tuner="grid")
          for name, label in MODES[:3]),
        Search("scratch", MODES[3][1], model="resnet18", show=False, evaluates_test=True, tuner="grid"),
        RunComparison("compare", "2.2 Ways of using the pretrained weights, and the same model from scratch",
                      runs=MODES),
        Search("grid", "2.2 Grid over max_lr x grad_clip x weight decay (full fine-tune)", model="resnet18_transfer",
               tuner="grid", keep_models=True, template="top_table", top_k=8),
        EvaluateBest("best", "The grid's best setting on the test split", source="grid", save_model=True),
    ),
    reference={
        "compare": {"note": "the seed fine-tunes the whole network from ImageNet weights (100 epochs per setting) "
                            "and reports no accuracies for other ways of using them."},
        "grid": {"rows": [{"max_lr": 0.06, "grad_clip": 0.6, "weight_decay": 0.0006}],
                 "note": "the seed's best of its eight settings (chosen by the gap between training and validation "
                         "loss; it gives no accuracies)."},
    },
)
