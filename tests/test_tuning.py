"""KerasTuner glue: the space as HyperParameters, trial counts, project names, and real
(tiny) grid and random searches that keep every epoch and survive a diverging trial."""

import math

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
    # Scored on the 40 test rows it was given: the same numbers evaluate_classifier gives there.
    assert 0.8 < records[1]["test_accuracy"] <= 1.0 and math.isfinite(records[1]["test_loss"])
    assert all(math.isfinite(row["loss"]) for row in records[1]["history"])
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
    assert max(r["val_accuracy"] for r in records) > 0.8        # a separable problem, chance 1/3


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


# -- resuming a saved search: torn or foreign files, --fresh, and our per-trial records ------------
RESUMED = {"lr": [0.5, 0.1], "batch_size": 16, "epochs": 1}


@pytest.fixture(scope="module")
def finished_project(tmp_path_factory):
    """A finished two-trial grid search: the pristine project each test copies and damages."""
    folder = tmp_path_factory.mktemp("search")
    x, y = _problem()
    _search(folder, "grid", RESUMED, x, y)
    return folder / "p"


def _copy_of(project, tmp_path):
    import shutil

    shutil.copytree(project, tmp_path / "p")
    return tmp_path / "p"


def _resume(directory, **kwargs):
    kwargs.setdefault("echo", lambda line: None)
    return make_tuner("grid", ClassifierHyperModel("linear", (3, 3, 1), 3, seed=0),
                      hyperparameters_for(_space(RESUMED)), directory=directory, project_name="p",
                      total=2, seed=0, label="s", num_classes=3, **kwargs)


def _edit_json(path, change):
    import json

    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop(key):
    return lambda state: state.pop(key)


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


DAMAGE = {   # what a kill or another KerasTuner version leaves -> the file the error must name
    "torn oracle.json": ("oracle.json", _truncate, "oracle.json"),
    "empty trial.json": ("trial_1/trial.json", lambda p: p.write_text(""), "trial_1/trial.json"),
    "torn trial.json": ("trial_0/trial.json", _truncate, "trial_0/trial.json"),
    "torn tuner0.json": ("tuner0.json", lambda p: p.write_text("{"), "tuner0.json"),
    "trial.json without metrics": ("trial_0/trial.json", lambda p: _edit_json(p, _drop("metrics")),
                                   "trial_0/trial.json"),
    "trial.json with a foreign status": ("trial_0/trial.json", lambda p: _edit_json(p, _set("status", "DONE")),
                                         "trial_0/trial.json"),
    "completed trial.json without a score": ("trial_1/trial.json", lambda p: _edit_json(p, _set("score", None)),
                                             "trial_1/trial.json"),
    "oracle.json of another format": ("oracle.json",
                                      lambda p: p.write_text('{"format": 2, "trials": [{"id": "0"}]}'), "oracle.json"),
    "oracle.json over another space": ("oracle.json", lambda p: _edit_json(
        p, lambda s: s["hyperparameters"]["space"][0]["config"].__setitem__("name", "momentum")), "oracle.json"),
    "oracle.json naming a trial with no file": ("trial_1", lambda p: __import__("shutil").rmtree(p), "oracle.json"),
    "torn trial record": ("dlcv_trials/0.json", _truncate, "dlcv_trials/0.json"),
    "foreign trial record": ("dlcv_trials/0.json", lambda p: p.write_text('{"id": 0}'), "dlcv_trials/0.json"),
    "missing record of a completed trial": ("dlcv_trials/1.json", lambda p: p.unlink(), "dlcv_trials/1.json"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_project_that_cannot_be_resumed_is_a_one_line_error_pointing_to_fresh(finished_project, tmp_path, damage):
    from dlcv_keras.tuning.search import TunerStateError
    from dlcv_keras.validation import InvalidParameterError

    target, harm, named = DAMAGE[damage]
    project = _copy_of(finished_project, tmp_path)
    harm(project / target)
    with pytest.raises(TunerStateError) as caught:
        _resume(tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, InvalidParameterError) and "\n" not in message
    assert f"saved search {str(project)!r}: {named} " in message and "--fresh" in message


def test_an_intact_project_resumes_with_its_records(finished_project, tmp_path):
    _copy_of(finished_project, tmp_path)
    tuner = _resume(tmp_path)
    assert [r["hyperparameters"]["lr"] for r in tuner.records()] == [0.5, 0.1]


def test_records_never_leave_out_a_completed_trial(finished_project, tmp_path):
    from dlcv_keras.tuning.search import TunerStateError

    project = _copy_of(finished_project, tmp_path)
    tuner = _resume(tmp_path)
    (project / "dlcv_trials" / "1.json").unlink()
    with pytest.raises(TunerStateError, match=r"dlcv_trials/1\.json is missing.*--fresh"):
        tuner.records()
    tuner.oracle.trials["1"].status = "RUNNING"        # killed midway: it has no record yet, and runs again
    assert [r["trial_id"] for r in tuner.records()] == ["0"]
    (project / "dlcv_trials" / "0.json").write_text('{"trial_id": "0", "stat')
    with pytest.raises(TunerStateError, match=r"dlcv_trials/0\.json is not valid JSON"):
        tuner.records()


def test_fresh_moves_the_old_project_aside_and_starts_over(finished_project, tmp_path):
    project = _copy_of(finished_project, tmp_path)
    _truncate(project / "oracle.json")
    torn = (project / "oracle.json").read_bytes()
    lines = []
    tuner = _resume(tmp_path, fresh=True, echo=lines.append)
    assert tuner.oracle.trials == {} and tuner.records() == []
    [old] = tmp_path.glob("p.old-*")
    assert (old / "oracle.json").read_bytes() == torn and (old / "dlcv_trials" / "0.json").is_file()
    assert len(lines) == 1 and str(old) in lines[0]


def test_move_aside_never_overwrites_an_earlier_copy(tmp_path):
    from dlcv_keras.tuning.search import move_aside

    moved = []
    for content in ("first", "second"):
        (tmp_path / "p").mkdir()
        (tmp_path / "p" / "f").write_text(content)
        moved.append(move_aside(tmp_path / "p"))
    assert not (tmp_path / "p").exists() and moved[0] != moved[1]
    assert [(m / "f").read_text() for m in moved] == ["first", "second"]
    assert all(m.name.startswith("p.old-") and m.name.endswith(("Z", "Z-2")) for m in moved)


def test_a_trial_killed_as_it_started_runs_again(finished_project, tmp_path):
    # trial.json is written just before oracle.json when a trial starts: a kill in between leaves a
    # RUNNING trial the oracle does not know, which KerasTuner would count as tried and never run.
    project = _copy_of(finished_project, tmp_path)
    _edit_json(project / "trial_1" / "trial.json",
               lambda s: s.update(status="RUNNING", score=None, metrics={"metrics": {}}))
    _edit_json(project / "oracle.json", lambda s: s.update(start_order=["0"], end_order=["0"], ongoing_trials={}))
    (project / "dlcv_trials" / "1.json").unlink()
    x, y = _problem()
    tuner = _resume(tmp_path)
    tuner.search(x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
    assert [r["hyperparameters"]["lr"] for r in tuner.records()] == [0.5, 0.1]


def test_early_stopping_with_patience_reports_the_restored_epochs_metrics():
    import keras_tuner

    x, y = _problem(400)
    # Validation labels unrelated to the images: as the model fits the training set, val_loss rises.
    y_val = np.random.default_rng(1).permutation(y[200:])
    hp = keras_tuner.HyperParameters()
    for name, value in {"lr": 0.5, "batch_size": 16, "epochs": 40, "patience": 2}.items():
        hp.Fixed(name, value)
    hypermodel = ClassifierHyperModel("linear", (3, 3, 1), 3, seed=0)
    model = hypermodel.build(hp)
    result = hypermodel.fit(hp, model, x[:200], y[:200], validation_data=(x[200:], y_val))
    assert result.epochs_run < 40 and result.restored_epoch is not None
    assert result.stop_reason == (f"early stopping: val_loss did not improve for 2 epochs; "
                                  f"weights of epoch {result.restored_epoch} restored")
    best = min(result.history, key=lambda row: row["val_loss"])
    assert result.last == best == result.history[result.restored_epoch - 1]
    assert result.restored_epoch <= result.epochs_run - 2


def test_a_trial_that_fails_on_a_worker_is_recorded_the_search_goes_on_and_a_resume_runs_it_again(tmp_path):
    """A chief (this thread) and a worker (another thread) over real gRPC on the loopback address."""
    import threading

    from dlcv_keras.tuning.cluster import Cluster

    x, y = _problem()
    space = _space({"lr": [0.5, 0.01, 0.1], "batch_size": 16, "epochs": 2})
    identity = {"question": "test"}
    lines = []

    def tuner_with(hypermodel, cluster):
        return make_tuner("grid", hypermodel, hyperparameters_for(space), directory=tmp_path, project_name="p",
                          total=3, seed=0, label="s", num_classes=3, echo=lines.append, cluster=cluster)

    chief = Cluster("chief", "chief", "127.0.0.1", 0, echo=lines.append)
    chief.listen()
    chief.start(identity, lines.append)
    worker = Cluster("worker", "worker1", "127.0.0.1", chief.port, connect_timeout=30, echo=lines.append)
    served = tuner_with(ClassifierHyperModel("linear", (3, 3, 1), 3, seed=0), chief)
    errors = []

    def work():
        try:
            worker.start(identity, lines.append)
            tuner_with(_BrokenAtLowLr("linear", (3, 3, 1), 3, seed=0), worker).search(
                x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
        except BaseException as error:          # noqa: BLE001 - reported by the assertion below
            errors.append(error)
            chief._service.stop_seen = True     # else the chief would wait for this worker for ever

    thread = threading.Thread(target=work)
    thread.start()
    try:
        served.search(x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
    finally:
        thread.join(timeout=120)
        chief.close()
    assert not errors and not thread.is_alive()
    records = served.records()
    assert [(r["hyperparameters"]["lr"], r["status"]) for r in records] == [
        (0.5, "completed"), (0.01, "failed"), (0.1, "completed")]       # the worker went on after the failure
    assert "ValueError: simulated bug" in records[1]["stop_reason"]
    assert not list((tmp_path / "p" / "dlcv_trials").glob("*.worker1.*"))   # every record became the trial's

    resumed = tuner_with(ClassifierHyperModel("linear", (3, 3, 1), 3, seed=0), None)
    resumed.search(x[:160], y[:160], validation_data=(x[160:], y[160:]), verbose=0)
    assert [(r["hyperparameters"]["lr"], r["status"]) for r in resumed.records()] == [
        (0.5, "completed"), (0.01, "completed"), (0.1, "completed")]
