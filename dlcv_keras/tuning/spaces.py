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

Every table is checked against what its experiment reads (``experiments``: table name ->
the names it accepts and their domains) before anything runs, so an unknown, unused or
out-of-range name stops the run with a one-line message naming the file, table, key and value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

try:
    import tomllib                       # Python 3.11+
except ModuleNotFoundError:              # Python 3.10: the same parser as the tomli package (pyproject.toml)
    import tomli as tomllib

from dlcv_keras.models.options import ACTIVATIONS, INITIALIZERS, MLP_LAYER_WIDTHS, OPTIMIZERS, SCHEDULES, TRANSFER_MODES
from dlcv_keras.validation import InvalidParameterError

# name -> (kind, low, high, closed) or ("str", choices): the domain of a value. These are the names
# of the model builders', compile step's and fit step's arguments and the run's own (models/options.py
# MODEL_KEYS, COMPILE_KEYS, FIT_KEYS, RUN_KEYS); each experiment kind adds its own settings (dlcv_keras/experiments/).
SEARCH_DOMAINS: dict[str, tuple] = {
    "lr": ("float", 0.0, 10.0, "right"),
    "l1": ("float", 0.0, 10.0, "both"),
    "l2": ("float", 0.0, 10.0, "both"),
    "momentum": ("float", 0.0, 1.0, "left"),
    "dropout": ("float", 0.0, 1.0, "left"),
    "train_fraction": ("float", 0.0, 1.0, "neither"),
    "batch_size": ("int", 1, 1_000_000, "both"),
    "epochs": ("int", 1, 100_000, "both"),
    "patience": ("int", 0, 100_000, "both"),
    "depth": ("int", 1, 100, "both"),
    "units": ("int", 1, 100_000, "both"),
    **{name: ("int", 1, 100_000, "both") for name in MLP_LAYER_WIDTHS},
    "dense_units": ("int", 1, 100_000, "both"),
    "activation": ("str", ACTIVATIONS),
    "initializer": ("str", INITIALIZERS),
    "optimizer": ("str", OPTIMIZERS),
    "width": ("float", 0.0, 16.0, "right"),
    "dropout_first": ("float", 0.0, 1.0, "left"),
    "dropout_head": ("float", 0.0, 1.0, "left"),
    "max_lr": ("float", 0.0, 10.0, "right"),
    "weight_decay": ("float", 0.0, 10.0, "both"),
    "grad_clip": ("float", 0.0, 1e6, "both"),         # 0 = no clipping
    "clipnorm": ("float", 0.0, 1e6, "both"),          # 0 = no clipping
    "schedule": ("str", SCHEDULES),
    "early_lr_factor": ("float", 0.0, 100.0, "right"),
    "mode": ("str", TRANSFER_MODES),
    "augment": ("augment",),                          # "none", "full" or names joined by "+"
    "plateau_factor": ("float", 0.0, 1.0, "neither"),
    "plateau_patience": ("int", 0, 100_000, "both"),  # 0 = no ReduceLROnPlateau
    "repeat": ("int", 0, 1_000_000, "both"),          # the trial starts from seed --seed + repeat
    "std": ("float", 0.0, 10.0, "right"),             # two_layer: weights drawn as std * N(0, 1)
    "pca": ("int", 0, 100_000, "both"),               # two_layer: principal components kept, 0 = off
    "lr_decay": ("float", 0.0, 1.0, "right"),         # the numpy solver: lr multiplied by it every epoch
    "iterations": ("int", 1, 10_000_000, "both"),     # the numpy solver: SGD steps, instead of epochs
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

    def values(self, name: str) -> list:
        """The values listed for ``name``: its pinned value or its grid (a range has none listed)."""
        return [self.fixed[name]] if name in self.fixed else list(self.choices.get(name, []))

    def largest(self, name: str) -> Any:
        """The largest value ``name`` may take (a range's upper end included), or None if unset."""
        found = self.values(name) + ([self.ranges[name].high] if name in self.ranges else [])
        return max(found) if found else None

    def without(self, names) -> "ExperimentSpace":
        """The same space less ``names`` (an experiment's own settings, which are not hyperparameters)."""
        return ExperimentSpace(self.name, {k: v for k, v in self.fixed.items() if k not in names},
                               {k: v for k, v in self.choices.items() if k not in names},
                               {k: v for k, v in self.ranges.items() if k not in names})

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


def load_space(path: Path, profile: str, *, experiments: Mapping[str, Mapping[str, tuple]] | Sequence[str] | None = None,
               required: Sequence[str] | None = None, tuner: str | Mapping[str, str] = "grid") -> ProfileSpace:
    """Read and validate one profile of a search-space file (see ``parse_space``)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"search-space file must be an existing .toml file, got {str(path)!r}")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"search-space file {path} must be valid TOML, got an error: {exc}") from None
    return parse_space(document, profile, source=str(path), experiments=experiments, required=required, tuner=tuner)


def parse_space(document: dict, profile: str, *, source: str = "<space>",
                experiments: Mapping[str, Mapping[str, tuple]] | Sequence[str] | None = None,
                required: Sequence[str] | None = None, tuner: str | Mapping[str, str] = "grid") -> ProfileSpace:
    """One profile of a search-space document, validated.

    ``experiments`` maps each table a question may have to the names that table accepts
    (name -> domain); a table it does not name is an error. A list of names (or None)
    checks every table against ``SEARCH_DOMAINS``. ``required`` lists the tables that must
    be present (default: every table ``experiments`` names); ``tuner`` = "grid" forbids ranges
    (a mapping gives each table its own tuner, "grid" where it names none).
    """
    if profile not in document or not isinstance(document[profile], dict):
        raise InvalidParameterError(
            f"{source} must have a [{profile}] table, got tables {sorted(document)!r}")
    domains = dict(experiments) if isinstance(experiments, Mapping) else None
    if required is None:
        required = list(experiments or [])
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
        elif isinstance(value, dict) and (domains is None or key in domains):
            accepted = SEARCH_DOMAINS if domains is None else domains[key]
            table_tuner = tuner.get(key, "grid") if isinstance(tuner, Mapping) else tuner
            spaces[key] = _parse_experiment(key, value, f"{source} [{profile}.{key}]", table_tuner, accepted)
        elif isinstance(value, dict):
            raise InvalidParameterError(
                f"{source} [{profile}.{key}] must be a table of one of this question's experiments "
                f"({', '.join(sorted(domains)) or 'none'}), got an unknown table {key!r}")
        else:
            raise InvalidParameterError(
                f"{where} must be one of {sorted(PROFILE_SETTINGS)} or an experiment table, got {value!r}")
    space = ProfileSpace(source, profile, settings, early_stopping, spaces)
    for name in required:
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


def _parse_experiment(name: str, table: dict, where: str, tuner: str, accepted: Mapping[str, tuple]) -> ExperimentSpace:
    space = ExperimentSpace(name)
    for key, value in table.items():
        if key not in accepted:
            raise InvalidParameterError(
                f"{where} {key} must be one of the names this experiment reads "
                f"({', '.join(sorted(accepted))}), got {key!r} = {value!r}")
        here = f"{where} {key}"
        spec = accepted[key]
        if isinstance(value, list):
            if not value:
                raise InvalidParameterError(f"{here} must be a non-empty list of values, got []")
            values = [_check_value(here, spec, v) for v in value]
            if len(set(values)) != len(values):
                raise InvalidParameterError(f"{here} must not repeat a value, got {value!r}")
            space.choices[key] = values
        elif isinstance(value, dict):
            if tuner == "grid":
                raise InvalidParameterError(
                    f"{here} must be a list of values for --tuner grid (ranges are for --tuner random), got {value!r}")
            space.ranges[key] = _check_range(here, spec, value)
        else:
            space.fixed[key] = _check_value(here, spec, value)
    return space


def _check_value(where: str, spec: tuple, value):
    if spec[0] == "augment":          # "none", "full" or augmentation names joined by "+"
        from dlcv_keras.data.augment import parse_augment
        if not isinstance(value, str):
            raise InvalidParameterError(f"{where} must be a string such as 'crop+flip', got {value!r}")
        try:
            parse_augment(value)
        except InvalidParameterError as error:
            raise InvalidParameterError(f"{where}: {error}") from None
        return value
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


def _check_range(where: str, spec: tuple, table: dict) -> Range:
    if spec[0] in ("str", "augment"):
        raise InvalidParameterError(f"{where} must be a list of choices (a range needs numbers), got {table!r}")
    unknown = set(table) - {"min", "max", "sampling"}
    if unknown or "min" not in table or "max" not in table:
        raise InvalidParameterError(f"{where} must be {{min = .., max = .., sampling = \"linear\"|\"log\"}}, got {table!r}")
    low = _check_value(where + ".min", spec, table["min"])
    high = _check_value(where + ".max", spec, table["max"])
    sampling = table.get("sampling", "linear")
    if sampling not in ("linear", "log"):
        raise InvalidParameterError(f"{where}.sampling must be 'linear' or 'log', got {sampling!r}")
    if not low < high:
        raise InvalidParameterError(f"{where} must have min < max, got min={low!r}, max={high!r}")
    if sampling == "log" and low <= 0:
        raise InvalidParameterError(f"{where} must have min > 0 for log sampling, got {low!r}")
    return Range(low, high, sampling)
