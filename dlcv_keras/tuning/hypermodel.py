"""A KerasTuner HyperModel: ``build`` samples model and optimizer settings, ``fit`` batch size and epochs.

Following the keras-io guide's split, this file only reads sampled values and passes
them as keyword arguments to ordinary Keras code (``models``, ``training``); the
hyperparameter names are the builders' argument names.
"""

from __future__ import annotations

import inspect
import math

import keras
import keras_tuner

from dlcv_keras.models import compile_model, get_builder
from dlcv_keras.models.options import COMPILE_KEYS, MLP_LAYER_WIDTHS, MODEL_KEYS
from dlcv_keras.training import devices
from dlcv_keras.training.fit import STEPS_PER_EXECUTION, FitResult, fit_and_log
from dlcv_keras.training.rules import patience_reason, restored_reason
from dlcv_keras.validation import InvalidParameterError


class ClassifierHyperModel(keras_tuner.HyperModel):
    """Builds ``model`` (a name from ``models.BUILDERS``) from sampled values and fits it.

    ``early_stopping`` is q3's rule ({"min_epochs", "min_delta"}) or None. Each trial
    starts from ``seed`` (plus its ``repeat``: ``trial_seed``), so a trial's result does not
    depend on which trials ran before.
    ``constraint`` = (min, max) parameters: a model outside it is "rejected" and not trained.
    ``devices``: how many devices one trial trains on, data-parallel (``training.devices``); 1 is the
    plain single-device code. A count, not a strategy: the hypermodel is pickled to a trial's process.
    """

    def __init__(self, model: str, input_shape, num_classes: int, *, seed: int = 0,
                 optimizer: str = "sgd", early_stopping: dict | None = None, resplit=None,
                 implementation: str = "keras", constraint: tuple | None = None,
                 input_stats: tuple | None = None, fixed_kwargs: dict | None = None, n_train: int | None = None,
                 instruments: tuple = (), devices: int = 1):
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
        # (mean, variance) per channel of the training images in [0, 1]: a convolutional builder
        # that takes input_mean/input_variance starts with a Normalization layer set to them.
        self.input_stats = input_stats
        # Builder arguments that are not hyperparameters (q10's weights path), the same every trial.
        self.fixed_kwargs = dict(fixed_kwargs or {})
        self.n_train = n_train                 # steps per epoch, for the one-cycle schedule
        # What training.instruments.LayerProbe measures inside the network each epoch (q13, q15).
        self.instruments = tuple(instruments)
        if implementation != "keras" and devices != 1:
            raise InvalidParameterError(f"--devices must be 1 for the {implementation} implementation (it trains "
                                        f"numpy modules on one CPU), got {devices!r}")
        self.devices = devices

    def trial_seed(self, values: dict) -> int:
        """The seed of a trial's weights, data order, dropout and augmentation: ``seed`` + its ``repeat``
        (models/options.py RUN_KEYS), so repeats of one setting differ and each can be run again."""
        return self.seed + values.get("repeat", 0)

    def model_kwargs(self, values: dict) -> dict:
        """The builder's keyword arguments; an MLP's ``units_1`` ... ``units_k`` become its
        per-layer ``units`` list (and ``depth`` k), so a search can vary each hidden layer."""
        kwargs = {k: values[k] for k in MODEL_KEYS[self.model_name] if k in values and k not in MLP_LAYER_WIDTHS}
        widths = [values[k] for k in MLP_LAYER_WIDTHS if k in values]
        if widths:
            kwargs.update(units=widths, depth=len(widths))
        if self.implementation == "keras":
            accepts = inspect.signature(get_builder(self.model_name)).parameters
            if self.input_stats is not None and "input_mean" in accepts:
                kwargs["input_mean"], kwargs["input_variance"] = self.input_stats
            kwargs.update(self.fixed_kwargs)
        return kwargs

    def compile_kwargs(self, values: dict, model) -> dict:
        """compile_model's arguments: the sampled optimizer settings, the one-cycle schedule's
        length in steps and, for a lower learning rate in early layers, which layers those are."""
        kwargs = {k: values[k] for k in COMPILE_KEYS if k in values}
        kwargs.setdefault("optimizer", self.optimizer)
        kwargs.setdefault("lr", values.get("max_lr", 0.01))
        if kwargs.get("schedule") == "one_cycle":
            steps = math.ceil((self.n_train or values["batch_size"]) / values["batch_size"])
            kwargs["total_steps"] = steps * values["epochs"]
        if values.get("mode") == "layerwise":
            from dlcv_keras.models.pretrained import early_layer_names
            kwargs["early_layers"] = early_layer_names(model)
            kwargs.setdefault("early_lr_factor", 0.1)
        elif "early_lr_factor" in kwargs:
            del kwargs["early_lr_factor"]      # only the layerwise mode has early layers to slow
        return kwargs

    def build(self, hp: keras_tuner.HyperParameters):
        values = hp.values
        model_kwargs = self.model_kwargs(values)
        if self.implementation == "scratch":
            return self._build_scratch(values, model_kwargs)
        keras.utils.set_random_seed(self.trial_seed(values))
        with devices.scope(self.devices):      # variables made on (and mirrored over) every device
            model = get_builder(self.model_name)(self.input_shape, self.num_classes, **model_kwargs)
            devices.synchronize_batch_norm(model)
            return compile_model(model, steps_per_execution=devices.steps_per_execution(STEPS_PER_EXECUTION),
                                 **self.compile_kwargs(values, model))

    def _build_scratch(self, values: dict, model_kwargs: dict):
        from dlcv_keras.scratch.nn import Classifier, untrainable
        from dlcv_keras.scratch.two_layer import TwoLayerClassifier

        networks = {"mlp": Classifier, "two_layer": TwoLayerClassifier}
        if self.model_name not in networks:
            raise ValueError(f"the scratch implementation builds {' or '.join(map(repr, networks))}, "
                             f"got {self.model_name!r}")
        # q3's Classifier stands in for the question's Keras MLP, so it must train as that one's optimizer
        # does; the two-layer net is the exercise's own SGD model, whatever the question's Keras runs use.
        problem = untrainable(values if self.model_name == "two_layer" else {"optimizer": self.optimizer, **values})
        if problem:
            raise ValueError(problem)
        model_kwargs.pop("l1", None)          # zero, as untrainable() just made sure
        return networks[self.model_name](self.input_shape, self.num_classes, seed=self.trial_seed(values), **model_kwargs)

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
        extra = []
        if patience:
            # q8's early stopping: Keras's own, on the validation loss, best weights restored.
            stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
            extra.append(stopper)
        if values.get("plateau_patience"):
            # q18: ReduceLROnPlateau on the validation loss (the seed's factor 0.05, patience 10).
            from dlcv_keras.training.optimizers import plateau_callback
            extra.append(plateau_callback(factor=values.get("plateau_factor", 0.05),
                                          patience=values["plateau_patience"]))
        probe = None
        if self.instruments:
            from dlcv_keras.training.instruments import LayerProbe, probe_rows
            probe = LayerProbe(*probe_rows(x, y, self.seed), instruments=self.instruments)
            extra.append(probe)
        augment = ()
        if "augment" in values:
            from dlcv_keras.data.augment import parse_augment
            augment = parse_augment(values["augment"])
        with devices.scope(self.devices):      # the same strategy the model was built under
            result = fit_and_log(model, x, y, x_val, y_val, batch_size=values["batch_size"], epochs=values["epochs"],
                                 early_stopping=self.early_stopping, callbacks=[*(callbacks or []), *extra],
                                 augment=augment, seed=self.trial_seed(values))
        if probe is not None:
            result.layers = probe.rows
        if stopper is not None and result.status == "completed" and stopper.best_epoch + 1 < result.epochs_run:
            # Keras puts the best epoch's weights back when training ends, whether or not patience ran out.
            result.restored_epoch = stopper.best_epoch + 1
            reason = patience_reason(patience) if stopper.stopped_epoch else result.stop_reason
            result.stop_reason = restored_reason(reason, result.restored_epoch)
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

        from dlcv_keras.data.augment import parse_augment

        outcome = train(model, x, y, x_val, y_val, lr=values["lr"], batch_size=values["batch_size"],
                        epochs=values.get("epochs"), iterations=values.get("iterations"),
                        lr_decay=values.get("lr_decay", 1.0), patience=values.get("patience", 0),
                        augment=parse_augment(values.get("augment", "none")),
                        early_stopping=self.early_stopping, seed=self.trial_seed(values), should_stop=should_stop)
        return FitResult(history=outcome["history"], status=outcome["status"], stop_reason=outcome["stop_reason"],
                         seconds=outcome["seconds"], restored_epoch=outcome["restored_epoch"])



def count_parameters(model) -> int:
    """Trainable and non-trainable parameters of a Keras model or the hand-written Classifier."""
    if hasattr(model, "count_params"):
        return int(model.count_params())
    return int(sum(row["params"] for row in model.parameter_table()))
