"""One run per results folder: the lock file, a second live run, and locks left by dead runs."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlcv_keras.results import RunLock, RunLockError, read_lock
from dlcv_keras.validation import InvalidParameterError

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys
from dlcv_keras.results import RunLock
with RunLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def _write_lock(folder, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"host": socket.gethostname(), "started": "then", **holder}))


def _exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()              # reaped: the pid belongs to no process now
    return process.pid


def test_the_lock_file_names_its_holder_and_goes_on_exit(tmp_path):
    with RunLock(tmp_path / "results") as lock:
        held = json.loads(lock.path.read_text())
        assert lock.path == tmp_path / "results" / ".lock"
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        assert held["started"].endswith("+00:00")
        assert read_lock(tmp_path / "results")["pid"] == os.getpid()
    assert not lock.path.exists() and read_lock(tmp_path / "results") is None


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_lock_is_released_on_errors_and_interrupts(tmp_path, error):
    with pytest.raises(type(error)):
        with RunLock(tmp_path):
            raise error
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path):        # and can be taken again
        pass


def test_a_second_live_run_gets_a_one_line_error_naming_the_first(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockError) as caught:
            with RunLock(tmp_path, echo=pytest.fail):
                pytest.fail("entered a folder another run holds")
        message = str(caught.value)
        assert isinstance(caught.value, InvalidParameterError) and "\n" not in message
        assert f"pid {holder.pid}" in message and str(tmp_path / ".lock") in message
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == holder.pid   # left alone
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and not (tmp_path / ".lock").exists()
    with RunLock(tmp_path):
        pass


def test_a_lock_left_by_a_dead_process_is_taken_over_and_said_so(tmp_path):
    pid = _exited_pid()
    _write_lock(tmp_path, pid=pid)
    lines = []
    with RunLock(tmp_path, echo=lines.append) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert len(lines) == 1 and f"pid {pid}" in lines[0] and "taking over" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []        # no stray files


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    # Our own pid, but recorded for a process that started at another time (a reboot, a new container).
    _write_lock(tmp_path, pid=os.getpid(), proc_start="another-boot:12345")
    lines = []
    with RunLock(tmp_path, echo=lines.append):
        pass
    assert len(lines) == 1 and "stale lock" in lines[0]


@pytest.mark.parametrize("content", ["", '{"pid": 12', "not json", '["pid"]'])
def test_an_empty_or_torn_lock_file_is_taken_over(tmp_path, monkeypatch, content):
    monkeypatch.setattr(RunLock, "empty_grace", 0.0)
    (tmp_path / ".lock").write_text(content)
    lines = []
    with RunLock(tmp_path, echo=lines.append):
        assert read_lock(tmp_path)["pid"] == os.getpid()
    assert len(lines) == 1 and "lock file" in lines[0]


def test_a_fresh_empty_lock_file_is_given_time_to_be_written(tmp_path):
    (tmp_path / ".lock").write_text("")       # a holder between creating the file and writing it
    lines = []
    with RunLock(tmp_path, echo=lines.append):
        pass
    assert len(lines) == 1 and "empty lock file" in lines[0]   # taken over only after the grace


def test_a_lock_from_another_host_is_respected(tmp_path):
    _write_lock(tmp_path, pid=1, host="elsewhere.example")
    with pytest.raises(RunLockError, match=r"pid 1 on elsewhere\.example"):
        with RunLock(tmp_path):
            pass
    assert (tmp_path / ".lock").exists()


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = RunLock(tmp_path)
    lock.acquire()
    _write_lock(tmp_path, pid=1)              # someone replaced it (took it over by hand)
    lock.release()
    assert read_lock(tmp_path)["pid"] == 1
    lock.release()                            # twice is fine


def test_folders_made_for_the_lock_go_with_it_only_while_empty(tmp_path):
    # Nothing written: no trace. Something written: the folder and its parents stay. A folder that was
    # there before stays either way.
    with RunLock(tmp_path / "results" / "q1" / "smoke"):
        pass
    assert list(tmp_path.iterdir()) == []
    with RunLock(tmp_path / "results" / "q1" / "smoke"):
        (tmp_path / "results" / "q1" / "smoke" / "run.json").write_text("{}")
    assert [p.name for p in (tmp_path / "results" / "q1" / "smoke").iterdir()] == ["run.json"]
    (tmp_path / "kept").mkdir()
    with RunLock(tmp_path / "kept" / "q2"):
        pass
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / "q2").exists()
