"""Runs the from-scratch experiments (q2, q4, q5, q6 and q16's check in q3 --impl scratch).

Each ``run_*`` function takes the pipeline's experiment runner (settings, profile space,
data, results store, echo) and one experiment declaration, computes with
``dlcv_keras.scratch`` and stores the files docs/results-store.md describes. An
experiment whose stored summary has the same fingerprint (settings, data, code inputs)
is not run again, so an interrupted question resumes at the experiment it stopped in.
"""

from __future__ import annotations

import time

import numpy as np

from dlcv_keras.questions.base import (ConvBlur, ConvRegression, FiniteDifferenceSweep, ScalarGradients, Search,
                                       ToyTraining, TwoLayerCheck)
from dlcv_keras.validation import InvalidParameterError


# -- checks before anything runs -------------------------------------------------------
# What each kind reads from its [<profile>.<name>] table: (required keys, optional keys).
# Every value is a single number or string, except the keys of LISTS, which may be lists.
SETTINGS = {
    ScalarGradients: ((), ("step",)),
    ConvBlur: ((), ("kernel_size", "sigma", "images", "filters", "stride")),
    ConvRegression: (("lr", "epochs", "batch_size"),
                     ("images", "kernel_size", "filters", "pixel_scale", "reduction", "l2", "clip")),
    TwoLayerCheck: ((), ("l2", "step")),
    ToyTraining: (("lr", "iterations", "batch_size"), ("lr_decay", "l2")),
    FiniteDifferenceSweep: ((), ("images", "count", "n")),
}
LISTS = {FiniteDifferenceSweep: ("n",)}


def check(question, settings, space) -> None:
    """Bad settings and option values stop the run before anything is written (one-line errors)."""
    from dlcv_keras.scratch.conv import gaussian_kernel

    implementation = question.implementation(settings.implementation)
    for experiment in question.experiments_for(implementation):
        where = f"{space.source} [{space.profile}.{experiment.name}]"
        if type(experiment) in SETTINGS:
            _check_table(experiment, space.experiment(experiment.name), where)
        if isinstance(experiment, ConvBlur):
            values = _values(space, experiment)
            try:
                gaussian_kernel(_kernel_size(settings, values), _sigma(settings, values))
            except InvalidParameterError as exc:   # the CLI checked its own values: this is the file's
                raise InvalidParameterError(f"{where} {exc}") from None
        if implementation == "scratch" and isinstance(experiment, Search):
            _check_scratch_model(space.experiment(experiment.name), where)


def _check_table(experiment, table, where: str) -> None:
    required, optional = SETTINGS[type(experiment)]
    listable = set(LISTS.get(type(experiment), ()))
    if getattr(experiment, "compare_batch_sizes", False):
        listable.add("batch_size")
    for key in sorted({*table.fixed, *table.choices, *table.ranges}):
        if key not in (*required, *optional):
            raise InvalidParameterError(f"{where} {key} must be one of the settings this experiment reads "
                                        f"({', '.join(sorted((*required, *optional)))}), got {key!r}")
    for key in required:
        if key not in table.fixed and key not in table.choices:
            raise InvalidParameterError(f"{where} must set {key}, got keys {sorted({*table.fixed, *table.choices})!r}")
    for key in sorted(set(table.choices) - listable):
        raise InvalidParameterError(f"{where} {key} must be a single value (this experiment runs once), "
                                    f"got a list {table.choices[key]!r}")
    for key in sorted(table.ranges):
        raise InvalidParameterError(f"{where} {key} must be a single value, got a range")


def _check_scratch_model(table, where: str) -> None:
    """Every value a search may try must be one the hand-written Classifier can train."""
    from dlcv_keras.scratch.nn import TRAINABLE, untrainable

    for key in sorted(set(table.ranges) & set(TRAINABLE)):
        raise InvalidParameterError(f"{where} {key} must be one of {TRAINABLE[key]!r} for --impl scratch, got a range")
    for key, value in [*table.fixed.items(), *((k, v) for k, vs in table.choices.items() for v in vs)]:
        problem = untrainable({key: value})
        if problem:
            raise InvalidParameterError(f"{where} {problem}")


def _values(space, experiment) -> dict:
    """The experiment table: pinned values as they are, lists as lists."""
    table = space.experiment(experiment.name)
    return {**table.fixed, **table.choices}


def _kernel_size(settings, values) -> int:
    return settings.kernel_size if settings.kernel_size is not None else values.get("kernel_size", 5)


def _sigma(settings, values) -> float:
    return settings.sigma if settings.sigma is not None else values.get("sigma", 0.8)


# -- dispatch and resume -----------------------------------------------------------------
def run(runner, experiment) -> None:
    kinds = {ScalarGradients: scalar_gradients, ConvBlur: conv_blur, ConvRegression: conv_regression,
             TwoLayerCheck: two_layer_check, ToyTraining: toy_training,
             FiniteDifferenceSweep: finite_difference_sweep}
    if type(experiment) not in kinds:
        raise TypeError(f"unknown experiment type {type(experiment).__name__}")
    kinds[type(experiment)](runner, experiment)


def _already_done(runner, experiment, fingerprint: str) -> bool:
    path = runner.store.experiment_dir(experiment.name) / "summary.json"
    if path.is_file() and runner.store.read_json(f"experiments/{experiment.name}/summary.json").get(
            "fingerprint") == fingerprint:
        runner.echo(f"[{experiment.name}] already done with these settings (stored); skipped")
        return True
    return False


def _fingerprint(runner, experiment, values: dict) -> str:
    """A hash of what shapes the experiment's result: question, settings, seed and data."""
    from dlcv_keras.tuning.search import fingerprint

    data_hash = runner.data.info["content_hash"] if runner.data is not None else None
    return fingerprint(runner.question.name, experiment.name, runner.settings.profile, runner.settings.seed,
                       data_hash, values)


# -- q2 ------------------------------------------------------------------------------
def scalar_gradients(runner, experiment: ScalarGradients) -> None:
    from dlcv_keras.scratch.expression import DEFAULT_EXPRESSION, DEFAULT_POINTS, gradient_table, parse_expression

    values = _values(runner.space, experiment)
    text = runner.settings.expression or DEFAULT_EXPRESSION
    points = runner.settings.points or DEFAULT_POINTS
    step = values.get("step", 1e-6)
    started = time.perf_counter()
    expression = parse_expression(text)
    rows = gradient_table(expression, points, h=step)
    summary = {
        "kind": "scalar_gradients", "title": experiment.title, "expression": expression.text,
        "variables": list(expression.variables), "points": [list(p) for p in points], "step": step,
        "max_abs_diff_tf": max(r["max_abs_diff_tf"] for r in rows),
        "max_abs_diff_numeric": max(r["max_abs_diff_numeric"] for r in rows),
        "max_rel_diff_numeric": max(r["max_rel_diff_numeric"] for r in rows),
        "seconds": round(time.perf_counter() - started, 3),
    }
    runner.store.write_experiment(experiment.name, summary=summary, tables={"points": rows})
    runner.echo(f"[{experiment.name}] f = {expression.text}")
    names = list(expression.variables)
    for row in rows:
        grads = ", ".join(f"df/d{v} {row[f'df_d{v}']:.6g}" for v in names)
        runner.echo(f"[{experiment.name}]   at {row['point']}: f {row['value']:.6g}, {grads}")
    runner.echo(f"[{experiment.name}] largest difference: {summary['max_abs_diff_tf']:.1e} vs TensorFlow, "
                f"{summary['max_abs_diff_numeric']:.1e} vs central differences")


# -- q4 ------------------------------------------------------------------------------
def conv_blur(runner, experiment: ConvBlur) -> None:
    from dlcv_keras.scratch.conv import blur_kernel_bank, conv2d_forward, gaussian_kernel

    values = _values(runner.space, experiment)
    size, sigma = _kernel_size(runner.settings, values), _sigma(runner.settings, values)
    count, filters, stride = values.get("images", 5), values.get("filters", 5), values.get("stride", 1)
    started = time.perf_counter()
    kernel = gaussian_kernel(size, sigma)
    originals = runner.data.x_train[:count].astype(np.float64)
    weights = blur_kernel_bank(kernel, originals.shape[-1], filters)
    blurred, _ = conv2d_forward(originals, weights, np.zeros(filters), stride=stride, padding="same")
    keras_diff, backward_error = check_conv_against_tensorflow(originals, weights, stride, runner.settings.seed)
    summary = {
        "kind": "conv_blur", "title": experiment.title, "dataset": runner.data.info["name"],
        "kernel_size": size, "sigma": sigma, "stride": stride, "padding": "same",
        "images": len(originals), "out_channels": filters,
        "keras_max_abs_diff": keras_diff, "backward_max_rel_error": backward_error,
        "seconds": round(time.perf_counter() - started, 3),
    }
    runner.store.write_experiment(experiment.name, summary=summary,
                                  arrays={"kernel": kernel, "originals": originals, "blurred": blurred})
    runner.echo(f"[{experiment.name}] {size}x{size} Gaussian, sigma {sigma:g}: {len(originals)} images -> "
                f"{blurred.shape[1:]} ({filters} channels); conv2d vs Keras Conv2D max |diff| {keras_diff:.1e}, "
                f"backward vs TensorFlow max relative error {backward_error:.1e}")


def check_conv_against_tensorflow(x, weights, stride: int, seed: int) -> tuple[float, float]:
    """Forward: max |ours - keras.layers.Conv2D| in float32. Backward: max relative error of
    dx, dw, db against tf.GradientTape in float64, for a random upstream gradient."""
    import keras
    import tensorflow as tf

    from dlcv_keras.scratch.conv import conv2d_backward, conv2d_forward
    from dlcv_keras.scratch.gradient_check import rel_error

    rng = np.random.default_rng(seed)
    bias = rng.normal(size=weights.shape[-1])
    ours, cache = conv2d_forward(x, weights, bias, stride=stride, padding="same")
    layer = keras.layers.Conv2D(weights.shape[-1], weights.shape[:2], strides=stride, padding="same")
    layer.build(x.shape)
    layer.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    theirs = np.asarray(layer(x.astype(np.float32)))
    forward_diff = float(np.max(np.abs(ours.astype(np.float32) - theirs)))

    upstream = rng.normal(size=ours.shape)
    dx, dw, db = conv2d_backward(upstream, cache)
    tx, tw, tb = (tf.Variable(v, dtype=tf.float64) for v in (x, weights, bias))
    with tf.GradientTape() as tape:
        out = tf.nn.conv2d(tx, tw, strides=stride, padding="SAME") + tb
        total = tf.reduce_sum(out * upstream)
    gx, gw, gb = tape.gradient(total, [tx, tw, tb])
    backward_error = max(rel_error(dx, gx.numpy()), rel_error(dw, gw.numpy()), rel_error(db, gb.numpy()))
    return forward_diff, float(backward_error)


# -- q5 ------------------------------------------------------------------------------
def conv_regression(runner, experiment: ConvRegression) -> None:
    from dlcv_keras.scratch import conv

    values = _values(runner.space, experiment)
    batch_sizes = values["batch_size"] if isinstance(values["batch_size"], list) else [values["batch_size"]]
    compare = experiment.compare_batch_sizes
    fingerprint = _fingerprint(runner, experiment, values)
    if _already_done(runner, experiment, fingerprint):
        return
    pixel_scale = values.get("pixel_scale", 255.0)
    x = runner.data.x_train[:values.get("images", 100)].astype(np.float64) * pixel_scale
    size, filters = values.get("kernel_size", 5), values.get("filters", 5)
    # The fixed model the student must reproduce: a conv layer of the same shape, weights
    # also uniform in [-1, 1], from another seed than the student's.
    target_rng = np.random.default_rng(runner.settings.seed + 1)
    target_w = target_rng.uniform(-1, 1, size=(size, size, x.shape[-1], filters))
    target_b = target_rng.uniform(-1, 1, size=filters)
    settings = dict(lr=values["lr"], epochs=values["epochs"], l2=values.get("l2", 1e-3), clip=values.get("clip"),
                    reduction=values.get("reduction", "mean"))
    runner.echo(f"[{experiment.name}] student conv {size}x{size}x{x.shape[-1]}->{filters} on {len(x)} images "
                f"(pixels x{pixel_scale:g}), lr {settings['lr']:g}, clip {settings['clip']}, "
                f"batch size {', '.join(map(str, batch_sizes))}")
    trials, history, outcomes = [], [], {}
    for batch_size in batch_sizes:
        label = f"batch_{batch_size}" if compare else "A"

        shown = {"last": None}

        def on_epoch(row, label=label, shown=shown):
            # The first epoch, every 10th, and each change of kind (finite -> inf -> nan).
            kind = "nan" if np.isnan(row["loss"]) else "inf" if np.isinf(row["loss"]) else "finite"
            if row["epoch"] == 1 or row["epoch"] % 10 == 0 or kind != shown["last"]:
                shown["last"] = kind
                runner.echo(f"[{experiment.name}] {label} epoch {row['epoch']}: loss {row['loss']:.4g}, "
                            f"L2 norm {row['l2_norm']:.4g}")

        result = conv.conv_regression(x, target_w, target_b, batch_size=batch_size, seed=runner.settings.seed,
                                      on_epoch=on_epoch, **settings)
        outcomes[batch_size] = result
        last = result["history"][-1]
        trials.append({"trial_id": label, "status": result["status"], "batch_size": batch_size,
                       "epochs_run": len(result["history"]), "loss": last["loss"],
                       "initial_l2_norm": result["initial_l2_norm"], "l2_norm": result["final_l2_norm"],
                       "seconds": round(sum(r["seconds"] for r in result["history"]), 3),
                       "stop_reason": result["stop_reason"]})
        history.extend({"trial_id": label, **row} for row in result["history"])
        runner.echo(f"[{experiment.name}] {label}: {result['status']} ({result['stop_reason']}), "
                    f"final L2 norm {result['final_l2_norm']:.6g}")
    common = {"title": experiment.title, "lr": settings["lr"], "epochs": settings["epochs"], "l2": settings["l2"],
              "clip": settings["clip"], "images": len(x), "kernel_size": size, "filters": filters,
              "pixel_scale": pixel_scale, "reduction": settings["reduction"],
              "fingerprint": fingerprint,
              "seconds": round(sum(t["seconds"] for t in trials), 3)}
    if not compare:
        result = outcomes[batch_sizes[0]]
        summary = {"kind": "conv_regression", **common, "batch_size": batch_sizes[0], "status": result["status"],
                   "stop_reason": result["stop_reason"], "first_inf_epoch": result["first_inf_epoch"],
                   "first_nan_epoch": result["first_nan_epoch"], "epochs_run": len(result["history"]),
                   "initial_l2_norm": result["initial_l2_norm"], "final_l2_norm": result["final_l2_norm"]}
        runner.store.write_experiment(experiment.name, summary=summary, history=history)
    else:
        summary = {"kind": "conv_regression", **common, "batch_sizes": batch_sizes,
                   "final_l2_norm": {str(b): outcomes[b]["final_l2_norm"] for b in batch_sizes}}
        runner.store.write_experiment(experiment.name, summary=summary, trials=trials, history=history)


# -- q6 ------------------------------------------------------------------------------
def two_layer_check(runner, experiment: TwoLayerCheck) -> None:
    from dlcv_keras.scratch import two_layer

    values = _values(runner.space, experiment)
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


def toy_training(runner, experiment: ToyTraining) -> None:
    from dlcv_keras.scratch import two_layer

    values = _values(runner.space, experiment)
    started = time.perf_counter()
    net = two_layer.init_toy_model()       # --seed only changes the minibatch draws
    x, y = two_layer.init_toy_data()
    lr_decay, reg = values.get("lr_decay", 0.95), values.get("l2", 5e-6)
    stats = net.train(x, y, x, y, learning_rate=values["lr"], learning_rate_decay=lr_decay,
                      reg=reg, num_iters=values["iterations"], batch_size=values["batch_size"],
                      seed=runner.settings.seed)
    losses = [float(v) for v in stats["loss_history"]]
    target = 0.02
    summary = {
        "kind": "toy_training", "title": experiment.title, "lr": values["lr"], "reg": reg,
        "lr_decay": lr_decay, "iterations": values["iterations"],
        "batch_size": values["batch_size"], "final_loss": losses[-1], "target_loss": target,
        "reached_target": losses[-1] < target, "train_accuracy": float(np.mean(net.predict(x) == y)),
        "seconds": round(time.perf_counter() - started, 3),
    }
    history = [{"trial_id": "toy", "epoch": i, "loss": v} for i, v in enumerate(losses, start=1)]
    runner.store.write_experiment(experiment.name, summary=summary, history=history)
    runner.echo(f"[{experiment.name}] final training loss {losses[-1]:.4f} after {len(losses)} iterations "
                f"({'below' if losses[-1] < target else 'NOT below'} the {target} target)")


# -- q16's check, on q3's hand-written MLP ---------------------------------------------------
def finite_difference_sweep(runner, experiment: FiniteDifferenceSweep) -> None:
    from dlcv_keras.scratch.gradient_check import finite_difference_sweep as sweep, max_gap_by_n

    values = _values(runner.space, experiment)
    trained = runner.models.get("best")
    if trained is None or not hasattr(trained, "weight_keys"):
        raise RuntimeError(f"{experiment.name} needs the hand-written model retrained by the 'best' experiment")
    started = time.perf_counter()
    model = float64_copy(trained)
    count = values.get("count", 10)
    examples = values.get("images", 100)
    x, y = runner.data.x_train[:examples], runner.data.y_train[:examples]
    # The second layer's weights, as in the seed; dropout off so every evaluation sees the same network.
    key = model.weight_keys[1]
    _, _, grads = model.loss_and_gradients(x, y, training=False)
    n_values = sorted(values.get("n", [1, 10, 100, 1000, 10000, 100000]))
    rows = sweep(lambda _param: model.loss(x, y, training=False)[0], model.params[key], grads[key],
                 n_values, count=count)
    gaps = max_gap_by_n(rows)
    summary = {"kind": "finite_difference", "title": experiment.title, "parameter": key, "count": count,
               "examples": len(x), "n_values": n_values,
               "max_abs_gap": {str(g["N"]): g["max_abs_gap"] for g in gaps},
               "seconds": round(time.perf_counter() - started, 3)}
    runner.store.write_experiment(experiment.name, summary=summary, tables={"sweep": rows})
    runner.echo(f"[{experiment.name}] first {count} weights of {key}: max |gap| "
                + ", ".join(f"N={g['N']:g}: {g['max_abs_gap']:.1e}" for g in gaps))


def float64_copy(model):
    """The same network in float64, so finite differences are not drowned by float32 rounding."""
    from dlcv_keras.scratch.nn import Classifier

    copy = Classifier(model.input_shape, model.num_classes, depth=model.depth, units=list(model.units),
                      activation=model.activation, dropout=model.dropout, l2=model.l2,
                      initializer=model.initializer, seed=model.seed, dtype=np.float64)
    for name, value in model.parameters().items():
        copy.params[name][...] = value
    return copy
