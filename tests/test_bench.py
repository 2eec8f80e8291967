"""The benchmark's parts measure what they say (speed goals live in the benchmark, not here)."""


import numpy as np

from dlcv_keras import bench


def test_matmul_bound_and_synthetic_data_have_the_real_shapes():
    x, y = bench.synthetic((28, 28, 1), 64)
    assert x.shape == (64, 28, 28, 1) and x.dtype == np.float32 and set(np.unique(y)) <= set(range(10))
    assert 0 < bench.matmul_bound(320) < bench.matmul_bound(3200) * 2


def test_search_costs_time_every_trial_and_sample_memory():
    found = bench.search_costs(trials=4)
    assert found["trials"] == 4
    assert 0 < found["training_seconds"] < found["wall_seconds"]
    assert found["overhead_per_trial_s"] > 0
    assert 0 < found["peak_rss_mb_after_3"] <= found["peak_rss_mb_after_last"]


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
