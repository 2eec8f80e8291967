"""The gRPC side of a shared search (tuning/cluster.py): what the chief answers, what a worker asks.

KerasTuner's own service definition and Oracle methods, answered for whichever search of the
run the chief is serving, with the checks and the heartbeat described in cluster.py.
"""

from __future__ import annotations

import collections
import json
import threading
import time

import grpc
import keras_tuner
from keras_tuner.src import protos   # KerasTuner's service definition (its distribute code imports it so)

from dlcv_keras.tuning.cluster import CHIEF, HEARTBEAT, Cluster, identity_difference
from dlcv_keras.tuning.search import TrialError, commit_worker_files
from dlcv_keras.validation import InvalidParameterError

_IDLE_WAIT = (0.05, 2.0)     # a waiting worker's first and longest pause between asks, in seconds
_TrialStatus = keras_tuner.engine.trial.TrialStatus


class ClusterError(InvalidParameterError, keras_tuner.errors.FatalError):
    """The chief cannot be reached, refused this worker, or cannot serve: one line, exit status 2.
    A FatalError, so that KerasTuner's search loop stops on it instead of filing a failed trial."""


class WorkersEnded(TrialError):
    """Every local worker ended while a search still had trials to run (exit status 1; run again to resume)."""


class SearchOver(Exception):
    """The chief cannot be reached, but it stored the search: it finished it and ended."""


class ChiefStopped(TrialError):
    """The chief's run failed or was interrupted (its run.json says so) and it is gone: exit status 1."""


class TrialTakenAway(Exception):
    """The chief gave this worker's trial to another (it was silent too long): its result is dropped."""


class ChiefService(protos.get_service_grpc().OracleServicer):
    """KerasTuner's OracleServicer calls, answered for whichever search the chief is on."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.messages = protos.get_service()
        self.lock = threading.Lock()
        self.project = None              # the search being served, and its oracle
        self.oracle = None
        self.records_dir = None
        self.finished: set[str] = set()  # searches of this run that are over
        self.stop_seen = False
        self.last_seen: dict[str, float] = {}     # trial id -> when its worker last spoke
        self.counts = collections.Counter()       # calls served, and their time in the chief, by method
        self.seconds = collections.Counter()
        self.trials_ended = 0
        self.last_call = time.monotonic()         # when a worker last called

    # -- the search being served ----------------------------------------------------------
    def begin(self, tuner, kept: list[str]) -> None:
        with self.lock:
            self.project, self.oracle, self.stop_seen = tuner.project_name, tuner.oracle, False
            self.records_dir = tuner.records_dir       # where its workers' records become the trials'
            now = time.monotonic()
            self.last_seen = {trial.trial_id: now for trial in tuner.oracle.ongoing_trials.values()}
            self.last_seen.update({trial_id: now for trial_id in kept})

    def end(self, project: str, *, finished: bool) -> None:
        with self.lock:
            self.project = self.oracle = None
            if finished:
                self.finished.add(project)

    def requeue_silent(self, timeout: float) -> list[tuple[str, str, float]]:
        """Trials whose worker has not spoken for ``timeout`` seconds go back to the queue."""
        moved = []
        with self.lock:
            oracle, now = self.oracle, time.monotonic()
            if oracle is None:
                return moved
            for trial in list(oracle.ongoing_trials.values()):
                silent = now - self.last_seen.setdefault(trial.trial_id, now)
                if silent > timeout:
                    tuner_id = oracle.requeue(trial.trial_id)
                    if tuner_id is not None:
                        moved.append((trial.trial_id, tuner_id, silent))
                    self.last_seen.pop(trial.trial_id, None)
        return moved

    def requeue_tuner(self, tuner_id: str) -> str | None:
        """The trial ``tuner_id`` was running goes back to the queue (its process ended); its id, or None."""
        with self.lock:
            oracle = self.oracle
            trial = oracle.ongoing_trials.get(tuner_id) if oracle is not None else None
            if trial is None:
                return None
            oracle.requeue(trial.trial_id)
            self.last_seen.pop(trial.trial_id, None)
            return trial.trial_id

    def overhead_words(self) -> str:
        calls = sum(self.counts.values())
        per_trial = calls / max(self.trials_ended, 1)
        seconds = sum(self.seconds.values())
        return (f"{calls} calls served for {self.trials_ended} trials ({per_trial:.1f} a trial, heartbeats "
                f"included), {seconds * 1000 / max(calls, 1):.2f} ms each in the chief")

    # -- the calls -----------------------------------------------------------------------------
    def _enter(self, context):
        """Who is calling about what; refuses a worker of another run. Returns (tuner_id, project, oracle),
        oracle None unless the caller's project is the one being served."""
        if not self.cluster.identity:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the chief is still loading its data")   # the worker waits
        metadata = dict(context.invocation_metadata())
        try:
            identity = json.loads(metadata.get("dlcv-identity", "null"))
        except ValueError:
            identity = None
        tuner_id = metadata.get("dlcv-tuner", "?")
        problem = identity_difference(self.cluster.identity, identity)
        if problem:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, problem)
        project = metadata.get("dlcv-project", "")
        oracle = self.oracle if project and project == self.project else None
        search = project.rsplit("-", 1)[0]            # a project is "<experiment>-<fingerprint>"
        if project and oracle is None and self.project and project not in self.finished \
                and search == self.project.rsplit("-", 1)[0]:
            # The same search under another fingerprint: it would wait for a search that never comes.
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"its {search} search is {project}, the chief's is {self.project} "
                          f"(another data subset, space file or earlier best setting)")
        if tuner_id == CHIEF:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"its id is {CHIEF!r}, the chief's own")
        return tuner_id, project, oracle

    def _timed(method):
        def handler(self, request, context):
            started = time.perf_counter()
            oracle = self.oracle
            try:
                return method(self, request, context)
            except BaseException:
                _release_oracle_lock(oracle)
                raise
            finally:
                with self.lock:
                    self.counts[method.__name__] += 1
                    self.seconds[method.__name__] += time.perf_counter() - started
                    self.last_call = time.monotonic()
        handler.__name__ = method.__name__
        return handler

    def _trial_proto(self, status):
        return keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), status=status).to_proto()

    @_timed
    def GetSpace(self, request, context):
        _, _, oracle = self._enter(context)
        space = oracle.get_space() if oracle is not None else keras_tuner.HyperParameters()
        return self.messages.GetSpaceResponse(hyperparameters=space.to_proto())

    @_timed
    def UpdateSpace(self, request, context):
        self._enter(context)       # our spaces are fixed before a search starts
        return self.messages.UpdateSpaceResponse()

    @_timed
    def CreateTrial(self, request, context):
        tuner_id, project, oracle = self._enter(context)
        if oracle is None:
            status = _TrialStatus.STOPPED if project in self.finished else _TrialStatus.IDLE
            return self.messages.CreateTrialResponse(trial=self._trial_proto(status))
        trial = oracle.create_trial(tuner_id)
        with self.lock:
            if trial.status == _TrialStatus.RUNNING:
                self.last_seen[trial.trial_id] = time.monotonic()
            elif trial.status == _TrialStatus.STOPPED:
                self.stop_seen = True
        return self.messages.CreateTrialResponse(trial=trial.to_proto())

    def _served(self, context, project: str, oracle) -> None:
        if oracle is None and project not in self.finished:
            # A restarted chief on its way back to this search: the worker asks again until it is.
            context.abort(grpc.StatusCode.UNAVAILABLE, f"the chief is not serving {project} yet")

    def _owned(self, context, trial_id: str):
        """The caller's id and the oracle, if the caller runs ``trial_id`` of the search being served."""
        tuner_id, project, oracle = self._enter(context)
        self._served(context, project, oracle)
        if oracle is None or trial_id not in oracle.trials or not oracle.adopt(tuner_id, trial_id):
            context.abort(grpc.StatusCode.ABORTED, f"trial {trial_id} of {project} is no longer {tuner_id}'s: it "
                                                   f"was handed to another worker, or its search is over")
        with self.lock:
            self.last_seen[trial_id] = time.monotonic()
        return tuner_id, oracle

    @_timed
    def UpdateTrial(self, request, context):
        _, oracle = self._owned(context, request.trial_id)
        if dict(context.invocation_metadata()).get("dlcv-heartbeat"):
            trial = oracle.get_trial(request.trial_id)     # alive: noted above, the metrics untouched
        else:
            trial = oracle.update_trial(request.trial_id, dict(request.metrics), step=request.step)
        return self.messages.UpdateTrialResponse(trial=trial.to_proto())

    @_timed
    def EndTrial(self, request, context):
        trial = keras_tuner.engine.trial.Trial.from_proto(request.trial)
        tuner_id, oracle = self._owned(context, trial.trial_id)
        commit_worker_files(self.records_dir, trial.trial_id, tuner_id)
        oracle.end_trial(trial)
        with self.lock:
            self.last_seen.pop(trial.trial_id, None)
            self.trials_ended += 1
        return self.messages.EndTrialResponse()

    @_timed
    def GetTrial(self, request, context):
        _, project, oracle = self._enter(context)
        self._served(context, project, oracle)
        if oracle is None or request.trial_id not in oracle.trials:
            context.abort(grpc.StatusCode.ABORTED, f"trial {request.trial_id} of {project} is not being served")
        return self.messages.GetTrialResponse(trial=oracle.get_trial(request.trial_id).to_proto())

    @_timed
    def GetBestTrials(self, request, context):
        _, _, oracle = self._enter(context)
        trials = oracle.get_best_trials(request.num_trials) if oracle is not None else []
        return self.messages.GetBestTrialsResponse(trials=[trial.to_proto() for trial in trials])

    del _timed


def _release_oracle_lock(oracle) -> None:
    """KerasTuner's ``@synchronized`` releases an oracle's lock only when the method returns: one that
    raises (a save on a full disk) would leave every later call, and so the chief, waiting for good."""
    from keras_tuner.src.engine import oracle as oracle_module

    if oracle is not None and oracle_module.THREADS[oracle] == threading.current_thread().name:
        oracle_module.THREADS[oracle] = None
        oracle_module.LOCKS[oracle].release()


class ChiefClient:
    """A worker's oracle: KerasTuner's OracleClient calls, sent with our metadata, waiting with a
    backoff while no trial is free, and a heartbeat while a trial trains."""

    _LOCAL = {"objective", "max_trials", "allow_new_entries", "tune_new_entries", "hyperparameters"}

    def __init__(self, cluster: Cluster, oracle, *, project: str, label: str, echo=print):
        self._cluster, self._oracle, self._project, self._label, self._echo = cluster, oracle, project, label, echo
        self._messages = protos.get_service()
        self._idle_wait = _IDLE_WAIT[0]
        self._heartbeat: _Heartbeat | None = None

    def __getattr__(self, name):
        if name in self._LOCAL:
            return getattr(self._oracle, name)
        raise AttributeError(f"a worker's oracle has no attribute {name!r}")

    def _call(self, method: str, request, **kwargs):
        return self._cluster.call(method, request, project=self._project, **kwargs)

    def get_space(self):
        return self._oracle.get_space()       # the same space: the identity check made sure

    def update_space(self, hyperparameters):
        pass                                   # fixed before the search starts (allow_new_entries=False)

    def create_trial(self, tuner_id):
        try:
            response = self._call("CreateTrial", self._messages.CreateTrialRequest(tuner_id=tuner_id),
                                  over=lambda: self._cluster.search_over(self._label, self._project))
        except SearchOver:
            return keras_tuner.engine.trial.Trial(self._oracle.get_space(), status=_TrialStatus.STOPPED)
        trial = keras_tuner.engine.trial.Trial.from_proto(response.trial)
        # Values come as a protobuf map, in an order of its own: put them back in the space's order, the
        # one a single process's trial has (its record, trials.csv's columns and the report follow it).
        values = trial.hyperparameters.values
        trial.hyperparameters.values = {**{hp.name: values[hp.name] for hp in self._oracle.get_space().space
                                           if hp.name in values}, **values}
        if trial.status == _TrialStatus.IDLE:
            # Nothing free yet (the chief between searches, or the grid's last trials running elsewhere).
            time.sleep(self._idle_wait)
            self._idle_wait = min(self._idle_wait * 2, _IDLE_WAIT[1])
        else:
            self._idle_wait = _IDLE_WAIT[0]
        if trial.status == _TrialStatus.RUNNING:
            self._heartbeat = _Heartbeat(self, trial.trial_id)
            self._heartbeat.start()
        return trial

    def update_trial(self, trial_id, metrics, step=0):
        response = self._call("UpdateTrial", self._messages.UpdateTrialRequest(trial_id=trial_id, metrics=metrics,
                                                                               step=step))
        return keras_tuner.engine.trial.Trial.from_proto(response.trial)

    def end_trial(self, trial):
        if self._heartbeat is not None:
            self._heartbeat.stop()      # and wait: a heartbeat after the end would read as a trial taken away
            self._heartbeat.join(timeout=HEARTBEAT + 1)
            self._heartbeat = None
        try:
            self._call("EndTrial", self._messages.EndTrialRequest(trial=trial.to_proto()))
        except TrialTakenAway as taken:
            self._echo(f"[{self._label}] {self._cluster.tuner_id}: result of trial {trial.trial_id} dropped: {taken}")

    def get_trial(self, trial_id):
        response = self._call("GetTrial", self._messages.GetTrialRequest(trial_id=trial_id))
        return keras_tuner.engine.trial.Trial.from_proto(response.trial)

    def get_best_trials(self, num_trials=1):
        response = self._call("GetBestTrials", self._messages.GetBestTrialsRequest(num_trials=num_trials))
        return [keras_tuner.engine.trial.Trial.from_proto(trial) for trial in response.trials]


class _Heartbeat(threading.Thread):
    """Tells the chief every few seconds that this worker still trains ``trial_id``. A thread, so an
    epoch of any length keeps it alive; a worker that hangs while alive is not detected."""

    def __init__(self, client: ChiefClient, trial_id: str):
        super().__init__(daemon=True, name=f"heartbeat-{trial_id}")
        self.client, self.trial_id = client, trial_id
        self._stopped = threading.Event()

    def run(self):
        interval = HEARTBEAT
        request = self.client._messages.UpdateTrialRequest(trial_id=self.trial_id)
        while not self._stopped.wait(interval):
            try:
                self.client._call("UpdateTrial", request, heartbeat=True, timeout=interval)
            except TrialTakenAway as taken:
                self.client._echo(f"[{self.client._label}] {self.client._cluster.tuner_id}: {taken}")
                return
            except ClusterError:
                continue                      # the chief away (restarting?): the trial's own calls wait for it

    def stop(self):
        self._stopped.set()


