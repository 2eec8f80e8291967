"""The command line: bad input (one line, exit 2, nothing written), --list/--help,
end-to-end smoke runs with HTML and PDF, the offline fallback, resuming a killed search,
and q1 quick on the real offline MNIST copy."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import dlcv_keras
from dlcv_keras import backends
from dlcv_keras.run import main

REPO = Path(__file__).resolve().parent.parent
# Child processes import the same dlcv_keras as this one: the installed package in CI.
PACKAGE_PARENT = str(Path(dlcv_keras.__file__).resolve().parent.parent)


def child_env(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DLCV_DATA_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env
Q1_SPACE = (REPO / "tuners" / "q1.toml").read_text()


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """No local data and an empty TensorFlow Datasets cache: the situation on a fresh laptop offline."""
    monkeypatch.delenv("DLCV_DATA_DIR", raising=False)
    monkeypatch.delenv("DLCV_RESULTS_DIR", raising=False)
    cache = tmp_path / "tfds-cache"
    cache.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(cache))
    return tmp_path


def run_cli(args, env_extra=None, timeout=600):
    """The CLI in a fresh process, started outside the checkout so that the installed package
    (with its shipped tuners/ and report_templates/) is what runs."""
    env = child_env(env_extra)
    return subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=tempfile.gettempdir())


def assert_one_line_error(capsys, code, *fragments):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, fragments", [
    (["q99"], ["question must be one of 'q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7', 'q8', 'q9', 'q10', 'q11', 'q12', 'q13', 'q14', 'q15', 'q16', 'q17', 'q18' or 'all'", "got 'q99'"]),
    ([], ["QUESTION must be given"]),
    (["q1", "--profile", "huge"], ["--profile must be one of 'smoke', 'quick', 'full', got 'huge'"]),
    (["q1", "--tuner", "bayes"], ["--tuner must be one of 'grid', 'random', got 'bayes'"]),
    (["q1", "--dataset", "imagenet"], ["--dataset must be one of", "got 'imagenet'"]),
    (["q1", "--report", "docx"], ["--report must be one of 'none', 'html', 'pdf', got 'docx'"]),
    (["q1", "--seed", "-1"], ["--seed must be an int in [0, 2147483647], got -1"]),
    (["q1", "--data-dir", "/no/such/folder"], ["--data-dir must be an existing folder", "/no/such/folder"]),
])
def test_bad_arguments_get_one_line_and_exit_2(args, fragments, capsys, tmp_path):
    code = main([*args, "--results", str(tmp_path / "results")])
    assert_one_line_error(capsys, code, *fragments)
    assert not (tmp_path / "results").exists()


TAKES_TUNER = "--tuner applies to the questions with a search it chooses (q1, q3, q8, q14) only"


@pytest.mark.parametrize("args, message", [
    # Every search of these fixes its algorithm: a grid of listed values (q9, q17) or a random search
    # (q16); q2 has no search at all.
    (["q9", "--tuner", "random"], f"{TAKES_TUNER}, got --tuner random with q9, whose searches each run their own "
                                  f"algorithm (q9: grid)"),
    (["q16", "--tuner", "grid"], f"{TAKES_TUNER}, got --tuner grid with q16, whose searches each run their own "
                                 f"algorithm (q16: random)"),
    (["q7", "--tuner", "random"], f"{TAKES_TUNER}, got --tuner random with q7, whose searches each run their own "
                                  f"algorithm (q7: grid and random)"),
    (["q2", "q17", "--tuner", "random"], f"{TAKES_TUNER}, got --tuner random with q2, q17, whose searches each run "
                                         f"their own algorithm (q2: no search; q17: grid)"),
])
def test_a_tuner_no_search_of_the_question_would_use_is_refused(args, message, capsys, tmp_path):
    code = main([*args, "--profile", "smoke", "--results", str(tmp_path / "results")])
    assert assert_one_line_error(capsys, code) == f"error: {message}"
    assert not (tmp_path / "results").exists()


def test_several_questions_pass_the_tuner_to_those_that_take_it_only():
    from dlcv_keras.run import build_parser, child_options, tuner_option

    parser = build_parser()
    args = parser.parse_args(["q1", "q9", "q14", "--tuner", "random", "--profile", "smoke"])
    assert tuner_option(args, ["q1", "q9", "q14"]) == "random"
    assert child_options(parser, args, "q1") == ["--profile=smoke", "--tuner=random"]
    assert child_options(parser, args, "q9") == ["--profile=smoke"]
    assert child_options(parser, args, "q14") == ["--profile=smoke", "--tuner=random"]
    assert tuner_option(parser.parse_args(["q9"]), ["q9"]) is None        # not given: each search's own, or grid


@pytest.mark.parametrize("old, new, fragments", [
    ("lr = 1e-4\n", "lr = -0.01\n", ["[smoke.base] lr must be a number in (0, 10], got -0.01"]),
    ("batch_size = 32\nepochs = 2\n\n[smoke.lr_batch]", "batch_size = 0\nepochs = 2\n\n[smoke.lr_batch]",
     ["[smoke.base] batch_size must be an int in [1, 1000000], got 0"]),
    ("lr = [1e-1, 1e-2]", "lr = []", ["[smoke.full_grid] lr must be a non-empty list of values, got []"]),
    ("[smoke.fractions]", "[smoke.fractions", ["must be valid TOML"]),
    ("[smoke.fractions]\ntrain_fraction = [0.1, 0.2, 0.5]", "",
     ["must have a [smoke.fractions] table"]),
])
def test_bad_search_space_files_are_rejected_before_anything_runs(old, new, fragments, capsys, tmp_path):
    space = tmp_path / "space.toml"
    assert old in Q1_SPACE
    space.write_text(Q1_SPACE.replace(old, new, 1))
    code = main(["q1", "--profile", "smoke", "--dataset", "digits", "--space", str(space),
                 "--results", str(tmp_path / "results")])
    err = assert_one_line_error(capsys, code, *fragments)
    assert str(space) in err
    assert not (tmp_path / "results").exists()


def test_corrupt_local_data_is_named_and_nothing_is_written(capsys, tmp_path):
    mnist = tmp_path / "data" / "mnist"
    mnist.mkdir(parents=True)
    (mnist / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    (mnist / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x00"))
    code = main(["q1", "--profile", "smoke", "--data-dir", str(tmp_path / "data"),
                 "--results", str(tmp_path / "results")])
    assert_one_line_error(capsys, code, "t10k-images-idx3-ubyte.gz")
    assert not (tmp_path / "results").exists()


def test_empty_local_data_folder_is_an_error(capsys, tmp_path):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    code = main(["q3", "--profile", "smoke", "--data-dir", str(tmp_path / "data"),
                 "--results", str(tmp_path / "results")])
    assert_one_line_error(capsys, code, "mnist")
    assert not (tmp_path / "results").exists()


def test_mnist_unavailable_is_an_error_for_q1_and_with_no_fallback(capsys, offline_env):
    results = offline_env / "results"
    code = main(["q1", "--profile", "smoke", "--no-download", "--results", str(results)])
    assert_one_line_error(capsys, code, "mnist unavailable", "DLCV_DATA_DIR")
    code = main(["q3", "--profile", "smoke", "--no-fallback", "--no-download", "--results", str(results)])
    assert_one_line_error(capsys, code, "mnist unavailable", "--no-fallback")
    assert not results.exists()


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    done = run_cli(["q99", "--results", str(tmp_path / "r")])
    assert done.returncode == 2
    assert done.stderr.strip() == "error: question must be one of 'q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7', 'q8', 'q9', 'q10', 'q11', 'q12', 'q13', 'q14', 'q15', 'q16', 'q17', 'q18' or 'all' (see --list), got 'q99'"
    assert "Traceback" not in done.stdout + done.stderr


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["q1", "--seed", "abc"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: argument --seed: invalid int value: 'abc' (see --help)"


def test_results_folder_must_be_writable(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["q1", "--profile", "smoke", "--dataset", "digits", "--results", str(blocker / "results")])
    assert_one_line_error(capsys, code, "--results must be a folder", "is a file")
    assert blocker.read_text() == "not a folder"


def test_list_and_help(capsys):
    assert main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert all(f"q{i} " in listing for i in range(1, 19))
    lines = listing.splitlines()
    assert lines[0].startswith("question  seed write-up") and len(lines) == 19
    assert lines[7].startswith("q7        001_abbb178859d60717.txt (HLCV Exercise 2)") and lines[7].endswith(
        "Two-layer network on CIFAR-10")
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("--profile", "smoke", "quick", "full", "--tuner", "DLCV_DATA_DIR", "resumes"):
        assert word in text


# -- end to end ------------------------------------------------------------------------------------

def pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


@pytest.mark.slow
def test_q1_smoke_end_to_end_writes_results_html_and_pdf(offline_env, monkeypatch):
    results = offline_env / "results"
    monkeypatch.delenv("KERAS_BACKEND", raising=False)        # the run picks its own
    done = run_cli(["q1", "--profile", "smoke", "--dataset", "digits", "--report", "pdf",
                    "--results", str(results)], {"TFDS_DATA_DIR": os.environ["TFDS_DATA_DIR"]})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trial 1 of 2" in done.stdout and "Traceback" not in done.stderr
    root = results / "q1" / "smoke"
    run = json.loads((root / "run.json").read_text())
    assert run["status"] == "complete" and run["dataset"]["name"] == "digits"
    assert run["environment"]["keras_backend"] == "jax"          # the linear model's fast path
    if backends.cpu_flags() is not None:    # x86-64 Linux: TensorFlow (the data pipeline) runs oneDNN's kernels
        assert run["environment"]["onednn"]["on"] is True, run["environment"]["onednn"]
    assert run["dataset"]["content_hash"].startswith("sha256:")
    for experiment in ("base", "lr_batch", "full_grid", "best", "sklearn", "fractions"):
        assert (root / "experiments" / experiment / "summary.json").is_file(), experiment
    best = json.loads((root / "experiments" / "best" / "summary.json").read_text())
    metrics = json.loads((root / "experiments" / "best" / "metrics.json").read_text())
    # Learned something: 0.38 measured after smoke's 2 epochs on digits, chance is 0.1.
    assert best["test_accuracy"] > 0.2, best
    assert len(metrics["per_class_accuracy"]) == 10
    assert sum(map(sum, metrics["confusion_matrix"])) == run["dataset"]["splits"]["test"]
    fractions = (root / "experiments" / "fractions" / "trials.csv").read_text()
    assert "train_fraction" in fractions and "test_accuracy" in fractions
    history = (root / "experiments" / "full_grid" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2 * 2       # header + 2 trials x 2 epochs, every epoch kept
    html = (root / "report.html").read_text()
    test_pct = f"{100 * best['test_accuracy']:.2f}"
    assert test_pct in html and "91.81" not in html   # on digits by request: the seed's MNIST figure is no reference
    assert "data:image/png;base64," in html
    assert test_pct in pdf_text(root / "report.pdf")


@pytest.mark.slow
def test_random_tuner_samples_searches_but_runs_every_training_fraction(offline_env):
    results = offline_env / "results"
    done = run_cli(["q1", "--profile", "smoke", "--dataset", "digits", "--tuner", "random", "--report", "none",
                    "--results", str(results)])
    assert done.returncode == 0, done.stderr[-2000:]
    root = results / "q1" / "smoke" / "experiments"
    assert json.loads((root / "full_grid" / "summary.json").read_text())["tuner"] == "random"
    fractions = json.loads((root / "fractions" / "summary.json").read_text())
    assert fractions["tuner"] == "grid" and fractions["n_trials"] == 3
    assert "[fractions] search: 3 trials" in done.stdout
    # run.json says what each search ran, as each search's own summary does.
    run = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    assert run["tuner"] == "random"
    assert run["tuners"] == {"base": "random", "lr_batch": "random", "full_grid": "random", "fractions": "grid"}
    for search, kind in run["tuners"].items():
        assert json.loads((root / search / "summary.json").read_text())["tuner"] == kind, search
    assert "tuner random (base, lr_batch, full_grid); grid (fractions)" in done.stdout


@pytest.mark.slow
def test_q3_main_job_offline_falls_back_to_digits_loudly(offline_env):
    results = offline_env / "results"
    done = run_cli(["q3", "--profile", "smoke", "--no-download", "--results", str(results)],
                   {"TFDS_DATA_DIR": os.environ["TFDS_DATA_DIR"]})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MNIST unavailable: ran on digits" in done.stdout
    run = json.loads((results / "q3" / "smoke" / "run.json").read_text())
    assert run["dataset"]["name"] == "digits"
    assert run["dataset"]["fallback_banner"] == "MNIST unavailable: ran on digits"
    best = json.loads((results / "q3" / "smoke" / "experiments" / "best" / "summary.json").read_text())
    assert best["test_accuracy"] > 0.15    # above chance (0.1): 0.26 measured after smoke's 3 epochs
    html = (results / "q3" / "smoke" / "report.html").read_text()
    assert html.count('<div class="banner">MNIST unavailable: ran on digits</div>') == 1   # once, atop q3
    base = (results / "q3" / "smoke" / "experiments" / "base" / "trials.csv").read_text()
    assert "stop_reason" in base


@pytest.mark.slow
def test_an_exported_keras_backend_and_onednn_choice_win_and_the_tensorflow_path_runs_q3(offline_env):
    results = offline_env / "results"
    done = run_cli(["q3", "--profile", "smoke", "--no-download", "--report", "none", "--results", str(results)],
                   {"TFDS_DATA_DIR": os.environ["TFDS_DATA_DIR"], "KERAS_BACKEND": "tensorflow",
                    "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((results / "q3" / "smoke" / "run.json").read_text())
    assert run["status"] == "complete" and run["environment"]["keras_backend"] == "tensorflow"
    assert run["environment"]["onednn"] == {"on": False, "decided_by": "user"}   # TensorFlow's own answer
    best = json.loads((results / "q3" / "smoke" / "experiments" / "best" / "summary.json").read_text())
    assert best["test_accuracy"] > 0.15    # above chance (0.1) after the smoke profile's few epochs


def _completed_trials(project: Path) -> dict[str, int]:
    """Trials KerasTuner will not run again: COMPLETED and no longer listed as ongoing."""
    try:
        oracle = json.loads((project / "oracle.json").read_text())
    except (OSError, json.JSONDecodeError):         # KerasTuner writes it in place: caught mid-write
        return {}
    ongoing = set(oracle.get("ongoing_trials", {}).values())
    done = {}
    for trial_dir in project.glob("trial_*"):
        try:
            trial = json.loads((trial_dir / "trial.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if trial["status"] == "COMPLETED" and trial["trial_id"] not in ongoing:
            done[trial["trial_id"]] = (project / "dlcv_trials" / f"{trial['trial_id']}.json").stat().st_mtime_ns
    return done


def stop_after_two_trials(args, cwd, env, tuner_dir: Path, stop) -> tuple[str, int]:
    """Start the CLI, send ``stop`` once two trials of its base search have finished;
    return its output and exit status."""
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            projects = list(tuner_dir.glob("base-*"))
            if projects and (projects[0] / "oracle.json").is_file() and len(_completed_trials(projects[0])) >= 2:
                break
            assert process.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.1)
        else:
            pytest.fail("two trials did not finish in time")
    finally:
        process.send_signal(stop)                          # Ctrl-C, or a kill nothing can catch
        output = process.communicate(timeout=120)[0].decode()
    return output, process.returncode


@pytest.mark.slow
@pytest.mark.parametrize("tuner, stop", [("grid", signal.SIGKILL), ("random", signal.SIGKILL),
                                         ("grid", signal.SIGINT)])
def test_a_stopped_search_resumes_without_rerunning_finished_trials(offline_env, tuner, stop):
    space = offline_env / "space.toml"
    # Trials of several seconds each on the fast path (about 1.5 ms an epoch here), so that the
    # stop lands mid-search.
    slow_base = ("[smoke.base]\nlr = [0.1, 0.05, 0.02, 0.01]\nl2 = 1e-3\nbatch_size = 2\nepochs = 3000\n")
    text = Q1_SPACE.replace("[smoke.base]\nlr = 1e-4\nl2 = 1e-3\nbatch_size = 32\nepochs = 2\n", slow_base, 1)
    text = text.replace("random_trials = 2", "random_trials = 4", 1)   # random: all 4 settings, in its own order
    assert slow_base in text
    space.write_text(text)
    results = offline_env / "results"
    args = [sys.executable, "-m", "dlcv_keras.run", "q1", "--profile", "smoke", "--dataset", "digits",
            "--tuner", tuner, "--space", str(space), "--results", str(results), "--report", "none"]
    env = child_env()
    tuner_dir = results / "q1" / "smoke" / "tuner"
    output, returncode = stop_after_two_trials(args, offline_env, env, tuner_dir, stop)
    project = next(tuner_dir.glob("base-*"))
    finished = _completed_trials(project)
    assert 2 <= len(finished) < 4, "stop the run mid-search"
    run = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    if stop == signal.SIGINT:
        assert returncode == 130, output[-2000:]
        assert "interrupted: run the same command again to resume" in output
        assert "Traceback" not in output
        assert run["status"] == "interrupted"
    else:
        assert run["status"] == "running"                  # killed: nothing claimed complete

    done = subprocess.run(args, cwd=offline_env, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"[base] search: 4 trials, {len(finished)} already finished (resuming)" in done.stdout
    reran = [line for line in done.stdout.splitlines() if line.startswith("[base] trial ")]
    assert [line.split(":")[0] for line in reran] == [
        f"[base] trial {i} of 4" for i in range(len(finished) + 1, 5)]
    for trial_id, mtime in finished.items():               # finished trials were not touched
        assert (project / "dlcv_trials" / f"{trial_id}.json").stat().st_mtime_ns == mtime
    trials = (results / "q1" / "smoke" / "experiments" / "base" / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 4
    learning_rates = sorted(float(row.split(",")[header.index("lr")]) for header in [trials[0].split(",")]
                            for row in trials[1:])
    assert learning_rates == [0.01, 0.02, 0.05, 0.1]       # every setting once, none twice
    assert json.loads((results / "q1" / "smoke" / "run.json").read_text())["status"] == "complete"


# -- real data -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_q1_quick_on_the_offline_mnist_copy_reaches_88_percent(tmp_path):
    data_dir = os.environ.get("DLCV_DATA_DIR")
    if not data_dir or not (Path(data_dir) / "mnist").is_dir():
        pytest.skip("DLCV_DATA_DIR not set (or has no mnist/): the real-data run needs the offline MNIST copy")
    results = tmp_path / "results"
    done = run_cli(["q1", "--profile", "quick", "--results", str(results)], {"DLCV_DATA_DIR": data_dir},
                   timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    root = results / "q1" / "quick"
    run = json.loads((root / "run.json").read_text())
    assert run["dataset"]["name"] == "mnist" and run["dataset"]["fallback_banner"] is None
    assert any("test split" in note for note in run["dataset"]["notes"])
    best = json.loads((root / "experiments" / "best" / "summary.json").read_text())
    assert best["test_accuracy"] >= 0.88, best
    metrics = json.loads((root / "experiments" / "best" / "metrics.json").read_text())
    html = (root / "report.html").read_text()
    assert "Per-class test accuracy" in html
    for accuracy in metrics["per_class_accuracy"]:
        assert f"{100 * accuracy:.2f}" in html


def test_a_range_for_the_training_fractions_is_rejected_even_for_random_search(capsys, tmp_path):
    space = tmp_path / "space.toml"
    old = "[smoke.fractions]\ntrain_fraction = [0.1, 0.2, 0.5]"
    assert old in Q1_SPACE
    space.write_text(Q1_SPACE.replace(old, "[smoke.fractions]\ntrain_fraction = {min = 0.1, max = 0.5}"))
    code = main(["q1", "--profile", "smoke", "--dataset", "digits", "--tuner", "random", "--space", str(space),
                 "--results", str(tmp_path / "results")])
    assert_one_line_error(capsys, code, "[smoke.fractions] train_fraction must be a list of values")
    assert not (tmp_path / "results").exists()
