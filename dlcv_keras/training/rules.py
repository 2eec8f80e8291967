"""The seeds' stopping rules as plain functions, shared by Keras callbacks and the numpy solver."""

from __future__ import annotations

import math


def early_stop_reason(previous: float | None, current: float, epoch: int, *, min_epochs: int,
                      min_delta: float) -> str | None:
    """q3's rule: after ``min_epochs``, stop when the validation loss rises, or when it
    changes by less than ``min_delta`` from one epoch to the next. ``epoch`` counts from 1."""
    if previous is None or epoch < min_epochs or not math.isfinite(current):
        return None
    if current > previous:
        return f"val_loss rose at epoch {epoch}"
    if previous - current < min_delta:
        return f"val_loss changed by less than {min_delta:g} at epoch {epoch}"
    return None


def non_finite_loss(row: dict) -> bool:
    """A NaN/inf training or validation loss: the run has diverged and every later epoch is garbage."""
    return any(not math.isfinite(row[k]) for k in ("loss", "val_loss") if k in row)


def patience_reason(patience: int) -> str:
    """q8's early stopping (Keras's EarlyStopping on val_loss) ended the run."""
    return f"early stopping: val_loss did not improve for {patience} epochs"


def restored_reason(reason: str, restored_epoch: int) -> str:
    """``reason`` the run ended, and that early stopping then put the best epoch's weights back."""
    return f"{reason}; weights of epoch {restored_epoch} restored"
