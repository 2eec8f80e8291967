"""The benchmark's parts measure what they say (speed goals live in the benchmark, not here)."""


import numpy as np
import pytest

from dlcv_keras import bench


def test_matmul_bound_and_synthetic_data_have_the_real_shapes():
    x, y = bench.synthetic((28, 28, 1), 64)
    assert x.shape == (64, 28, 28, 1) and x.dtype == np.float32 and set(np.unique(y)) <= set(range(10))
    # Ten steps hold two 32x784x256 matmuls each, 0.26 GFLOP in all: 1.7 ms at best here,
    # and under 0.1 ms would take 2.6 TFLOP/s, more than a CPU has. (A ratio between sizes is
    # not a robust check: on a shared machine the same 10 steps measured 1.7 ms to 0.4 s.)
    assert 1e-4 < bench.matmul_bound(320) < 30


def test_search_costs_time_every_trial_and_sample_memory():
    found = bench.search_costs(trials=4)
    assert found["trials"] == 4 and found["epochs_run"] == 4
    assert 0 < found["training_seconds"] < found["wall_seconds"] < 120
    # The overhead is exactly the time outside training, per trial; a tiny MLP trial's
    # bookkeeping takes well under 5 s (0.03 s measured), however busy the machine.
    assert found["overhead_per_trial_s"] == round((found["wall_seconds"] - found["training_seconds"]) / 4, 3)
    assert 0 < found["overhead_per_trial_s"] < 5
    # A process that has imported Keras holds at least 50 MB; 20 GB would be a leak.
    assert 50 < found["peak_rss_mb_after_3"] <= found["peak_rss_mb_after_last"] < 20_000


def test_each_backend_gets_one_child_and_the_search_runs_before_the_big_workloads():
    groups = bench.plan(q1_full=True)
    assert sorted(groups) == ["jax", "tensorflow"]
    assert groups["jax"] == ["search", "ours:linear", "ours:mlp", "q1-full"]
    # Both paths of a TensorFlow workload run in one step, their epochs alternating.
    assert groups["tensorflow"] == ["plain:linear", "plain:mlp", "both:cnn", "both:resnet18"]


def test_a_measurement_step_reports_its_backend_and_times(monkeypatch):
    monkeypatch.setitem(bench.WORKLOADS, "mlp", ((28, 28, 1), 32, (640, 320), 1))
    found = bench.measure(["ours:mlp", "both:mlp"], quick=True)
    assert found["ours:mlp"]["samples"] == 320 and found["plain:mlp"]["samples"] == 320
    assert found["ours:mlp"]["backend"] == __import__("keras").backend.backend()
    # An epoch of 10 steps does at least the matmul bound's 0.26 GFLOP (over 0.1 ms on any
    # CPU; an unmeasured or mis-timed epoch reads about 0), and none takes 30 s on 320 samples.
    assert 1e-4 < found["ours:mlp"]["seconds"] < 30
    assert 1e-4 < found["plain:mlp"]["seconds"] < 30


def test_the_table_is_computed_from_the_measurements(monkeypatch):
    # Fake children with round numbers, so every derived figure can be checked exactly.
    seconds = {"ours": 2.0, "plain": 8.0}

    def fake_child(tasks, backend, quick):
        found = {}
        for task in tasks:
            kind, _, name = task.partition(":")
            if kind == "search":
                found[task] = {"trials": 30, "wall_seconds": 13.0, "training_seconds": 10.0,
                               "overhead_per_trial_s": 0.1, "epochs_run": 30,
                               "peak_rss_mb_after_3": 800.0, "peak_rss_mb_after_last": 840.0,
                               "backend": backend}
                continue
            samples = bench.WORKLOADS[name][2][1 if quick else 0]
            for k in (("ours", "plain") if kind == "both" else (kind,)):
                found[f"{k}:{name}"] = {"seconds": seconds[k], "samples": samples, "backend": backend}
        return found

    monkeypatch.setattr(bench, "in_child", fake_child)
    monkeypatch.setattr(bench, "matmul_bound", lambda samples, batch=32: 1.6)
    results = bench.run(quick=True, echo=lambda *a, **k: None)
    for name, (shape, batch, sizes, repeats) in bench.WORKLOADS.items():
        row = results["workloads"][name]
        assert row["batch_size"] == batch and row["samples"] == sizes[1]
        assert row["ours_backend"] == bench.FASTEST_BACKEND[name]
        assert row["ours_samples_per_s"] == round(sizes[1] / 2.0, 1)
        assert row["plain_samples_per_s"] == round(sizes[1] / 8.0, 1)
        assert row["speedup_vs_plain"] == 4.0                       # plain seconds / ours seconds
    mlp = results["workloads"]["mlp"]
    assert mlp["ours_vs_bound"] == 1.25                             # 2.0 s / 1.6 s
    assert mlp["matmul_bound_samples_per_s"] == round(mlp["samples"] / 1.6, 1)
    assert mlp["epoch_60k_seconds"] == {"ours": round(2.0 * 60_000 / mlp["samples"], 2),
                                        "plain": round(8.0 * 60_000 / mlp["samples"], 2),
                                        "matmul_bound": round(1.6 * 60_000 / mlp["samples"], 2)}
    assert results["search"]["peak_rss_growth"] == 0.05             # 840 / 800 - 1


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
