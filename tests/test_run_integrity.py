"""What keeps stored results honest: run ids and stale summaries, the resume fingerprint (backend
and versions), torn or foreign KerasTuner projects and --fresh, the results-folder lock, and
several questions each in a process of its own."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlcv_keras.report import report_context
from dlcv_keras.results import RunLock
from dlcv_keras.run import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli import child_env, offline_env  # noqa: E402,F401  (offline_env is a fixture)

SMOKE = ["--profile", "smoke", "--dataset", "digits", "--report", "none"]


def q1_smoke(results: Path, *extra: str) -> int:
    return main(["q1", *SMOKE, "--results", str(results), *extra])


def cli(args, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlcv_keras.run", *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(env_extra))


@pytest.fixture(scope="module")
def finished_q1(tmp_path_factory) -> Path:
    """One complete q1 smoke run; tests copy it before they change anything."""
    results = tmp_path_factory.mktemp("finished") / "results"
    assert q1_smoke(results) == 0
    return results


def copy_of(results: Path, tmp_path: Path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(results, target)
    return target


# -- stale summaries -------------------------------------------------------------------------
@pytest.mark.slow
def test_a_half_finished_rerun_with_another_seed_shows_the_earlier_runs_summaries_as_stale(
        finished_q1, tmp_path, monkeypatch, capsys):
    results = copy_of(finished_q1, tmp_path)
    first = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    from dlcv_keras.experiments.evaluate_best import EvaluateBest

    def interrupted(self, runner):
        raise KeyboardInterrupt
    monkeypatch.setattr(EvaluateBest, "run", interrupted)     # the second run stops at "best"
    assert q1_smoke(results, "--seed", "1") == 130
    run = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    assert run["status"] == "interrupted" and run["seed"] == 1 and run["run_id"] != first["run_id"]

    sections = {s["experiment"]: s for s in report_context(results, ["q1"], "smoke")["questions"][0]["sections"]}
    for name in ("base", "lr_batch", "full_grid"):            # redone by the second run
        assert sections[name]["stale"] is None, name
        summary = json.loads((results / "q1" / "smoke" / "experiments" / name / "summary.json").read_text())
        assert summary["run_id"] == run["run_id"]
    for name in ("best", "sklearn", "fractions"):             # left over from the first run
        assert sections[name]["stale"].startswith(f"Stale: these numbers were stored by an earlier run "
                                                  f"({first['run_id']})"), name
    html = (results / "page.html")
    from dlcv_keras.report import build_report
    build_report(results, ["q1"], "smoke", output=html)
    assert html.read_text().count("Stale: these numbers were stored by an earlier run") == 3


@pytest.mark.slow
def test_the_same_command_again_keeps_the_run_id_and_shows_nothing_stale(finished_q1, tmp_path):
    results = copy_of(finished_q1, tmp_path)
    before = json.loads((results / "q1" / "smoke" / "run.json").read_text())["run_id"]
    assert q1_smoke(results) == 0
    assert json.loads((results / "q1" / "smoke" / "run.json").read_text())["run_id"] == before
    sections = report_context(results, ["q1"], "smoke")["questions"][0]["sections"]
    assert [s["stale"] for s in sections] == [None] * len(sections)


def test_the_implementations_comparison_refuses_runs_on_different_data(tmp_path):
    from dlcv_keras.report.context import compare_implementations
    from dlcv_keras.results import ResultsStore

    stores = []
    for implementation, content_hash in ((None, "sha256:aaa"), ("scratch", "sha256:bbb")):
        store = ResultsStore(tmp_path, "q3", "smoke", implementation=implementation)
        store.write_json("run.json", {"schema_version": 1, "question": "q3", "sections": [],
                                      "dataset": {"name": "digits", "content_hash": content_hash}})
        stores.append(store)
    comparison = compare_implementations(stores)
    assert comparison["mismatch"].startswith("Not compared: the implementations did not see the same data")
    assert "sha256:aaa" in comparison["mismatch"] and "sha256:bbb" in comparison["mismatch"]
    assert comparison["searches"] == [] and not comparison["best"]["found"]


# -- the resume fingerprint --------------------------------------------------------------------
@pytest.mark.slow
def test_a_search_on_another_backend_starts_afresh_instead_of_reusing_its_trials(finished_q1, tmp_path):
    results = copy_of(finished_q1, tmp_path)
    tuner = results / "q1" / "smoke" / "tuner"
    projects = sorted(p.name for p in tuner.iterdir())
    done = cli(["q1", *SMOKE, "--results", str(results)], {"KERAS_BACKEND": "tensorflow"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already finished (resuming)" not in done.stdout
    assert json.loads((results / "q1" / "smoke" / "run.json").read_text())["environment"]["keras_backend"] == "tensorflow"
    after = sorted(p.name for p in tuner.iterdir())
    assert set(projects) < set(after) and len(after) == 2 * len(projects)   # one new project per search


@pytest.mark.slow
def test_a_search_on_another_device_count_starts_afresh_and_the_run_is_another(finished_q1, tmp_path):
    # finished_q1 ran on one device (JAX); the same command on two must not resume its searches, and
    # what the one-device run stored is not this run's.
    results = copy_of(finished_q1, tmp_path)
    tuner = results / "q1" / "smoke" / "tuner"
    projects = sorted(p.name for p in tuner.iterdir())
    first = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    done = cli(["q1", *SMOKE, "--results", str(results), "--devices", "2"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already finished (resuming)" not in done.stdout
    run = json.loads((results / "q1" / "smoke" / "run.json").read_text())
    assert run["environment"]["devices"] == 2 and first["environment"]["devices"] == 1
    assert run["run_id"] != first["run_id"]
    after = sorted(p.name for p in tuner.iterdir())
    assert set(projects) < set(after) and len(after) == 2 * len(projects)   # one new project per search


def test_the_run_identity_holds_the_device_count():
    from dlcv_keras.pipeline import check_space, run_identity
    from dlcv_keras.questions import QUESTIONS
    from dlcv_keras.settings import Settings
    from dlcv_keras.tuning.cluster import identity_difference
    from dlcv_keras.tuning.fingerprint import fingerprint

    question = QUESTIONS["q1"]
    space = check_space(question, Settings(profile="smoke"))
    one, two = (run_identity(question, Settings(profile="smoke", devices=count), space, {"content_hash": "abc"},
                             {"keras_backend": "jax"}) for count in (1, 2))
    assert (one["devices"], two["devices"]) == (1, 2)
    assert fingerprint(one) != fingerprint(two)              # the run id: summaries made on 1 device are stale
    assert identity_difference(two, one) == "its device count (--devices) 1 differs from the chief's 2"


def test_the_code_fingerprint_names_backend_and_versions():
    from dlcv_keras.pipeline import CODE_PACKAGES, code_fingerprint

    env = {"keras_backend": "jax", "packages": {name: "1.0" for name in CODE_PACKAGES}}
    assert set(code_fingerprint(env)) == {"keras_backend", "git_revision", "dlcv_keras", "keras", "keras-tuner",
                                          "tensorflow", "jax"}
    changed = {"keras_backend": "jax", "packages": {**env["packages"], "keras-tuner": "1.4.9"}}
    assert code_fingerprint(changed) != code_fingerprint(env)


# -- torn KerasTuner files, --fresh ---------------------------------------------------------------
@pytest.mark.slow
def test_a_torn_oracle_is_one_line_naming_the_project_and_fresh_moves_it_aside(finished_q1, tmp_path, capsys):
    results = copy_of(finished_q1, tmp_path)
    project = next((results / "q1" / "smoke" / "tuner").glob("base-*"))
    oracle = project / "oracle.json"
    oracle.write_text(oracle.read_text()[:40])                # a kill mid-write
    capsys.readouterr()
    assert q1_smoke(results) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(project) in err and "--fresh" in err

    assert q1_smoke(results, "--fresh") == 0
    kept = list(project.parent.glob(project.name + ".old-*"))
    assert len(kept) == 1 and len((kept[0] / "oracle.json").read_text()) == 40   # kept as it was, torn
    assert json.loads(oracle.read_text())                      # a new, whole project
    assert json.loads((results / "q1" / "smoke" / "run.json").read_text())["status"] == "complete"


# -- one run per results folder ---------------------------------------------------------------
@pytest.mark.slow
def test_a_second_run_on_a_locked_results_folder_stops_at_once_naming_the_first(tmp_path):
    results = tmp_path / "results"
    folder = results / "q1" / "smoke"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom dlcv_keras.results import RunLock\n"
                               "with RunLock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)",
                               str(folder)], stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        done = cli(["q1", *SMOKE, "--results", str(results)])
        assert holder.poll() is None        # it stopped while the first still held the lock: it never waited
        assert done.returncode == 2
        err = done.stderr.strip()
        assert err.startswith("error: results folder") and "\n" not in err and f"pid {holder.pid}" in err
        assert not (folder / "run.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_second_run_stops_at_the_lock_before_it_loads_data_or_starts_workers(tmp_path, monkeypatch, capsys):
    # The first run is this test, holding q1's folder; the second must stop at its lock, before the
    # data loader, the chief's port or its local workers are touched (each records being called).
    from dlcv_keras import pipeline
    from dlcv_keras.tuning.cluster import Cluster

    touched = []

    def loader(*args, **kwargs):
        touched.append("data")
        raise AssertionError("loaded data before taking the results folder's lock")
    monkeypatch.setattr(pipeline, "load_question_data", loader)
    monkeypatch.setattr(Cluster, "listen", lambda self: touched.append("port"))
    monkeypatch.setattr(Cluster, "start_workers", lambda self: touched.append("workers"))
    results = tmp_path / "results"
    with RunLock(results / "q1" / "smoke"):
        for extra in ([], ["--workers", "1"]):
            assert q1_smoke(results, *extra) == 2
            err = capsys.readouterr().err.strip()
            assert err.startswith("error: results folder") and "\n" not in err and f"pid {os.getpid()}" in err
            assert touched == []
        assert os.listdir(results / "q1" / "smoke") == [".lock"]       # nothing written beside the lock
    assert not results.exists()          # the folders made for the lock go with it, empty


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path):
    folder = tmp_path / "q1"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "x"}))
    heard = []
    with RunLock(folder, echo=heard.append):
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    assert heard and not (folder / ".lock").exists()


# -- several questions, a process each ---------------------------------------------------------
@pytest.mark.slow
def test_several_questions_run_each_in_its_own_process_and_a_failing_one_does_not_stop_the_rest(offline_env):
    results = offline_env / "results"
    empty = offline_env / "no-data"
    empty.mkdir()
    done = cli(["q4", "q2", "q6", "--profile", "smoke", "--results", str(results), "--report", "none",
                "--no-fallback", "--no-download", "--data-dir", str(empty)])
    # q4 needs MNIST, which is nowhere: bad input for it alone; q2 and q6 make their own data.
    assert done.returncode == 2, done.stderr[-2000:]
    assert "questions: q4 bad input (exit 2), q2 done, q6 done" in done.stdout
    assert done.stderr.count("error: ") == 1 and "mnist" in done.stderr.lower()
    pids = {q: json.loads((results / q / "smoke" / "run.json").read_text())["environment"]["process_id"]
            for q in ("q2", "q6")}
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert not (results / "q4" / "smoke" / "run.json").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_running_question_and_starts_no_other(offline_env):
    results = offline_env / "results"
    parent = subprocess.Popen([sys.executable, "-m", "dlcv_keras.run", "q1", "q3", *SMOKE, "--results", str(results)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env(), text=True)
    run_json = results / "q1" / "smoke" / "run.json"
    deadline = time.time() + 300
    while not run_json.is_file():                          # q1 has started: its data is loaded
        assert parent.poll() is None and time.time() < deadline
        time.sleep(0.05)
    parent.send_signal(signal.SIGINT)                      # only the parent: it passes it on
    output = parent.communicate(timeout=180)[0]
    assert parent.returncode == 130, output[-2000:]
    assert "questions: q1 interrupted; not started: q3" in output
    assert "Traceback" not in output
    assert not (results / "q3").exists()


# -- what each question's process is given ------------------------------------------------------
def test_each_child_gets_only_the_options_its_question_takes_as_flag_equals_value():
    from dlcv_keras.run import build_parser, child_options

    parser = build_parser()
    args = parser.parse_args(["q2", "q4", "q6", "--expr=-x*y + sin(z)", "--kernel-size", "7", "--seed", "3",
                              "--fresh", "--results", "out dir", "-q"])
    assert child_options(parser, args, "q2") == ["--results=out dir", "--seed=3", "--expr=-x*y + sin(z)",
                                                 "--fresh", "--quiet"]
    assert child_options(parser, args, "q4") == ["--results=out dir", "--seed=3", "--kernel-size=7", "--fresh",
                                                 "--quiet"]
    assert "--expr" not in " ".join(child_options(parser, args, "q6"))
    for name in ("q2", "q4", "q6"):                         # what a child parses is what the parent was given
        child = parser.parse_args([name, *child_options(parser, args, name)])
        assert (child.seed, child.fresh, str(child.results), child.quiet) == (3, True, "out dir", True)
    assert parser.parse_args(["q2", *child_options(parser, args, "q2")]).expr == "-x*y + sin(z)"


def test_a_child_killed_by_a_signal_counts_as_a_failure_not_success():
    from dlcv_keras.run import exit_status

    assert [exit_status(code) for code in (0, 1, 2, 130, -9, -11)] == [0, 1, 2, 130, 137, 139]


@pytest.mark.slow
def test_an_expression_for_q2_alone_runs_q2_with_it_and_q6_without(offline_env):
    results = offline_env / "results"
    done = cli(["q2", "q6", "--expr=-x*y + sin(z)", "--profile", "smoke", "--results", str(results),
                "--report", "none"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "questions: q2 done, q6 done" in done.stdout
    summary = json.loads((results / "q2" / "smoke" / "experiments" / "gradients" / "summary.json").read_text())
    assert summary["expression"].replace(" ", "") == "-x*y+sin(z)"


# -- a skipped experiment is this run's too ---------------------------------------------------------
@pytest.mark.slow
def test_an_experiment_skipped_as_already_done_is_not_stale(offline_env, capsys):
    space = offline_env / "q5.toml"
    text = (Path(__file__).resolve().parent.parent / "tuners" / "q5.toml").read_text()
    results = offline_env / "results"
    args = ["q5", *SMOKE, "--space", str(space), "--results", str(results)]
    space.write_text(text)
    assert main(args) == 0
    space.write_text(text.replace("batch_size = [1, 4, 8]\nepochs = 3\n", "batch_size = [1, 4, 8]\nepochs = 4\n", 1))
    assert main(args) == 0                                 # run B changed, run A did not
    assert "[run_a] already done with these settings (stored); skipped" in capsys.readouterr().out
    sections = report_context(results, ["q5"], "smoke")["questions"][0]["sections"]
    assert [s["stale"] for s in sections] == [None, None]


# -- space checks that need the question --------------------------------------------------------------
def test_a_compared_run_must_be_one_setting_before_anything_trains(tmp_path, capsys):
    text = (Path(__file__).resolve().parent.parent / "tuners" / "q8.toml").read_text()
    space = tmp_path / "q8.toml"
    space.write_text(text.replace("[smoke.l2]\n", "[smoke.l2]\nl2 = [0.0001, 0.001]\n", 1).replace(
        "l2 = 0.0001\n\n[smoke.dropout]", "\n[smoke.dropout]", 1))
    assert main(["q8", *SMOKE, "--space", str(space), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("[smoke.l2] l2 must be a single value (compare compares one setting of each run; only "
                        "repeat may be a list), got [0.0001, 0.001]")
    assert not (tmp_path / "r").exists()


def test_patience_is_accepted_for_the_hand_written_solver(tmp_path):
    # The numpy solver has Keras's EarlyStopping too (tests/test_two_layer_cifar.py trains with it).
    from dlcv_keras.pipeline import check_space
    from dlcv_keras.questions import QUESTIONS
    from dlcv_keras.settings import Settings

    text = (Path(__file__).resolve().parent.parent / "tuners" / "q3.toml").read_text()
    space = tmp_path / "q3.toml"
    space.write_text(text.replace("[smoke.grid]\n", "[smoke.grid]\npatience = 2\n", 1))
    settings = Settings(profile="smoke", tuner="grid", space_file=space, implementation="scratch")
    assert check_space(QUESTIONS["q3"], settings).experiment("grid").fixed["patience"] == 2


def test_a_random_search_may_take_ranges_whatever_tuner_is_given():
    from dlcv_keras.pipeline import check_space
    from dlcv_keras.questions import QUESTIONS
    from dlcv_keras.settings import Settings

    text = (Path(__file__).resolve().parent.parent / "tuners" / "q16.toml").read_text()
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        space = Path(folder) / "q16.toml"
        space.write_text(text.replace("units_1 = [64, 128, 256]", "units_1 = {min = 64, max = 256}", 1))
        checked = check_space(QUESTIONS["q16"], Settings(profile="smoke", tuner="grid", space_file=space))
        assert checked.experiment("search").ranges["units_1"].low == 64
