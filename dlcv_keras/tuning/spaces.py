"""Search-space files: tuners/<question>.toml -> validated plain values.

One table per profile; inside it, settings for the whole run and one sub-table per
experiment. In an experiment table a scalar pins a value, a list is a grid of
choices, and an inline table ``{min = .., max = .., sampling = "log"}`` is a range
(random search only)::

    [quick]
    max_train = 8000            # data caps (stratified); leave out for all data
    random_trials = 8           # trials per search with --tuner random

    [quick.lr_batch]
    lr = [1e-2, 1e-3, 1e-4]     # grid of choices
    batch_size = [32, 64, 128]
    l2 = 1e-3                   # fixed
    epochs = 10

Every value is checked against ``HYPERPARAMETERS`` before anything runs, so a bad
file stops the run with a one-line message naming the file, table, key and value.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcv_keras.models.options import ACTIVATIONS, INITIALIZERS, OPTIMIZERS
from dlcv_keras.validation import InvalidParameterError

# name -> (kind, low, high, closed): the domain a hyperparameter's values must lie in.
HYPERPARAMETERS: dict[str, tuple] = {
    "lr": ("float", 0.0, 10.0, "right"),
    "l1": ("float", 0.0, 10.0, "both"),
    "l2": ("float", 0.0, 10.0, "both"),
    "momentum": ("float", 0.0, 1.0, "left"),
    "dropout": ("float", 0.0, 1.0, "left"),
    "train_fraction": ("float", 0.0, 1.0, "neither"),
    "batch_size": ("int", 1, 1_000_000, "both"),
    "epochs": ("int", 1, 100_000, "both"),
    "depth": ("int", 1, 100, "both"),
    "units": ("int", 1, 100_000, "both"),
    "activation": ("str", ACTIVATIONS),
    "initializer": ("str", INITIALIZERS),
    "optimizer": ("str", OPTIMIZERS),
    # settings of the from-scratch experiments (q2, q4, q5, q6, q3 --impl scratch)
    "images": ("int", 1, 1_000_000, "both"),          # how many training images an experiment uses
    "kernel_size": ("int", 1, 99, "both"),
    "sigma": ("float", 0.0, 100.0, "right"),           # Gaussian kernel width, in pixels
    "filters": ("int", 1, 4096, "both"),
    "stride": ("int", 1, 99, "both"),
    "clip": ("float", 0.0, 1e12, "right"),            # gradients clipped elementwise to [-clip, clip]
    "pixel_scale": ("float", 0.0, 1e6, "right"),      # images in [0, 1] are multiplied by this (q5: 255)
    "iterations": ("int", 1, 10_000_000, "both"),
    "lr_decay": ("float", 0.0, 1.0, "right"),
    "step": ("float", 0.0, 1.0, "right"),             # central-difference step
    "n": ("int", 1, 10**12, "both"),                  # q16: epsilon = 1/N
    "count": ("int", 1, 10_000, "both"),
    "reduction": ("str", ("sum", "mean")),            # q5: squared error per image summed, or averaged
}

# Run-level settings a profile table may hold: name -> (kind, low).
PROFILE_SETTINGS = {"max_train": ("int", 1), "max_test": ("int", 1), "random_trials": ("int", 1)}
EARLY_STOPPING_SETTINGS = {"min_epochs": ("int", 1), "min_delta": ("float", 0.0)}


@dataclass(frozen=True)
class Range:
    """A continuous or integer range for random search."""
    low: float
    high: float
    sampling: str = "linear"   # "linear" or "log"


@dataclass
class ExperimentSpace:
    """The values one experiment's search may take."""
    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, list] = field(default_factory=dict)
    ranges: dict[str, Range] = field(default_factory=dict)

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.choices.values()) if self.choices else 1

    def as_dict(self) -> dict:
        """Plain values, for hashing and for the stored summary."""
        return {"fixed": dict(sorted(self.fixed.items())),
                "choices": dict(sorted(self.choices.items())),
                "ranges": {k: [r.low, r.high, r.sampling] for k, r in sorted(self.ranges.items())}}


@dataclass
class ProfileSpace:
    """Everything a search-space file says for one profile."""
    source: str
    profile: str
    settings: dict[str, Any]
    early_stopping: dict[str, Any] | None
    experiments: dict[str, ExperimentSpace]

    def experiment(self, name: str) -> ExperimentSpace:
        if name not in self.experiments:
            raise InvalidParameterError(
                f"{self.source} [{self.profile}] must have a [{self.profile}.{name}] table, "
                f"got tables {sorted(self.experiments)!r}")
        return self.experiments[name]


def load_space(path: Path, profile: str, *, experiments: list[str] | None = None,
               tuner: str = "grid") -> ProfileSpace:
    """Read and validate one profile of a search-space file.

    ``experiments`` lists the tables the question needs; ``tuner`` = "grid" forbids ranges.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"search-space file must be an existing .toml file, got {str(path)!r}")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"search-space file {path} must be valid TOML, got an error: {exc}") from None
    return parse_space(document, profile, source=str(path), experiments=experiments, tuner=tuner)


def parse_space(document: dict, profile: str, *, source: str = "<space>",
                experiments: list[str] | None = None, tuner: str = "grid") -> ProfileSpace:
    if profile not in document or not isinstance(document[profile], dict):
        raise InvalidParameterError(
            f"{source} must have a [{profile}] table, got tables {sorted(document)!r}")
    table = document[profile]
    settings: dict[str, Any] = {}
    early_stopping = None
    spaces: dict[str, ExperimentSpace] = {}
    for key, value in table.items():
        where = f"{source} [{profile}] {key}"
        if key == "early_stopping":
            early_stopping = _parse_settings(value, EARLY_STOPPING_SETTINGS, f"{source} [{profile}.early_stopping]")
        elif key in PROFILE_SETTINGS:
            settings[key] = _check_setting(where, value, *PROFILE_SETTINGS[key])
        elif isinstance(value, dict):
            spaces[key] = _parse_experiment(key, value, f"{source} [{profile}.{key}]", tuner)
        else:
            raise InvalidParameterError(
                f"{where} must be one of {sorted(PROFILE_SETTINGS)} or an experiment table, got {value!r}")
    space = ProfileSpace(source, profile, settings, early_stopping, spaces)
    for name in experiments or []:
        space.experiment(name)
    return space


def _parse_settings(value, allowed: dict, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidParameterError(f"{where} must be a table, got {value!r}")
    missing = sorted(set(allowed) - set(value))
    if missing:
        raise InvalidParameterError(f"{where} must set {', '.join(missing)}, got keys {sorted(value)!r}")
    parsed = {}
    for key, item in value.items():
        if key not in allowed:
            raise InvalidParameterError(f"{where} {key} must be one of {sorted(allowed)}, got an unknown key")
        parsed[key] = _check_setting(f"{where} {key}", item, *allowed[key])
    return parsed


def _check_setting(where: str, value, kind: str, low):
    ok = (isinstance(value, int) and not isinstance(value, bool)) if kind == "int" else (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
    if not ok or value < low:
        raise InvalidParameterError(f"{where} must be {'an int' if kind == 'int' else 'a number'} >= {low}, got {value!r}")
    return value


def _parse_experiment(name: str, table: dict, where: str, tuner: str) -> ExperimentSpace:
    space = ExperimentSpace(name)
    for key, value in table.items():
        if key not in HYPERPARAMETERS:
            raise InvalidParameterError(
                f"{where} {key} must be a known hyperparameter ({', '.join(sorted(HYPERPARAMETERS))}), got {key!r}")
        here = f"{where} {key}"
        if isinstance(value, list):
            if not value:
                raise InvalidParameterError(f"{here} must be a non-empty list of values, got []")
            values = [_check_value(here, key, v) for v in value]
            if len(set(values)) != len(values):
                raise InvalidParameterError(f"{here} must not repeat a value, got {value!r}")
            space.choices[key] = values
        elif isinstance(value, dict):
            if tuner == "grid":
                raise InvalidParameterError(
                    f"{here} must be a list of values for --tuner grid (ranges are for --tuner random), got {value!r}")
            space.ranges[key] = _check_range(here, key, value)
        else:
            space.fixed[key] = _check_value(here, key, value)
    return space


def _check_value(where: str, key: str, value):
    spec = HYPERPARAMETERS[key]
    if spec[0] == "str":
        if value not in spec[1]:
            raise InvalidParameterError(f"{where} must be one of {', '.join(map(repr, spec[1]))}, got {value!r}")
        return value
    kind, low, high, closed = spec
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int" and not (is_number and float(value).is_integer()):
        raise InvalidParameterError(f"{where} must be an int in [{low}, {high}], got {value!r}")
    if not is_number or not math.isfinite(value):
        raise InvalidParameterError(f"{where} must be a number, got {value!r}")
    left_ok = value > low or (value == low and closed in ("both", "left"))
    right_ok = value < high or (value == high and closed in ("both", "right"))
    if not (left_ok and right_ok):
        lb = "[" if closed in ("both", "left") else "("
        rb = "]" if closed in ("both", "right") else ")"
        lo, hi = (low, high) if kind == "int" else (f"{low:g}", f"{high:g}")
        raise InvalidParameterError(f"{where} must be {'an int' if kind == 'int' else 'a number'} in {lb}{lo}, {hi}{rb}, got {value!r}")
    return int(value) if kind == "int" else float(value)


def _check_range(where: str, key: str, table: dict) -> Range:
    if HYPERPARAMETERS[key][0] == "str":
        raise InvalidParameterError(f"{where} must be a list of choices (a range needs numbers), got {table!r}")
    unknown = set(table) - {"min", "max", "sampling"}
    if unknown or "min" not in table or "max" not in table:
        raise InvalidParameterError(f"{where} must be {{min = .., max = .., sampling = \"linear\"|\"log\"}}, got {table!r}")
    low = _check_value(where + ".min", key, table["min"])
    high = _check_value(where + ".max", key, table["max"])
    sampling = table.get("sampling", "linear")
    if sampling not in ("linear", "log"):
        raise InvalidParameterError(f"{where}.sampling must be 'linear' or 'log', got {sampling!r}")
    if not low < high:
        raise InvalidParameterError(f"{where} must have min < max, got min={low!r}, max={high!r}")
    if sampling == "log" and low <= 0:
        raise InvalidParameterError(f"{where} must have min > 0 for log sampling, got {low!r}")
    return Range(low, high, sampling)
