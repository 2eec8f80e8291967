"""q12: activation maps (ELL-793, Assignment 2, part 2.4).

For a few CIFAR-10 test images, the activations of an early layer (right after the first
convolution) and a late one (the last feature map) of the models q9, q10 and q11 stored, as
image grids, and each model's first-layer filters. Run q9, q10 and q11 first (same profile).
What the seed says of them (early layers keep the image's detail and edges, late ones are coarse)
is measured on every test image of the run and every channel (activation_maps.MapStatistics), and
the observations and lessons are read from those numbers.
"""

from dlcv_keras.experiments import ActivationMaps
from dlcv_keras.experiments.activation_maps import DETAIL_PATCH
from dlcv_keras.lessons import All, Lesson, Ordered, Threshold, Value
from dlcv_keras.questions.base import Question

SOURCES = (("q9", "best", "q9: ResNet-18 from scratch"),
           ("q10", "best", "q10: ResNet-18 fine-tuned from pretrained weights"),
           ("q11", "best", "q11: ResNet-18 on Tiny-CIFAR-10 with dropout"))
# "Coarse": one late-map value stands for a patch of at least this many input pixels across.
COARSE_STRIDE = 4


def _measured(question: str, layer: str, key: str, words: str) -> Value:
    """A statistic the maps experiment measured (activation_maps.MapStatistics) for one model's layer."""
    return Value("maps", f"statistics.{question}.{layer}.{key}", f"{question}'s {layer} maps' {words}")


_INPUT_DETAIL = Value("maps", "statistics.input.detail", "the input images' fine detail")

LESSONS = (
    Lesson(f"Early-layer maps keep spatial detail: in each model (q9, q10, q11), the early maps (right after the first "
           f"convolution) hold a larger share of their variance in detail finer than {DETAIL_PATCH} x {DETAIL_PATCH}-pixel "
           f"patches than the input images themselves (measured over every test image and channel).",
           All(tuple(Ordered((_INPUT_DETAIL, _measured(q, "early", "detail", "fine detail"))) for q, _, _ in SOURCES))),
    Lesson(f"Late-layer maps are coarse: in each model the last feature maps hold one value per patch of at least "
           f"{COARSE_STRIDE} x {COARSE_STRIDE} input pixels (measured from the maps' size), and a smaller share of "
           f"their variance in detail finer than {DETAIL_PATCH} x {DETAIL_PATCH}-pixel patches than the early maps.",
           All(tuple(check for q, _, _ in SOURCES for check in (
               Threshold(_measured(q, "late", "stride", "stride (input pixels per value)"), ">=", COARSE_STRIDE),
               Ordered((_measured(q, "late", "detail", "fine detail"), _measured(q, "early", "detail", "fine detail"))))))),
)

QUESTION = Question(
    name="q12",
    title="Activation maps",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="cifar10",
    model="resnet18",
    val_fraction=0.1,
    uint8_images=True,
    lessons=LESSONS,
    experiments=(
        ActivationMaps("maps", "2.4 Activations of early and late layers, and the first-layer filters",
                       sources=SOURCES),
    ),
)
