"""The two-layer-check kind (q6): the exercise's two-layer net on its toy data; scores and loss
against the exercise's values, analytic gradients against central differences and TensorFlow."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Sequence

import numpy as np

from dlcv_keras.experiments.base import RELATIVE_TOLERANCE, Experiment, pick, table_values, tolerance_words
from dlcv_keras.report.format import (DASH, as_number, fixed_decimals, fmt_sci, fmt_sig, is_finite, largest,
                                      settings_rows)


@dataclass(frozen=True)
class TwoLayerCheck(Experiment):
    KIND: ClassVar[str] = "two_layer_check"
    VIEWS: ClassVar[tuple[str, ...]] = ("two_layer_check",)
    SETTINGS: ClassVar = pick("l2", "step")

    def run(self, runner) -> None:
        two_layer_check(runner, self)


def two_layer_check(runner, experiment: TwoLayerCheck) -> None:
    from dlcv_keras.scratch import two_layer

    values = table_values(runner, experiment)
    reg, step = values.get("l2", 0.05), values.get("step", 1e-5)
    started = time.perf_counter()
    net = two_layer.init_toy_model()       # the exercise's seeds, so its numbers are comparable
    x, y = two_layer.init_toy_data()
    scores = net.loss(x)
    loss, grads = net.loss(x, y, reg=reg)
    numeric = two_layer.check_gradients(net, x, y, reg=reg, h=step)
    autodiff = tensorflow_two_layer_errors(net, x, y, reg, grads)
    summary = {
        "kind": "two_layer_check", "title": experiment.title, "input_size": x.shape[1],
        "hidden_size": net.params["W1"].shape[1], "num_classes": net.params["W2"].shape[1],
        "num_inputs": len(x), "reg": reg, "step": step, "scores": scores,
        "scores_max_abs_diff": float(np.max(np.abs(scores - two_layer.REFERENCE_SCORES))),
        "loss": float(loss), "loss_abs_diff": abs(float(loss) - two_layer.REFERENCE_LOSS),
        "relative_errors": numeric, "tf_relative_errors": autodiff,
        "max_relative_error": max(numeric.values()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    runner.store.write_experiment(experiment.name, summary=summary)
    runner.echo(f"[{experiment.name}] scores differ from the exercise's by at most {summary['scores_max_abs_diff']:.1e}; "
                f"loss {loss:.11f} (exercise {two_layer.REFERENCE_LOSS})")
    for name in numeric:
        runner.echo(f"[{experiment.name}]   {name} max relative error {numeric[name]:.2e} vs numerical, "
                    f"{autodiff[name]:.2e} vs TensorFlow")


def tensorflow_two_layer_errors(net, x, y, reg: float, grads: dict) -> dict:
    """Max relative error of each analytic gradient against tf.GradientTape (float64)."""
    import tensorflow as tf

    from dlcv_keras.scratch.gradient_check import rel_error

    params = {name: tf.Variable(value, dtype=tf.float64) for name, value in net.params.items()}
    with tf.GradientTape() as tape:
        hidden = tf.nn.relu(x @ params["W1"] + params["b1"])
        scores = hidden @ params["W2"] + params["b2"]
        data = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, scores))
        loss = data + reg * (tf.reduce_sum(params["W1"] ** 2) + tf.reduce_sum(params["W2"] ** 2))
    found = tape.gradient(loss, params)
    return {name: float(rel_error(grads[name], found[name].numpy())) for name in net.params}


# -- report view ------------------------------------------------------------------------------
def _matrix(values: Any) -> list[list[str]]:
    """A score matrix with 8 decimals, as the seed printed its reference scores."""
    if not isinstance(values, list):
        return []
    return [[fixed_decimals(v, 8) for v in row] if isinstance(row, list) else [fixed_decimals(row, 8)] for row in values]


def _two_layer_check(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary = experiment["summary"]
    ours, tf, seed = (summary.get("relative_errors") or {}, summary.get("tf_relative_errors") or {},
                      reference.get("relative_errors") or {})
    names = list(ours) + [k for k in (*tf, *seed) if k not in ours]
    names = list(dict.fromkeys(names))
    return {
        "settings": settings_rows(summary, {"input_size": "input size", "hidden_size": "hidden size",
                                        "num_classes": "classes", "num_inputs": "inputs", "reg": "reg",
                                        "step": "finite-difference step", "seconds": "time"}),
        "scores": _matrix(summary.get("scores")),
        "reference_scores": _matrix(reference.get("scores")),
        "comparison": [
            {"metric": "loss", "ours": fmt_sig(summary.get("loss"), 12), "seed": fmt_sig(reference.get("loss"), 12)},
            {"metric": "|loss - seed loss|", "ours": fmt_sci(summary.get("loss_abs_diff")), "seed": DASH},
            {"metric": "max |scores - seed scores|", "ours": fmt_sci(summary.get("scores_max_abs_diff")), "seed": DASH},
        ],
        "errors": [{"name": n, "numeric": fmt_sci(ours.get(n), 2), "tf": fmt_sci(tf.get(n), 2),
                    "seed": fmt_sci(seed.get(n), 2)} for n in names],
        "max_relative_error": fmt_sci(summary.get("max_relative_error"), 2),
        "observations": _observations(summary, reference),
    }


def _numbers(values: Any) -> list[float]:
    """Every number in a nested list (a score matrix), flattened."""
    if isinstance(values, list):
        return [v for row in values for v in _numbers(row)]
    value = as_number(values)
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def _printed_tolerance(values: Sequence[float]) -> tuple[int, float] | None:
    """(decimals, half a unit of the last one) for numbers as the seed printed them: 0.36446210 has 8
    decimals, so a value within 5e-09 of it agrees with it. The stored float keeps the printed digits."""
    decimals = [-Decimal(repr(v)).as_tuple().exponent for v in values if math.isfinite(v)]
    if not decimals:
        return None
    return max(decimals), 0.5 * 10.0 ** -max(decimals)


def _observations(summary, reference) -> list[str]:
    """Scores and loss against the seed's printed numbers (to their last printed digit); the analytic
    gradients against central differences and TensorFlow, against the float64 tolerance."""
    sentences = []
    ours_scores, seed_scores = _numbers(summary.get("scores")), _numbers(reference.get("scores"))
    printed = _printed_tolerance(seed_scores)
    if printed and len(ours_scores) == len(seed_scores):
        difference = max(abs(a - b) for a, b in zip(ours_scores, seed_scores))
        sentences.append(tolerance_words("Each score", "the seed's", difference, printed[1],
                                         "largest absolute difference", f"the seed printed {printed[0]} decimals"))
    ours_loss, seed_loss = _numbers(summary.get("loss")), _numbers(reference.get("loss"))
    printed = _printed_tolerance(seed_loss)
    if printed and ours_loss:
        sentences.append(tolerance_words("Our loss", f"the seed's ({fmt_sig(seed_loss[0], 12)})",
                                         abs(ours_loss[0] - seed_loss[0]), printed[1],
                                         "absolute difference", f"the seed printed {printed[0]} decimals"))
    numeric, tf = summary.get("relative_errors") or {}, summary.get("tf_relative_errors") or {}
    seed = _numbers(list((reference.get("relative_errors") or {}).values()))
    for errors, other, seed_words in (
            (numeric, "central differences", f"; the seed's largest {fmt_sci(max(seed), 1)}" if seed else ""),
            (tf, "TensorFlow's autodiff", "")):
        values = _numbers(list(errors.values()))
        if values:
            worst = max(errors, key=lambda name: as_number(errors[name]) if is_finite(as_number(errors[name])) else math.inf)
            sentences.append(tolerance_words(f"Each analytic gradient ({', '.join(errors)})", other,
                                             largest(list(errors.values())), RELATIVE_TOLERANCE,
                                             "largest relative error", f"at {worst}{seed_words}"))
    return [sentence for sentence in sentences if sentence]


VIEWS = {"two_layer_check": _two_layer_check}
