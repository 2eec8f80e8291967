"""The suite runs on the backend the questions choose by default: JAX, the dense models' fast path
(an exported KERAS_BACKEND still wins). The TensorFlow path runs in subprocess tests."""

import json
import os
import sys
from pathlib import Path

import pytest

# What the user exported, before choose() sets it for this process: the smoke runs' children get
# only that, so each run picks its own backend as it does from a shell.
EXPORTED_KERAS_BACKEND = os.environ.get("KERAS_BACKEND")

from dlcv_keras import backends  # noqa: E402

backends.choose(["mlp"])

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_runs  # noqa: E402

SMOKE_FIXTURE = "smoke_results"


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory) -> Path:
    """A results folder with real smoke runs of q1-q6 and q3 --impl scratch (profile "smoke"), made once
    per session through the command line (tests/real_runs.py). Read it; copy it (real_runs.copy_results)
    to change anything. Seconds per run go to smoke-seconds.json beside it.

    DLCV_SMOKE_RESULTS=<folder> keeps the runs in that folder and reuses them in later sessions
    (for working on the report tests; delete the folder after changing what a run writes)."""
    kept = os.environ.get("DLCV_SMOKE_RESULTS")
    folder = Path(kept).resolve() if kept else tmp_path_factory.mktemp("smoke")
    if kept and (folder / "smoke-seconds.json").is_file():
        return folder / "results"
    try:
        timings = real_runs.make_smoke_runs(folder, EXPORTED_KERAS_BACKEND)
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    (folder / "smoke-seconds.json").write_text(json.dumps(timings, indent=1))
    print(f"\nsmoke runs for the report tests: {timings} ({sum(timings.values()):.0f} s)")
    return folder / "results"


def pytest_collection_modifyitems(items):
    """A test that needs the real smoke runs trains (about two minutes, once): it is ``slow``."""
    for item in items:
        if SMOKE_FIXTURE in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
