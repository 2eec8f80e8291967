"""Fake results stores that follow docs/results-store.md, with numbers easy to spot.

``write_q1(root)`` writes a q1-like run (sections curves, effect, top_table, best,
sklearn, fractions); ``write_q3(root)`` a q3-like run on a fallback dataset, with an
early-stopped base run and one diverged grid trial (nan/inf losses).

The from-scratch questions: ``write_q2`` (scalar gradients), ``write_q4`` (Gaussian blur,
arrays.npz), ``write_q5`` (a diverging run with inf/nan losses and a batch-size run),
``write_q6`` (two-layer checks and toy training), and ``write_q3_scratch`` (q3 with
hand-written modules in ``q3/quick/scratch/``, with a finite-difference gradient check).
"""

from __future__ import annotations

import math
from pathlib import Path

from dlcv_keras.results import ResultsStore

Q1_TITLE = "Single-layer (linear softmax) classifier, MNIST"
BANNER = "MNIST unavailable: ran on digits"
EVIL = "<script>alert(1)</script>"


def _history(trial_id, epochs, *, start_acc=0.5, end_acc=0.9, diverge_at=None):
    rows = []
    for e in range(1, epochs + 1):
        t = e / epochs
        acc = start_acc + (end_acc - start_acc) * t
        loss = 1.5 * (1 - t) + 0.3
        val_loss = loss + 0.05
        if diverge_at is not None and e >= diverge_at:
            loss, val_loss, acc = (math.inf if e == diverge_at else math.nan), math.nan, 0.1
        rows.append({"trial_id": trial_id, "epoch": e, "loss": loss, "accuracy": acc,
                     "val_loss": val_loss, "val_accuracy": acc - 0.01, "seconds": 0.5})
    return rows



def _fractions(store, tests, *, accuracy, val_gap, seconds, best_val_accuracy):
    """A "fractions" search: one 5-epoch trial per (train_fraction, test accuracy) in ``tests``; the last is best."""
    trials, history = [], []
    for i, (fraction, test) in enumerate(tests):
        tid = f"{i:04d}"
        trials.append({"trial_id": tid, "status": "completed", "train_fraction": fraction, "epochs_run": 5,
                       "stop_reason": "max_epochs", "loss": 0.1, "accuracy": accuracy, "val_loss": 0.3,
                       "val_accuracy": test - val_gap, "seconds": seconds, "test_loss": 0.3, "test_accuracy": test})
        history += _history(tid, 5, end_acc=accuracy)
    store.write_experiment(
        "fractions", summary={"kind": "search", "title": "fractions", "tuner": "grid", "objective": "val_accuracy",
                              "space": {"train_fraction": [f for f, _ in tests]}, "fixed": {},
                              "n_trials": len(tests), "best_trial": trials[-1]["trial_id"],
                              "best_hyperparameters": {"train_fraction": tests[-1][0]},
                              "best_val_accuracy": best_val_accuracy, "diverged": [],
                              "seconds": seconds * len(tests), "evaluates_test": True},
        trials=trials, history=history)

def _run(question, title, sections, reference, *, dataset_name="mnist", banner=None, notes=()):
    return {
        "schema_version": 1, "question": question, "title": title,
        "seed_writeup": "000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
        "profile": "quick", "tuner": "grid", "seed": 0, "status": "complete",
        "started": "2026-11-23T13:00:00+00:00", "finished": "2026-11-23T13:02:03+00:00", "wall_seconds": 123.4,
        "dataset": {"name": dataset_name, "requested": "mnist", "source": "local IDX files in /data/mnist",
                    "fallback_banner": banner, "notes": list(notes),
                    "splits": {"train": 6400, "val": 1600, "test": 2000},
                    "class_names": [str(i) for i in range(10)], "input_shape": [28, 28, 1],
                    "content_hash": "sha256:0123abcdfeed"},
        "environment": {"python": "3.11.7", "platform": "Linux-test", "keras_backend": "tensorflow",
                        "packages": {"tensorflow": "2.21.0", "keras": "3.15.1", "keras-tuner": "1.4.8"},
                        "git_revision": "abc123def", "seed": 0},
        "sections": sections, "reference": reference,
    }


def _evaluation(store, name, *, hp, train, val, test, class_names, per_class, epochs=4):
    n = len(class_names)
    matrix = [[(50 if i == j else 1) for j in range(n)] for i in range(n)]
    best = max(range(n), key=lambda i: per_class[i])
    worst = min(range(n), key=lambda i: per_class[i])
    store.write_experiment(
        name,
        summary={"kind": "evaluation", "title": "Best setting, retrained", "from_experiment": "full_grid",
                 "hyperparameters": hp, "train_accuracy": train, "val_accuracy": val, "test_accuracy": test,
                 "test_loss": 0.3012, "epochs_run": epochs, "stop_reason": "max_epochs", "seconds": 12.0},
        history=_history("best", epochs, end_acc=train),
        metrics={"class_names": class_names, "per_class_accuracy": per_class,
                 "best_class": {"index": best, "name": class_names[best], "accuracy": per_class[best]},
                 "worst_class": {"index": worst, "name": class_names[worst], "accuracy": per_class[worst]},
                 "confusion_matrix": matrix,
                 "parameter_table": [{"layer": "input", "type": "InputLayer", "output_shape": [None, 28, 28, 1], "params": 0},
                                     {"layer": "flatten", "type": "Flatten", "output_shape": [None, 784], "params": 0},
                                     {"layer": "dense", "type": "Dense", "output_shape": [None, 10], "params": 7850}],
                 "total_params": 7850})


def write_q1(root: Path, *, class_names=None) -> ResultsStore:
    store = ResultsStore(root, "q1", "quick")
    sections = [
        {"template": "curves", "experiment": "base", "title": "Base run"},
        {"template": "effect", "experiment": "lr_batch", "title": "1.a Learning rate x batch size"},
        {"template": "top_table", "experiment": "full_grid", "title": "1.a Full grid", "top_k": 3},
        {"template": "best", "experiment": "best", "title": "Best configuration"},
        {"template": "sklearn", "experiment": "sklearn", "title": "1.b scikit-learn LogisticRegression", "compare_with": "best"},
        {"template": "fractions", "experiment": "fractions", "title": "1.c Training on a subset"},
    ]
    reference = {
        "base": {"val_accuracy": 0.8556},
        "full_grid": {"rows": [{"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 64, "val_accuracy": 0.9151},
                               {"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 32, "val_accuracy": 0.9142}]},
        "best": {"hyperparameters": {"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 64},
                 "train_accuracy": 0.9173, "val_accuracy": 0.9147, "test_accuracy": 0.9181,
                 "best_class": {"name": "0", "accuracy": 0.9786}, "worst_class": {"name": "5", "accuracy": 0.8666}},
        "sklearn": {"train_accuracy": 0.9365, "test_accuracy": 0.9257},
    }
    store.write_json("run.json", _run("q1", Q1_TITLE, sections, reference))

    # base: a one-trial search
    store.write_experiment(
        "base", summary={"kind": "search", "title": "Base run", "tuner": "grid", "objective": "val_accuracy",
                         "space": {}, "fixed": {"lr": 1e-4, "l2": 1e-3, "batch_size": 32, "epochs": 5},
                         "n_trials": 1, "best_trial": "0000", "best_hyperparameters": {"lr": 1e-4},
                         "best_val_accuracy": 0.8421, "diverged": [], "seconds": 3.0, "evaluates_test": False},
        trials=[{"trial_id": "0000", "status": "completed", "lr": 1e-4, "l2": 1e-3, "batch_size": 32, "epochs": 5,
                 "epochs_run": 5, "stop_reason": "max_epochs", "loss": 0.61, "accuracy": 0.8533,
                 "val_loss": 0.66, "val_accuracy": 0.8421, "seconds": 3.0}],
        history=_history("0000", 5, end_acc=0.8533))

    # lr x batch grid
    trials, history = [], []
    accs = {(0.01, 32): 0.9137, (0.01, 64): 0.9101, (0.001, 32): 0.8911, (0.001, 64): 0.8866,
            (0.0001, 32): 0.8202, (0.0001, 64): 0.8004}
    for i, ((lr, bs), acc) in enumerate(accs.items()):
        tid = f"{i:04d}"
        trials.append({"trial_id": tid, "status": "completed", "lr": lr, "batch_size": bs, "l2": 0.001, "epochs": 3,
                       "epochs_run": 3, "stop_reason": "max_epochs", "loss": 0.4, "accuracy": acc + 0.002,
                       "val_loss": 0.45, "val_accuracy": acc, "seconds": 1.0})
        history += _history(tid, 3, end_acc=acc)
    store.write_experiment(
        "lr_batch", summary={"kind": "search", "title": "lr x batch", "tuner": "grid", "objective": "val_accuracy",
                             "space": {"lr": [0.01, 0.001, 0.0001], "batch_size": [32, 64]},
                             "fixed": {"l2": 0.001, "epochs": 3}, "n_trials": 6, "best_trial": "0000",
                             "best_hyperparameters": {"lr": 0.01, "batch_size": 32}, "best_val_accuracy": 0.9137,
                             "diverged": [], "seconds": 6.0, "evaluates_test": False},
        trials=trials, history=history)

    # full grid
    trials = []
    grid = [(0.01, 0.001, 100, 64, 0.9244), (0.01, 0.001, 100, 32, 0.9233), (0.1, 0.001, 50, 64, 0.9222),
            (0.1, 0.1, 50, 32, 0.7011), (0.001, 0.01, 50, 32, 0.8800)]
    for i, (lr, l2, ep, bs, acc) in enumerate(grid):
        trials.append({"trial_id": f"{i:04d}", "status": "completed", "lr": lr, "l2": l2, "epochs": ep, "batch_size": bs,
                       "epochs_run": ep, "stop_reason": "max_epochs", "loss": 0.3, "accuracy": acc + 0.001,
                       "val_loss": 0.33, "val_accuracy": acc, "seconds": 2.0})
    store.write_experiment(
        "full_grid", summary={"kind": "search", "title": "full grid", "tuner": "grid", "objective": "val_accuracy",
                              "space": {"lr": [0.1, 0.01, 0.001], "l2": [0.1, 0.01, 0.001], "epochs": [50, 100],
                                        "batch_size": [32, 64]}, "fixed": {}, "n_trials": 5, "best_trial": "0000",
                              "best_hyperparameters": {"lr": 0.01}, "best_val_accuracy": 0.9244, "diverged": [],
                              "seconds": 10.0, "evaluates_test": False},
        trials=trials)

    names = class_names or [str(i) for i in range(10)]
    per_class = [0.9791, 0.97, 0.9, 0.9, 0.9, 0.8612, 0.93, 0.92, 0.88, 0.89][: len(names)]
    _evaluation(store, "best", hp={"lr": 0.01, "l2": 0.001, "epochs": 100, "batch_size": 64},
                train=0.9288, val=0.9255, test=0.9266, class_names=names, per_class=per_class)

    store.write_experiment("sklearn", summary={"kind": "sklearn", "title": "LogisticRegression",
                                               "model": "LogisticRegression(max_iter=200)",
                                               "train_accuracy": 0.9412, "test_accuracy": 0.9318, "seconds": 4.0})

    trials, history = [], []
    for i, (fraction, test) in enumerate([(0.1, 0.8712), (0.2, 0.8845), (0.5, 0.9023)]):
        tid = f"{i:04d}"
        trials.append({"trial_id": tid, "status": "completed", "train_fraction": fraction, "lr": 0.01, "batch_size": 64,
                       "epochs_run": 4, "stop_reason": "max_epochs", "loss": 0.35, "accuracy": test + 0.02,
                       "val_loss": 0.4, "val_accuracy": test - 0.01, "seconds": 1.0, "test_loss": 0.4,
                       "test_accuracy": test})
        history += _history(tid, 4, end_acc=test + 0.02)
    store.write_experiment(
        "fractions", summary={"kind": "search", "title": "training fractions", "tuner": "grid",
                              "objective": "val_accuracy", "space": {"train_fraction": [0.1, 0.2, 0.5]},
                              "fixed": {"lr": 0.01, "batch_size": 64}, "n_trials": 3, "best_trial": "0002",
                              "best_hyperparameters": {"train_fraction": 0.5}, "best_val_accuracy": 0.8923,
                              "diverged": [], "seconds": 3.0, "evaluates_test": True},
        trials=trials, history=history)
    return store


def write_q3(root: Path) -> ResultsStore:
    store = ResultsStore(root, "q3", "quick")
    sections = [
        {"template": "curves", "experiment": "base", "title": "Base run with early stopping"},
        {"template": "effect", "experiment": "lr_batch", "title": "3.a Learning rate x batch size"},
        {"template": "best", "experiment": "best", "title": "Best configuration"},
        {"template": "fractions", "experiment": "fractions", "title": "3.b Training on a subset"},
    ]
    reference = {
        "base": {"val_accuracy": 0.9561, "epochs_run": 274},
        "lr_batch": {"rows": [{"lr": 0.01, "batch_size": 32, "val_accuracy": 0.9756},
                              {"lr": 0.01, "batch_size": 64, "val_accuracy": 0.9748},
                              {"lr": 0.001, "batch_size": 32, "val_accuracy": 0.9560},
                              {"lr": 0.001, "batch_size": 64, "val_accuracy": 0.9528}]},
        "best": {"hyperparameters": {"lr": 0.01, "batch_size": 32, "units": 256},
                 "train_accuracy": 0.9999, "val_accuracy": 0.9757, "test_accuracy": 0.9787,
                 "best_class": {"name": "1", "accuracy": 0.9894}, "worst_class": {"name": "9", "accuracy": 0.9653}},
    }
    run = _run("q3", "Modular vector backpropagation: 2-layer MLP, MNIST", sections, reference,
               dataset_name="digits", banner=BANNER,
               notes=["MNIST not found under /data and download disabled: scikit-learn digits used instead"])
    store.write_json("run.json", run)
    store.write_experiment(
        "base", summary={"kind": "evaluation", "title": "Base run", "from_experiment": "",
                         "hyperparameters": {"units": 256, "lr": 0.001, "batch_size": 32},
                         "train_accuracy": 0.9655, "val_accuracy": 0.9432, "test_accuracy": 0.9401,
                         "test_loss": 0.2, "epochs_run": 17, "stop_reason": "val_loss_rising", "seconds": 5.0},
        history=_history("best", 17, end_acc=0.9655))
    trials, history = [], []
    grid = [(0.01, 32, 0.9611, None), (0.01, 64, 0.9577, None), (0.001, 32, 0.9302, None), (0.5, 32, None, 2)]
    for i, (lr, bs, acc, diverge) in enumerate(grid):
        tid = f"{i:04d}"
        if diverge:
            trials.append({"trial_id": tid, "status": "diverged", "lr": lr, "batch_size": bs, "epochs_run": 2,
                           "stop_reason": "nan_loss", "loss": math.nan, "accuracy": 0.1, "val_loss": math.inf,
                           "val_accuracy": 0.1, "seconds": 0.3})
            history += _history(tid, 2, diverge_at=2)
        else:
            trials.append({"trial_id": tid, "status": "completed", "lr": lr, "batch_size": bs, "epochs_run": 6,
                           "stop_reason": "max_epochs", "loss": 0.2, "accuracy": acc + 0.01, "val_loss": 0.25,
                           "val_accuracy": acc, "seconds": 1.0})
            history += _history(tid, 6, end_acc=acc)
    store.write_experiment(
        "lr_batch", summary={"kind": "search", "title": "lr x batch", "tuner": "grid", "objective": "val_accuracy",
                             "space": {"lr": [0.01, 0.001, 0.5], "batch_size": [32, 64]},
                             "fixed": {"units": 256}, "n_trials": 4, "best_trial": "0000",
                             "best_hyperparameters": {"lr": 0.01, "batch_size": 32}, "best_val_accuracy": 0.9611,
                             "diverged": ["0003"], "seconds": 4.0, "evaluates_test": False},
        trials=trials, history=history)
    _evaluation(store, "best", hp={"lr": 0.01, "batch_size": 32, "units": 256}, train=0.9911, val=0.9622,
                test=0.9633, class_names=[str(i) for i in range(10)],
                per_class=[0.99, 0.9921, 0.95, 0.96, 0.97, 0.95, 0.98, 0.96, 0.94, 0.9345])
    _fractions(store, [(0.1, 0.9012), (0.5, 0.9456)], accuracy=0.99, val_gap=0.005, seconds=1.0,
               best_val_accuracy=0.9406)
    return store


# -- from-scratch questions (q2, q4, q5, q6) and q3 --impl scratch -------------------------
def _scratch_run(question, title, sections, reference, *, dataset=None, implementation=None):
    run = _run(question, title, sections, reference)
    run["tuner"] = None
    run["dataset"] = dataset or {}
    if implementation:
        run["implementation"] = implementation
    return run


Q2_EXPRESSION = "x*y/z + (x < y)"   # a "<" to check the expression is escaped


def write_q2(root: Path) -> ResultsStore:
    """Scalar gradients of f = x*y/z + (x < y) at two points; differences easy to spot."""
    store = ResultsStore(root, "q2", "quick")
    sections = [{"template": "scalar_gradients", "experiment": "gradients", "title": "2. Scalar backpropagation"}]
    store.write_json("run.json", _scratch_run("q2", "Scalar backpropagation (hand-written autodiff)", sections, {}))
    rows = []
    for (x, y, z), tf_diff, num_diff, rel in (((2, 4, 1), 3.1e-15, 2.7e-10, 4.4e-11),
                                              ((1, 2, 3), 5.5e-16, 8.8e-11, 1.3e-10)):
        value, gx, gy, gz = x * y / z + 1, y / z, x / z, -x * y / z ** 2
        rows.append({"point": f"({x}, {y}, {z})", "x": x, "y": y, "z": z, "value": value,
                     "df_dx": gx, "df_dy": gy, "df_dz": gz,
                     "tf_value": value, "tf_df_dx": gx, "tf_df_dy": gy, "tf_df_dz": gz + tf_diff,
                     "numeric_df_dx": gx + num_diff, "numeric_df_dy": gy, "numeric_df_dz": gz,
                     "max_abs_diff_tf": tf_diff, "max_rel_diff_tf": tf_diff / 8, "max_abs_diff_numeric": num_diff,
                     "max_rel_diff_numeric": rel})
    store.write_experiment(
        "gradients", tables={"points": rows},
        summary={"kind": "scalar_gradients", "title": "Gradients of f at two points", "expression": Q2_EXPRESSION,
                 "variables": ["x", "y", "z"], "points": [[2, 4, 1], [1, 2, 3]], "step": 1e-6,
                 "max_abs_diff_tf": 3.1e-15, "max_abs_diff_numeric": 2.7e-10, "max_rel_diff_numeric": 1.3e-10,
                 "seconds": 0.25})
    return store


def gaussian_kernel(size=5, sigma=0.8):
    import numpy as np

    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def write_q4(root: Path, *, channels=1) -> ResultsStore:
    """Three 8x8 images (gray, or RGB with channels=3) blurred into 5 output channels."""
    import numpy as np

    store = ResultsStore(root, "q4", "quick")
    sections = [{"template": "conv_blur", "experiment": "blur", "title": "4. Gaussian blur with our conv2d"}]
    dataset = {"name": "mnist", "requested": "mnist", "source": "local IDX files in /data/mnist",
               "splits": {"test": 3}, "class_names": [], "input_shape": [8, 8, channels]}
    reference = {"blur": {"kernel_size": 5, "sigma": 0.8, "images": 5, "out_channels": 5}}
    store.write_json("run.json", _scratch_run("q4", "Convolution module by hand (Gaussian blur)", sections, reference,
                                              dataset=dataset))
    rng = np.random.default_rng(0)
    originals = rng.random((3, 8, 8, channels))
    kernel = gaussian_kernel()
    blurred = np.zeros((3, 8, 8, 5))
    padded = np.pad(originals.mean(axis=-1), ((0, 0), (2, 2), (2, 2)))
    for i in range(8):
        for j in range(8):
            blurred[:, i, j, :] = (padded[:, i:i + 5, j:j + 5] * kernel).sum(axis=(1, 2))[:, None]
    store.write_experiment(
        "blur", arrays={"kernel": kernel, "originals": originals, "blurred": blurred},
        summary={"kind": "conv_blur", "title": "Gaussian blur of MNIST digits", "dataset": "mnist", "kernel_size": 5,
                 "sigma": 0.8, "stride": 1, "padding": "same", "images": 3, "out_channels": 5,
                 "keras_max_abs_diff": 1.2e-07, "backward_max_rel_error": 3.4e-09, "seconds": 0.5})
    return store


Q5_LOSSES = [1.41e30, 2.2e31, 5.5e32, 7.7e34, 9.9e36, math.inf, math.inf, math.inf, math.inf, math.inf, math.nan]


def write_q5(root: Path) -> ResultsStore:
    """Run A diverges (inf from epoch 6, nan at 11); run B trains batch sizes 1, 4, 8 with clipping."""
    store = ResultsStore(root, "q5", "quick")
    sections = [{"template": "conv_l2_divergence", "experiment": "divergence", "title": "5.a No clipping: the loss diverges"},
                {"template": "conv_l2_batches", "experiment": "batches", "title": "5.b Batch size and the weights' L2 norm"}]
    reference = {
        "divergence": {"first_loss": 1.41e30, "first_inf_epoch": 6, "first_nan_epoch": 11,
                       "note": "the seed counts epochs from 0: loss 1.4e30 at epoch 0, inf by epoch 5, NaN at 10"},
        "batches": {"rows": [{"batch_size": 1, "l2_norm": 429.59}, {"batch_size": 4, "l2_norm": 561.23},
                             {"batch_size": 8, "l2_norm": 617.48}]},
    }
    dataset = {"name": "cifar10", "requested": "cifar10", "source": "local files", "splits": {"train": 100},
               "class_names": [str(i) for i in range(10)], "input_shape": [32, 32, 3]}
    store.write_json("run.json", _scratch_run("q5", "Convolution layer with L2 loss, CIFAR-10", sections, reference,
                                              dataset=dataset))
    history = [{"trial_id": "A", "epoch": e, "loss": loss, "l2_norm": 10.0 ** (e + 1) if math.isfinite(loss) else loss,
                "seconds": 0.1} for e, loss in enumerate(Q5_LOSSES, start=1)]
    store.write_experiment(
        "divergence", history=history,
        summary={"kind": "conv_regression", "title": "lr 0.1, no clipping", "lr": 0.1, "batch_size": 1, "epochs": 20,
                 "l2": 0.0, "clip": None, "images": 10, "kernel_size": 3, "filters": 3, "pixel_scale": 255,
                 "status": "diverged", "stop_reason": "nan_loss", "first_inf_epoch": 6, "first_nan_epoch": 11,
                 "epochs_run": 11, "final_l2_norm": math.nan, "seconds": 1.1})
    trials, history = [], []
    for size, l2_norm in ((1, 432.17), (4, 555.55), (8, 620.71)):
        tid = f"batch_{size}"
        for e in range(1, 4):
            history.append({"trial_id": tid, "epoch": e, "loss": 900.0 / (e * size), "l2_norm": l2_norm * e / 3})
        trials.append({"trial_id": tid, "status": "completed", "batch_size": size, "epochs_run": 3,
                       "loss": 300.0 / size, "l2_norm": l2_norm, "seconds": 2.5})
    store.write_experiment(
        "batches", trials=trials, history=history,
        summary={"kind": "conv_regression", "title": "clip 1.0, batch sizes 1, 4, 8", "lr": 0.01,
                 "batch_sizes": [1, 4, 8], "epochs": 3, "l2": 0.0, "clip": 1.0, "images": 100,
                 "final_l2_norm": {"1": 432.17, "4": 555.55, "8": 620.71}, "seconds": 7.5})
    return store


Q6_REFERENCE_SCORES = [[-0.81233741, -1.27654624, -0.70335995], [-0.17129677, -1.18803311, -0.47310444],
                       [-0.51590475, -1.01354314, -0.8504215], [-0.15419291, -0.48629638, -0.52901952],
                       [-0.00618733, -0.12435261, -0.15226949]]


def write_q6(root: Path) -> ResultsStore:
    """The two-layer net's checks (scores, loss, gradient relative errors) and its toy training."""
    store = ResultsStore(root, "q6", "quick")
    sections = [{"template": "two_layer_check", "experiment": "check", "title": "6.a Forward pass and gradient check"},
                {"template": "toy_training", "experiment": "toy", "title": "6.b Training on the toy data"}]
    reference = {"check": {"scores": Q6_REFERENCE_SCORES, "loss": 1.30378789133,
                           "relative_errors": {"W1": 3.561318e-09, "b1": 1.555470e-09, "W2": 3.440708e-09,
                                               "b2": 3.865070e-11}},
                 "toy": {"final_loss": 0.017}}
    dataset = {"name": "toy", "requested": "toy", "source": "generated (5 inputs, 4 features, 3 classes)",
               "splits": {"train": 5}, "class_names": ["0", "1", "2"], "input_shape": [4]}
    store.write_json("run.json", _scratch_run("q6", "Two-layer network from scratch, toy data", sections, reference,
                                              dataset=dataset))
    scores = [[v + 1e-9 for v in row] for row in Q6_REFERENCE_SCORES]
    scores[0][0] = -0.81233755   # easy to spot: differs in the 7th decimal
    store.write_experiment(
        "check", summary={
            "kind": "two_layer_check", "title": "Forward pass, loss and gradients", "input_size": 4, "hidden_size": 10,
            "num_classes": 3, "num_inputs": 5, "reg": 0.05, "scores": scores, "scores_max_abs_diff": 1.4e-07,
            "loss": 1.3037878913298, "loss_abs_diff": 2.0e-13,
            "relative_errors": {"W1": 4.44e-09, "b1": 2.22e-09, "W2": 5.55e-09, "b2": 6.66e-11},
            "tf_relative_errors": {"W1": 7.77e-12, "b1": 8.88e-12, "W2": 9.99e-12, "b2": 1.11e-12},
            "max_relative_error": 5.55e-09, "step": 1e-5, "seconds": 0.2})
    history = [{"trial_id": "toy", "epoch": i, "loss": 1.1 * math.exp(-i / 25) + 0.0183 * (1 - math.exp(-i / 25))}
               for i in range(1, 201)]
    history[-1]["loss"] = 0.0183
    store.write_experiment(
        "toy", history=history,
        summary={"kind": "toy_training", "title": "SGD on the toy data", "lr": 0.1, "reg": 5e-6, "iterations": 200,
                 "batch_size": 5, "final_loss": 0.0183, "target_loss": 0.02, "reached_target": True,
                 "train_accuracy": 1.0, "seconds": 0.4})
    return store


def write_q3_scratch(root: Path, *, implementation="scratch") -> ResultsStore:
    """q3 with hand-written numpy modules: its own run folder <q3>/quick/<implementation>/.

    Same grid settings as write_q3 (lr x batch), other numbers, plus the q16-style gradient check.
    """
    store = ResultsStore(root, "q3", "quick", implementation=implementation)
    sections = [
        {"template": "curves", "experiment": "base", "title": "Base run with early stopping"},
        {"template": "effect", "experiment": "lr_batch", "title": "3.a Learning rate x batch size"},
        {"template": "best", "experiment": "best", "title": "Best configuration"},
        {"template": "fractions", "experiment": "fractions", "title": "3.b Training on a subset"},
        {"template": "finite_difference", "experiment": "gradcheck", "title": "Gradient check of dense_1.W"},
    ]
    reference = {"lr_batch": {"rows": [{"lr": 0.01, "batch_size": 32, "val_accuracy": 0.9756}]},
                 "best": {"hyperparameters": {"lr": 0.01, "batch_size": 32, "units": 256},
                          "train_accuracy": 0.9999, "val_accuracy": 0.9757, "test_accuracy": 0.9787}}
    run = _run("q3", "Modular vector backpropagation: 2-layer MLP, MNIST", sections, reference,
               dataset_name="digits", banner=BANNER,
               notes=["MNIST not found under /data and download disabled: scikit-learn digits used instead"])
    run["implementation"] = implementation
    store.write_json("run.json", run)
    store.write_experiment(
        "base", summary={"kind": "evaluation", "title": "Base run", "from_experiment": "",
                         "hyperparameters": {"units": 256, "lr": 0.001, "batch_size": 32},
                         "train_accuracy": 0.9444, "val_accuracy": 0.9321, "test_accuracy": 0.9300,
                         "test_loss": 0.25, "epochs_run": 13, "stop_reason": "val_loss_rising", "seconds": 9.0},
        history=_history("best", 13, end_acc=0.9444))
    trials, history = [], []
    for i, (lr, bs, acc) in enumerate([(0.01, 32, 0.9523), (0.01, 64, 0.9488), (0.001, 32, 0.9177)]):
        tid = f"{i:04d}"
        trials.append({"trial_id": tid, "status": "completed", "lr": lr, "batch_size": bs, "epochs_run": 6,
                       "stop_reason": "max_epochs", "loss": 0.2, "accuracy": acc + 0.01, "val_loss": 0.25,
                       "val_accuracy": acc, "seconds": 3.0})
        history += _history(tid, 6, end_acc=acc)
    store.write_experiment(
        "lr_batch", summary={"kind": "search", "title": "lr x batch", "tuner": "grid", "objective": "val_accuracy",
                             "space": {"lr": [0.01, 0.001], "batch_size": [32, 64]}, "fixed": {"units": 256},
                             "n_trials": 3, "best_trial": "0000", "best_hyperparameters": {"lr": 0.01, "batch_size": 32},
                             "best_val_accuracy": 0.9523, "diverged": [], "seconds": 9.0, "evaluates_test": False},
        trials=trials, history=history)
    store.write_experiment(
        "best", summary={"kind": "evaluation", "title": "Best setting, retrained", "from_experiment": "lr_batch",
                         "hyperparameters": {"lr": 0.01, "batch_size": 32, "units": 256},
                         "train_accuracy": 0.9876, "val_accuracy": 0.9567, "test_accuracy": 0.9589,
                         "test_loss": 0.1811, "epochs_run": 7, "stop_reason": "max_epochs", "seconds": 33.3},
        history=_history("best", 7, end_acc=0.9876),
        metrics={"class_names": [str(i) for i in range(10)], "per_class_accuracy": [0.96] * 9 + [0.9111],
                 "best_class": {"index": 0, "name": "0", "accuracy": 0.96},
                 "worst_class": {"index": 9, "name": "9", "accuracy": 0.9111},
                 "confusion_matrix": [[(40 if i == j else 1) for j in range(10)] for i in range(10)],
                 "parameter_table": [{"layer": "dense_1", "type": "Linear", "output_shape": [None, 256], "params": 200960},
                                     {"layer": "dense_2", "type": "Linear", "output_shape": [None, 10], "params": 2570}],
                 "total_params": 203530})
    _fractions(store, [(0.1, 0.8899), (0.5, 0.9345)], accuracy=0.98, val_gap=0.004, seconds=2.0,
               best_val_accuracy=0.9305)
    sweep, gaps = [], {}
    analytic = [0.0125 * (k - 4.5) for k in range(10)]
    for n in (1, 10, 100, 1000):
        epsilon = 1.0 / n
        gap = 0.0 if n == 1000 else 3.2e-2 / n ** 2   # N = 1000: exact, left out of the log-log plot
        gaps[str(n)] = gap
        for k in range(10):
            numeric = analytic[k] + gap * (1 if k % 2 else -1) * (k + 1) / 10
            sweep.append({"N": n, "epsilon": epsilon, "index": k, "analytic": analytic[k], "numeric": numeric,
                          "abs_gap": abs(numeric - analytic[k])})
    store.write_experiment(
        "gradcheck", tables={"sweep": sweep},
        summary={"kind": "finite_difference", "title": "Analytic vs central-difference gradients",
                 "parameter": "dense_1.W", "count": 10, "n_values": [1, 10, 100, 1000], "max_abs_gap": gaps,
                 "seconds": 1.5})
    return store
