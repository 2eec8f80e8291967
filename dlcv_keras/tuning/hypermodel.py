"""A KerasTuner HyperModel: ``build`` samples model and optimizer settings, ``fit`` batch size and epochs.

Following the keras-io guide's split, this file only reads sampled values and passes
them as keyword arguments to ordinary Keras code (``models``, ``training``); the
hyperparameter names are the builders' argument names.
"""

from __future__ import annotations

import keras
import keras_tuner

from dlcv_keras.models import compile_model, get_builder
from dlcv_keras.models.options import MLP_LAYER_WIDTHS, MODEL_KEYS
from dlcv_keras.training.fit import STEPS_PER_EXECUTION, FitResult, fit_and_log


class ClassifierHyperModel(keras_tuner.HyperModel):
    """Builds ``model`` (a name from ``models.BUILDERS``) from sampled values and fits it.

    ``early_stopping`` is q3's rule ({"min_epochs", "min_delta"}) or None. Each trial
    starts from ``seed``, so a trial's result does not depend on which trials ran before.
    ``constraint`` = (min, max) parameters: a model outside it is "rejected" and not trained.
    """

    def __init__(self, model: str, input_shape, num_classes: int, *, seed: int = 0,
                 optimizer: str = "sgd", early_stopping: dict | None = None, resplit=None,
                 implementation: str = "keras", constraint: tuple | None = None):
        super().__init__(name=model)
        self.model_name = model
        # "keras": a compiled keras.Model and model.fit; "scratch": dlcv_keras.scratch's numpy
        # Classifier (hand-written forward and backward) and its SGD solver, same data and rules.
        self.implementation = implementation
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.seed = seed
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        # resplit(x, y, x_val, y_val, fraction) -> new (x, y, x_val, y_val), for a
        # ``train_fraction`` hyperparameter; given by the caller, which owns the data.
        self.resplit = resplit
        self.constraint = constraint

    def model_kwargs(self, values: dict) -> dict:
        """The builder's keyword arguments; an MLP's ``units_1`` ... ``units_k`` become its
        per-layer ``units`` list (and ``depth`` k), so a search can vary each hidden layer."""
        kwargs = {k: values[k] for k in MODEL_KEYS[self.model_name] if k in values and k not in MLP_LAYER_WIDTHS}
        widths = [values[k] for k in MLP_LAYER_WIDTHS if k in values]
        if widths:
            kwargs.update(units=widths, depth=len(widths))
        return kwargs

    def build(self, hp: keras_tuner.HyperParameters):
        values = hp.values
        model_kwargs = self.model_kwargs(values)
        if self.implementation == "scratch":
            return self._build_scratch(values, model_kwargs)
        keras.utils.set_random_seed(self.seed)
        model = get_builder(self.model_name)(self.input_shape, self.num_classes, **model_kwargs)
        return compile_model(model, lr=values["lr"], optimizer=values.get("optimizer", self.optimizer),
                             momentum=values.get("momentum", 0.0), steps_per_execution=STEPS_PER_EXECUTION)

    def _build_scratch(self, values: dict, model_kwargs: dict):
        from dlcv_keras.scratch.nn import Classifier, untrainable

        if self.model_name != "mlp":
            raise ValueError(f"the scratch implementation builds the 'mlp' model, got {self.model_name!r}")
        problem = untrainable({"optimizer": self.optimizer, **values})
        if problem:
            raise ValueError(problem)
        model_kwargs.pop("l1", None)          # zero, as untrainable() just made sure
        return Classifier(self.input_shape, self.num_classes, seed=self.seed, **model_kwargs)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, **kwargs) -> FitResult:
        values = hp.values
        x_val, y_val = validation_data
        if "train_fraction" in values:
            if self.resplit is None:
                raise ValueError("a train_fraction hyperparameter needs a resplit function")
            x, y, x_val, y_val = self.resplit(x, y, x_val, y_val, values["train_fraction"])
        rejected = self.rejected(model)
        if rejected:
            return FitResult(status="rejected", stop_reason=rejected)
        if self.implementation == "scratch":
            return self._fit_scratch(model, x, y, x_val, y_val, values, callbacks)
        patience = values.get("patience", 0)
        stopper = None
        if patience:
            # q8's early stopping: Keras's own, on the validation loss, best weights restored.
            stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
        result = fit_and_log(model, x, y, x_val, y_val, batch_size=values["batch_size"], epochs=values["epochs"],
                             early_stopping=self.early_stopping, callbacks=[*(callbacks or []), *([stopper] if stopper else [])])
        if stopper is not None and stopper.stopped_epoch and result.status == "completed":
            result.restored_epoch = stopper.best_epoch + 1
            result.stop_reason = (f"early stopping: val_loss did not improve for {patience} epochs; "
                                  f"weights of epoch {result.restored_epoch} restored")
        return result

    def rejected(self, model) -> str | None:
        """Why ``model`` is outside the parameter constraint, or None."""
        if self.constraint is None:
            return None
        count = count_parameters(model)
        low, high = self.constraint
        if count < low or (high is not None and count > high):
            bound = f"[{low:,}, {high:,}]" if high is not None else f">= {low:,}"
            return f"rejected: {count:,} parameters, outside {bound}"
        return None

    def _fit_scratch(self, model, x, y, x_val, y_val, values, callbacks) -> FitResult:
        from dlcv_keras.scratch.solver import train

        def should_stop() -> bool:
            # The tuner's interrupt check is a Keras callback; it raises KeyboardInterrupt itself.
            for callback in callbacks or []:
                callback.on_train_batch_end(0)
            return False

        outcome = train(model, x, y, x_val, y_val, lr=values["lr"], batch_size=values["batch_size"],
                        epochs=values["epochs"], early_stopping=self.early_stopping, seed=self.seed,
                        should_stop=should_stop)
        return FitResult(history=outcome["history"], status=outcome["status"],
                         stop_reason=outcome["stop_reason"], seconds=outcome["seconds"])



def count_parameters(model) -> int:
    """Trainable and non-trainable parameters of a Keras model or the hand-written Classifier."""
    if hasattr(model, "count_params"):
        return int(model.count_params())
    return int(sum(row["params"] for row in model.parameter_table()))
