"""``--workers N``: a chief's workers started on this machine, one process each.

Each worker runs the chief's own command as a KerasTuner worker (``KERASTUNER_TUNER_ID=worker<i>``
and the chief's loopback address and port, which tuning/cluster.py passes in), pinned to its
share of the cores (``DLCV_CPUS``) or, with GPUs, to one of them (``CUDA_VISIBLE_DEVICES``).
Their output reaches the chief's as one view, each line prefixed "worker <i>: ". A worker that
ends early is reported to the chief at once (its trial goes to another); a worker whose chief is
gone ends too (``pin_to_launcher_share``). This module imports nothing of the package.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time

CPUS, LAUNCHER_PID = "DLCV_CPUS", "DLCV_LAUNCHER_PID"


def worker_id(number: int) -> str:
    return f"worker{number}"


def core_shares(count: int, cores: list[int]) -> list[list[int]]:
    """``count`` workers' cores: equal consecutive shares, or one core each, round the machine, when
    there are more workers than cores."""
    per = len(cores) // count
    if per == 0:
        return [[cores[i % len(cores)]] for i in range(count)]
    return [cores[i * per:(i + 1) * per] for i in range(count)]


def gpu_count() -> int:
    """NVIDIA devices this machine shows (no library import: the chief need not load CUDA to count)."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


class LocalWorkers:
    """``count`` worker processes of ``command``; ``role(tuner_id)`` gives the environment variables that
    make one a worker of its chief (tuning/cluster.py's)."""

    def __init__(self, count: int, command: list[str], role, stream=None):
        self.count, self.command, self.role = count, list(command), role
        self.stream = stream or sys.stdout
        self.processes: dict[str, subprocess.Popen] = {}
        self.readers: list[threading.Thread] = []
        self.ended: dict[str, int] = {}       # worker id -> exit status, once noticed
        self._write = threading.Lock()
        self.muted = False

    def start(self) -> None:
        gpus = gpu_count()
        shares = core_shares(self.count, sorted(os.sched_getaffinity(0)))
        for number in range(1, self.count + 1):
            env = {**os.environ, **self.role(worker_id(number)), LAUNCHER_PID: str(os.getpid()),
                   "PYTHONUNBUFFERED": "1"}
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str((number - 1) % gpus)
            else:
                env[CPUS] = ",".join(map(str, shares[number - 1]))
                # Thread pools started at import (numpy's BLAS), before the worker pins itself, are sized here.
                for pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                    env.setdefault(pool, str(len(shares[number - 1])))
            # A session of its own: a terminal's Ctrl-C reaches the chief, which stops the workers itself.
            process = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            self.processes[worker_id(number)] = process
            reader = threading.Thread(target=self._relay, args=(number, process), daemon=True)
            reader.start()
            self.readers.append(reader)

    def _relay(self, number: int, process: subprocess.Popen) -> None:
        prefix = f"worker {number}: "
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            # A progress line rewritten in place (\r) shows as its latest state.
            line = line.rsplit("\r", 1)[-1]
            with self._write:
                if self.muted:
                    continue            # ended early with the chief: their complaints about it add nothing
                self.stream.write(prefix + line + "\n")
                self.stream.flush()
        process.stdout.close()

    def newly_ended(self) -> dict[str, int]:
        """Workers that ended since the last call, with their exit statuses."""
        found = {}
        for tuner_id, process in self.processes.items():
            if tuner_id not in self.ended and process.poll() is not None:
                self.ended[tuner_id] = found[tuner_id] = process.returncode
        return found

    def all_ended(self) -> bool:
        return len(self.ended) == len(self.processes)

    def stop(self, grace: float = 5.0, timeout: float = 10.0) -> None:
        """Give the workers ``grace`` seconds to end by themselves (after a run's last search they read its
        summary and end), then end those still running (SIGTERM, then SIGKILL); wait for their output."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(p.poll() is None for p in self.processes.values()):
            time.sleep(0.1)
        with self._write:
            self.muted = not grace
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
        for reader in self.readers:
            reader.join(timeout=5)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)       # the worker and its trial processes
    except ProcessLookupError:
        pass


def status_words(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit {code}"


def pin_to_launcher_share(environ=None) -> None:
    """In a worker the launcher started: keep to the cores it was given, and end when the launcher
    (the chief) is gone. Called first thing, before any library starts its threads."""
    environ = os.environ if environ is None else environ
    cores = environ.get(CPUS)
    if cores:
        try:
            os.sched_setaffinity(0, {int(core) for core in cores.split(",")})
        except (ValueError, OSError) as error:
            print(f"warning: cannot pin to cores {cores}: {error}", file=sys.stderr)
    launcher = environ.get(LAUNCHER_PID)
    if launcher and launcher.isdigit():
        threading.Thread(target=_end_with, args=(int(launcher),), daemon=True, name="watch-launcher").start()


def _end_with(launcher: int) -> None:
    while os.getppid() == launcher:
        time.sleep(1.0)
    # The chief is gone (killed): nothing will take this worker's results. Results are written
    # atomically, so ending here leaves nothing torn; a restarted chief starts new workers.
    os._exit(1)
