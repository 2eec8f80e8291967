"""Optimizer, loss and metrics for the classifiers; the one place that calls ``model.compile``."""

from __future__ import annotations

import keras

from dlcv_keras.models.options import OPTIMIZERS, SCHEDULES
from dlcv_keras.validation import InvalidParameterError, check_choice, check_float, check_int


def compile_model(model: keras.Model, *, lr: float, optimizer: str = "sgd", momentum: float = 0.0,
                  steps_per_execution: int = 1, schedule: str | None = None, max_lr: float | None = None,
                  total_steps: int | None = None, weight_decay: float = 0.0, grad_clip: float | None = None,
                  clipnorm: float | None = None, early_lr_factor: float | None = None,
                  early_layers=()) -> keras.Model:
    """Sparse categorical cross-entropy from the model's logits (``classification_loss``, plus the
    layers' L1/L2 penalties) and accuracy (the arg max of the logits is the arg max of the softmax).

    ``steps_per_execution`` runs several batches per compiled call: on a CPU the
    per-step Python overhead otherwise dominates small models.

    The optimizer is ``training.optimizers.make_optimizer``'s (PyTorch-style SGD or Adam):

    - ``schedule``: None or "constant" keeps ``lr``; "one_cycle" is PyTorch's OneCycleLR
      (``training.schedules.OneCycle``) from ``max_lr`` over ``total_steps`` batches (both
      required), and ``lr`` is then ignored (the cycle starts at max_lr / 25).
    - ``weight_decay``: coupled, as PyTorch's (gradient += weight_decay * w), on every weight.
    - ``grad_clip``: clip each gradient value to [-grad_clip, grad_clip] (the seed's
      ``clip_grad_value_``); ``clipnorm``: clip each gradient's norm. One of the two; 0 or None = off.
    - ``early_lr_factor``: the learning rate of the layers whose names start with one of
      ``early_layers`` is multiplied by it (q10's lower rate for early layers); None or 1 = off.

    A schedule cannot go with ``training.optimizers.plateau_callback`` (which sets the rate):
    that callback raises at train begin.
    """
    from dlcv_keras.training.optimizers import make_optimizer
    from dlcv_keras.training.schedules import OneCycle

    check_float("lr", lr, low=0, closed="right")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_int("steps_per_execution", steps_per_execution, low=1)
    schedule = check_choice("schedule", "constant" if schedule is None else schedule, SCHEDULES)
    if optimizer == "sgd":
        check_float("momentum", momentum, low=0, high=1, closed="left")
    check_float("weight_decay", weight_decay, low=0)
    grad_clip = _off_if_zero("grad_clip", grad_clip)
    clipnorm = _off_if_zero("clipnorm", clipnorm)
    if grad_clip is not None and clipnorm is not None:
        raise InvalidParameterError(f"grad_clip and clipnorm must not both be set, got grad_clip={grad_clip!r}, "
                                    f"clipnorm={clipnorm!r}")

    if schedule == "one_cycle":
        if max_lr is None or total_steps is None:
            raise InvalidParameterError(f"schedule 'one_cycle' must have max_lr and total_steps, got "
                                        f"max_lr={max_lr!r}, total_steps={total_steps!r}")
        rate = OneCycle(check_float("max_lr", max_lr, low=0, closed="right"),
                        check_int("total_steps", total_steps, low=2))
    else:
        rate = lr

    multipliers = None
    if early_lr_factor is not None:
        check_float("early_lr_factor", early_lr_factor, low=0, closed="right")
        if isinstance(early_layers, str) or not early_layers or not all(isinstance(p, str) and p for p in early_layers):
            raise InvalidParameterError(f"early_layers must be a non-empty list of layer-name prefixes "
                                        f"when early_lr_factor is set, got {early_layers!r}")
        known = [layer.name for layer in model._flatten_layers(include_self=False)]   # nested backbones too
        for prefix in early_layers:
            if not any(name.startswith(prefix) for name in known):
                raise InvalidParameterError(f"early_layers must name layers of model {model.name!r}, got {prefix!r}")
        if early_lr_factor != 1:
            multipliers = {prefix: float(early_lr_factor) for prefix in early_layers}

    opt = make_optimizer(optimizer, rate, momentum=momentum if optimizer == "sgd" else 0.0,
                         weight_decay=weight_decay, clipvalue=grad_clip, clipnorm=clipnorm,
                         lr_multipliers=multipliers)
    model.compile(optimizer=opt, loss=classification_loss(), metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model


def classification_loss() -> keras.losses.Loss:
    """The loss every classifier here trains on: mean sparse categorical cross-entropy computed from
    logits (the builders' output layer has no activation). Keras then takes log-softmax of the logits,
    the same on every backend: a saturated softmax still passes a gradient. (From probabilities, Keras's
    JAX backend clips them to [1e-7, 1 - 1e-7], and a clipped probability passes none: q15's N(0, 1)
    network could not learn there.)"""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _off_if_zero(name: str, value) -> float | None:
    if value is None:
        return None
    value = check_float(name, value, low=0)
    return value or None
