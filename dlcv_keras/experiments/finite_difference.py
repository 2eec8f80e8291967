"""The finite-difference kind (q16's check): the gradient of the best model's second layer,
first ``count`` entries, against central differences with epsilon = 1/N over a range of N.

The model is the one the run's ``best`` experiment retrained: q3 --impl scratch's hand-written
numpy Classifier, or a Keras model (q16), rebuilt in float64 so that rounding does not drown
the small steps. The true gradient of a Keras model comes from the backend's own autodiff
(``jax.grad`` on JAX, ``tf.GradientTape`` on TensorFlow).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from dlcv_keras.experiments.base import RELATIVE_TOLERANCE, Experiment, pick, table_values, tolerance_words
from dlcv_keras.report.format import (as_number, by_number, fmt, fmt_sci, is_finite, largest, require,
                                      settings_rows)

DEFAULT_N = [1, 10, 100, 1000, 10000, 100000]


@dataclass(frozen=True)
class FiniteDifferenceSweep(Experiment):
    """``source`` names the experiment whose retrained model is checked (an EvaluateBest)."""
    source: str = "best"

    KIND: ClassVar[str] = "finite_difference"
    VIEWS: ClassVar[tuple[str, ...]] = ("finite_difference",)
    SETTINGS: ClassVar = pick("images", "count", "n")
    LISTABLE: ClassVar[tuple[str, ...]] = ("n",)

    def run(self, runner) -> None:
        finite_difference_sweep(runner, self)


def finite_difference_sweep(runner, experiment: FiniteDifferenceSweep) -> None:
    from dlcv_keras.scratch.gradient_check import finite_difference_sweep as sweep, max_gap_by_n

    values = table_values(runner, experiment)
    trained = runner.models.get(experiment.source)
    if trained is None:
        raise RuntimeError(f"{experiment.name} needs the model retrained by the {experiment.source!r} experiment")
    started = time.perf_counter()
    count = values.get("count", 10)
    examples = values.get("images", 100)
    x, y = runner.data.x_train[:examples], runner.data.y_train[:examples]
    n_values = sorted(values.get("n", DEFAULT_N))
    if hasattr(trained, "weight_keys"):            # the hand-written numpy Classifier
        model = float64_copy(trained)
        # The second layer's weights, as in the seed; dropout off so every evaluation sees the same network.
        key = model.weight_keys[1]
        _, _, grads = model.loss_and_gradients(x, y, training=False)
        rows = sweep(lambda _param: model.loss(x, y, training=False)[0], model.params[key], grads[key],
                     n_values, count=count)
        implementation = "numpy (hand-written backward)"
    else:
        with float64_arrays():
            key, loss_fn, param, grad = keras_float64_problem(trained, x, y)
            rows = sweep(loss_fn, param, grad, n_values, count=count)
        implementation = "Keras, float64 (backend autodiff)"
    gaps = max_gap_by_n(rows)
    summary = {"kind": "finite_difference", "title": experiment.title, "parameter": key, "count": count,
               "examples": len(x), "n_values": n_values, "implementation": implementation,
               "max_abs_gap": {str(g["N"]): g["max_abs_gap"] for g in gaps},
               "seconds": round(time.perf_counter() - started, 3)}
    runner.store.write_experiment(experiment.name, summary=summary, tables={"sweep": rows})
    runner.echo(f"[{experiment.name}] first {count} weights of {key}: max |gap| "
                + ", ".join(f"N={g['N']:g}: {g['max_abs_gap']:.1e}" for g in gaps))


def float64_copy(model):
    """The same hand-written network in float64, so finite differences are not drowned by float32 rounding."""
    from dlcv_keras.scratch.nn import Classifier

    copy = Classifier(model.input_shape, model.num_classes, depth=model.depth, units=list(model.units),
                      activation=model.activation, dropout=model.dropout, l2=model.l2,
                      initializer=model.initializer, seed=model.seed, dtype=np.float64)
    for name, value in model.parameters().items():
        copy.params[name][...] = value
    return copy


def float64_arrays():
    """JAX makes float32 arrays unless 64-bit types are enabled; enable them for the check only."""
    import contextlib

    import keras

    if keras.backend.backend() == "jax":
        import jax
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def keras_float64_model(model):
    """The Keras model rebuilt with every layer in float64, holding the trained weights."""
    import keras

    def to_float64(config):
        if isinstance(config, dict):
            return {key: "float64" if key == "dtype" else to_float64(value) for key, value in config.items()}
        if isinstance(config, list):
            return [to_float64(v) for v in config]
        return config

    copy = keras.Model.from_config(to_float64(model.get_config()))
    copy.set_weights([np.asarray(w, np.float64) for w in model.get_weights()])
    return copy


def keras_float64_problem(trained, x, y):
    """(name, loss of the second Dense kernel, that kernel as float64 numpy, its true gradient).

    The loss is what the model was trained on: mean sparse cross-entropy plus its L1/L2 penalties,
    in inference mode (dropout off), so every evaluation sees the same network.
    """
    import keras

    model = keras_float64_model(trained)
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    variable = kernels[1]
    index = next(i for i, v in enumerate(model.trainable_variables) if v is variable)
    x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.int64)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def loss_of(weights):
        values = list(trainable)
        values[index] = weights
        logits, _, losses = model.stateless_call(values, non_trainable, x64, training=False, return_losses=True)
        # Keras's sparse cross-entropy from logits, written out: its own function averages in float32
        # on JAX, which would drown the small steps this check takes.
        picked = keras.ops.take_along_axis(keras.ops.log_softmax(logits, axis=-1), keras.ops.expand_dims(y64, 1),
                                           axis=1)
        # A sum over a count, not keras.ops.mean: on JAX that averages in float32 whatever the input.
        data = -keras.ops.sum(picked) / len(x64)
        return data + sum(losses) if losses else data

    param = np.array(keras.ops.convert_to_numpy(variable.value), dtype=np.float64)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        grad = np.asarray(jax.grad(loss_of)(keras.ops.convert_to_tensor(param, dtype="float64")))
    elif backend == "tensorflow":
        import tensorflow as tf
        weights = tf.Variable(param)
        with tf.GradientTape() as tape:
            loss = loss_of(weights)
        grad = tape.gradient(loss, weights).numpy()
    else:
        raise RuntimeError(f"the Keras gradient check runs on JAX or TensorFlow, got backend {backend!r}")

    def loss_fn(values):
        return float(keras.ops.convert_to_numpy(loss_of(keras.ops.convert_to_tensor(values, dtype="float64"))))

    return variable.path, loss_fn, param, grad


# -- report view ------------------------------------------------------------------------------
def _finite_difference(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    sweep = require(experiment, "sweep", store, section["experiment"], "sweep.csv", section["title"])
    by_n: dict[Any, list[Mapping[str, Any]]] = {}
    for row in sweep:
        by_n.setdefault(row.get("N"), []).append(row)
    table, points, skipped = [], [], []
    for n in sorted(by_n, key=lambda v: v if is_finite(v) else math.inf):
        rows = by_n[n]
        stored = by_number(summary.get("max_abs_gap"), n)
        gap = as_number(stored) if stored is not None else largest([abs(r["abs_gap"]) if is_finite(r.get("abs_gap"))
                                                                  else r.get("abs_gap") for r in rows])
        table.append({"n": fmt(n), "epsilon": fmt(rows[0].get("epsilon")), "gap": fmt_sci(gap, 2)})
        if is_finite(n) and n > 0 and is_finite(gap) and gap > 0:
            points.append((n, gap))
        else:
            skipped.append(f"N = {fmt(n)} (max |gap| {fmt_sci(gap, 2)})")
    series: dict[Any, list[Mapping[str, Any]]] = {}
    for row in sweep:
        series.setdefault(fmt(row.get("index")), []).append(row)
    return {
        "settings": settings_rows(summary, {"parameter": "parameter", "count": "entries checked",
                                        "examples": "examples in the loss",
                                        "implementation": "model", "seconds": "time"}),
        "gap_figure": figures.data_uri(figures.gap_vs_n(points)) if points else None,
        "skipped": skipped,
        "numeric_figure": figures.data_uri(figures.numeric_vs_n(series)) if series else None,
        "table": table,
        "observations": _observations(points, sweep),
    }


def _observations(points: list[tuple[Any, Any]], sweep) -> list[str]:
    """How fast the gap falls at the largest steps (central differences: as epsilon squared), where it is
    smallest, that smallest gap against the checked gradients' size and the float64 tolerance, and
    whether it rises again at smaller steps (rounding)."""
    if len(points) < 2:
        return []
    (n1, gap1), (n2, gap2) = points[0], points[1]
    sentences = [f"From N = {fmt(n1)} to N = {fmt(n2)} the largest gap goes from {fmt_sci(gap1, 2)} to "
                 f"{fmt_sci(gap2, 2)}, as epsilon to the power {math.log(gap1 / gap2) / math.log(n2 / n1):.2f} "
                 f"(central differences' truncation error goes as epsilon squared)."]
    n_best, smallest = min(points, key=lambda point: point[1])
    scale = largest([abs(row["analytic"]) for row in sweep if is_finite(row.get("analytic"))])
    if is_finite(scale) and scale > 0:
        sentences.append(tolerance_words("The analytic gradient", "central differences", smallest / scale,
                                         RELATIVE_TOLERANCE, "smallest gap relative to the gradient",
                                         f"{fmt_sci(smallest, 2)} at N = {fmt(n_best)}, over the largest checked "
                                         f"|gradient| {fmt_sci(scale, 2)}"))
    last_n, last = points[-1]
    if last_n != n_best and last > smallest:
        sentences.append(f"Below epsilon = 1/{fmt(n_best)} the gap grows again, to {fmt_sci(last, 2)} at N = {fmt(last_n)} "
                         f"({last / smallest:.1f} times the smallest): rounding error in the loss, divided by a smaller "
                         f"step, takes over.")
    return [sentence for sentence in sentences if sentence]


VIEWS = {"finite_difference": _finite_difference}
REQUIRED_FILES = {"finite_difference": ("sweep.csv",)}
