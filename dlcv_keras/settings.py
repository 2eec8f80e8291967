"""Run settings: where data and results live, which profile and seed.

Filled from the CLI or the environment (DLCV_DATA_DIR, DLCV_RESULTS_DIR); frozen so
that no step can change them behind another's back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("smoke", "quick", "full")
TUNERS = ("grid", "random")
REPORT_FORMATS = ("none", "html", "pdf")


@dataclass(frozen=True)
class Settings:
    profile: str = "quick"
    tuner: str = "grid"
    seed: int = 0
    data_dir: Path | None = None
    results_dir: Path = Path("results")
    dataset: str | None = None          # overrides the question's own dataset
    allow_fallback: bool = True         # q3 may fall back to digits when MNIST cannot be had
    allow_download: bool = True         # TensorFlow Datasets may try to download
    space_file: Path | None = None      # overrides the packaged tuners/<question>.toml
    report: str = "html"                # "none", "html" or "pdf" (HTML and PDF)
    implementation: str | None = None   # --impl: None runs the question's default ("keras")
    expression: str | None = None       # q2 --expr
    points: tuple | None = None         # q2 --points, already parsed
    kernel_size: int | None = None      # q4 --kernel-size
    sigma: float | None = None          # q4 --sigma
    fresh: bool = False                 # --fresh: move stored tuner projects aside and redo every experiment
    progress: bool = True               # per-epoch progress lines inside a trial (-q turns them off)
    image_size: int | None = None       # --image-size: resize a dataset's images (cats vs dogs: 64)
    weights: str | None = None          # q10 --weights: a keras-hub preset folder or a .weights.h5 file
    runs_after: tuple = ()              # questions the same command runs first (q12 may need what they store)
    devices: int | str = 1              # --devices: devices one trial trains on, data-parallel (training/devices.py);
                                        # "all" until run() resolves it to this machine's count

    @classmethod
    def from_environment(cls, **overrides) -> "Settings":
        """Environment variables fill what the caller left as None."""
        values = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" not in values and os.environ.get("DLCV_DATA_DIR"):
            values["data_dir"] = Path(os.environ["DLCV_DATA_DIR"])
        if "results_dir" not in values and os.environ.get("DLCV_RESULTS_DIR"):
            values["results_dir"] = Path(os.environ["DLCV_RESULTS_DIR"])
        for key in ("data_dir", "results_dir", "space_file"):
            if values.get(key) is not None:
                values[key] = Path(values[key]).expanduser()
        return cls(**values)
