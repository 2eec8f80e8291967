"""Learning-rate schedules the seeds used (they trained in PyTorch)."""

from __future__ import annotations

import math

import keras
from keras import ops

from dlcv_keras.validation import check_float, check_int


@keras.saving.register_keras_serializable(package="dlcv_keras")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's ``OneCycleLR`` with its defaults (cosine annealing, two phases, ``three_phase=False``).

    The rate starts at ``initial = max_lr / div_factor``, rises along a half cosine to ``max_lr`` at
    step ``pct_start * total_steps - 1``, then falls along a half cosine to
    ``initial / final_div_factor`` at step ``total_steps - 1``, where it stays (PyTorch raises past
    the end instead). ``step`` is the optimizer's iteration count, which starts at 0 as PyTorch's
    scheduler does when ``scheduler.step()`` follows each ``optimizer.step()``: one step per batch.
    PyTorch's momentum cycling (``cycle_momentum``) is not reproduced: momentum stays as set.
    """

    def __init__(self, max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, name: str = "one_cycle"):
        super().__init__()
        self.max_lr = check_float("max_lr", max_lr, low=0, closed="right")
        self.total_steps = check_int("total_steps", total_steps, low=2)
        self.pct_start = check_float("pct_start", pct_start, low=0, high=1, closed="neither")
        self.div_factor = check_float("div_factor", div_factor, low=0, closed="neither")
        self.final_div_factor = check_float("final_div_factor", final_div_factor, low=0, closed="neither")
        self.name = name
        self.initial_lr = self.max_lr / self.div_factor
        self.min_lr = self.initial_lr / self.final_div_factor
        # PyTorch: phase 1 ends at float(pct_start * total_steps) - 1, phase 2 at total_steps - 1.
        self.peak_step = self.pct_start * self.total_steps - 1
        self.end_step = float(self.total_steps - 1)
        if not 0 < self.peak_step < self.end_step:
            raise ValueError(f"pct_start * total_steps - 1 must be between 0 and total_steps - 1, got "
                             f"pct_start={pct_start!r}, total_steps={total_steps!r}")

    def __call__(self, step):
        step = ops.minimum(ops.cast(step, "float32"), self.end_step)
        rising = step <= self.peak_step
        pct = ops.where(rising, step / self.peak_step,
                        (step - self.peak_step) / (self.end_step - self.peak_step))
        start = ops.where(rising, self.initial_lr, self.max_lr)
        end = ops.where(rising, self.max_lr, self.min_lr)
        return end + (start - end) / 2.0 * (ops.cos(math.pi * pct) + 1.0)

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps, "pct_start": self.pct_start,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor, "name": self.name}


def one_cycle_closed_form(step: int, max_lr: float, total_steps: int, pct_start: float = 0.3,
                          div_factor: float = 25.0, final_div_factor: float = 1e4) -> float:
    """The same rate in plain Python, line by line as ``torch.optim.lr_scheduler.OneCycleLR.get_lr``."""
    initial = max_lr / div_factor
    minimum = initial / final_div_factor
    phases = [(float(pct_start * total_steps) - 1, initial, max_lr),
              (float(total_steps) - 1, max_lr, minimum)]
    start_step = 0.0
    for i, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or i == len(phases) - 1:
            pct = (step - start_step) / (end_step - start_step)
            return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1)
        start_step = end_step
    raise AssertionError("unreachable")
