"""One run at a time per results folder: ``folder/.lock``.

Two runs writing one results folder would interleave KerasTuner's in-place
oracle.json and trial files and each other's CSVs. The lock file is created with
``O_CREAT | O_EXCL`` (atomic: exactly one creator wins) and holds JSON naming its
holder ``{pid, host, started, proc_start}``. A lock whose holder is gone (a dead
pid on this host, a pid now used by another process, or a file left empty or
unreadable by a kill mid-write) is stale and taken over; a live one is a one-line
error naming the holder. Released on leaving the ``with`` block, whatever ended it; the
folders made to hold the lock go with it when they stayed empty (a run that stopped on bad
input before writing anything leaves no trace).

Never imports keras.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from pathlib import Path

from dlcv_keras.validation import InvalidParameterError

LOCK_NAME = ".lock"


class RunLockError(InvalidParameterError):
    """Another live run holds the results folder's lock."""


class RunLock:
    """``with RunLock(folder, echo=print):`` holds ``folder/.lock`` for the block.

    ``echo`` (optional) hears one line when a stale lock is taken over.
    ``empty_grace`` is how old (seconds) an empty or unreadable lock file must be
    before it counts as stale: a holder writes its JSON right after creating the
    file, so a younger one may be a lock being written this instant.
    """

    empty_grace = 2.0

    def __init__(self, folder: Path | str, *, echo=None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.echo = echo
        self._content: bytes | None = None     # what we wrote, while we hold the lock
        self._made: list[Path] = []             # folders acquire() made, outermost first

    # -- context manager ---------------------------------------------------------
    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._content is not None

    # -- acquire / release -------------------------------------------------------------
    def acquire(self) -> None:
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self._made = [p for p in (*reversed(self.folder.parents), self.folder) if not p.exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        content = (json.dumps(_me()) + "\n").encode()
        deadline = time.monotonic() + self.empty_grace + 5.0
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            except FileNotFoundError:          # a run that just released removed the folder, empty
                self.folder.mkdir(parents=True, exist_ok=True)
                continue
            else:
                try:
                    os.write(fd, content)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._content = content
                return
            # Someone has the file: find out whether they are still there.
            try:
                seen = self.path.read_bytes()
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                continue                       # released between our open and read: try again
            holder = _parse(seen)
            if holder is None:
                if age < self.empty_grace and time.monotonic() < deadline:
                    time.sleep(0.05)           # possibly a lock being written right now
                    continue
                why = "empty" if not seen.strip() else "unreadable"
                self._take_over(seen, f"{why} lock file {self.path}")
                continue
            if _alive(holder):
                raise RunLockError(
                    f"results folder {str(self.folder)!r} is in use by run pid {holder.get('pid')} "
                    f"on {holder.get('host')} since {holder.get('started')} (lock {str(self.path)!r}); "
                    f"expected no other run: wait for it to finish, or delete the lock file if that run is gone")
            self._take_over(seen, f"stale lock {self.path} of run pid {holder.get('pid')} "
                                  f"(started {holder.get('started')}, no longer running)")
            if time.monotonic() > deadline:   # pragma: no cover - only under a storm of stale locks
                raise RunLockError(f"lock {str(self.path)!r} could not be taken over, expected it to settle; "
                                   f"delete it if no run is going")

    def _take_over(self, seen: bytes, what: str) -> None:
        """Remove the stale lock file ``seen`` came from, and only that one.

        Moving it to a name of our own first, then checking it still holds what we
        judged stale, means a racing process that took the lock over a moment ago
        keeps its fresh lock (we put it back) instead of losing it to our unlink.
        """
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}-{time.monotonic_ns()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return                             # someone else removed it; just try again
        try:
            if aside.read_bytes() == seen:
                if self.echo is not None:
                    self.echo(f"taking over {what}")
                return
            try:                               # not the file we judged: someone's live lock
                os.link(aside, self.path)
            except FileExistsError:
                pass
        finally:
            aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if it is still ours (safe to call twice), then the folders acquire()
        made for it, innermost first, as long as they are empty."""
        if self._content is None:
            return
        try:
            if self.path.read_bytes() == self._content:
                self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            self._content = None
        for folder in reversed(self._made):
            try:
                folder.rmdir()
            except OSError:                    # not empty (the run wrote there), or gone: keep the rest
                break
        self._made = []


def read_lock(folder: Path | str) -> dict | None:
    """Who holds ``folder/.lock`` (its JSON), or None when there is no readable lock."""
    try:
        return _parse((Path(folder) / LOCK_NAME).read_bytes())
    except FileNotFoundError:
        return None


# -- helpers ---------------------------------------------------------------------------
def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "proc_start": _process_start(os.getpid())}


def _parse(data: bytes) -> dict | None:
    try:
        holder = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int) or isinstance(holder["pid"], bool):
        return None
    return holder


def _alive(holder: dict) -> bool:
    """Whether the holder may still be running. A lock from another host counts as alive:
    we cannot see its processes."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = holder["pid"]
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                   # alive, owned by another user
    except OSError:
        return False
    # The pid exists; after a reboot or in a new container it may be another process.
    recorded, now = holder.get("proc_start"), _process_start(pid)
    if recorded and now and recorded != now:
        return False
    return True


def _process_start(pid: int) -> str | None:
    """``<boot id>:<start time in clock ticks>`` of a process (Linux), so a reused pid is told apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # Field 22 is the start time; field 2 (the command) may hold spaces, so count from its ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None
