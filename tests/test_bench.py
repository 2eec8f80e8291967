"""The benchmark's parts measure what they say (speed goals live in the benchmark, not here)."""


import numpy as np
import pytest

from dlcv_keras import bench


def test_matmul_bound_and_synthetic_data_have_the_real_shapes():
    x, y = bench.synthetic((28, 28, 1), 64)
    assert x.shape == (64, 28, 28, 1) and x.dtype == np.float32 and set(np.unique(y)) <= set(range(10))
    assert 0 < bench.matmul_bound(320) < bench.matmul_bound(3200) * 2


def test_search_costs_time_every_trial_and_sample_memory():
    found = bench.search_costs(trials=4)
    assert found["trials"] == 4 and found["epochs_run"] == 4
    assert 0 < found["training_seconds"] < found["wall_seconds"]
    assert found["overhead_per_trial_s"] > 0
    assert 0 < found["peak_rss_mb_after_3"] <= found["peak_rss_mb_after_last"]


def test_each_backend_gets_one_child_and_the_search_runs_before_the_big_workloads():
    groups = bench.plan(q1_full=True)
    assert sorted(groups) == ["jax", "tensorflow"]
    assert groups["jax"] == ["search", "ours:linear", "ours:mlp", "q1-full"]
    # Both paths of a TensorFlow workload run in one step, their epochs alternating.
    assert groups["tensorflow"] == ["plain:linear", "plain:mlp", "both:cnn", "both:resnet18"]


def test_a_measurement_step_reports_its_backend_and_times(monkeypatch):
    monkeypatch.setitem(bench.WORKLOADS, "mlp", ((28, 28, 1), 32, (640, 320), 1))
    found = bench.measure(["ours:mlp", "both:mlp"], quick=True)
    assert found["ours:mlp"]["samples"] == 320 and found["ours:mlp"]["seconds"] > 0
    assert found["ours:mlp"]["backend"] == __import__("keras").backend.backend()
    assert found["plain:mlp"]["seconds"] > 0 and found["plain:mlp"]["samples"] == 320


def test_epochs_alternate_and_the_warm_up_round_is_not_counted():
    calls = []

    def epoch_of(name, seconds):
        def epoch():
            calls.append(name)
            return seconds.pop(0)
        return epoch

    best = bench.best_epochs([epoch_of("a", [9.0, 3.0, 2.0]), epoch_of("b", [8.0, 5.0, 6.0])], repeats=2)
    assert best == [2.0, 5.0]                 # the 9 s and 8 s warm-up epochs are ignored
    assert calls == ["a", "b", "a", "b", "a", "b"]


@pytest.mark.slow
def test_a_failing_child_step_is_one_line_naming_it():
    with pytest.raises(RuntimeError, match="benchmark steps \\['nonsense'\\] on jax failed"):
        bench.in_child(["nonsense"], "jax", quick=True)


def test_builders_of_the_benchmarked_models_match_the_seeds():
    from dlcv_keras.models import build_cnn, build_resnet18

    assert build_cnn((28, 28, 1), 10).count_params() == 570_436          # q17's CNN
    trainable = sum(int(np.prod(w.shape)) for w in build_resnet18((32, 32, 3), 10).trainable_weights)
    assert trainable == 11_173_962                                       # ResNet-18, CIFAR variant


def test_bad_json_path_is_one_line_and_exit_2(tmp_path, capsys):
    assert bench.main(["--json", str(tmp_path / "missing" / "out.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --json must be a path in an existing folder") and "\n" not in err
    assert not (tmp_path / "missing").exists()
