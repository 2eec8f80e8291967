"""KerasTuner glue: the space as HyperParameters, trial counts, project names, and real
(tiny) grid and random searches that keep every epoch and survive a diverging trial."""

import numpy as np
import pytest

from dlcv_keras.tuning.hypermodel import ClassifierHyperModel
from dlcv_keras.tuning.search import count_trials, fingerprint, hyperparameters_for, make_tuner
from dlcv_keras.tuning.spaces import parse_space


def _space(table, tuner="grid"):
    return parse_space({"quick": {"s": table}}, "quick", tuner=tuner).experiment("s")


def test_space_becomes_fixed_and_choice_values_with_base_values_filling_gaps():
    space = _space({"lr": [0.1, 0.01], "epochs": 3})
    hp = hyperparameters_for(space, base={"lr": 0.5, "batch_size": 64, "epochs": 9})
    assert hp.values == {"batch_size": 64, "epochs": 3, "lr": 0.1}   # space wins over base
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {"batch_size": "Fixed", "epochs": "Fixed", "lr": "Choice"}


def test_trial_counts_for_grid_and_random():
    grid = _space({"lr": [0.1, 0.01, 0.001], "batch_size": [32, 64], "epochs": 1})
    assert count_trials(grid, "grid", 10) == 6
    assert count_trials(grid, "random", 4) == 4
    assert count_trials(grid, "random", 50) == 6        # never more than the distinct settings
    ranged = _space({"lr": {"min": 1e-4, "max": 1e-1, "sampling": "log"}, "epochs": 1}, tuner="random")
    assert count_trials(ranged, "random", 5) == 5


def test_project_names_change_with_anything_that_shapes_results():
    space = _space({"lr": [0.1], "epochs": 1})
    other = _space({"lr": [0.2], "epochs": 1})
    assert fingerprint("q1", space.as_dict(), "hash-a") == fingerprint("q1", space.as_dict(), "hash-a")
    assert fingerprint("q1", space.as_dict(), "hash-a") != fingerprint("q1", other.as_dict(), "hash-a")
    assert fingerprint("q1", space.as_dict(), "hash-a") != fingerprint("q1", space.as_dict(), "hash-b")


def _problem(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, 3, 3, 1)).astype("float32")
    x[np.arange(n), y, 0, 0] += 2.0
    return x, y


def _search(tmp_path, kind, table, x, y, total_cap=3, test=False):
    space = _space(table, tuner=kind)
    total = count_trials(space, kind, total_cap)
    lines = []
    tuner = make_tuner(kind, ClassifierHyperModel("linear", (3, 3, 1), 3, seed=0),
                       hyperparameters_for(space), directory=tmp_path, project_name="p",
                       total=total, seed=0, label="s", num_classes=3,
                       test_data=(x[:40], y[:40]) if test else None, echo=lines.append)
    tuner.search(x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
    return tuner, lines


def test_grid_search_keeps_every_epoch_and_goes_on_after_a_blow_up(tmp_path):
    x, y = _problem()
    # SGD on an L2 penalty scales the weights by (1 - 2 lr l2) per step: x(-199) for lr 10,
    # which overflows to inf within an epoch or two; x0.8 for lr 0.01, which is stable.
    tuner, lines = _search(tmp_path, "grid", {"lr": [10.0, 0.01], "l2": 10.0, "batch_size": 16, "epochs": 4},
                           x, y, test=True)
    records = tuner.records()
    assert [r["hyperparameters"]["lr"] for r in records] == [10.0, 0.01]
    assert records[0]["status"] == "diverged" and records[0]["stop_reason"].startswith("diverged")
    assert records[1]["status"] == "completed" and len(records[1]["history"]) == 4
    assert "test_accuracy" in records[1]
    assert lines[0] == "[s] search: 2 trials"
    assert lines[1].startswith("[s] trial 1 of 2: ") and lines[3].startswith("[s] trial 2 of 2: ")
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.hyperparameters.values["lr"] == 0.01            # the diverged trial ranks last


def test_random_search_samples_ranges_within_bounds(tmp_path):
    x, y = _problem()
    tuner, lines = _search(tmp_path, "random",
                           {"lr": {"min": 0.05, "max": 0.5, "sampling": "log"}, "batch_size": [16, 32],
                            "epochs": 2}, x, y, total_cap=3)
    records = tuner.records()
    assert len(records) == 3 and lines[0] == "[s] search: 3 trials"
    for record in records:
        assert 0.05 <= record["hyperparameters"]["lr"] <= 0.5
        assert record["hyperparameters"]["batch_size"] in (16, 32)
        assert len(record["history"]) == 2
    assert len({r["hyperparameters"]["lr"] for r in records}) == 3


class _BrokenAtLowLr(ClassifierHyperModel):
    def fit(self, hp, model, *args, **kwargs):
        if hp.values["lr"] == 0.01:
            raise ValueError("simulated bug")
        return super().fit(hp, model, *args, **kwargs)


def test_an_error_in_a_trial_stops_the_search_and_the_trial_runs_again_on_resume(tmp_path):
    from dlcv_keras.tuning.search import TrialError

    x, y = _problem()
    space = _space({"lr": [0.5, 0.01, 0.1], "batch_size": 16, "epochs": 2})

    def tuner_with(hypermodel):
        return make_tuner("grid", hypermodel, hyperparameters_for(space), directory=tmp_path,
                          project_name="p", total=3, seed=0, label="s", num_classes=3, echo=lambda line: None)

    broken = tuner_with(_BrokenAtLowLr("linear", (3, 3, 1), 3, seed=0))
    with pytest.raises(TrialError, match=r"trial 1 of s failed: ValueError: simulated bug"):
        broken.search(x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
    assert [r["hyperparameters"]["lr"] for r in broken.records()] == [0.5]   # not filed as done

    fixed = tuner_with(ClassifierHyperModel("linear", (3, 3, 1), 3, seed=0))
    fixed.search(x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
    assert sorted(r["hyperparameters"]["lr"] for r in fixed.records()) == [0.01, 0.1, 0.5]
