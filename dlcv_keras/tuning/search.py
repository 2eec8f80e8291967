"""Tuners that keep every epoch of every trial, show progress, and resume where they stopped.

KerasTuner does the searching (which values to try next, what is finished, reloading
a project); these subclasses change how one trial runs: no per-epoch checkpoint
(we retrain the best setting anyway), a JSON record per trial with all its epochs,
and a "trial i of N" line. A project is named by a hash of everything that shapes
its results, so a changed setup never reloads an old search while an identical,
interrupted one picks up its finished trials.
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import keras
import keras_tuner

from dlcv_keras.results import atomic_write_text
from dlcv_keras.settings import TUNERS
from dlcv_keras.training.fit import evaluate_classifier, release_compiled
from dlcv_keras.tuning.fingerprint import fingerprint  # noqa: F401  (re-exported: tests and callers use it here)
from dlcv_keras.tuning.hypermodel import count_parameters
from dlcv_keras.tuning.spaces import ExperimentSpace
from dlcv_keras.validation import InvalidParameterError

_TrialStatus = keras_tuner.engine.trial.TrialStatus
_FINISHED = (_TrialStatus.COMPLETED, _TrialStatus.FAILED)      # a finished trial has a record




def hyperparameters_for(space: ExperimentSpace, base: dict | None = None) -> keras_tuner.HyperParameters:
    """The space as KerasTuner values: pinned values are ``Fixed``, lists ``Choice``, ranges ``Float``/``Int``.

    ``base`` pins values inherited from an earlier search's best setting; the space's own entries win.
    """
    hp = keras_tuner.HyperParameters()
    own = set(space.fixed) | set(space.choices) | set(space.ranges)
    for name, value in sorted((base or {}).items()):
        if name not in own:
            hp.Fixed(name, value)
    for name, value in sorted(space.fixed.items()):
        hp.Fixed(name, value)
    for name, values in sorted(space.choices.items()):
        # Choice, not a stepped Float: GridSearch expands Float steps by floor division.
        hp.Choice(name, values, ordered=not isinstance(values[0], str))
    for name, span in sorted(space.ranges.items()):
        if isinstance(span.low, int) and isinstance(span.high, int):
            hp.Int(name, span.low, span.high, sampling=span.sampling)
        else:
            hp.Float(name, span.low, span.high, sampling=span.sampling)
    return hp


def count_trials(space: ExperimentSpace, tuner: str, random_trials: int) -> int:
    if tuner == "grid":
        return space.grid_size()
    if space.ranges:
        return random_trials
    return min(random_trials, space.grid_size())


class _StopOnInterrupt(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the next group of batches once Ctrl-C was pressed."""

    runs_between_calls = True   # the fast path may run its batch hook after each compiled call

    def __init__(self, tuner):
        super().__init__()
        self.tuner = tuner

    def on_train_batch_end(self, batch, logs=None):
        if self.tuner._interrupted:
            raise KeyboardInterrupt

    on_test_batch_end = on_train_batch_end
    on_epoch_end = on_train_batch_end


class TrialError(keras_tuner.errors.FatalError):
    """A trial raised: the search stops (KerasTuner re-raises FatalError) instead of skipping it."""


class TrialSettingError(InvalidParameterError, keras_tuner.errors.FatalError):
    """A bad setting found once a trial started (a ``pca`` above the training rows): the search stops,
    and the command line says it in one line (exit 2). KerasTuner files any other error as an invalid
    trial, prints its traceback and goes on to the next."""


class TunerStateError(InvalidParameterError):
    """A saved search cannot be resumed: a file torn by a kill, or written by another KerasTuner version.

    One line naming the file or project folder; the way out is ``--fresh`` (``make_tuner(fresh=True)``).
    """


def _state_error(path: Path, problem: str) -> TunerStateError:
    """``path`` is the project folder or a file in it (its own, a trial_*/ or dlcv_trials/ one)."""
    path = Path(path)
    if path.name in ("oracle.json", "tuner0.json"):
        project = path.parent
    elif path.parent.name.startswith("trial_") or path.parent.name == "dlcv_trials":
        project = path.parents[1]
    else:
        project = path
    what = "it" if path == project else path.relative_to(project).as_posix()
    problem = " ".join(str(problem).split())          # one line, whatever the cause's message held
    if len(problem) > 300:
        problem = problem[:297] + "..."
    return TunerStateError(
        f"cannot resume the saved search {str(project)!r}: {what} {problem}; expected the files of a search "
        f"this package ran with KerasTuner {keras_tuner.__version__}: run again with --fresh to move it aside "
        f"and start over")


def _cause(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"lacks key {error}"
    return f"cannot be read ({type(error).__name__}: {error})"


class _RecordingTuner:
    """Mixin for KerasTuner tuners: how one trial runs and how progress shows."""

    def __init__(self, *args, label: str, total: int, test_data=None, num_classes: int,
                 echo=print, progress: bool = False, keep_models: bool = False, isolate: bool = False,
                 cluster=None, **kwargs):
        # Our role in a search shared across processes (tuning/cluster.py), or None: set before KerasTuner's
        # constructor, which reloads a saved project and asks _is_worker() what to reload.
        self.cluster = cluster
        super().__init__(*args, **kwargs)
        if self._is_worker():
            self.oracle = cluster.client(self.oracle, project=self.project_name, label=label, echo=echo)
        self.label = label
        self.total = total
        self.test_data = test_data
        self.num_classes = num_classes
        self.echo = echo
        self.progress = progress             # per-epoch progress lines (off with -q)
        self.keep_models = keep_models       # save each trained trial's model as dlcv_trials/<id>.keras
        self.isolate = isolate               # each trial in a child process (tuning/isolation.py)
        self._trial_seconds: list[float] = []
        self._search_started = time.perf_counter()
        self._interrupted = False            # set by the first Ctrl-C during search()
        self._trial_number = 1               # the running trial's place in the search, for progress lines

    # -- roles and files ----------------------------------------------------------
    @property
    def records_dir(self) -> Path:
        """Our per-trial records (and kept models); a property: KerasTuner's constructor reloads them."""
        return Path(self.project_dir) / "dlcv_trials"

    def _is_worker(self) -> bool:
        """KerasTuner asks the environment; we ask our role, where a chief is exactly "chief"."""
        return self.cluster is not None and self.cluster.is_worker

    def _get_tuner_fname(self):
        # The searching process's file is tuner0.json whatever its KERASTUNER_TUNER_ID, so that a
        # chief resumes a project a single process began, and the reverse; each worker keeps its own.
        name = self.cluster.tuner_id if self._is_worker() else "tuner0"
        return os.path.join(str(self.project_dir), f"{name}.json")

    def save(self):
        """KerasTuner's save, written atomically (KerasTuner writes in place: a kill can tear the file)."""
        if not self._is_worker():
            self.oracle.save()
        atomic_write_text(Path(self._get_tuner_fname()), json.dumps(self.get_state()))

    # -- resuming ------------------------------------------------------------------
    def reload(self):
        """KerasTuner's reload (called from its constructor when ``tuner0.json`` exists), made safe.

        KerasTuner writes oracle.json and trial_*/trial.json in place, so a kill can leave one
        torn, and another KerasTuner version writes other keys; either used to end in a traceback
        here or later in the search. Each file is checked first (to name the bad one), then the
        reloaded state is checked against itself and against our per-trial records.
        """
        if self._is_worker():
            # The project's oracle and trials are the chief's, being written as we read: not ours to check.
            return super().reload()
        project = Path(self.project_dir)
        trial_files = sorted(project.glob("trial_*/trial.json"))
        for path in [Path(self._get_tuner_fname()), Path(self.oracle._get_oracle_fname()), *trial_files]:
            state = _read_json_object(path)
            if path in trial_files:
                try:
                    trial = keras_tuner.engine.trial.Trial.from_state(state)
                except Exception as error:
                    raise _state_error(path, f"is not a KerasTuner trial: {_cause(error)}") from error
                _check_trial(path, trial)
        ours = sorted(hp.name for hp in self.oracle.hyperparameters.space)
        try:
            super().reload()
        except Exception as error:
            # The trial files passed above, so it is oracle.json's state that KerasTuner rejects; its
            # own RuntimeError for a missing key advises overwrite=True, which is not ours to give.
            cause = error.__cause__ if isinstance(error.__cause__, KeyError) else error
            raise _state_error(Path(self.oracle._get_oracle_fname()),
                               f"is not a KerasTuner oracle state: {_cause(cause)}") from error
        self._check_reloaded(project, ours)

    def _check_reloaded(self, project: Path, ours: list[str]) -> None:
        oracle = self.oracle
        oracle_file = Path(oracle._get_oracle_fname())
        space = {hp.name for hp in oracle.hyperparameters.space}
        if sorted(space) != ours:
            raise _state_error(oracle_file, f"holds a search space over {sorted(space)}, not this search's {ours}")
        # A trial that finished is never run again, whatever an older oracle.json listed as running.
        oracle._retry_queue = [t for t in oracle._retry_queue
                               if t not in oracle.trials or oracle.trials[t].status not in _FINISHED]
        for name in ("start_order", "end_order", "_retry_queue"):
            listed = getattr(oracle, name)
            if not isinstance(listed, list) or any(trial_id not in oracle.trials for trial_id in listed):
                missing = [t for t in listed if t not in oracle.trials] if isinstance(listed, list) else listed
                raise _state_error(oracle_file, f"lists trials {missing!r} that have no trial_*/trial.json")
        for trial in oracle.trials.values():
            foreign = set(trial.hyperparameters.values) - space
            if foreign:
                raise _state_error(project / f"trial_{trial.trial_id}" / "trial.json",
                                   f"holds hyperparameters {sorted(foreign)} outside this search's space")
            if trial.status in _FINISHED:
                record = self.read_record(trial.trial_id, required=True)
                if record["status"] == "failed" and trial.trial_id not in oracle._retry_queue:
                    # Failed on a worker: run it again, as a single process runs again a trial that raised.
                    trial.status = _TrialStatus.RUNNING
                    oracle.end_order = [t for t in oracle.end_order if t != trial.trial_id]
                    oracle._retry_queue.append(trial.trial_id)
            elif trial.status == _TrialStatus.RUNNING and trial.trial_id not in oracle._retry_queue:
                # trial.json is written just before oracle.json when a trial starts: killed in
                # between, the trial is RUNNING but unknown to the oracle. Run it again.
                oracle._retry_queue.append(trial.trial_id)

    # -- the search ------------------------------------------------------------
    def search(self, *args, **kwargs):
        """KerasTuner's search, with Ctrl-C kept a Ctrl-C.

        A KeyboardInterrupt raised wherever Python happens to be can be lost: inside
        TensorFlow it may come back as a RuntimeError (which KerasTuner files as a failed
        trial and goes on), inside a weakref callback it is only printed. So the first
        Ctrl-C sets a flag, and the trial raises KeyboardInterrupt from a known place, at
        its next group of batches; a second Ctrl-C raises at once.
        """
        self._interrupted = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGINT)

        def on_interrupt(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True

        if in_main_thread:
            signal.signal(signal.SIGINT, on_interrupt)
        # KerasTuner runs two full garbage collections before every trial (they keep memory flat);
        # with TensorFlow, JAX and Keras loaded each walks millions of objects, 0.3 s. Frozen
        # objects are skipped, so freezing what is alive now leaves them only the trials' garbage.
        gc.collect()
        gc.freeze()
        try:
            if self.cluster is not None and not self.cluster.is_worker:
                # The chief hands out trials and records their ends; its workers train them.
                self.oracle.verbose = kwargs.get("verbose", 1)   # KerasTuner's per-trial tables, as search() sets
                self.save()
                return self.cluster.serve(self)
            return super().search(*args, **kwargs)
        finally:
            release_compiled()          # the next search has other shapes; the disk cache still has them
            gc.unfreeze()
            if in_main_thread:
                signal.signal(signal.SIGINT, previous)

    # -- one trial -------------------------------------------------------------
    def run_trial(self, trial, *args, **kwargs):
        """Run one trial; any error stops the search with the trial left to run again on resume.

        A diverging loss is not an error (the trial is recorded as diverged). Anything else,
        an interrupt or a bug, must not be swallowed as a "failed trial" that a resumed grid
        would then skip for good.
        """
        try:
            result = self._run_recorded_trial(trial, *args, **kwargs)
        except InvalidParameterError as error:
            raise TrialSettingError(str(error)) from error    # a bad setting (exit 2), not a failed trial
        except Exception as error:
            if self._interrupted:
                raise KeyboardInterrupt from error
            message = f"trial {trial.trial_id} of {self.label} failed: {type(error).__name__}: {error}"
            if self._is_worker():
                # One worker's failing trial must not stop the others: it is recorded as failed, the
                # chief says so when the search ends, and a resumed search runs it again.
                atomic_write_text(self._record_path(trial.trial_id), json.dumps(
                    {"trial_id": trial.trial_id, "status": "failed", "hyperparameters": dict(trial.hyperparameters.values),
                     "stop_reason": message, "epochs_run": 0, "history": []}))
                raise keras_tuner.errors.FailedTrialError(message) from error
            raise TrialError(message) from error
        if self._interrupted:
            raise KeyboardInterrupt
        return result

    def _run_recorded_trial(self, trial, x, y, validation_data=None, **_ignored):
        hp = trial.hyperparameters
        keep_path = self._record_path(trial.trial_id, ".keras") if self.keep_models else None
        common = dict(test_data=self.test_data, num_classes=self.num_classes, keep_path=keep_path)
        if self.isolate:
            from dlcv_keras.tuning.isolation import run_isolated

            record = run_isolated(dict(hypermodel=self.hypermodel, values=dict(hp.values), x=x, y=y,
                                       validation_data=validation_data, progress=self._progress_plan(), **common),
                                  should_stop=lambda: self._interrupted)
            # The child's memory is the trial's; this (the searching) process's stays flat by construction.
            record["trial_rss_mb"], record["trial_peak_rss_mb"] = record.pop("rss_mb"), record.pop("peak_rss_mb")
            record.update(memory_now())
        else:
            if getattr(self.hypermodel, "implementation", "keras") == "keras":
                model = self._try_build(hp)      # clears the previous trial's graph first
            else:
                model = self.hypermodel.build(hp)   # a numpy network: no Keras graph to clear or check
            callbacks = [_StopOnInterrupt(self), *progress_callbacks(self._progress_plan())]
            record = train_and_record(self.hypermodel, hp, x, y, validation_data, model=model,
                                      callbacks=callbacks, **common)
        record = {"trial_id": trial.trial_id, **record}
        # Written when the trial ends: a trial killed midway has no record and is run again.
        atomic_write_text(self._record_path(trial.trial_id), json.dumps(record, default=str, allow_nan=True))
        objective = record.get("val_accuracy", 0.0)
        if record["status"] != "completed" or not math.isfinite(objective):
            objective = 0.0   # a diverged trial stays in the search, ranked last
        return {"val_accuracy": objective}

    # -- progress ----------------------------------------------------------------
    def _progress_plan(self) -> dict | None:
        """What a trial's progress line needs, as plain values (a trial may run in another process)."""
        if not self.progress:
            return None
        index = self._trial_number
        return {"label": self.label, "index": index, "total": self.total,
                "after": max(self.total - index, 0),           # trials still to run after this one
                "mean_seconds": (sum(self._trial_seconds) / len(self._trial_seconds)) if self._trial_seconds else None}

    def finished_trials(self) -> int:
        """Trials this search has finished; a worker, which sees only its own, counts those."""
        if self._is_worker():
            return len(self._trial_seconds)
        return sum(1 for t in self.oracle.trials.values()
                   if t.status in ("COMPLETED", "FAILED", "INVALID"))

    def on_search_begin(self):
        super().on_search_begin()
        done = self.finished_trials()
        resumed = f", {done} already finished (resuming)" if done else ""
        where = f" (worker {self.cluster.tuner_id}, trials from the chief)" if self._is_worker() else ""
        self.echo(f"[{self.label}] search: {self.total} trial{'' if self.total == 1 else 's'}{resumed}{where}")
        self._search_started = time.perf_counter()

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_started = time.perf_counter()
        # A worker sees only the trials it runs: the chief numbers trials in the order they start
        # (zero-padded), which is the grid's order, so the id gives the trial's place in the search.
        index = (int(trial.trial_id) + 1 if self._is_worker() and trial.trial_id.isdigit()
                 else self.finished_trials() + 1)
        self._trial_number = index
        values = ", ".join(f"{k}={_short(v)}" for k, v in trial.hyperparameters.values.items())
        self.echo(f"[{self.label}] trial {index} of {self.total}: {values}")

    def on_trial_end(self, trial):
        record = self.read_record(trial.trial_id, path=self._record_path(trial.trial_id)) or {}
        super().on_trial_end(trial)          # a worker's record becomes the trial's here, if the chief accepts it
        elapsed = time.perf_counter() - self._search_started
        self._trial_seconds.append(time.perf_counter() - self._trial_started)
        if record.get("status") == "completed":
            outcome = f"val_accuracy {record.get('val_accuracy', float('nan')):.4f}"
        else:
            outcome = record.get("stop_reason") or f"failed: {(trial.message or '').strip().splitlines()[-1:]}"
        trained = "" if record.get("status") == "rejected" else f" after {record.get('epochs_run', 0)} epochs"
        self.echo(f"[{self.label}]   {outcome}{trained} "
                  f"({time.perf_counter() - self._trial_started:.1f} s; elapsed {elapsed:.0f} s)")

    # -- records -------------------------------------------------------------------
    def _record_path(self, trial_id: str, suffix: str = ".json") -> Path:
        """Where this process writes a trial's record (or kept model): a worker under a name of its own,
        which the chief makes the trial's when it accepts the trial's end (``commit_worker_files``)."""
        return record_path(self.records_dir, trial_id, self.cluster.tuner_id if self._is_worker() else None, suffix)

    def read_record(self, trial_id: str, *, required: bool = False, path: Path | None = None) -> dict | None:
        """A trial's record (from ``path`` if given); None if it has none (it never ended), TunerStateError
        if unreadable or, with ``required``, missing."""
        path = path or record_path(self.records_dir, trial_id)
        if not path.is_file():
            if required:
                raise _state_error(path, f"is missing, but KerasTuner's trial_{trial_id}/trial.json says the "
                                         f"trial finished")
            return None
        record = _read_json_object(path)
        lacking = [key for key in ("trial_id", "status", "hyperparameters") if key not in record]
        if lacking:
            raise _state_error(path, f"is not a trial record: lacks {', '.join(lacking)}")
        return record

    def records(self) -> list[dict]:
        """Every finished trial's record, in trial order.

        Never fewer than ran: a trial KerasTuner calls COMPLETED (or FAILED) without a record is a
        TunerStateError, as is a record that cannot be read. A RUNNING trial without one was killed
        midway and is left out (a resumed search runs it again).
        """
        found = []
        for trial_id in sorted(self.oracle.trials, key=_trial_order):
            required = self.oracle.trials[trial_id].status in _FINISHED
            record = self.read_record(trial_id, required=required)
            if record is not None:
                found.append(record)
        return found


def record_path(records_dir: Path, trial_id: str, tuner_id: str | None = None, suffix: str = ".json") -> Path:
    """A trial's record (``.json``) or kept model (``.keras``) in ``records_dir``; ``tuner_id``: a worker's
    own copy, until the chief accepts it."""
    return Path(records_dir) / (f"{trial_id}.{tuner_id}{suffix}" if tuner_id else f"{trial_id}{suffix}")


def commit_worker_files(records_dir: Path, trial_id: str, tuner_id: str) -> None:
    """The chief accepts a worker's end of a trial: the worker's record and model become the trial's. A
    worker whose trial went to another (it was silent too long) never gets here, so its late files
    cannot replace the other's."""
    for suffix in (".keras", ".json"):            # the record last: with it, the trial has ended
        own = record_path(records_dir, trial_id, tuner_id, suffix)
        if own.exists():
            os.replace(own, record_path(records_dir, trial_id, suffix=suffix))


class _SharedOracle:
    """What an oracle needs, besides KerasTuner's, to survive kills and to be shared by workers.

    - Its files are written atomically (KerasTuner writes oracle.json and trial.json in place).
    - A tuner that asks for a trial when none is free, while other tuners still train, is told to
      wait (IDLE), not to stop: a trial of theirs may come back (a worker died) and need a taker.
    - The chief can hand a silent worker's trial to another (``requeue``), and knows when the
      search is over (``search_finished``) without drawing a new setting.
    """

    def save(self):
        atomic_write_text(Path(self._get_oracle_fname()), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        atomic_write_text(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", json.dumps(trial.get_state()))

    def set_state(self, state):
        super().set_state(state)
        # KerasTuner's reload sends every trial that was running to the retry queue; a chief that
        # was restarted gives them back to their workers instead (``keep_running``).
        self.reloaded_running = {tuner_id: trial.trial_id for tuner_id, trial in self.ongoing_trials.items()}

    @keras_tuner.synchronized
    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == _TrialStatus.STOPPED and self.ongoing_trials:
            trial.status = _TrialStatus.IDLE
        return trial

    def _check_consecutive_failures(self):
        # KerasTuner raises inside end_trial, holding the oracle's lock for good (its decorator has no
        # finally): a chief would hang. Failed trials only come from workers, and the search reports them.
        pass

    @keras_tuner.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        # KerasTuner saves before it lets the tuner go (a single process's tuner saves again after):
        # saved now, a restarted chief does not find the finished trial still running.
        self.save()

    @keras_tuner.synchronized
    def keep_running(self, trial_ids: dict) -> list[str]:
        """After a reload: trials ``{tuner_id: trial_id}`` stay their tuners' instead of being retried."""
        kept = []
        for tuner_id, trial_id in trial_ids.items():
            if trial_id in self._retry_queue and self.trials[trial_id].status == _TrialStatus.RUNNING:
                self._retry_queue.remove(trial_id)
                self.ongoing_trials[tuner_id] = self.trials[trial_id]
                kept.append(trial_id)
        if kept:
            self.save()
        return kept

    @keras_tuner.synchronized
    def requeue(self, trial_id: str) -> str | None:
        """Take ``trial_id`` from the tuner running it and queue it for the next tuner that asks;
        returns the tuner it was taken from (None if no tuner was running it)."""
        for tuner_id, trial in list(self.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                del self.ongoing_trials[tuner_id]
                self._retry_queue.append(trial_id)
                self.save()
                return tuner_id
        return None

    @keras_tuner.synchronized
    def adopt(self, tuner_id: str, trial_id: str) -> bool:
        """Whether ``tuner_id`` may report on ``trial_id``: it runs it, or the trial waits in the retry
        queue (its worker was thought lost, or the chief restarted) and ``tuner_id`` runs nothing else."""
        running = self.ongoing_trials.get(tuner_id)
        if running is not None:
            return running.trial_id == trial_id
        if trial_id in self._retry_queue and self.trials[trial_id].status == _TrialStatus.RUNNING:
            self._retry_queue.remove(trial_id)
            self.ongoing_trials[tuner_id] = self.trials[trial_id]
            self.save()
            return True
        return False

    @keras_tuner.synchronized
    def search_finished(self) -> bool:
        """No trial running or waiting, and nothing left to try (without drawing a new setting)."""
        if self.ongoing_trials or self._retry_queue:
            return False
        if any(trial.status not in _FINISHED for trial in self.trials.values()):
            return False
        return self._nothing_left()

    def _nothing_left(self) -> bool:
        return bool(self.max_trials) and len(self.trials) >= self.max_trials


class CartesianGridOracle(_SharedOracle, keras_tuner.Oracle):
    """Grid search that works out what is left from the trials it already has.

    KerasTuner 1.4's GridSearchOracle keeps its place in the grid in memory only: a
    reloaded project either stops early (nothing queued) or fails with a KeyError once
    the retried trial ends. Walking the whole product and skipping the settings
    already tried (finished, running or failed) resumes exactly, on any number of workers.
    The grid is ``Choice`` and ``Fixed`` values only; the last hyperparameter varies fastest.
    """

    def populate_space(self, trial_id):
        values = self._next_untried()
        if values is None:
            return {"status": keras_tuner.engine.trial.TrialStatus.STOPPED, "values": None}
        return {"status": keras_tuner.engine.trial.TrialStatus.RUNNING, "values": values}

    def _next_untried(self) -> dict | None:
        tried = {_settings_key(trial.hyperparameters.values) for trial in self.trials.values()}
        space = self.get_space().space
        for combination in itertools.product(*(_grid_values(hp) for hp in space)):
            values = {hp.name: value for hp, value in zip(space, combination)}
            if _settings_key(values) not in tried:
                return values
        return None

    def _nothing_left(self) -> bool:
        return self._next_untried() is None or super()._nothing_left()


class SharedRandomOracle(_SharedOracle, keras_tuner.oracles.RandomSearchOracle):
    pass


def _grid_values(hp) -> list:
    if isinstance(hp, keras_tuner.engine.hyperparameters.Fixed):
        return [hp.value]
    if isinstance(hp, keras_tuner.engine.hyperparameters.Choice):
        return list(hp.values)
    raise ValueError(f"grid search takes Choice and Fixed values, got {type(hp).__name__} {hp.name!r}")


def _settings_key(values: dict) -> tuple:
    return tuple(sorted((name, repr(value)) for name, value in values.items()))


ORACLES = {"grid": CartesianGridOracle, "random": SharedRandomOracle}


class SearchTuner(_RecordingTuner, keras_tuner.Tuner):
    """A grid or random search (``kind``) over one of our oracles."""

    def __init__(self, kind: str, hypermodel, *, objective, max_trials, hyperparameters, tune_new_entries,
                 allow_new_entries, seed, max_consecutive_failed_trials, **kwargs):
        oracle = ORACLES[kind](objective=objective, max_trials=max_trials, hyperparameters=hyperparameters,
                               tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
                               seed=seed, max_consecutive_failed_trials=max_consecutive_failed_trials)
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


def _read_json_object(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise _state_error(path, "is missing") from error
    except OSError as error:
        raise _state_error(path, f"cannot be read ({error})") from error
    if not data.strip():
        raise _state_error(path, "is empty (torn by a kill?)")
    try:
        state = json.loads(data.decode("utf-8"))
    except ValueError as error:                   # JSONDecodeError, UnicodeDecodeError
        raise _state_error(path, f"is not valid JSON ({type(error).__name__}: {error}; torn by a kill?)") from error
    if not isinstance(state, dict):
        raise _state_error(path, f"holds a JSON {type(state).__name__}, not an object")
    return state


def _check_trial(path: Path, trial) -> None:
    """What KerasTuner takes for granted of a reloaded trial and only trips over mid-search."""
    if trial.status not in vars(_TrialStatus).values():
        raise _state_error(path, f"has status {trial.status!r}, not one of KerasTuner's")
    if trial.status == _TrialStatus.COMPLETED and not isinstance(trial.score, (int, float)):
        raise _state_error(path, f"is COMPLETED with score {trial.score!r}, not a number")
    if path.parent.name != f"trial_{trial.trial_id}":
        raise _state_error(path, f"holds trial_id {trial.trial_id!r}, not the one its folder names")


def move_aside(project_dir: Path | str) -> Path:
    """Rename ``project_dir`` to ``<project_dir>.old-<UTC time>`` (never deleted) and return the new path.

    Raises FileNotFoundError if there is nothing to move.
    """
    project_dir = Path(project_dir)
    if not project_dir.exists():
        raise FileNotFoundError(f"no saved search {str(project_dir)!r} to move aside")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = project_dir.with_name(f"{project_dir.name}.old-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = project_dir.with_name(f"{project_dir.name}.old-{stamp}-{number}")
    os.rename(project_dir, target)
    return target


def progress_callbacks(plan: dict | None) -> list:
    """The per-epoch progress line of one trial (``_RecordingTuner._progress_plan``), or nothing (-q)."""
    if plan is None:
        return []
    from dlcv_keras.training.progress import EpochProgress

    started = time.perf_counter()

    def search_seconds_left(trial_left: float | None) -> float | None:
        if trial_left is None:               # nothing measured yet (or no Keras fit to measure)
            return None
        # Trials of one search cost about the same: finished ones give the mean, else this one.
        mean = plan["mean_seconds"] or (time.perf_counter() - started + trial_left)
        return trial_left + plan["after"] * mean

    return [EpochProgress(plan["label"], trial=(plan["index"], plan["total"]), search_seconds_left=search_seconds_left)]


def train_and_record(hypermodel, hp, x, y, validation_data, *, callbacks, test_data, num_classes,
                     keep_path: Path | None, model=None) -> dict:
    """Build (unless given), train and evaluate one trial; its record (without the trial id)."""
    model = hypermodel.build(hp) if model is None else model
    result = hypermodel.fit(hp, model, x, y, validation_data=validation_data, callbacks=callbacks)
    record = {"status": result.status, "hyperparameters": dict(hp.values), "params": count_parameters(model),
              "epochs_run": result.epochs_run, "stop_reason": result.stop_reason, "seconds": result.seconds,
              **memory_now()}
    if keep_path is not None and result.status == "completed":
        save_model_atomically(model, keep_path)
    record.update({k: v for k, v in result.last.items() if k not in ("epoch", "seconds")})
    if test_data is not None and result.status == "completed":
        evaluation = evaluate_classifier(model, *test_data, num_classes)
        record["test_loss"], record["test_accuracy"] = evaluation["loss"], evaluation["accuracy"]
        record["test_predictions"] = evaluation["predicted"].tolist()
    record["history"] = result.history
    if result.layers:
        record["layers"] = result.layers
    return record


def memory_now() -> dict:
    """This process's resident memory now and at its peak, in MB (recorded with every trial:
    a search whose memory grows trial by trial shows it in trials.csv)."""
    import resource

    try:
        with open("/proc/self/statm") as statm:
            now = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        now = None                                                        # not Linux
    # Read after the current size, and never below it (the kernel updates the peak lazily).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux
    peak = max(peak, now or 0.0)
    return {"rss_mb": round(now, 1) if now is not None else None, "peak_rss_mb": round(peak, 1)}


def save_model_atomically(model, path: Path) -> None:
    """model.save to a temporary name in the same folder, then rename: a kill leaves no torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.keras")
    try:
        model.save(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_trained_model(path: Path):
    """A model ``save_model_atomically`` wrote, uncompiled (to predict and to look inside). Our optimizer
    and schedule classes are registered first: a stored model names them."""
    import dlcv_keras.training.optimizers  # noqa: F401
    import dlcv_keras.training.schedules  # noqa: F401

    return keras.saving.load_model(path, compile=False)


def make_tuner(kind: str, hypermodel, hyperparameters, *, directory: Path, project_name: str,
               total: int, seed: int, label: str, num_classes: int, test_data=None, echo=print,
               fresh: bool = False, progress: bool = False, keep_models: bool = False, isolate: bool = False,
               cluster=None):
    """A grid or random tuner over exactly ``hyperparameters`` (no entries added by ``build``).

    An existing project of that name is resumed; with ``fresh`` it is first moved aside
    (``move_aside``) and the search starts over. A project that cannot be resumed is a
    one-line TunerStateError pointing to ``--fresh``.
    """
    if kind not in ("grid", "random"):
        raise ValueError(f"tuner must be one of {TUNERS}, got {kind!r}")
    project_dir = Path(directory) / project_name
    if fresh and project_dir.exists():
        moved = move_aside(project_dir)
        echo(f"[{label}] starting the search afresh; the old one is kept in {moved}")
    common = dict(hypermodel=hypermodel, objective=keras_tuner.Objective("val_accuracy", "max"),
                  hyperparameters=hyperparameters, tune_new_entries=False, allow_new_entries=False,
                  seed=seed, directory=str(directory), project_name=project_name,
                  overwrite=False,               # the hash in project_name makes reloading safe
                  max_consecutive_failed_trials=max(3, total),
                  label=label, total=total, test_data=test_data, num_classes=num_classes, echo=echo,
                  progress=progress, keep_models=keep_models, isolate=isolate, cluster=cluster)
    return SearchTuner(kind, max_trials=total, **common)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _trial_order(trial_id: str):
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)
