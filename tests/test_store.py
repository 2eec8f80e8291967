"""The results store: round trips, number parsing, atomic writes."""

import json
import math
import os

import numpy as np
import pytest

from dlcv_keras.results import ResultsStore, atomic_write_text


def test_json_round_trip_converts_numpy_and_keeps_nan_visible(tmp_path):
    store = ResultsStore(tmp_path, "q1", "smoke")
    store.write_json("run.json", {"acc": np.float32(0.5), "per_class": np.array([0.25, 1.0]),
                                  "loss": float("nan"), "big": float("inf")})
    data = store.read_json("run.json")
    assert data == {"acc": 0.5, "per_class": [0.25, 1.0], "loss": "nan", "big": "inf"}
    assert store.exists()
    assert store.root == tmp_path / "q1" / "smoke"


def test_table_round_trip_parses_numbers_and_fills_missing_columns(tmp_path):
    store = ResultsStore(tmp_path, "q3", "quick")
    rows = [{"trial_id": "0", "lr": 0.01, "batch_size": 32, "status": "completed"},
            {"trial_id": "1", "lr": 1e-3, "batch_size": 64, "status": "diverged", "loss": float("nan")}]
    store.write_table("experiments/grid/trials.csv", rows)
    back = store.read_table("experiments/grid/trials.csv")
    assert [r["batch_size"] for r in back] == [32, 64]
    assert back[1]["lr"] == pytest.approx(1e-3)
    assert back[0]["loss"] is None                 # column absent from row 0: empty cell
    assert math.isnan(back[1]["loss"])
    assert back[1]["status"] == "diverged"


def test_write_experiment_writes_summary_last_and_lists_only_complete_ones(tmp_path):
    store = ResultsStore(tmp_path, "q1", "smoke")
    store.write_table("experiments/half/trials.csv", [{"a": 1}])    # no summary: incomplete
    store.write_experiment("base", summary={"kind": "search", "n_trials": 1},
                           trials=[{"trial_id": 0, "val_accuracy": 0.9}],
                           history=[{"trial_id": 0, "epoch": 1, "loss": 0.3}])
    assert store.experiments() == ["base"]
    found = store.read_experiment("base")
    assert found["summary"]["n_trials"] == 1
    assert found["trials"][0]["val_accuracy"] == 0.9
    assert found["history"][0]["epoch"] == 1


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "run.json"
    atomic_write_text(target, json.dumps({"status": "complete"}))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write_text(target, '{"status": "half')
    assert json.loads(target.read_text()) == {"status": "complete"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_missing_result_names_the_file(tmp_path):
    store = ResultsStore(tmp_path, "q1", "smoke")
    with pytest.raises(FileNotFoundError, match="summary.json"):
        store.read_experiment("base")


def test_extra_tables_and_arrays_round_trip(tmp_path):
    import numpy as np

    store = ResultsStore(tmp_path, "q4", "smoke", implementation="scratch")
    kernel = np.arange(9, dtype=np.float64).reshape(3, 3) / 9
    store.write_experiment("blur", summary={"kind": "conv_blur"},
                           tables={"points": [{"x": 1.5, "value": float("inf")}]}, arrays={"kernel": kernel})
    assert store.root == tmp_path / "q4" / "smoke" / "scratch"
    found = store.read_experiment("blur")
    assert found["points"] == [{"x": 1.5, "value": float("inf")}]
    np.testing.assert_array_equal(store.read_arrays("blur")["kernel"], kernel)
    assert not list(store.experiment_dir("blur").glob(".*.tmp"))


def test_a_table_the_last_write_left_out_is_not_read_back_as_its_own(tmp_path):
    store = ResultsStore(tmp_path, "q13", "smoke")
    rows = [{"trial_id": "0", "epoch": 0, "layer": "dense_0", "grad_mean_abs": 0.1}]
    store.write_experiment("depth", summary={"kind": "search"}, trials=[{"trial_id": "0"}],
                           tables={"layer_stats": rows})
    assert store.read_experiment("depth")["layer_stats"][0]["grad_mean_abs"] == 0.1
    # Run again without instruments: the earlier layer_stats.csv must not pass for this run's.
    store.write_experiment("depth", summary={"kind": "search"}, trials=[{"trial_id": "0"}])
    assert sorted(store.read_experiment("depth")) == ["summary", "trials"]
    assert not (store.experiment_dir("depth") / "layer_stats.csv").exists()
