"""q15: weight initialisation on an MNIST MLP (IFT6135-H2019, Assignment 1, problem 1.a).

The seed's MLP (two hidden layers, ReLU, SGD) trained from zero, standard normal and Glorot
initial weights, plus He: loss and accuracy curves side by side. The layer probe
(training/instruments.py) measures each layer's activations at initialisation and, every
epoch, how far apart a layer's units are: with zero weights every unit of a layer stays the
same unit, which is why that network cannot learn. A second, 10-layer network shows how each
initialisation scales the activations layer after layer.
"""

from dlcv_keras.experiments import Search
from dlcv_keras.lessons import (NOT_REPRODUCED, OVERFIT_RISE, REPRODUCED, Accuracy, All, AtChance, Computed, LateGain,
                                Lesson, Model, NoOverfitting, NotComparable, Outcome)
from dlcv_keras.questions.base import Question

ZEROS, NORMAL, GLOROT = (Model("init", label, {"initializer": name}) for name, label in (
    ("zeros", "zero init"), ("standard_normal", "N(0, 1) init"), ("glorot_uniform", "Glorot init")))


def zero_init_units_stay_identical(stored) -> Outcome:
    """Every seed of the zero-initialised net: the layer probe's unit spread (the largest difference between two
    units' incoming weights) is exactly 0 in every layer, at initialisation and after every epoch."""
    rows = stored.experiment("init").get("layer_stats") or []
    parts, spread = [], []
    for trial in ZEROS.trials(stored):
        mine = [r for r in rows if str(r.get("trial_id")) == str(trial["trial_id"]) and r.get("unit_spread") is not None]
        if not mine:
            raise NotComparable(f"the layer probe stored no unit spread for {ZEROS.label} (trial {trial['trial_id']})")
        largest = max(float(r["unit_spread"]) for r in mine)
        spread.append(largest)
        parts.append(f"seed {trial.get('repeat', 0)}: {len({r['layer'] for r in mine})} layers, epochs 0-"
                     f"{max(int(r['epoch']) for r in mine)}, largest unit spread {largest:g}")
    text = f"{ZEROS.label}: " + "; ".join(parts)
    if max(spread) == 0:
        return Outcome(REPRODUCED, text, {"largest_unit_spread": 0.0})
    return Outcome(NOT_REPRODUCED, text, {"largest_unit_spread": max(spread)},
                   f"the units of {ZEROS.label} drew apart (unit spread {max(spread):g}): they are not identical")


LESSONS = (
    Lesson("Zero initialisation does not learn: every unit of a layer stays the same unit (the largest difference "
           "between two units' incoming weights, measured at every epoch, stays exactly 0), and on the test split "
           "the net is at chance (no better than always answering the most common class).",
           All((Computed(zero_init_units_stay_identical), AtChance(ZEROS)))),
    Lesson("N(0, 1) initialisation learns, but plateaus early (the seed: its validation curves level off after "
           "about 4 epochs): its test accuracy is above chance, and from the middle epoch to the last its validation "
           "accuracy gains at most 1 point even at the upper end of its noise (the gain plus its 95 % margin, over "
           "the seeds when there are several).",
           All((Accuracy(NORMAL), LateGain(NORMAL, improving=False)))),
    Lesson("Glorot initialisation keeps improving: from the middle epoch to the last its validation accuracy "
           "still gains more than 1 point and more than its noise (the 95 % margin, over the seeds when there are "
           f"several), and in no seed does its validation loss end more than {100 * OVERFIT_RISE:.0f} % above its "
           "minimum.",
           All((LateGain(GLOROT), NoOverfitting(GLOROT)))),
)

QUESTION = Question(
    name="q15",
    title="Weight initialisation, MNIST MLP",
    seed_writeup="004_9963c858e23e4d1d.txt (IFT6135-H2019, Assignment 1)",
    dataset="mnist",
    model="mlp",
    optimizer="sgd",
    val_fraction=1 / 6,                # MNIST's 60k training images as 50k/10k, as the assignment
    lessons=LESSONS,
    experiments=(
        Search("init", "1.a Zero vs normal vs Glorot vs He initialisation", template="init_study",
               evaluates_test=True, tuner="grid", instruments=("activations", "weights", "symmetry", "gradients")),
        Search("init_depth", "Activations at initialisation in a 10-layer network", template="init_study",
               tuner="grid", instruments=("activations",)),
    ),
    reference={
        "init": {"note": "The seed shows curves only: with zero weights the loss and accuracy do not change and "
                         "training accuracy stays at chance (about 10 %); normal and Glorot both train, normal "
                         "plateauing on validation after about 4 epochs. Its \"normal\" is the assignment's "
                         "N(0, 1) (standard_normal here); Keras's own random_normal is N(0, 0.05^2). With N(0, 1) "
                         "weights the output layer's inputs are in the hundreds, so the softmax saturates. Our "
                         "models output logits and the loss is computed from them (log-softmax, as PyTorch's "
                         "cross-entropy does), so a saturated softmax still passes a gradient; a loss computed "
                         "from clipped probabilities would pass none. The mean |gradient| column of the table "
                         "below shows what this run's training saw."},
        "init_depth": {"note": "Not in the seed: the same initialisations in a deeper network, to show how each "
                               "one scales the activations from layer to layer at initialisation."},
    },
)
