"""q12: activation maps (ELL-793, Assignment 2, part 2.4).

For a few CIFAR-10 test images, the activations of an early layer (right after the first
convolution) and a late one (the last feature map) of the models q9, q10 and q11 stored, as
image grids, and each model's first-layer filters. Run q9, q10 and q11 first (same profile).
"""

from dlcv_keras.experiments import ActivationMaps
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q12",
    title="Activation maps",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="cifar10",
    model="resnet18",
    val_fraction=0.1,
    uint8_images=True,
    experiments=(
        ActivationMaps("maps", "2.4 Activations of early and late layers, and the first-layer filters",
                       sources=(("q9", "best", "q9: ResNet-18 from scratch"),
                                ("q10", "best", "q10: ResNet-18 fine-tuned from pretrained weights"),
                                ("q11", "best", "q11: ResNet-18 on Tiny-CIFAR-10 with augmentation and dropout"))),
    ),
)
