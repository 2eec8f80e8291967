"""A trial in a process of its own (tuning/isolation.py) and the progress line it is given.

The children are real: forked from the fork server, as a TensorFlow search runs them. The
hypermodels here are module-level classes, so the child can unpickle them from this module.
"""

from __future__ import annotations

import io
import os

import pytest

from dlcv_keras.tuning.isolation import run_isolated
from dlcv_keras.tuning.search import progress_callbacks
from dlcv_keras.validation import InvalidParameterError


class _Dies:
    """Its trial's process ends at once, without a word (as the kernel's OOM killer would end it)."""

    def build(self, hp):
        os._exit(3)


class _BadSetting:
    def build(self, hp):
        raise InvalidParameterError("width must be a number in (0, 16], got -1")


def _job(hypermodel) -> dict:
    return dict(hypermodel=hypermodel, values={"epochs": 1}, x=None, y=None, validation_data=None,
                progress=None, test_data=None, num_classes=2, keep_path=None)


def test_a_trial_process_that_dies_is_reported_with_its_exit_code():
    with pytest.raises(RuntimeError, match=r"ended \(exit code 3\) before reporting"):
        run_isolated(_job(_Dies()), should_stop=lambda: False)


def test_a_bad_setting_found_in_the_trial_process_stays_a_one_line_bad_setting():
    with pytest.raises(InvalidParameterError, match=r"^width must be a number in \(0, 16\], got -1$"):
        run_isolated(_job(_BadSetting()), should_stop=lambda: False)


def test_a_stop_request_ends_the_trial_process():
    with pytest.raises(KeyboardInterrupt):
        run_isolated(_job(_Dies()), should_stop=lambda: True)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_before_any_epoch_is_measured(monkeypatch):
    """A batch hook called with no Keras fit behind it (the scratch solver's interrupt check calls
    every callback's on_train_batch_end) has no time left to show: the line says nothing, not a crash."""
    screen = _Terminal()
    monkeypatch.setattr("sys.stdout", screen)
    plan = {"label": "search", "index": 1, "total": 4, "after": 3, "mean_seconds": None}
    (progress,) = progress_callbacks(plan)
    progress.on_train_batch_end(0)
    progress.on_train_batch_end(1)
    assert "Traceback" not in screen.getvalue()


def test_no_progress_line_with_quiet():
    assert progress_callbacks(None) == []
