"""A KerasTuner HyperModel: ``build`` samples model and optimizer settings, ``fit`` batch size and epochs.

Following the keras-io guide's split, this file only reads sampled values and passes
them as keyword arguments to ordinary Keras code (``models``, ``training``); the
hyperparameter names are the builders' argument names.
"""

from __future__ import annotations

import keras
import keras_tuner

from dlcv_keras.models import compile_model, get_builder
from dlcv_keras.training.fit import STEPS_PER_EXECUTION, FitResult, fit_and_log

MODEL_KEYS = {
    "linear": ("l1", "l2", "initializer"),
    "mlp": ("depth", "units", "activation", "dropout", "l1", "l2", "initializer"),
}
COMPILE_KEYS = ("lr", "optimizer", "momentum")
FIT_KEYS = ("batch_size", "epochs", "train_fraction")


class ClassifierHyperModel(keras_tuner.HyperModel):
    """Builds ``model`` (a name from ``models.BUILDERS``) from sampled values and fits it.

    ``early_stopping`` is q3's rule ({"min_epochs", "min_delta"}) or None. Each trial
    starts from ``seed``, so a trial's result does not depend on which trials ran before.
    """

    def __init__(self, model: str, input_shape, num_classes: int, *, seed: int = 0,
                 optimizer: str = "sgd", early_stopping: dict | None = None, resplit=None):
        super().__init__(name=model)
        self.model_name = model
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.seed = seed
        self.optimizer = optimizer
        self.early_stopping = early_stopping
        # resplit(x, y, x_val, y_val, fraction) -> new (x, y, x_val, y_val), for a
        # ``train_fraction`` hyperparameter; given by the caller, which owns the data.
        self.resplit = resplit

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        values = hp.values
        keras.utils.set_random_seed(self.seed)
        model_kwargs = {k: values[k] for k in MODEL_KEYS[self.model_name] if k in values}
        model = get_builder(self.model_name)(self.input_shape, self.num_classes, **model_kwargs)
        return compile_model(model, lr=values["lr"], optimizer=values.get("optimizer", self.optimizer),
                             momentum=values.get("momentum", 0.0), steps_per_execution=STEPS_PER_EXECUTION)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, **kwargs) -> FitResult:
        values = hp.values
        x_val, y_val = validation_data
        if "train_fraction" in values:
            if self.resplit is None:
                raise ValueError("a train_fraction hyperparameter needs a resplit function")
            x, y, x_val, y_val = self.resplit(x, y, x_val, y_val, values["train_fraction"])
        return fit_and_log(model, x, y, x_val, y_val, batch_size=values["batch_size"],
                           epochs=values["epochs"], early_stopping=self.early_stopping, callbacks=callbacks)

