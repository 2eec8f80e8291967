"""Repeated runs: the ``repeat`` hyperparameter moves a trial's seed, and a RunComparison of repeats
stores and reports each run's mean and spread over its seeds.

The seeding tests train tiny models in this process on every path a trial may take: the JAX fast
path, model.fit (forced by a callback with a batch hook), the uint8 image pipeline with
augmentation, and the hand-written scratch Classifier. The comparison tests run q8 with a space
file that repeats each compared run three times, on the offline MNIST copy (slow).
"""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np
import pytest

from dlcv_keras.tuning.hypermodel import ClassifierHyperModel

SETTING = {"depth": 1, "units": 8, "activation": "relu", "dropout": 0.3, "lr": 0.1, "batch_size": 8, "epochs": 2}


class _EveryBatch(keras.callbacks.Callback):
    """A batch hook: the run goes through model.fit instead of the fast path (callbacks.needs_every_batch)."""

    def on_train_batch_begin(self, batch, logs=None):
        pass


def _weights(model) -> list[np.ndarray]:
    if hasattr(model, "get_weights"):
        return [np.array(w) for w in model.get_weights()]
    return [np.array(w) for w in model.params.values()]      # the scratch Classifier


def _trained(repeat: int, *, implementation="keras", callbacks=(), augment=None, seed=5):
    """(initial weights, trained weights) of one trial of SETTING with this ``repeat``."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 48)
    if augment:
        x = rng.integers(0, 256, (48, 6, 6, 1), dtype=np.uint8)        # the image pipeline's input
    else:
        x = rng.normal(0, 1, (48, 6, 6, 1)).astype(np.float32)
    hp = keras_tuner.HyperParameters()
    for name, value in {**SETTING, "repeat": repeat, **({"augment": augment} if augment else {})}.items():
        hp.Fixed(name, value)
    hypermodel = ClassifierHyperModel("mlp", (6, 6, 1), 3, seed=seed, implementation=implementation)
    model = hypermodel.build(hp)
    initial = _weights(model)
    result = hypermodel.fit(hp, model, x[:40], y[:40], validation_data=(x[40:], y[40:]), callbacks=list(callbacks))
    assert result.status == "completed" and result.epochs_run == 2
    return initial, _weights(model)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("path", ["fast path", "model.fit", "augmented images", "scratch"])
def test_repeats_start_from_their_own_seed_and_each_runs_again_exactly(path):
    options = {"fast path": {}, "model.fit": {"callbacks": [_EveryBatch()]}, "augmented images": {"augment": "flip"},
               "scratch": {"implementation": "scratch"}}[path]
    first_init, first = _trained(0, **options)
    again_init, again = _trained(0, **options)
    other_init, other = _trained(1, **options)
    assert _same(first_init, again_init) and _same(first, again)
    assert not _same(first_init, other_init) and not _same(first, other)


def test_repeat_k_starts_where_seed_plus_k_does():
    # --seed 5, repeat 2 is the run --seed 7 makes: the repeat only moves the seed.
    assert _same(_trained(2, seed=5)[1], _trained(0, seed=7)[1])


def test_every_search_takes_repeat_whatever_its_model():
    from dlcv_keras.experiments import Search
    from dlcv_keras.models.options import MODELS

    for model in MODELS:
        assert Search("s", "a search", model=model).accepted(None)["repeat"] == ("int", 0, 1_000_000, "both")
