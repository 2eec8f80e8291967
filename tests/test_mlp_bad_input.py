"""Bad values in an MLP question's search table (q8, through a changed copy of tuners/q8.toml), on the
command line: exit status 2, one line on stderr naming the value and what was expected, no traceback,
nothing written into the results folder (tests/test_cv_bad_input.py's checks)."""

from __future__ import annotations

import pytest

from real_runs import REPO
from test_cv_bad_input import assert_one_line_error, run_cli

Q8_SPACE = (REPO / "tuners" / "q8.toml").read_text()


@pytest.mark.parametrize("old, new, words", [
    ("depth = 2", "depth = 0", ["[smoke.none] depth must be an int in [1, 100], got 0"]),
    ("epochs = 3\n\n[smoke.l2]", "epochs = 3\nl1 = -0.001\n\n[smoke.l2]",
     ["[smoke.none] l1 must be a number in [0, 10], got -0.001"]),
    ("l2 = 0.0001", "l2 = -0.0001", ["[smoke.l2] l2 must be a number in [0, 10], got -0.0001"]),
    ("l2 = [0.0, 1e-3]", "l2 = [0.0, -1e-3]", ["[smoke.l2_dropout] l2 must be a number in [0, 10], got -0.001"]),
    ('activation = "relu"', 'activation = "relu"\ninitializer = "normal"',
     ["[smoke.none] initializer must be one of", "'standard_normal'", "got 'normal'"]),
    ('activation = "relu"', 'activation = "swish"', ["[smoke.none] activation must be one of 'relu'", "got 'swish'"]),
    ("depth = 2", "depth = 2\nrepeat = -1", ["[smoke.none] repeat must be an int in [0, 1000000], got -1"]),
    # A compared run may repeat its setting (a list of repeats), not vary it.
    ("l2 = 0.0001", "l2 = [0.0001, 0.001]\nrepeat = [0, 1]",
     ["[smoke.l2] l2 must be a single value", "only repeat may be a list", "got [0.0001, 0.001]"]),
])
def test_bad_values_in_a_search_table_stop_q8_before_anything_is_written(old, new, words, tmp_path):
    assert old in Q8_SPACE
    space = tmp_path / "space.toml"
    space.write_text(Q8_SPACE.replace(old, new, 1))
    results = tmp_path / "results"
    done = run_cli(["q8", "--space", str(space), "--profile", "smoke", "--results", str(results),
                    "--no-download", "--data-dir", str(tmp_path / "no-data"), "-q"], tmp_path)
    line = assert_one_line_error(done, results, *words)
    assert str(space) in line
