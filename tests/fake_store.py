"""Fake results stores that follow docs/results-store.md, with numbers easy to spot.

``write_q1(root)`` writes a q1-like run (sections curves, effect, top_table, best,
sklearn, fractions); ``write_q3(root)`` a q3-like run on a fallback dataset, with an
early-stopped base run and one diverged grid trial (nan/inf losses).
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
    trials, history = [], []
    for i, (fraction, test) in enumerate([(0.1, 0.9012), (0.5, 0.9456)]):
        tid = f"{i:04d}"
        trials.append({"trial_id": tid, "status": "completed", "train_fraction": fraction, "epochs_run": 5,
                       "stop_reason": "max_epochs", "loss": 0.1, "accuracy": 0.99, "val_loss": 0.3,
                       "val_accuracy": test - 0.005, "seconds": 1.0, "test_loss": 0.3, "test_accuracy": test})
        history += _history(tid, 5, end_acc=0.99)
    store.write_experiment(
        "fractions", summary={"kind": "search", "title": "fractions", "tuner": "grid", "objective": "val_accuracy",
                              "space": {"train_fraction": [0.1, 0.5]}, "fixed": {}, "n_trials": 2, "best_trial": "0001",
                              "best_hyperparameters": {"train_fraction": 0.5}, "best_val_accuracy": 0.9406,
                              "diverged": [], "seconds": 2.0, "evaluates_test": True},
        trials=trials, history=history)
    return store
