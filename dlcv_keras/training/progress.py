"""A trial's progress while it trains: trial, epoch, loss and accuracy so far, time left.

On a terminal it is one line rewritten in place (``\\r``), at most every ``min_interval`` seconds
between batches; in a log file or a pipe, one plain line per epoch (at most one a ``min_interval``
when epochs are shorter, the first and last always), so the log stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import keras

LINE_WIDTH = 100


def format_seconds(seconds: float | None) -> str:
    """``80`` -> "1m 20s", ``3725`` -> "1h 02m", ``7`` -> "7s"; None -> "?"."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


class EpochProgress(keras.callbacks.Callback):
    """Shows "<label> trial 3 of 10 | epoch 4/20 | loss 0.4312 acc 0.8712 | left 1m 20s, search 12m 05s":
    the trial's time left, then the search's; mid-epoch (on a terminal) the epoch's share done too,
    "epoch 4/20 32%"; the loss and accuracy are Keras's running means over the epoch so far.

    ``trial`` = (number, count), 1-based; ``search_seconds_left(trial_seconds_left)`` returns the
    search's estimate in seconds, or None. The trial's time left comes from the mean epoch time so
    far (with validation), or in the first epoch from the mean step time: an upper bound when early
    stopping ends the trial sooner. ``params["epochs"]`` and ``params["steps"]`` are what ``model.fit``
    (and ``training.fit``'s fast path) give every callback.

    It only reads logs and writes text, so its batch hook may run once per compiled call of the fast
    path (``runs_between_calls``; see ``training.callbacks.needs_every_batch``).
    """

    runs_between_calls = True

    def __init__(self, label: str, *, stream=None, trial: tuple[int, int] | None = None,
                 search_seconds_left: Callable[[float | None], float | None] | None = None,
                 min_interval: float = 1.0):
        super().__init__()
        self.label = label
        self._stream = stream
        self.trial = trial
        self.search_seconds_left = search_seconds_left
        self.min_interval = float(min_interval)
        self.epoch_seconds: list[float] = []
        self._epoch = 0
        self._steps_done = 0
        self._epoch_started = 0.0
        self._last_write = -float("inf")
        self._last_logged = -float("inf")
        self._shown = 0            # length of the line on screen (terminal), 0 = none
        self._logs: dict = {}

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stdout

    def _tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def on_train_begin(self, logs=None):
        self.epoch_seconds = []
        self._shown = 0
        self._last_write = -float("inf")
        self._last_logged = -float("inf")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._steps_done = 0
        self._logs = {}
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = batch + 1
        self._logs = dict(logs or {})
        now = time.perf_counter()
        if self._tty() and now - self._last_write >= self.min_interval:
            self._last_write = now
            self._show(self.line(in_epoch=True))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
        self._logs = dict(logs or {})
        self._steps_done = self._steps or self._steps_done
        line = self.line(in_epoch=False)
        now = time.perf_counter()
        if self._tty():
            self._last_write = now
            self._show(line)
        elif (now - self._last_logged >= self.min_interval or epoch == 0
              or epoch + 1 == self._epochs
              or getattr(self.model, "stop_training", False)):
            # A log gets one line per epoch, but at most one a min_interval: 3,000 epochs of
            # 1.5 ms would otherwise write 3,000 lines a trial (the first and last always show).
            self._last_logged = now
            self.stream.write(line + "\n")
            self.stream.flush()

    def on_train_end(self, logs=None):
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0

    # --- the line ---------------------------------------------------------------------------

    @property
    def _epochs(self) -> int | None:
        return (self.params or {}).get("epochs")

    @property
    def _steps(self) -> int | None:
        steps = (self.params or {}).get("steps")
        return steps if isinstance(steps, int) and steps > 0 else None

    def trial_seconds_left(self, in_epoch: bool = True) -> float | None:
        epochs, steps = self._epochs, self._steps
        if not epochs:
            return None
        if not in_epoch:                      # at an epoch's end: whole epochs remain
            return sum(self.epoch_seconds) / len(self.epoch_seconds) * (epochs - self._epoch - 1)
        done_fraction = self._steps_done / steps if steps else 0.0
        remaining = (1 - done_fraction) + (epochs - self._epoch - 1)
        if self.epoch_seconds:
            return sum(self.epoch_seconds) / len(self.epoch_seconds) * remaining
        if steps and self._steps_done:
            per_step = (time.perf_counter() - self._epoch_started) / self._steps_done
            return per_step * steps * remaining
        return None

    def line(self, in_epoch: bool) -> str:
        """At most ``LINE_WIDTH`` characters: the label is shortened (ending in "~") to fit."""
        parts = []
        if self.trial:
            parts.append(f"trial {self.trial[0]} of {self.trial[1]}")
        epoch = f"epoch {self._epoch + 1}/{self._epochs or '?'}"
        if in_epoch and self._steps:
            epoch += f" {100 * self._steps_done // self._steps}%"
        parts.append(epoch)
        metrics = [f"{short} {float(self._logs[key]):.4f}"
                   for key, short in (("loss", "loss"), ("accuracy", "acc")) if key in self._logs]
        if metrics:
            parts.append(" ".join(metrics))
        trial_left = self.trial_seconds_left(in_epoch)
        left = f"left {format_seconds(trial_left)}"
        if self.search_seconds_left is not None:
            search_left = self.search_seconds_left(trial_left)
            if search_left is not None:
                left += f", search {format_seconds(search_left)}"
        parts.append(left)
        rest = " | ".join(parts)
        room = LINE_WIDTH - len(rest) - 1
        if room < 2:
            return rest[:LINE_WIDTH]
        label = self.label if len(self.label) <= room else self.label[:room - 1] + "~"
        return f"{label} {rest}" if label else rest

    def _show(self, line: str) -> None:
        padding = " " * max(self._shown - len(line), 0)      # wipe the end of a longer line before
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._shown = len(line)
