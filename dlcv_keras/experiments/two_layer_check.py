"""The two-layer-check kind (q6): the exercise's two-layer net on its toy data; scores and loss
against the exercise's values, analytic gradients against central differences and TensorFlow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dlcv_keras.experiments.base import Experiment, pick, table_values
from dlcv_keras.report.format import DASH, fixed_decimals, fmt_sci, fmt_sig, settings_rows


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
    }


VIEWS = {"two_layer_check": _two_layer_check}
