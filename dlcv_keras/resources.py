"""Where the packaged data folders are: installed (inside the package) or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def packaged_dir(name: str) -> Path:
    """``tuners`` or ``report_templates``: shipped as dlcv_keras/<name> by `pip install .`,
    and found at the repository's top level when run from a checkout."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"packaged folder {name!r} not found next to {_PACKAGE}")
