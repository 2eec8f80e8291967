"""SGD and Adam as the seeds' PyTorch code ran them: coupled weight decay, per-layer learning rates.

Keras's own ``weight_decay`` argument is decoupled (AdamW's rule: ``w -= lr * wd * w`` beside the
update). PyTorch's ``SGD(weight_decay=...)`` and ``Adam(weight_decay=...)`` instead add
``weight_decay * w`` to the gradient before the update, the gradient of an extra loss term
``weight_decay / 2 * ||w||^2`` (the ELL-793 seed's words). ``CoupledSGD`` and ``CoupledAdam`` do
that in ``update_step``, which Keras calls after clipping (``_backend_apply_gradients``: clip ->
Keras's decoupled decay, off here -> ``update_step`` per variable), so the order is PyTorch's
``clip_grad_value_`` then ``optimizer.step()``.

The decay applies to every trainable variable (biases and batch-norm scales too), as PyTorch's does
when given ``model.parameters()``.
"""

from __future__ import annotations

import keras
from keras import ops

from dlcv_keras.models.options import OPTIMIZERS
from dlcv_keras.validation import InvalidParameterError, check_choice, check_float, check_int


class _Coupled:
    """Mixin: ``gradient += weight_decay * variable``, then the learning rate times the variable's
    ``lr_multipliers`` factor, then the parent optimizer's own update."""

    def _init_coupled(self, weight_decay, lr_multipliers):
        self.coupled_weight_decay = check_float("weight_decay", weight_decay, low=0)
        self.lr_multipliers = _check_multipliers(lr_multipliers)
        self._lr_factors: list[float] = []

    def build(self, variables):
        super().build(variables)
        # Factors by variable index: on TensorFlow update_step receives the backing tf.Variable,
        # which has no Keras path, so look the path up here, where the Keras variables are.
        self._lr_factors = [multiplier_for(v.path, self.lr_multipliers) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        if self.coupled_weight_decay:
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.coupled_weight_decay, variable.dtype),
                                                      ops.cast(variable, variable.dtype)))
        if self._lr_factors:
            factor = self._lr_factors[self._get_variable_index(variable)]
            if factor != 1.0:
                learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype),
                                             ops.cast(factor, variable.dtype))
        return super().update_step(gradient, variable, learning_rate)

    def _coupled_config(self, config: dict) -> dict:
        config["weight_decay"] = self.coupled_weight_decay
        config["lr_multipliers"] = dict(self.lr_multipliers)
        return config


@keras.saving.register_keras_serializable(package="dlcv_keras")
class CoupledSGD(_Coupled, keras.optimizers.SGD):
    """Keras SGD with PyTorch's coupled ``weight_decay`` and per-layer ``lr_multipliers``.

    Momentum is Keras's form (``v = m v - lr g; w += v``), PyTorch's (``b = m b + g; w -= lr b``)
    with ``v = -lr b``: the same steps while the rate is constant; under a schedule Keras's velocity
    keeps the rates it was built with, PyTorch's buffer is rescaled by the current rate.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, *, weight_decay=0.0,
                 lr_multipliers=None, name="coupled_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=float(momentum), nesterov=nesterov,
                         name=name, **kwargs)
        self._init_coupled(weight_decay, lr_multipliers)

    def get_config(self):
        return self._coupled_config(super().get_config())


@keras.saving.register_keras_serializable(package="dlcv_keras")
class CoupledAdam(_Coupled, keras.optimizers.Adam):
    """Keras Adam with PyTorch's coupled ``weight_decay`` (PyTorch ``Adam``, not ``AdamW``) and
    per-layer ``lr_multipliers``. Keras's epsilon (1e-7, "epsilon hat") is kept, not PyTorch's 1e-8."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, *,
                 weight_decay=0.0, lr_multipliers=None, name="coupled_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, **kwargs)
        self._init_coupled(weight_decay, lr_multipliers)

    def get_config(self):
        return self._coupled_config(super().get_config())


def multiplier_for(path: str, lr_multipliers: dict) -> float:
    """The factor for a variable path like "stem_conv/kernel": that of the longest layer-name prefix
    it starts with (so {"stage0": 0.1, "stage0_block1": 0.5} gives stage0_block1 0.5), else 1."""
    matches = [prefix for prefix in lr_multipliers if path.startswith(prefix)]
    return float(lr_multipliers[max(matches, key=len)]) if matches else 1.0


def _check_multipliers(lr_multipliers) -> dict:
    if lr_multipliers is None:
        return {}
    if not isinstance(lr_multipliers, dict):
        raise InvalidParameterError(f"lr_multipliers must be a dict of layer-name prefix -> factor, got {lr_multipliers!r}")
    checked = {}
    for prefix, factor in lr_multipliers.items():
        if not isinstance(prefix, str) or not prefix:
            raise InvalidParameterError(f"lr_multipliers keys must be non-empty layer-name prefixes, got {prefix!r}")
        checked[prefix] = check_float(f"lr_multipliers[{prefix!r}]", factor, low=0)
    return checked


def make_optimizer(name: str, learning_rate, *, momentum: float = 0.0, weight_decay: float = 0.0,
                   clipvalue: float | None = None, clipnorm: float | None = None,
                   global_clipnorm: float | None = None, lr_multipliers: dict | None = None):
    """``CoupledSGD`` or ``CoupledAdam``. ``learning_rate`` is a number or a Keras schedule
    (``schedules.OneCycle``). ``weight_decay`` is coupled (PyTorch's); ``clipvalue`` / ``clipnorm``
    (per variable) / ``global_clipnorm`` are Keras's own clipping, at most one, applied before the
    decay; ``lr_multipliers`` = {layer-name prefix: factor}. ``momentum`` is SGD's only."""
    check_choice("optimizer", name, OPTIMIZERS)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        learning_rate = check_float("learning_rate", learning_rate, low=0, closed="right")
    check_float("momentum", momentum, low=0, high=1, closed="left")
    if name == "adam" and momentum:
        raise InvalidParameterError(f"momentum must be 0 for adam (it has beta_1), got {momentum!r}")
    clipping = {}
    for key, value in (("clipvalue", clipvalue), ("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm)):
        if value is not None:
            clipping[key] = check_float(key, value, low=0, closed="neither")
    if len(clipping) > 1:
        raise InvalidParameterError(f"only one of clipvalue, clipnorm, global_clipnorm may be set, got {clipping!r}")
    common = dict(weight_decay=weight_decay, lr_multipliers=lr_multipliers, **clipping)
    if name == "sgd":
        return CoupledSGD(learning_rate=learning_rate, momentum=float(momentum), **common)
    return CoupledAdam(learning_rate=learning_rate, **common)


class PlateauLR(keras.callbacks.ReduceLROnPlateau):
    """Keras's ReduceLROnPlateau, which refuses a schedule at the start with a one-line error
    (it sets ``optimizer.learning_rate``, which a schedule has no place for)."""

    def on_train_begin(self, logs=None):
        rate = getattr(self.model.optimizer, "_learning_rate", None)
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
            raise InvalidParameterError(
                f"a learning-rate plateau callback must go with a constant learning rate, got a "
                f"{type(rate).__name__} schedule")
        super().on_train_begin(logs)


def plateau_callback(factor: float = 0.05, patience: int = 10, min_lr: float = 0.0,
                     monitor: str = "val_loss") -> PlateauLR:
    """q18's "reduce learning rate on plateau" (factor 0.05, patience 10), as PyTorch's
    ``ReduceLROnPlateau(mode="min")``. Raises at train begin if the model's optimizer has a schedule."""
    check_float("factor", factor, low=0, high=1, closed="neither")
    check_int("patience", patience, low=0)
    check_float("min_lr", min_lr, low=0)
    return PlateauLR(monitor=monitor, factor=factor, patience=patience, min_lr=min_lr, verbose=0)
