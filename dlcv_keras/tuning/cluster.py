"""A search shared by a chief and workers over KerasTuner's gRPC oracle service.

KerasTuner's distributed mode is used as it is (its protocol buffers, its service, its
``Oracle`` methods on the chief), with what our searches need besides:

- Roles come from KerasTuner's variables, ``KERASTUNER_TUNER_ID`` / ``KERASTUNER_ORACLE_IP`` /
  ``KERASTUNER_ORACLE_PORT``; the chief's id is exactly ``chief`` (KerasTuner takes any id that
  contains the word).
- One server serves a whole run: a question's searches one after the other. Every call carries
  (as gRPC metadata) the worker's id, the search project it is on, and its run identity; the
  chief refuses a worker whose identity differs (one line naming the difference) and tells a
  worker that is ahead to wait, one that is behind that its search is over.
- A worker waits with a backoff when no trial is free (KerasTuner asks again at once), and
  sends a heartbeat while it trains; the chief hands the trial of a worker silent for longer
  than ``trial_timeout`` to the next worker that asks. A worker restarted with its id gets its
  trial back (KerasTuner's ``create_trial`` does that); a restarted chief keeps the trials its
  workers were running.
- A chief that cannot be reached is an error after ``connect_timeout`` (KerasTuner: 60 min).

This module is free of Keras (the command line reads roles before choosing a backend); the gRPC
side lives in oracle_service.py.

gRPC here has neither TLS nor authentication: the local launcher (launcher.py) binds to
127.0.0.1 only; across machines, use a private network or an SSH tunnel (README).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field

from dlcv_keras.validation import InvalidParameterError

TUNER_ID, ORACLE_IP, ORACLE_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"
CHIEF = "chief"
LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = 60.0       # seconds a worker waits for an unreachable chief before giving up
TRIAL_TIMEOUT = 600.0        # seconds without a heartbeat before a worker's trial goes to another
HEARTBEAT = 1.0              # seconds between a training worker's heartbeats, whatever the chief's timeout
MIN_TRIAL_TIMEOUT = 3 * HEARTBEAT
# A worker's id names its file in the project folder (<id>.json): letters, digits, "-", "_", ".".
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass
class Cluster:
    """This process's part in a shared search: ``role`` "chief" or "worker".

    A chief with ``local_workers`` starts them itself on this machine (``--workers N``), bound to
    the loopback address on a free port (``port`` 0).
    """
    role: str
    tuner_id: str
    host: str
    port: int
    connect_timeout: float = CONNECT_TIMEOUT
    trial_timeout: float = TRIAL_TIMEOUT
    local_workers: int = 0
    worker_command: list | None = None     # what a local worker runs: the chief's own command, less --workers
    identity: dict = field(default_factory=dict)
    store: object = None                   # a worker's view of the shared results (the chief's summaries)
    round_trips: list = field(default_factory=list)   # a worker's calls to the chief (not heartbeats), in seconds
    echo: object = print
    _server: object = None
    _service: object = None
    _stub: object = None
    _launcher: object = None

    @property
    def is_worker(self) -> bool:
        return self.role == "worker"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- starting and stopping ---------------------------------------------------------
    def listen(self) -> None:
        """A chief binds its port, first thing: one in use is an error before anything is loaded or written.
        Calls that come before ``start`` are asked to wait."""
        if not self.is_worker and self._server is None:
            self._bind()

    def start_workers(self) -> None:
        """A local chief (``--workers``) starts its workers, once its own data is loaded; their start-up
        (imports, data, compiling) then overlaps the chief's run up to its first search."""
        if self.local_workers and self._launcher is None:
            from dlcv_keras.launcher import LocalWorkers

            self.listen()
            self._launcher = LocalWorkers(self.local_workers, self.worker_command, lambda tuner_id: {
                TUNER_ID: tuner_id, ORACLE_IP: self.host, ORACLE_PORT: str(self.port)})
            self._launcher.start()

    def start(self, identity: dict, echo=print) -> None:
        """A chief starts answering; a worker checks in."""
        self.identity, self.echo = identity, echo
        if self.is_worker:
            self.connect()
            return
        self.start_workers()
        if self.local_workers:
            echo(f"chief: serving trials on {self.address} (loopback only) to {self.local_workers} local workers")
        else:
            echo(f"chief: serving trials on {self.address} as {TUNER_ID}={CHIEF}")

    def close(self, grace: float = 5.0) -> None:
        """Stop serving; local workers get ``grace`` seconds to end by themselves (after the last search)."""
        if self._launcher is not None:
            self._launcher.stop(grace=grace)
            self._launcher = None
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None
        if self._service is not None and self._service.counts:
            self.echo(f"chief: {self._service.overhead_words()}")
        self._service = None

    def _bind(self) -> None:
        from concurrent import futures

        import grpc

        from dlcv_keras.tuning.oracle_service import ChiefService, ClusterError, protos

        # gRPC sets SO_REUSEPORT by default: a second server could share a port in use without a word.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
        self._service = ChiefService(self)
        protos.get_service_grpc().add_OracleServicer_to_server(self._service, server)
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError:
            bound = 0
        if not bound:
            if self.port:
                raise ClusterError(f"{ORACLE_PORT} must be a free port on {self.host}, got {self.port}: the chief "
                                   f"cannot listen there (in use, or {self.host} is not this machine's); choose another")
            raise ClusterError(f"the chief cannot listen on {self.host}: no free port")
        self.port = bound
        server.start()
        self._server = server

    # -- the chief ----------------------------------------------------------------------
    def serve(self, tuner) -> None:
        """Hand out ``tuner``'s trials until its search is over; returns then (the server stays up
        for the run's next search)."""
        service, oracle, label = self._service, tuner.oracle, tuner.label
        # After a restart, a trial stays with the worker that ran it, if that worker can come back: not a
        # single process's (tuner0), and with local workers, one of those started now.
        running = {tuner_id: trial_id for tuner_id, trial_id in getattr(oracle, "reloaded_running", {}).items()
                   if tuner_id not in ("tuner0", CHIEF)
                   and (self._launcher is None or tuner_id in self._launcher.processes)}
        kept = oracle.keep_running(running)
        service.begin(tuner, kept)
        done = tuner.finished_trials()
        resumed = f", {done} already finished (resuming)" if done else ""
        kept_words = f"; trials {', '.join(kept)} stay with the workers running them" if kept else ""
        trials = f"{tuner.total} trial{'' if tuner.total == 1 else 's'}"
        self.echo(f"[{label}] search: {trials}, handed out to workers{resumed}{kept_words}")
        finished = len(oracle.end_order)
        quiet_since = time.monotonic()
        try:
            while not (service.stop_seen or oracle.search_finished()):
                if tuner._interrupted:            # the first Ctrl-C (the tuner's handler set it): stop here
                    raise KeyboardInterrupt
                for trial_id, tuner_id, silent in service.requeue_silent(self.trial_timeout):
                    self.echo(f"[{label}] {tuner_id} silent for {silent:.0f} s: trial {trial_id} goes to the next "
                              f"worker that asks")
                if len(oracle.end_order) != finished:
                    finished = len(oracle.end_order)
                    self.echo(f"[{label}] {finished} of {tuner.total} trials finished")
                if self._launcher is not None:
                    self._check_workers(label)
                elif time.monotonic() - max(service.last_call, quiet_since) > self.connect_timeout:
                    # Across machines the chief cannot tell "not started yet" from "gone": it says so, and waits.
                    quiet_since = time.monotonic()
                    self.echo(f"[{label}] no worker has called for {self.connect_timeout:g} s; {len(oracle.ongoing_trials)} "
                              f"trials running, waiting for workers ({TUNER_ID}=<id> {ORACLE_IP}={self.host} "
                              f"{ORACLE_PORT}={self.port})")
                time.sleep(0.1)
        except BaseException:
            from dlcv_keras.tuning.oracle_service import _release_oracle_lock

            _release_oracle_lock(oracle)          # a second Ctrl-C may land inside an oracle method
            service.end(tuner.project_name, finished=False)
            raise
        # A random search that ran out of new settings said STOPPED without reaching max_trials.
        service.end(tuner.project_name, finished=service.stop_seen or oracle.search_finished())

    def _check_workers(self, label: str) -> None:
        """A local worker that ended gives its trial back at once; with none left, the search cannot finish."""
        from dlcv_keras.launcher import status_words
        from dlcv_keras.tuning.oracle_service import WorkersEnded

        for tuner_id, code in self._launcher.newly_ended().items():
            trial_id = self._service.requeue_tuner(tuner_id)
            handed = f": trial {trial_id} goes to the next worker that asks" if trial_id else ""
            self.echo(f"[{label}] {tuner_id} ended ({status_words(code)}){handed}")
        if self._launcher.all_ended():
            how = ", ".join(f"{tuner_id} {status_words(code)}" for tuner_id, code in self._launcher.ended.items())
            raise WorkersEnded(f"all {len(self._launcher.ended)} workers ended before the search {label!r} finished "
                               f"({how}); their messages are above")

    # -- a worker ------------------------------------------------------------------------
    def connect(self) -> None:
        """Check in with the chief (a bounded wait); raises ClusterError if unreachable or refused."""
        import grpc

        from dlcv_keras.tuning.oracle_service import protos

        # Reconnect within 2 s of a restarted chief's return (gRPC's default backoff grows to 2 min).
        channel = grpc.insecure_channel(self.address, options=[("grpc.initial_reconnect_backoff_ms", 200),
                                                               ("grpc.max_reconnect_backoff_ms", 2000)])
        self._stub = protos.get_service_grpc().OracleStub(channel)
        self.call("GetSpace", protos.get_service().GetSpaceRequest())
        self.echo(f"connected to the chief at {self.address} as {TUNER_ID}={self.tuner_id}")

    def call(self, method: str, request, *, project: str = "", heartbeat: bool = False, timeout: float | None = None,
             over=None):
        """One call to the chief, with our metadata; gRPC's failures as our errors.

        ``over()``, for calls that may be repeated (asking for a trial), is asked every 2 s while the
        chief cannot be reached: when it turns true (the chief stored the search and ended), SearchOver.
        """
        import grpc

        from dlcv_keras.tuning.oracle_service import ClusterError, SearchOver, TrialTakenAway
        metadata = [("dlcv-tuner", self.tuner_id), ("dlcv-project", project),
                    ("dlcv-identity", json.dumps(self.identity, sort_keys=True))]
        if heartbeat:
            metadata.append(("dlcv-heartbeat", "1"))
        wait = self.connect_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            until = min(deadline, time.monotonic() + 2.0) if over is not None else deadline
            try:
                started = time.perf_counter()
                answer = getattr(self._stub, method)(request, metadata=metadata, wait_for_ready=True,
                                                     timeout=max(0.05, until - time.monotonic()))
                if not heartbeat:
                    self.round_trips.append(time.perf_counter() - started)
                return answer
            except grpc.RpcError as error:
                code = error.code()
                if over is not None and code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        and over():
                    raise SearchOver() from None
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    raise ClusterError(f"the chief at {self.address} refused {self.tuner_id}: {error.details()}") from None
                if code == grpc.StatusCode.ABORTED:
                    raise TrialTakenAway(error.details()) from None
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    if time.monotonic() < deadline - 0.05:
                        time.sleep(0.2)     # the connection broke mid-call (a chief restarting): ask again
                        continue
                    raise ClusterError(
                        f"cannot reach the chief at {self.address} within {wait:g} s: start it (the same command with "
                        f"{TUNER_ID}={CHIEF}), check {ORACLE_IP} and {ORACLE_PORT}, or wait longer with "
                        f"--connect-timeout") from None
                raise ClusterError(f"the chief at {self.address} failed a {method} call from {self.tuner_id}: "
                                   f"{code.name}: {error.details()}") from None

    def client(self, oracle, *, project: str, label: str, echo=print):
        from dlcv_keras.tuning.oracle_service import ChiefClient

        return ChiefClient(self, oracle, project=project, label=label, echo=echo)

    def stored_summary(self, experiment: str, project: str) -> dict | None:
        """The chief's stored summary of search ``experiment`` if it holds ``project``'s results, else None."""
        try:
            summary = json.loads((self.store.experiment_dir(experiment) / "summary.json").read_text())
        except (OSError, ValueError):
            return None
        return summary if isinstance(summary, dict) and summary.get("tuner_project") == project else None

    def search_over(self, experiment: str, project: str) -> bool:
        """Asked while the chief cannot be reached: True if it stored the search (it finished it and ended);
        ChiefStopped if its run stopped (failed or interrupted), which no wait will mend."""
        from dlcv_keras.tuning.oracle_service import ChiefStopped

        if self.stored_summary(experiment, project) is not None:
            return True
        try:
            status = json.loads((self.store.root / "run.json").read_text()).get("status")
        except (OSError, ValueError, AttributeError):
            return False
        if status in ("failed", "interrupted"):
            raise ChiefStopped(f"the chief's run stopped ({status}, see its output) during the search {experiment!r}")
        return False

    def wait_for_summary(self, experiment: str, project: str) -> dict:
        """The chief's stored summary of search ``experiment``, once written: a worker goes on to the
        next search with its best setting, as the chief does."""
        from dlcv_keras.tuning.oracle_service import protos

        while True:
            summary = self.stored_summary(experiment, project)
            if summary is not None:
                return summary
            self.call("GetSpace", protos.get_service().GetSpaceRequest(), project=project,      # still there?
                      over=lambda: self.search_over(experiment, project))
            time.sleep(0.5)


# The run identity's parts, as a refusal names them.
IDENTITY_WORDS = {
    "question": "question", "implementation": "implementation", "profile": "profile", "tuner": "tuner",
    "seed": "seed", "data_hash": "data hash", "space_hash": "search space (hash of its tables)",
    "options": "question options", "devices": "device count (--devices)", "dlcv_keras": "dlcv_keras version", "keras": "Keras version",
    "keras-tuner": "KerasTuner version", "tensorflow": "TensorFlow version", "jax": "JAX version",
    "keras_backend": "Keras backend", "git_revision": "dlcv_keras git revision",
}


def identity_difference(chief: dict, worker: dict | None) -> str | None:
    """The first part of a run's identity where ``worker`` differs from ``chief``, in words; None if equal."""
    if not isinstance(worker, dict):
        return f"it sent no run identity (a dlcv_keras worker of another version?), expected {sorted(chief)}"
    for key in [*IDENTITY_WORDS, *sorted(set(chief) | set(worker))]:
        if chief.get(key) != worker.get(key):
            words = IDENTITY_WORDS.get(key, key)
            return f"its {words} {worker.get(key)!r} differs from the chief's {chief.get(key)!r}"
    return None


# -- roles from the environment ---------------------------------------------------------------
def cluster_from_environment(environ=None, *, workers: int = 0, connect_timeout: float = CONNECT_TIMEOUT,
                             trial_timeout: float = TRIAL_TIMEOUT, echo=print) -> Cluster | None:
    """This process's role: a local chief with ``workers`` (``--workers``), a chief or worker named by
    KerasTuner's variables, or None (one process). KerasTuner's own oracle and server code is kept out of
    the way by taking its ``IP``/``PORT`` variables from this process's environment once read."""
    environ = os.environ if environ is None else environ
    given = {name: environ.get(name) for name in (TUNER_ID, ORACLE_IP, ORACLE_PORT) if environ.get(name) is not None}
    common = dict(connect_timeout=connect_timeout, trial_timeout=trial_timeout, echo=echo)
    if workers:
        if ORACLE_IP in given or ORACLE_PORT in given:
            raise InvalidParameterError(
                f"--workers starts a chief and its workers on this machine, so {ORACLE_IP} and {ORACLE_PORT} must be "
                f"unset, got {', '.join(f'{k}={v}' for k, v in given.items())}")
        return Cluster(CHIEF, CHIEF, LOOPBACK, 0, local_workers=workers, **common)
    if ORACLE_IP not in given:
        if ORACLE_PORT in given:
            raise InvalidParameterError(f"{ORACLE_PORT} is set ({given[ORACLE_PORT]}) without {ORACLE_IP}: a shared "
                                        f"search needs both, and {TUNER_ID}")
        return None                  # KerasTuner's rule too: no oracle address, no distributed search
    missing = [name for name in (TUNER_ID, ORACLE_PORT) if not given.get(name)]
    if missing:
        raise InvalidParameterError(f"{' and '.join(missing)} must be set when {ORACLE_IP} is "
                                    f"({given[ORACLE_IP]!r}): a shared search needs {TUNER_ID}, {ORACLE_IP} "
                                    f"and {ORACLE_PORT}")
    text = given[ORACLE_PORT].strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidParameterError(f"{ORACLE_PORT} must be a port number in [1, 65535], got {given[ORACLE_PORT]!r}")
    tuner_id = given[TUNER_ID]
    if not _ID.fullmatch(tuner_id):
        raise InvalidParameterError(f"{TUNER_ID} must be 1 to 64 letters, digits, '-', '_' or '.' (it names a "
                                    f"file), got {tuner_id!r}")
    host = given[ORACLE_IP].strip()
    if not host:
        raise InvalidParameterError(f"{ORACLE_IP} must be the chief's address, got an empty value")
    role = CHIEF if tuner_id == CHIEF else "worker"
    if role == "worker" and CHIEF in tuner_id:
        echo(f"note: {TUNER_ID}={tuner_id!r} runs as a worker: the chief's id is exactly {CHIEF!r}")
    for name in (ORACLE_IP, ORACLE_PORT):
        os.environ.pop(name, None)     # from here on, ours alone decide (KerasTuner would read them again)
    return Cluster(role, tuner_id, host, int(text), **common)
