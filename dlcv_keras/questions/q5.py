"""q5: a convolution layer trained with an L2 loss, CIFAR-10 (DS-265 DLCV, Assignment 1, part 5).

A student conv layer, weights uniform in [-1, 1], learns to reproduce a fixed conv
layer's output (L2 loss plus a 1e-3 weight penalty) on raw 0-255 pixels. Run A
(lr 1e-5, no clipping) explodes to inf and then NaN, recorded as diverged; run B clips
the gradients to [-1, 1] and compares batch sizes 1, 4 and 8.
"""

from dlcv_keras.experiments import ConvRegression
from dlcv_keras.questions.base import Question

QUESTION = Question(
    name="q5",
    title="Convolution layer with L2 loss, CIFAR-10",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="cifar10",
    model=None,
    fallback_dataset="digits",
    implementations=("scratch",),
    experiments=(
        ConvRegression("run_a", "Run A: lr 1e-5, batch 4, no clipping: exploding gradients",
                       template="conv_l2_divergence"),
        ConvRegression("run_b", "Run B: gradients clipped to [-1, 1], first 100 images, lr 1e-2, batch 1 / 4 / 8",
                       template="conv_l2_batches", compare_batch_sizes=True),
    ),
    reference={
        "run_a": {"first_loss": 1.4109762388603082e30, "first_inf_epoch": 6, "first_nan_epoch": 11,
                  "note": "the seed counts epochs from 0: loss 1.4e30 at epoch 0, inf by epoch 5, NaN at 10"},
        "run_b": {"rows": [{"batch_size": 1, "l2_norm": 429.59033361927476},
                           {"batch_size": 4, "l2_norm": 561.2261602968755},
                           {"batch_size": 8, "l2_norm": 617.4761607720582}]},
    },
)
