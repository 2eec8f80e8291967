"""q16: MLP search and gradient validation on MNIST (IFT6135-H2019, Assignment 1, part 1).

A random search over the widths h1, h2 of a two-hidden-layer ReLU MLP (lr 0.01, batch 100)
under the seed's constraint of 0.5M to 1M parameters: a sampled setting outside it is
recorded as rejected, with its parameter count, and not trained. The seed's smaller attempts
(h1 = h2 = 256, 64, 32), outside the budget, are trained beside it, from several seeds each, to
show what the budget buys. The best setting is evaluated (the search keeps its trained models),
and the gradient of the first 10 weights of its second layer is checked against central
differences with epsilon = 1/N, on the Keras model rebuilt in float64.
"""

import math

from dlcv_keras.experiments import EvaluateBest, FiniteDifferenceSweep, Search
from dlcv_keras.lessons import NOT_REPRODUCED, REPRODUCED, Beats, Computed, Lesson, Model, NotComparable, Outcome
from dlcv_keras.questions.base import Question

DECADE = 10     # the gap need not fall between closer N: a ReLU kink within epsilon of a weight bends it


def gap_shrinks_until_rounding(stored) -> Outcome:
    """The gradient check's largest gap per N shrinks as N grows up to the N where it is smallest: ten times
    any N there gives a smaller gap (truncation error, as epsilon squared where the loss is smooth; N closer
    than a decade apart may not, when a ReLU kink lies within epsilon of a weight), over at least a decade;
    beyond that N the gap grows again (rounding error in the loss, divided by epsilon, takes over)."""
    found = stored.experiment("gradient_check")["summary"].get("max_abs_gap") or {}
    gaps = sorted((float(n), float(g)) for n, g in found.items())
    if len(gaps) < 3 or not all(math.isfinite(g) for _, g in gaps):
        raise NotComparable(f"the gradient check stored {len(gaps)} gaps, not three finite ones or more")
    low = min(range(len(gaps)), key=lambda i: gaps[i][1])
    path = " → ".join(f"N {n:g}: {g:.1e}" for n, g in gaps)
    text = f"largest |gap| {path}; smallest at N = {gaps[low][0]:g}"
    numbers = {"max_abs_gap": {f"{n:g}": g for n, g in gaps}, "smallest_at": gaps[low][0]}
    decades = [(i, next(j for j in range(i, low + 1) if gaps[j][0] >= DECADE * gaps[i][0]))
               for i in range(low) if gaps[low][0] >= DECADE * gaps[i][0]]
    rises = [f"N {gaps[j][0]:g} ({gaps[j][1]:.1e}) is not below N {gaps[i][0]:g} ({gaps[i][1]:.1e})"
             for i, j in decades if not gaps[j][1] < gaps[i][1]]
    if not decades or rises:
        cause = "; ".join(rises) or f"the gap is smallest at N = {gaps[low][0]:g}: it does not shrink over a decade"
        return Outcome(NOT_REPRODUCED, text, numbers, cause)
    if low == len(gaps) - 1:
        return Outcome(NOT_REPRODUCED, text, numbers, f"the gap still falls at the largest N ({gaps[-1][0]:g}): "
                                                        f"the sweep ends before rounding takes over")
    return Outcome(REPRODUCED, f"{text}, then it grows again to {gaps[-1][1]:.1e} at N = {gaps[-1][0]:g} (rounding)",
                   numbers)


LESSONS = (
    Lesson("The best width pair under the 0.5M-1M parameter budget beats the smallest network tried, h1 = h2 = 32 "
           "(26,506 parameters; the seed: 97.33 against 95.93 % test), on the test split (the smallest from "
           "every seed).",
           Beats(Model("search", "the best under the budget"), Model("attempts", "32/32", {"units": 32}))),
    Lesson("The finite-difference gap shrinks as N grows (epsilon = 1/N), until rounding: up to the N where the "
           "largest gap over the 10 checked weights is smallest, ten times any N gives a smaller gap, and beyond "
           "that N the gap grows again.",
           Computed(gap_shrinks_until_rounding)),
)

QUESTION = Question(
    name="q16",
    title="MLP search and gradient validation, MNIST",
    seed_writeup="004_9963c858e23e4d1d.txt (IFT6135-H2019, Assignment 1)",
    dataset="mnist",
    model="mlp",
    optimizer="sgd",
    val_fraction=1 / 6,               # 50k/10k, as the seed's standard MNIST split
    lessons=LESSONS,
    experiments=(
        Search("search", "1.b Random search over h1, h2 (0.5M to 1M parameters)", evaluates_test=True,
               tuner="random", keep_models=True),
        # The seed's attempts outside the budget, trained as a reference for what the budget buys.
        Search("attempts", "The seed's smaller attempts, outside the budget (h1 = h2), from several seeds each",
               evaluates_test=True, tuner="grid"),
        EvaluateBest("best", "Best setting of the search", source="search"),
        FiniteDifferenceSweep("gradient_check", "1.c Finite differences, epsilon = 1/N, on the first 10 weights "
                                                "of the second layer (float64)", source="best"),
    ),
    reference={
        # The seed's five attempts (Tables 1 and 2); only the best is inside the constraint.
        "search": {"rows": [
            {"units_1": 512, "units_2": 512, "params": 669706, "accuracy": 0.9876, "val_accuracy": 0.9767,
             "test_accuracy": 0.9733},
            {"units_1": 256, "units_2": 256, "params": 269322, "accuracy": 0.9856, "val_accuracy": 0.9726,
             "test_accuracy": 0.9736},
            {"units_1": 512, "units_2": 256, "params": 535818, "accuracy": 0.9873, "val_accuracy": 0.9758,
             "test_accuracy": 0.9726},
            {"units_1": 64, "units_2": 64, "params": 55050, "accuracy": 0.9776, "val_accuracy": 0.9669,
             "test_accuracy": 0.9656},
            {"units_1": 32, "units_2": 32, "params": 26506, "accuracy": 0.9710, "val_accuracy": 0.9634,
             "test_accuracy": 0.9593},
        ]},
        "attempts": {"rows": [
            {"units": 256, "params": 269322, "accuracy": 0.9856, "val_accuracy": 0.9726, "test_accuracy": 0.9736},
            {"units": 64, "params": 55050, "accuracy": 0.9776, "val_accuracy": 0.9669, "test_accuracy": 0.9656},
            {"units": 32, "params": 26506, "accuracy": 0.9710, "val_accuracy": 0.9634, "test_accuracy": 0.9593},
        ]},
        "best": {"hyperparameters": {"units_1": 512, "units_2": 512, "lr": 0.01, "batch_size": 100, "epochs": 60},
                 "train_accuracy": 0.9876, "val_accuracy": 0.9767, "test_accuracy": 0.9733},
    },
)
