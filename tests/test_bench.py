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
    assert bench.matmul_bound(320) > 1e-4


def test_search_costs_time_every_trial_and_sample_memory():
    found = bench.search_costs(trials=4)
    assert found["trials"] == 4 and found["epochs_run"] == 4
    assert 0 < found["training_seconds"] < found["wall_seconds"]
    # The overhead is exactly the time outside training, per trial; a tiny MLP trial's
    # bookkeeping takes well under 5 s (0.03 s measured), however busy the machine.
    assert found["overhead_per_trial_s"] == round((found["wall_seconds"] - found["training_seconds"]) / 4, 3)
    assert 0 < found["overhead_per_trial_s"] < 5
    # A process that has imported Keras holds at least 50 MB; 20 GB would be a leak.
    assert 50 < found["peak_rss_mb_after_3"] <= found["peak_rss_mb_after_last"] < 20_000


def test_each_backend_gets_one_child_and_the_search_runs_before_the_big_workloads():
    groups = bench.plan(q1_full=True)
    assert sorted(groups) == ["jax", "tensorflow"]
    assert groups["jax"] == ["search", "instrument", "ours:linear", "ours:mlp", "q1-full"]
    # Both paths of a TensorFlow workload run in one step, their epochs alternating; ResNet-18's
    # step also trains it through image_batches, then the pipeline and the convolution are timed.
    assert groups["tensorflow"] == ["plain:linear", "plain:mlp", "both:cnn", "both+images:resnet18",
                                    "pipeline", "conv-flops"]
    # Where PyTorch is installed, its ResNet-18 epochs alternate with Keras's in that step.
    assert "both+images+torch:resnet18" in bench.plan(q1_full=False, torch=True)["tensorflow"]


def test_a_measurement_step_reports_its_backend_and_times(monkeypatch):
    monkeypatch.setitem(bench.WORKLOADS, "mlp", ((28, 28, 1), 32, (640, 320), 1))
    found = bench.measure(["ours:mlp", "both:mlp"], quick=True)
    assert found["ours:mlp"]["samples"] == 320 and found["plain:mlp"]["samples"] == 320
    assert found["ours:mlp"]["backend"] == __import__("keras").backend.backend()
    assert set(found["onednn"]) == {"on", "decided_by"}         # which TensorFlow kernels ran (backends.py)
    # An epoch of 10 steps does at least the matmul bound's 0.26 GFLOP (over 0.1 ms on any
    # CPU; an unmeasured or mis-timed epoch reads about 0). How fast is the benchmark's to say, not a test's.
    assert found["ours:mlp"]["seconds"] > 1e-4 and found["plain:mlp"]["seconds"] > 1e-4


def test_the_table_is_computed_from_the_measurements(monkeypatch):
    # Fake children with round numbers, so every derived figure can be checked exactly.
    seconds = {"ours": 2.0, "plain": 8.0, "torch": 16.0}

    def fake_child(tasks, backend, quick):
        # Each child says whether oneDNN was on; the TensorFlow child's answer is the one that counts.
        found = {"onednn": {"on": backend == "tensorflow", "decided_by": "dlcv_keras"}}
        for task in tasks:
            kind, _, name = task.partition(":")
            if kind == "search":
                found[task] = {"trials": 30, "wall_seconds": 13.0, "training_seconds": 10.0,
                               "overhead_per_trial_s": 0.1, "epochs_run": 30,
                               "peak_rss_mb_after_3": 800.0, "peak_rss_mb_after_last": 840.0,
                               "backend": backend}
                continue
            if kind == "pipeline":
                found[task] = {"seconds": 0.5, "samples": 5_000, "batch_size": 128, "backend": backend}
                continue
            if kind == "instrument":
                found[task] = {"samples": 8_000, "batch_size": 1024, "plain_seconds": 0.5, "probed_seconds": 0.55,
                               "first_probe_seconds": 0.4, "probe_rows": 1024, "backend": backend}
                continue
            if kind == "conv-flops":
                found[task] = {"flops_per_s": 2e11, "resnet18_training_flops_per_image": 4e9, "batch": 32,
                               "size": 32, "channels": 128, "kernel": 3, "backend": backend}
                continue
            samples = bench.WORKLOADS[name][2][1 if quick else 0]
            for k in kind.replace("both", "ours+plain").split("+"):
                found[f"{k}:{name}"] = {"seconds": seconds[k], "samples": samples, "backend": backend}
                if k == "torch":
                    found[f"{k}:{name}"].update(backend="torch", torch_version="2.x", threads=2)
        return found

    seconds["images"] = 4.0
    monkeypatch.setattr(bench, "in_child", fake_child)
    monkeypatch.setattr(bench, "torch_available", lambda: True)
    monkeypatch.setattr(bench, "matmul_bound", lambda samples, batch=32: 1.6)
    lines = []
    results = bench.run(quick=True, echo=lines.append)
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
    assert results["instrument"]["ratio"] == 1.1                     # 0.55 s / 0.5 s
    assert results["instrument"]["backend"] == bench.FASTEST_BACKEND["mlp"]
    resnet_samples = bench.WORKLOADS["resnet18"][2][1]
    pipeline = results["input_pipeline"]
    assert pipeline["pipeline_images_per_s"] == 10_000.0              # 5000 images in 0.5 s
    assert pipeline["resnet18_training_images_per_s"] == round(resnet_samples / 4.0, 1)
    assert pipeline["pipeline_vs_training"] == round(10_000 / round(resnet_samples / 4.0, 1), 2)
    assert not any(line.startswith("warning") for line in lines)
    bound = results["resnet18_flop_bound"]
    assert bound["bound_images_per_s"] == 50.0                         # 2e11 FLOP/s / 4e9 FLOP
    assert bound["image_batches_fit_images_per_s"] == round(resnet_samples / 4.0, 1)
    assert bound["plain_numpy_fit_images_per_s"] == round(resnet_samples / 8.0, 1)
    assert bound["image_batches_fit_vs_bound"] == round(resnet_samples / 4.0 / 50, 3)
    assert bound["image_batches_fit_vs_plain"] == 2.0
    assert results["onednn"] == {"on": True, "decided_by": "dlcv_keras"}
    assert lines[0].startswith("TensorFlow oneDNN on (decided by dlcv_keras")
    pytorch = results["resnet18_pytorch"]
    assert pytorch["torch_images_per_s"] == round(resnet_samples / 16.0, 1)
    assert pytorch["keras_plain_fit_images_per_s"] == round(resnet_samples / 8.0, 1)
    assert pytorch["keras_vs_torch"] == 2.0                          # torch seconds / Keras seconds
    assert pytorch["torch_version"] == "2.x" and pytorch["batch_size"] == bench.WORKLOADS["resnet18"][1]


def test_without_pytorch_its_row_is_a_note():
    lines = []
    measured = {"plain:resnet18": {"seconds": 1.0, "samples": 100, "backend": "tensorflow"}}
    assert bench.pytorch_row(measured, lines.append) == {"skipped": "torch is not installed"}
    assert lines == ["pytorch   ResNet-18 in PyTorch not timed: torch is not installed (optional; pip install torch)"]


def test_the_pytorch_resnet18_has_the_keras_ones_layers():
    torch = pytest.importorskip("torch")
    from dlcv_keras.models import build_resnet18

    for width in (1.0, 0.25):
        ours = build_resnet18((32, 32, 3), 10, width=width)
        theirs = bench.torch_resnet18(width)
        # The same weights, layer for layer: Keras keeps a kernel as (kh, kw, in, out), PyTorch as (out, in, kh, kw).
        keras_shapes = sorted(tuple(w.shape) for w in ours.trainable_weights)
        torch_shapes = sorted(tuple(p.shape[2:]) + tuple(p.shape[1::-1]) if p.dim() == 4 else tuple(p.shape[::-1])
                              for p in theirs.parameters())
        assert keras_shapes == torch_shapes, width
        assert theirs(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_a_pytorch_step_trains_it_and_says_which_torch(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(bench.WORKLOADS, "resnet18", ((32, 32, 3), 8, (32, 16), 1))
    found = bench.measure(["torch:resnet18"], quick=True)
    row = found["torch:resnet18"]
    assert row["backend"] == "torch" and row["torch_version"] == torch.__version__ and row["threads"] >= 1
    assert row["samples"] == 16 and row["seconds"] > 0


def test_the_instrument_cost_is_timed_on_one_model_with_and_without_the_probe(monkeypatch):
    monkeypatch.setattr(bench, "INSTRUMENT_WORKLOAD", ((8, 8, 1), 64, (512, 256), 1))
    found = bench.instrument_costs(quick=True)
    assert found["samples"] == 256 and found["batch_size"] == 64 and found["probe_rows"] == 256
    # Both epochs train 4 batches; measuring adds work, but on a busy machine either can be slower.
    assert found["plain_seconds"] > 0 and found["probed_seconds"] > 0 and found["first_probe_seconds"] > 0


def test_an_instrument_slower_than_its_target_prints_a_warning():
    lines = []
    measured = {"instrument": {"samples": 100, "batch_size": 10, "plain_seconds": 1.0, "probed_seconds": 1.5,
                               "first_probe_seconds": 0.3, "probe_rows": 100, "backend": "jax"}}
    row = bench.instrument_row(measured, lines.append)
    assert row["ratio"] == 1.5
    assert lines[-1].startswith("warning: the gradient instrument makes an epoch 1.50x as long")


def test_a_pipeline_slower_than_three_times_training_prints_a_warning():
    lines = []
    measured = {"pipeline": {"seconds": 1.0, "samples": 200, "batch_size": 128},
                "images:resnet18": {"seconds": 1.0, "samples": 100}}
    row = bench.pipeline_row(measured, lines.append)
    assert row["pipeline_vs_training"] == 2.0
    assert lines[-1].startswith("warning: the input pipeline is only 2.0x as fast as the training it feeds")


def test_resnet18_training_flops_are_counted_from_its_layers():
    from dlcv_keras.models import build_resnet18

    # CIFAR ResNet-18's multiply-adds per forward pass, by hand: the 3x3 stem; stage 0's four
    # 64-channel convolutions at 32x32; in each later stage a strided first convolution
    # (Cin = Cout / 2) and three more at half the size; three 1x1 projections; the dense layer.
    stem = 32 * 32 * 9 * 3 * 64
    stage0 = 4 * 32 * 32 * 9 * 64 * 64
    later = sum(n * n * 9 * (c // 2) * c + 3 * n * n * 9 * c * c for n, c in ((16, 128), (8, 256), (4, 512)))
    projections = sum(n * n * (c // 2) * c for n, c in ((16, 128), (8, 256), (4, 512)))
    macs = stem + stage0 + later + projections + 512 * 10
    assert macs == 555_422_720                       # the usual "0.56 GMACs" of CIFAR ResNet-18
    # FLOPs are twice the multiply-adds, and forward plus backward three times the forward pass.
    assert bench.training_flops_per_image(build_resnet18((32, 32, 3), 10)) == 3 * 2 * macs


def test_conv_probe_measures_plausible_flops():
    found = bench.conv_flops_per_s(quick=True)
    assert found["flops_per_step"] == 3 * 2 * 32 * 32 * 32 * 9 * 128 * 128
    # At least 1 GFLOP/s (any CPU); under 100 TFLOP/s (no CPU).
    assert 1e9 < found["flops_per_s"] < 1e14


def test_a_pipeline_pass_is_timed():
    # Four augmented batches of 64 take well over 0.1 ms (an untimed pass reads about 0), and
    # nowhere near 30 s.
    assert bench.pipeline_seconds(256, batch=64, repeats=1) > 1e-4


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
