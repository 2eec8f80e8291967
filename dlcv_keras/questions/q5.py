"""q5: a convolution layer trained with an L2 loss, CIFAR-10 (DS-265 DLCV, Assignment 1, part 5).

A student conv layer, weights uniform in [-1, 1], learns to reproduce a fixed conv
layer's output (L2 loss plus a 1e-3 weight penalty) on raw 0-255 pixels. Run A
(lr 1e-5, no clipping) explodes to inf and then NaN, recorded as diverged; run B clips
the gradients to [-1, 1] and compares batch sizes 1, 4 and 8.
"""

import math

from dlcv_keras.experiments import ConvRegression
from dlcv_keras.lessons import NOT_REPRODUCED, REPRODUCED, Computed, Lesson, Ordered, Outcome, Value
from dlcv_keras.questions.base import Question

BATCH_SIZES = (1, 4, 8)


def explodes(stored) -> Outcome:
    """Run A's loss becomes inf and, at a later epoch, NaN; the run is recorded as diverged, not crashed."""
    found = stored.experiment("run_a")
    summary, history = found["summary"], found.get("history") or []
    inf, nan = summary.get("first_inf_epoch"), summary.get("first_nan_epoch")
    first = history[0].get("loss") if history else None
    epochs = summary.get("epochs_run", len(history))
    text = (f"run A (lr {summary.get('lr')}, batch {summary.get('batch_size')}, no clipping): loss {first:.3g} after "
            f"epoch 1, inf from epoch {inf}, NaN from epoch {nan}, of {epochs} epochs; status {summary.get('status')}"
            if isinstance(first, float) else f"run A: inf from epoch {inf}, NaN from epoch {nan}")
    numbers = {"first_loss": first, "first_inf_epoch": inf, "first_nan_epoch": nan, "epochs_run": epochs,
               "status": summary.get("status")}
    if inf is None:
        return Outcome(NOT_REPRODUCED, text, numbers, f"the loss never reached inf in {epochs} epochs")
    if nan is None:
        return Outcome(NOT_REPRODUCED, text, numbers, f"the loss reached inf (epoch {inf}) but never NaN")
    if not inf < nan:
        return Outcome(NOT_REPRODUCED, text, numbers, f"NaN (epoch {nan}) came before inf (epoch {inf})")
    if summary.get("status") != "diverged":
        return Outcome(NOT_REPRODUCED, text, numbers, f"the run is recorded as {summary.get('status')}, not diverged")
    return Outcome(REPRODUCED, text, numbers)


def clipped_runs_settle(stored) -> Outcome:
    """Every clipped run B ends finite, with its outputs closer to the target's than at the start."""
    trials = stored.experiment("run_b").get("trials") or []
    rows = sorted(trials, key=lambda r: r.get("batch_size"))
    parts = [f"batch size {r.get('batch_size')}: L2 norm {r.get('initial_l2_norm'):.6g} -> {r.get('l2_norm'):.6g}"
             for r in rows if isinstance(r.get("l2_norm"), float) and isinstance(r.get("initial_l2_norm"), float)]
    text = "run B (gradients clipped to [-1, 1]): " + ("; ".join(parts) or "no run stored")
    numbers = {"runs": [{k: r.get(k) for k in ("batch_size", "status", "initial_l2_norm", "l2_norm")} for r in rows]}
    bad = [r for r in rows if r.get("status") != "completed" or not math.isfinite(float(r.get("l2_norm", math.nan)))
           or not float(r["l2_norm"]) < float(r.get("initial_l2_norm", math.nan))]
    if not rows or bad:
        cause = "no run B stored" if not rows else "; ".join(
            f"batch size {r.get('batch_size')} ended {r.get('status')} at L2 norm {r.get('l2_norm')} (it started at "
            f"{r.get('initial_l2_norm')})" for r in bad)
        return Outcome(NOT_REPRODUCED, text, numbers, cause)
    return Outcome(REPRODUCED, text, numbers)


LESSONS = (
    Lesson("Unclipped, the gradients explode: in run A (lr 1e-5, batch 4, L2 1e-3) the loss grows until it reaches "
           "inf, then NaN at a later epoch, and the run is recorded as diverged rather than crashing.",
           Computed(explodes)),
    Lesson("Clipping the gradients to [-1, 1] tames the explosion: every run B (lr 1e-2, batch sizes 1, 4 and 8) "
           "stays finite and ends with a smaller L2 norm between the two models' outputs than it started with.",
           Computed(clipped_runs_settle)),
    Lesson("With clipped gradients and the same 50 epochs, the final L2 norm grows with the batch size "
           "(batch 1 < 4 < 8) in this run (one seed per batch size), as the seed's did (its reading: smaller "
           "batches update more often and fit the target better).",
           Ordered(tuple(Value("run_b", f"final_l2_norm.{b}", f"batch size {b}") for b in BATCH_SIZES))),
)

QUESTION = Question(
    name="q5",
    title="Convolution layer with L2 loss, CIFAR-10",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset="cifar10",
    model=None,
    fallback_dataset="digits",
    implementations=("scratch",),
    lessons=LESSONS,
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
