"""Checks at the package's public edges, with one message shape.

Modelled on scikit-learn's parameter validation: every failure names the
parameter, what it must be, and the repr of what arrived instead, so the CLI can
print it as a single line and exit with status 2.
"""

from __future__ import annotations

import math
from typing import Iterable


class InvalidParameterError(ValueError, TypeError):
    """A user-supplied value is outside what the package accepts.

    Subclasses both ValueError and TypeError so that ordinary ``except`` clauses
    still catch it.
    """


class DataError(InvalidParameterError):
    """A data folder or file is missing, empty or corrupt."""


def fail(name: str, expected: str, got) -> None:
    raise InvalidParameterError(f"{name} must be {expected}, got {got!r}")


def check_choice(name: str, value, options: Iterable[str]) -> str:
    options = list(options)
    if value not in options:
        fail(name, "one of " + ", ".join(repr(o) for o in options), value)
    return value


def check_int(name: str, value, *, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, _range_words("an int", low, high, "closed"), value)
    if (low is not None and value < low) or (high is not None and value > high):
        fail(name, _range_words("an int", low, high, "closed"), value)
    return value


def check_float(name: str, value, *, low: float | None = None, high: float | None = None,
                closed: str = "both") -> float:
    """``closed`` is one of "both", "left", "right", "neither" (which ends are allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(name, _range_words("a finite number", low, high, closed), value)
    too_low = low is not None and (value < low or (value == low and closed in ("right", "neither")))
    too_high = high is not None and (value > high or (value == high and closed in ("left", "neither")))
    if too_low or too_high:
        fail(name, _range_words("a number", low, high, closed), value)
    return float(value)


def _range_words(kind: str, low, high, closed: str) -> str:
    if low is None and high is None:
        return kind
    left = "[" if closed in ("both", "left", "closed") else "("
    right = "]" if closed in ("both", "right", "closed") else ")"
    lo = "-inf" if low is None else _number(low)
    hi = "inf" if high is None else _number(high)
    return f"{kind} in {left}{lo}, {hi}{right}"


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
