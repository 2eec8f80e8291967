"""`pip install .` must ship the search spaces and report templates, not only the code."""

import subprocess
import sys
import zipfile

import pytest

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_ships_search_spaces_and_templates(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("dlcv_keras-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("dlcv_keras/tuners/q1.toml", "dlcv_keras/tuners/q3.toml",
                     "dlcv_keras/report_templates/base.html.jinja2", "dlcv_keras/report_templates/report.css",
                     "dlcv_keras/report_templates/sections/best.html.jinja2",
                     "dlcv_keras/run.py", "dlcv_keras/report/__main__.py"):
        assert expected in names, expected
    # Every module of the checkout, every search space and every section template is in the wheel.
    for path in [*(REPO / "dlcv_keras").rglob("*.py")]:
        assert path.relative_to(REPO).as_posix() in names, path
    for path in (REPO / "tuners").glob("*.toml"):
        assert f"dlcv_keras/tuners/{path.name}" in names, path
    for path in (REPO / "report_templates" / "sections").glob("*.jinja2"):
        assert f"dlcv_keras/report_templates/sections/{path.name}" in names, path
