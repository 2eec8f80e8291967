"""Trains one small model on 1 and on N devices in this process; prints what tests/test_devices.py compares.

Run as ``python tests/devices_probe.py BACKEND N ROWS [--isolated] [--model resnet18]`` in a fresh
process (dlcv_keras importable): the Keras backend and the number of devices are fixed when the backend
is imported, so this must not run inside pytest's process.
Prints one JSON object: for each device count, the final weights (flattened), the moving statistics of
its batch normalisation layers (flattened; ``--model resnet18``), the loss history, the replicas the
training ran on and how many batch normalisation layers were synchronised across them; with
``--isolated`` (TensorFlow) also the N-device trial run in a trial process of its own
(tuning/isolation.py), as a search on TensorFlow runs it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Before Keras is imported below: the backend, then the devices (JAX reads XLA_FLAGS at import;
    # TensorFlow's CPU is split into logical devices before its first op). Then this file is
    # imported as the module ``devices_probe``, so that a trial's process can unpickle its class.
    BACKEND, DEVICES, ROWS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    os.environ["KERAS_BACKEND"] = BACKEND
    sys.path.insert(0, str(Path(__file__).resolve().parent))            # this folder: devices_probe
    from dlcv_keras.training import devices as _devices

    _devices.prepare(DEVICES)
    assert _devices.resolve(DEVICES) == DEVICES

import keras
import keras_tuner
import numpy as np
from sklearn.datasets import load_digits

from dlcv_keras.training import devices
from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

VALUES = {"depth": 1, "units": 32, "activation": "relu", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
          "batch_size": 32, "epochs": 4}
# ResNet-18 at 1/16 width (4 to 32 filters, 20 batch normalisation layers) on the 8x8 images: one epoch
# of plain SGD, short and gentle enough that one device's and two devices' runs stay comparable.
MODELS = {"mlp": VALUES,
          "resnet18": {"width": 0.0625, "optimizer": "sgd", "lr": 0.01, "batch_size": 32, "epochs": 1}}
MODEL = sys.argv[sys.argv.index("--model") + 1] if "--model" in sys.argv else "mlp"


class ReportingHyperModel(ClassifierHyperModel):
    """The package's hypermodel, plus the replicas its fit ran on in the last epoch's row (so that a
    trial record made in another process says it too)."""

    def fit(self, hp, model, *args, **kwargs):
        with devices.scope(self.devices):
            replicas = devices.replicas()
        result = super().fit(hp, model, *args, **kwargs)
        result.history[-1]["replicas"] = replicas
        result.history[-1]["variable_devices"] = variable_devices(model)
        result.history[-1]["synchronized"] = sum(getattr(layer, "synchronized", False) for layer in model.layers)
        return result


def variable_devices(model) -> int:
    """How many devices hold each weight: a MirroredVariable's copies, a JAX array's shards."""
    variable = model.trainable_variables[0]
    if keras.backend.backend() == "tensorflow":
        values = getattr(variable.value, "values", None)
        return len(values) if values is not None else 1
    return len(variable.value.sharding.device_set)


def data(rows: int):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    y = digits.target.astype("int64")
    # 97 validation rows: an odd last batch. 96 for ResNet-18: a last batch of one row leaves a
    # replica none, and TensorFlow's inference batch normalisation fails on an empty batch under
    # MirroredStrategy ("Incompatible shapes: [0,8,8,4] vs. [8]", synchronised or not).
    val = 96 if MODEL == "resnet18" else 97
    return x[:rows], y[:rows], x[rows:rows + val], y[rows:rows + val]


def hyperparameters():
    hp = keras_tuner.HyperParameters()
    for name, value in MODELS[MODEL].items():
        hp.Fixed(name, value)
    return hp


def flat(variables) -> list:
    return np.concatenate([np.ravel(v.numpy()) for v in variables]).tolist() if variables else []


def train(count: int, rows: int) -> dict:
    x, y, x_val, y_val = data(rows)
    hypermodel = ReportingHyperModel(MODEL, x.shape[1:], 10, seed=3, devices=count)
    hp = hyperparameters()
    model = hypermodel.build(hp)
    moving_at_start = np.array(flat(model.non_trainable_variables))
    result = hypermodel.fit(hp, model, x, y, validation_data=(x_val, y_val))
    last = result.history[-1]
    moving = flat(model.non_trainable_variables)
    return {"weights": flat(model.trainable_variables), "moving": moving,
            "moving_change": float(np.abs(np.array(moving) - moving_at_start).max()) if moving else 0.0,
            "loss": [row["loss"] for row in result.history], "val_loss": last["val_loss"],
            "replicas": last["replicas"], "variable_devices": last["variable_devices"],
            "synchronized": last["synchronized"]}


def train_isolated(count: int, rows: int) -> dict:
    from dlcv_keras.tuning.isolation import run_isolated

    x, y, x_val, y_val = data(rows)
    job = dict(hypermodel=ReportingHyperModel("mlp", x.shape[1:], 10, seed=3, devices=count), values=VALUES,
               x=x, y=y, validation_data=(x_val, y_val), progress=None, test_data=None, num_classes=10,
               keep_path=None)
    record = run_isolated(job, should_stop=lambda: False)
    return {"loss": [row["loss"] for row in record["history"]], "val_loss": record["val_loss"],
            "replicas": record["replicas"], "variable_devices": record["variable_devices"]}


if __name__ == "__main__":
    import devices_probe as probe

    out = {"1": probe.train(1, ROWS), str(DEVICES): probe.train(DEVICES, ROWS)}
    if "--isolated" in sys.argv:
        out["isolated"] = probe.train_isolated(DEVICES, ROWS)
    print(json.dumps(out))
