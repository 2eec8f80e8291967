"""run_question: load data, run every experiment of a question, store the results.

The one place that ties the parts together: questions declare, ``data`` loads, each
experiment kind (``experiments/``) runs its step on the ``ExperimentRunner`` it is
given, ``results`` stores, and ``report`` renders from the store alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from dlcv_keras.backends import import_tensorflow_quietly, onednn_state
from dlcv_keras.data import DataUnavailable, Dataset, load_dataset
from dlcv_keras.questions import Question
from dlcv_keras.report.format import tuner_words
from dlcv_keras.resources import packaged_dir
from dlcv_keras.results import SCHEMA_VERSION, ResultsStore
from dlcv_keras.settings import Settings
from dlcv_keras.tuning.fingerprint import fingerprint
from dlcv_keras.tuning.spaces import ProfileSpace, load_space
from dlcv_keras.validation import InvalidParameterError

PACKAGES = ("dlcv_keras", "tensorflow", "keras", "keras-tuner", "jax", "jaxlib", "numpy", "scikit-learn",
            "tensorflow-datasets", "matplotlib", "jinja2", "weasyprint")
# What a stored result depends on besides its settings and data: a resumed search or a skipped
# experiment must have been made by the same code on the same backend.
CODE_PACKAGES = ("dlcv_keras", "keras", "keras-tuner", "tensorflow", "jax")


def space_file(question: Question, settings: Settings) -> Path:
    return settings.space_file or packaged_dir("tuners") / f"{question.name}.toml"


def prepare(question: Question, settings: Settings, echo=print) -> tuple[ProfileSpace, Dataset | None]:
    """Everything that can fail on bad input, before anything is written.

    The dataset is None for a question that makes its own data (q2, q6).
    """
    space = check_space(question, settings)
    if question.dataset is None and settings.dataset is None:
        return space, None
    import_tensorflow_quietly()   # TensorFlow Datasets may import it while loading
    data = load_question_data(question, settings, space, echo)
    for experiment in question.experiments_for(question.implementation(settings.implementation)):
        if experiment.HAS_TABLE:
            experiment.check_data(question, settings, space.experiment(experiment.name), data,
                                  f"{space.source} [{settings.profile}.{experiment.name}]")
    return space, data


def check_space(question: Question, settings: Settings) -> ProfileSpace:
    """The question's space file for this profile: every table's names against what its experiment
    reads, and each experiment's own checks (required settings, option values). No data, no Keras."""
    implementation = question.implementation(settings.implementation)
    # An experiment that fixes its tuner (q16's random search, the training fractions' grid) parses as it.
    tuners = {e.name: getattr(e, "tuner", None) or settings.tuner for e in question.all_experiments()}
    space = load_space(space_file(question, settings), settings.profile, experiments=question.space_domains(),
                       required=question.space_tables(implementation), tuner=tuners)
    if question.early_stopping and space.early_stopping is None:
        raise InvalidParameterError(
            f"{space.source} [{settings.profile}] must have an [{settings.profile}.early_stopping] table "
            f"(min_epochs, min_delta) for {question.name}, got none")
    for experiment in question.experiments_for(implementation):
        if experiment.HAS_TABLE:
            experiment.check(question, settings, space.experiment(experiment.name),
                             f"{space.source} [{settings.profile}.{experiment.name}]")
        experiment.check_question(question, settings, space)
    return space


def load_question_data(question: Question, settings: Settings, space: ProfileSpace, echo=print) -> Dataset:
    name = settings.dataset or question.dataset
    caps = dict(data_dir=settings.data_dir, val_fraction=question.val_fraction, seed=settings.seed,
                max_train=space.settings.get("max_train"), max_test=space.settings.get("max_test"),
                allow_download=settings.allow_download, keep_uint8=question.uint8_images,
                image_size=settings.image_size)
    try:
        return load_dataset(name, **caps)
    except DataUnavailable as exc:
        fallback = question.fallback_dataset
        if fallback is None or settings.dataset is not None or not settings.allow_fallback:
            hint = " (--no-fallback is set)" if fallback and not settings.allow_fallback else ""
            raise InvalidParameterError(
                f"{exc}; point --data-dir or DLCV_DATA_DIR at a folder holding {name}/{hint}") from None
        banner = f"{name.upper()} unavailable: ran on {fallback}"
        echo("\n" + "!" * 72 + f"\n!!  {banner}\n!!  ({exc})\n!!  Use --no-fallback to make this an error.\n" + "!" * 72 + "\n")
        data = load_dataset(fallback, **caps)
        data.info["requested"] = name          # what the question asked for; "name" is what it got
        data.info["fallback_banner"] = banner
        data.info["notes"].insert(0, f"{banner}: {exc}")
        return data


def results_store(question: Question, settings: Settings) -> ResultsStore:
    """results/<q>/<profile>/, or a subfolder for an implementation other than the question's default."""
    implementation = question.implementation(settings.implementation)
    return ResultsStore(settings.results_dir, question.name, settings.profile,
                        implementation=None if implementation == question.implementations[0] else implementation)


def run_question(question: Question, settings: Settings, *, space: ProfileSpace | None = None,
                 data: Dataset | None = None, echo=print, cluster=None) -> ResultsStore:
    """The whole question in this process; with a chief's ``cluster`` (tuning/cluster.py), its searches'
    trials run on workers (started here, once the data is loaded)."""
    from dlcv_keras.results import RunLock

    store = results_store(question, settings)
    # The results folder's lock first: a second run on this folder stops here, before it loads data
    # or starts workers (and before a worker could write into the first run's tuner projects).
    with RunLock(store.root, echo=echo):
        if cluster is not None:
            # A question workers cannot help with, or a port in use, stops the run before anything is loaded.
            check_distributable(question, settings)
            cluster.listen()
        if space is None or (data is None and question.dataset is not None):
            space, data = prepare(question, settings, echo)
        if cluster is not None:
            # Local workers start once the data is checked and loaded (and cached, for them to load alike):
            # a bad space file or missing data is the chief's one line, and no two processes download at once.
            cluster.start_workers()
        return _run_locked(question, settings, space, data, store, echo, cluster)


def check_distributable(question: Question, settings: Settings) -> None:
    """A question whose searches workers can run: it has one, and every search depends only on the
    data and earlier searches' best settings (which a worker reads from the shared results)."""
    from dlcv_keras.experiments.search import Search

    experiments = question.experiments_for(question.implementation(settings.implementation))
    if not any(isinstance(e, Search) for e in experiments):
        raise InvalidParameterError(f"{question.name} has no search to share among workers: run it without "
                                    f"--workers or KERASTUNER_* variables")
    preparing = [e.name for e in experiments if e.PREPARES_SEARCHES]
    if preparing:
        raise InvalidParameterError(f"{question.name} cannot share its searches among workers: its {preparing[0]} "
                                    f"step makes what they start from in the chief's memory; run it in one process")


def run_identity(question: Question, settings: Settings, space: ProfileSpace, dataset: dict,
                 code_versions: dict) -> dict:
    """What a chief and its workers must share (tuning/cluster.py refuses a worker that differs):
    everything a search's project name is a fingerprint of, part by part, so a refusal can name it."""
    return {"question": question.name, "implementation": question.implementation(settings.implementation),
            "profile": settings.profile, "tuner": settings.tuner, "seed": settings.seed,
            "data_hash": dataset.get("content_hash"),
            "space_hash": fingerprint({k: e.as_dict() for k, e in space.experiments.items()}, space.settings,
                                      space.early_stopping),
            "options": fingerprint(_question_options(settings)), "devices": settings.devices, **code_versions}


def _question_options(settings: Settings) -> list:
    return [settings.expression, settings.points, settings.kernel_size, settings.sigma, settings.image_size,
            settings.weights]


def run_worker(question: Question, settings: Settings, cluster, echo=print) -> None:
    """A worker's part of a shared run: every search's trials the chief hands out, nothing else. It
    loads the data itself, writes trial records into the shared results folder and never writes the
    run's own files (the chief holds the results folder's lock)."""
    from dlcv_keras.experiments.search import Search

    check_distributable(question, settings)
    space, data = prepare(question, settings, echo)
    import_tensorflow_quietly()
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    code_versions = code_fingerprint(environment(settings))
    dataset = data.info if data is not None else {}
    cluster.store = results_store(question, settings)
    cluster.start(run_identity(question, settings, space, dataset, code_versions), echo)
    # --fresh is the chief's to apply: it moves old projects aside before serving them.
    worker_settings = dataclasses.replace(settings, fresh=False)
    runner = ExperimentRunner(question, worker_settings, space, data, cluster.store, echo, code_versions,
                              cluster=cluster)
    for experiment in question.experiments_for(question.implementation(settings.implementation)):
        if isinstance(experiment, Search):
            runner.run(experiment)
    trips = sorted(cluster.round_trips)
    median = f", median round trip {1000 * trips[len(trips) // 2]:.1f} ms" if trips else ""
    echo(f"{cluster.tuner_id}: every search of {question.name} is over; {len(trips)} calls to the chief{median}")


def _run_locked(question, settings, space, data, store, echo, cluster=None) -> ResultsStore:
    import_tensorflow_quietly()
    # Every trial builds a new model, so tf.function retracing is expected, not a problem to warn of.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    implementation = question.implementation(settings.implementation)
    dataset = data.info if data is not None else dict(question.generated_data or {"name": "none"})
    started = time.perf_counter()
    env = environment(settings)
    code_versions = code_fingerprint(env)
    # The run's identity: what its stored summaries must match to count as this run's (the report
    # marks the others stale). A resumed run with the same settings, data and code keeps it.
    identity = run_identity(question, settings, space, dataset, code_versions)
    run_id = fingerprint(identity)
    run = {
        "schema_version": SCHEMA_VERSION, "question": question.name, "title": question.title,
        "seed_writeup": question.seed_writeup, "profile": settings.profile,
        # --tuner as it applied (None: every search fixes its own algorithm), and what each search ran.
        "tuner": settings.tuner if question.takes_tuner(implementation) else None,
        "tuners": question.search_tuners(implementation, settings.tuner),
        "implementation": implementation, "seed": settings.seed, "run_id": run_id, "status": "running",
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "finished": None, "wall_seconds": None, "space_file": space.source,
        # The seed's own dataset: a run on another one is not compared with the seed's numbers.
        "seed_dataset": question.dataset,
        "dataset": dataset, "environment": env, "sections": question.sections(implementation),
        "reference": question.reference,
    }
    store.run_id = run_id
    store.write_json("run.json", run)
    where = (f"{dataset['name']} {dataset['splits']} from {dataset['source']}" if "splits" in dataset
             else dataset.get("source", "no dataset"))
    echo(f"{question.name}: {question.title} | {implementation} | profile {settings.profile}, "
         f"tuner {tuner_words(run)}, seed {settings.seed}, backend {env['keras_backend']} | {where}")
    for note in dataset.get("notes", []):
        echo(f"  note: {note}")

    runner = ExperimentRunner(question, settings, space, data, store, echo, code_versions, run, cluster=cluster)
    try:
        if cluster is not None:
            cluster.start(identity, echo)
        for experiment in question.experiments_for(implementation):
            runner.run(experiment)
    except BaseException as stopped:
        run["status"] = "interrupted" if isinstance(stopped, KeyboardInterrupt) else "failed"
        store.write_json("run.json", run)
        raise
    finally:
        if cluster is not None:
            # Stopped early (Ctrl-C, a failure), the workers are mid-trial: no point waiting for them.
            cluster.close(grace=0.0 if sys.exc_info()[0] is not None else 5.0)
    run["status"] = "complete"
    run["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    run["wall_seconds"] = round(time.perf_counter() - started, 1)
    store.write_json("run.json", run)
    if question.lessons and implementation == question.implementations[0]:
        judge_lessons(question, store, echo)
    echo(f"{question.name}: done in {run['wall_seconds']:.0f} s; results in {store.root}")
    return store


def judge_lessons(question: Question, store: ResultsStore, echo=print) -> list[dict]:
    """lessons.json: each lesson of the question's seed, checked on what this run stored."""
    from dlcv_keras import lessons

    found = lessons.write(store, question.lessons)
    for lesson in found:
        why = f" ({lesson['cause']})" if lesson.get("cause") else ""
        echo(f"  lesson {lesson['verdict'].replace('_', ' ')}: {lesson['claim']}{why}")
    counts = lessons.scoreboard(found)
    echo(f"{question.name}: {counts['reproduced']} of {len(found)} lessons reproduced")
    return found


class ExperimentRunner:
    """What an experiment's run step gets: the question, settings, profile space, data and store,
    plus what earlier experiments of the run left (``best`` settings of searches, retrained ``models``)."""

    def __init__(self, question, settings, space, data, store, echo, code_versions: dict, run: dict | None = None,
                 cluster=None):
        self.question, self.settings, self.space = question, settings, space
        self.cluster = cluster                       # a chief's or worker's part in a shared search, or None
        self.run_record = run                        # run.json as being written
        self.data, self.store, self.echo = data, store, echo
        self.implementation = question.implementation(settings.implementation)
        self.code_versions = code_versions           # part of every resume fingerprint
        self.fresh = settings.fresh                  # --fresh: redo what is stored, move old tuner projects aside
        self.tuner_options = {"fresh": True} if settings.fresh else {}
        self.best: dict[str, dict] = {}
        self.models: dict[str, object] = {}
        # Builder arguments that are not hyperparameters, by model name (q10's pretrained weights).
        self.model_kwargs: dict[str, dict] = {}
        # What those arguments stand for, for resume fingerprints: a weights file's size and time, the
        # source checkpoint's own fingerprint, or a preset's name (a path alone can be overwritten).
        self.model_sources: dict[str, object] = {}
        self.best_records: dict[str, dict] = {}      # a search's best trial record (its history)
        self.model_files: dict[str, Path] = {}       # a search's best trained model, when it kept them
        self._input_stats = None

    def replace_data(self, data, banner: str | None) -> None:
        """An experiment changed the task (q10 without pretrained weights: a source and a target
        task cut from one dataset; q10's small target set). Later experiments train on ``data``; a
        banner is said on the console, in run.json and at the top of the report, as the digits
        fallback's is (None keeps the one already set)."""
        self.data = data
        self._input_stats = None
        if banner is not None:
            self.echo("\n" + "!" * 72 + f"\n!!  {banner}\n" + "!" * 72 + "\n")
        if self.run_record is not None:
            kept = banner if banner is not None else (self.run_record.get("dataset") or {}).get("fallback_banner")
            self.run_record["dataset"] = {**data.info, "fallback_banner": kept}
            self.store.write_json("run.json", self.run_record)

    def input_stats(self) -> tuple[list[float], list[float]] | None:
        """Per-channel mean and variance of the training images: what a convolutional model's
        Normalization layer is set to (computed once per run, on the training split only)."""
        if self._input_stats is None and self.data is not None:
            from dlcv_keras.data.transforms import channel_stats
            x = self.data.x_train
            self._input_stats = channel_stats(x, 255.0 if x.dtype.kind == "u" else 1.0)
        return self._input_stats

    def run(self, experiment) -> None:
        started = time.perf_counter()
        experiment.run(self)
        self.echo(f"[{experiment.name}] finished in {time.perf_counter() - started:.1f} s")


def code_fingerprint(env: dict) -> dict:
    """The Keras backend and the versions of the code that shaped a result (package, Keras,
    KerasTuner, TensorFlow, JAX): a change of any of them starts a search afresh."""
    return {"keras_backend": env["keras_backend"], "git_revision": env.get("git_revision"),
            **{name: env["packages"].get(name) for name in CODE_PACKAGES}}


def environment(settings: Settings) -> dict:
    import keras

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "keras_backend": keras.backend.backend(), "packages": versions,
            "git_revision": git_revision(), "seed": settings.seed, "command": shlex.join(sys.argv),
            "process_id": os.getpid(), "devices": settings.devices,
            # TensorFlow's oneDNN kernels: faster convolutions on a CPU, slightly different rounding.
            "onednn": onednn_state()}


def git_revision() -> str | None:
    """The checkout's commit when run from one (with "-dirty" for uncommitted changes), else None."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
