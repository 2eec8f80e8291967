"""Bad input to the CV questions (q10, q11, q17, q18), through the command line.

Each bad command must stop before any training: exit status 2, exactly one line on stderr
starting "error:" (no traceback), and nothing written into the results folder. The tests run
``python -m dlcv_keras.run`` in subprocesses, as a user would (tests/real_runs.py's environment:
no exported DLCV_DATA_DIR / DLCV_RESULTS_DIR / KERAS_BACKEND, MPLBACKEND=Agg).

The data-folder tests build a tiny cats_vs_dogs/ tree from a few real JPEGs of the offline copy
(DLCV_DATA_DIR or /work/shared/datasets) and skip without it. The last test (a good --weights file
makes q10 run to completion without the offline banner) trains, and is marked slow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from real_runs import REPO, child_env, offline_data

PROFILE = "smoke"


def run_cli(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = child_env(tmp_path, None)
    for sub in ("tfds-cache", "no-data"):       # no-data: an empty --data-dir, nothing to find in it
        (tmp_path / sub).mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def written(results: Path) -> list[str]:
    """Every file (at any depth) below the results folder."""
    if not results.exists():
        return []
    return sorted(str(p.relative_to(results)) for p in results.rglob("*") if p.is_file())


def assert_one_line_error(done: subprocess.CompletedProcess, results: Path, *words: str) -> str:
    """Exit 2, one stderr line "error: ..." naming ``words``, no traceback, nothing in ``results``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error:"), lines[0]
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert written(results) == [], written(results)
    return lines[0]


# ------------------------------------------------------------------------------- options

def test_image_size_zero_for_q18(tmp_path):
    results = tmp_path / "results"
    done = run_cli(["q18", "--profile", PROFILE, "--image-size", "0", "--results", str(results),
                    "--no-download", "--data-dir", str(tmp_path / "no-data"), "-q"], tmp_path)
    assert_one_line_error(done, results, "--image-size", "0")


def test_image_size_given_to_q17(tmp_path):
    results = tmp_path / "results"
    done = run_cli(["q17", "--profile", PROFILE, "--image-size", "64", "--results", str(results),
                    "--no-download", "-q"], tmp_path)
    line = assert_one_line_error(done, results, "--image-size", "q17")
    assert "q18" in line and "q10" in line         # it says which questions take it


# ------------------------------------------------------------------------------- space file

def test_unknown_augmentation_in_space_file(tmp_path):
    text = (REPO / "tuners" / "q11.toml").read_text()
    table = text.split("[smoke.augmentation]", 1)[1].split("\n[", 1)[0]
    assert 'augment = ["none", "crop+flip", "full"]' in table
    bad = text.replace(table, table.replace('augment = ["none", "crop+flip", "full"]', 'augment = ["none", "blur"]'), 1)
    space = tmp_path / "my.toml"
    space.write_text(bad)
    results = tmp_path / "results"
    done = run_cli(["q11", "--profile", PROFILE, "--space", str(space), "--results", str(results),
                    "--no-download", "--data-dir", str(tmp_path / "no-data"), "-q"], tmp_path)
    assert_one_line_error(done, results, "'blur'")


# ------------------------------------------------------------------------------- data folders

def tiny_cats_vs_dogs(tmp_path: Path, per_class: int = 4) -> Path:
    """data/cats_vs_dogs/{training_set,test_set}/{cats,dogs}/ with ``per_class`` real JPEGs each."""
    source = offline_data("cats_vs_dogs") / "cats_vs_dogs"
    data = tmp_path / "data"
    for split in ("training_set", "test_set"):
        for label in ("cats", "dogs"):
            target = data / "cats_vs_dogs" / split / label
            target.mkdir(parents=True)
            files = sorted((source / split / label).glob("*.jpg"))[:per_class]
            assert len(files) == per_class, source / split / label
            for file in files:
                shutil.copy(file, target / file.name)
    return data


def assert_q18_fails_naming(data, tmp_path, name: str) -> None:
    """q18 on the data folder ``data`` stops with one line naming ``name``, exit 2, nothing written."""
    results = tmp_path / "results"
    done = run_cli(["q18", "--profile", PROFILE, "--data-dir", str(data), "--no-download", "--results", str(results),
                    "-q"], tmp_path)
    assert_one_line_error(done, results, name)


def test_class_folder_without_images(tmp_path):
    data = tiny_cats_vs_dogs(tmp_path)
    empty = data / "cats_vs_dogs" / "training_set" / "dogs"
    for file in empty.iterdir():
        file.unlink()
    assert_q18_fails_naming(data, tmp_path, str(empty))


def test_unreadable_image_file(tmp_path):
    data = tiny_cats_vs_dogs(tmp_path)
    garbage = data / "cats_vs_dogs" / "training_set" / "cats" / "cat.garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all" * 10)
    assert_q18_fails_naming(data, tmp_path, str(garbage))


def test_unreadable_test_image_file(tmp_path):
    """The same in the test split (test images are read too, and capped separately)."""
    data = tiny_cats_vs_dogs(tmp_path)
    garbage = data / "cats_vs_dogs" / "test_set" / "dogs" / "dog.zero.jpg"
    garbage.write_bytes(b"")
    assert_q18_fails_naming(data, tmp_path, str(garbage))


# ------------------------------------------------------------------------------- q10 --weights

def q10_source_width() -> float:
    from dlcv_keras.tuning.spaces import tomllib   # tomli on Python 3.10

    table = tomllib.loads((REPO / "tuners" / "q10.toml").read_text())[PROFILE]["source"]
    return float(table["width"])


def backbone_file(folder: Path, width: float) -> Path:
    """A .weights.h5 file of our ResNet-18's backbone at ``width``, as save_backbone_weights writes it.

    Written by a child process (TensorFlow, as q10 itself runs), so this process's backend does not matter."""
    path = folder / f"resnet18-w{width:g}.weights.h5"
    if path.is_file():
        return path
    code = ("import sys\n"
            "from dlcv_keras.models.builders import build_resnet18\n"
            "from dlcv_keras.models.pretrained import save_backbone_weights\n"
            "save_backbone_weights(build_resnet18((32, 32, 3), 10, width=float(sys.argv[1])), sys.argv[2])\n")
    env = {**child_env(folder, None), "KERAS_BACKEND": "tensorflow"}
    done = subprocess.run([sys.executable, "-c", code, str(width), str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def weights_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


def q10_command(results: Path, weights: Path | str, data_dir: Path) -> list[str]:
    return ["q10", "--profile", PROFILE, "--weights", str(weights), "--results", str(results),
            "--data-dir", str(data_dir), "--no-download", "-q"]


Q10_BAD_WEIGHTS = ("other_width", "corrupt", "truncated", "missing")


@pytest.fixture(scope="module", params=Q10_BAD_WEIGHTS)
def q10_bad_weights(request, tmp_path_factory, weights_folder) -> dict:
    """One q10 run per bad --weights file (run once, read by the tests below):
    - other_width: our backbone saved at width 0.25, while tuners/q10.toml [smoke.source] says 0.125;
    - corrupt: an HDF5 signature and garbage; truncated: a good file cut in half; missing: no such path."""
    case = request.param
    folder = tmp_path_factory.mktemp(f"q10-{case}")
    width = q10_source_width()
    assert width == 0.125
    if case == "other_width":
        path = backbone_file(weights_folder, 0.25)
    elif case == "corrupt":
        path = folder / "broken.weights.h5"
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"not really an HDF5 file" * 20)
    elif case == "truncated":
        good = backbone_file(weights_folder, width)
        path = folder / "cut.weights.h5"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    else:
        path = folder / "nowhere" / "resnet.weights.h5"
    results = folder / "results"
    done = run_cli(q10_command(results, path, folder / "no-data"), folder)
    return {"case": case, "path": path, "results": results, "done": done}


EXPECTED_WORDS = {"other_width": ("does not fit", "expected shape"), "corrupt": ("cannot be read",),
                  "truncated": ("cannot be read",), "missing": ("does not exist",)}


def test_q10_bad_weights_stop_with_an_error_naming_the_file(q10_bad_weights):
    """Exit 2, no traceback, nothing written, and the last stderr line is the one error line naming the file."""
    done, results = q10_bad_weights["done"], q10_bad_weights["results"]
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    assert lines and lines[-1].startswith("error:"), done.stderr[-3000:]
    assert sum(line.startswith("error:") for line in lines) == 1
    assert str(q10_bad_weights["path"]) in lines[-1]
    for word in EXPECTED_WORDS[q10_bad_weights["case"]]:
        assert word in lines[-1], (word, lines[-1])
    assert written(results) == [], written(results)


def test_q10_bad_weights_error_is_the_only_stderr_line(q10_bad_weights):
    assert_one_line_error(q10_bad_weights["done"], q10_bad_weights["results"], str(q10_bad_weights["path"]))


@pytest.mark.slow
def test_q10_good_weights_file_runs_without_banner(tmp_path, weights_folder):
    data_dir = offline_data("cifar10")
    good = backbone_file(weights_folder, q10_source_width())
    results = tmp_path / "results"
    done = run_cli(q10_command(results, good, data_dir), tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stderr
    root = results / "q10" / PROFILE
    run = json.loads((root / "run.json").read_text())
    assert run["status"] == "complete"
    assert run["dataset"].get("fallback_banner") in (None, "")
    assert run["dataset"]["class_names"] == ["airplane", "automobile", "bird", "cat", "deer",
                                             "dog", "frog", "horse", "ship", "truck"]
    source = json.loads((root / "experiments" / "source" / "summary.json").read_text())
    assert source["source"] == "user"
    assert source["weights"] == str(good)
    assert not (root / "experiments" / "source" / "source.weights.h5").exists()     # nothing trained for it
    for name in ("frozen", "finetune", "layerwise", "scratch", "grid", "best"):
        assert (root / "experiments" / name / "summary.json").is_file(), name
    assert (root / "experiments" / "best" / "model.keras").is_file()
    html = (root / "report.html").read_text() if (root / "report.html").exists() else ""
    assert "No pretrained ImageNet weights here" not in html


def test_q12_after_q9_q10_q11_in_one_command_passes_the_check_that_runs_before_any_question(tmp_path):
    """`run q9 q10 q11 q12` (and `run all`) checks every question first; q12's stored models do not exist
    yet then, but the questions that store them run before it in the same command."""
    import dataclasses

    from dlcv_keras import pipeline
    from dlcv_keras.questions import get_question
    from dlcv_keras.settings import Settings
    from dlcv_keras.validation import InvalidParameterError

    settings = Settings(results_dir=tmp_path / "results")
    with pytest.raises(InvalidParameterError, match="run 'python -m dlcv_keras.run q9"):
        pipeline.check_space(get_question("q12"), settings)
    pipeline.check_space(get_question("q12"), dataclasses.replace(settings, runs_after=("q9", "q10", "q11")))
    assert not (tmp_path / "results").exists()
