"""What every experiment kind shares: its declaration, the settings it reads, its report section.

A kind is one module of this package (``search.py``, ``conv_blur.py``, ...) holding
- a frozen dataclass a question module instantiates (the declaration), with ``SETTINGS``:
  the names its [<profile>.<name>] table may hold and their domains;
- ``run(runner)``: the run step, whose Keras/TensorFlow imports stay inside it, so that
  building a report never loads them;
- ``VIEWS``: report template name -> the function turning its stored files into the values
  ``report_templates/sections/<template>.html.jinja2`` lays out.

Nothing here imports Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

from dlcv_keras.validation import InvalidParameterError


@dataclass(frozen=True)
class Experiment:
    """One step of a question: ``name`` is its results folder and space table, ``title`` its heading.

    ``template`` picks one of the kind's report views (default: its first); ``show=False``
    keeps it out of the report (a run another experiment's section presents).
    """
    name: str
    title: str
    template: str | None = None
    show: bool = True

    KIND: ClassVar[str] = ""
    VIEWS: ClassVar[tuple[str, ...]] = ()
    SETTINGS: ClassVar[Mapping[str, tuple]] = {}     # name -> domain (tuning/spaces.py's format)
    REQUIRED: ClassVar[tuple[str, ...]] = ()         # names its table must set
    LISTABLE: ClassVar[tuple[str, ...]] = ()         # names that may be lists (the rest are single values)
    HAS_TABLE: ClassVar[bool] = True                 # reads a [<profile>.<name>] table
    # Leaves in the runner's memory what later searches start from (weights, a new task): the
    # question's searches cannot then run on workers, which see only the stored results.
    PREPARES_SEARCHES: ClassVar[bool] = False

    @property
    def view(self) -> str:
        return self.template or self.VIEWS[0]

    def accepted(self, question) -> Mapping[str, tuple]:
        """The names this experiment's table may hold, with their domains."""
        return self.SETTINGS

    def check(self, question, settings, table, where: str) -> None:
        """Before anything is written: required names set, single values where one is expected."""
        for key in self.REQUIRED:
            if key not in table.fixed and key not in table.choices:
                raise InvalidParameterError(f"{where} must set {key}, got keys {sorted({*table.fixed, *table.choices})!r}")
        for key in sorted(set(table.choices) - set(self.listable())):
            raise InvalidParameterError(f"{where} {key} must be a single value (this experiment runs once), "
                                        f"got a list {table.choices[key]!r}")
        for key in sorted(set(table.ranges) - set(self.listable())):
            raise InvalidParameterError(f"{where} {key} must be a single value, got a range")

    def listable(self) -> tuple[str, ...]:
        return self.LISTABLE

    def check_question(self, question, settings, space) -> None:
        """Checks that need other experiments' tables (a kind without a table of its own); none by default."""

    def check_data(self, question, settings, table, data, where: str) -> None:
        """Checks that need the loaded data (sizes), before anything is written; none by default."""

    def section(self) -> dict[str, Any]:
        """run.json's "sections" entry: which template shows which stored experiment."""
        return {"template": self.view, "experiment": self.name, "title": self.title}

    def run(self, runner) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no run step")


def table_values(runner, experiment: Experiment) -> dict:
    """The experiment's table: pinned values as they are, lists as lists."""
    table = runner.space.experiment(experiment.name)
    return {**table.fixed, **table.choices}


# The settings the from-scratch kinds read, one domain each; a kind's SETTINGS picks its names.
DOMAINS: dict[str, tuple] = {
    "lr": ("float", 0.0, 10.0, "right"),
    "l2": ("float", 0.0, 10.0, "both"),
    "epochs": ("int", 1, 100_000, "both"),
    "batch_size": ("int", 1, 1_000_000, "both"),
    "images": ("int", 1, 1_000_000, "both"),          # how many training images an experiment uses
    "kernel_size": ("int", 1, 99, "both"),
    "sigma": ("float", 0.0, 100.0, "right"),           # Gaussian kernel width, in pixels
    "filters": ("int", 1, 4096, "both"),
    "stride": ("int", 1, 99, "both"),
    "clip": ("float", 0.0, 1e12, "right"),            # gradients clipped elementwise to [-clip, clip]
    "pixel_scale": ("float", 0.0, 1e6, "right"),      # images in [0, 1] are multiplied by this (q5: 255)
    "reduction": ("str", ("sum", "mean")),            # q5: squared error per image summed, or averaged
    "iterations": ("int", 1, 10_000_000, "both"),
    "lr_decay": ("float", 0.0, 1.0, "right"),
    "step": ("float", 0.0, 1.0, "right"),             # central-difference step
    "n": ("int", 1, 10**12, "both"),                  # q16: epsilon = 1/N
    "count": ("int", 1, 10_000, "both"),
}


def pick(*names: str) -> dict[str, tuple]:
    return {name: DOMAINS[name] for name in names}


def experiment_fingerprint(runner, experiment: Experiment, values: dict) -> str:
    """A hash of what shapes the experiment's result: question, settings, seed, data and code versions."""
    from dlcv_keras.tuning.fingerprint import fingerprint

    data_hash = runner.data.info["content_hash"] if runner.data is not None else None
    return fingerprint(runner.question.name, experiment.name, runner.settings.profile, runner.settings.seed,
                       data_hash, values, runner.code_versions)


def already_done(runner, experiment: Experiment, fingerprint: str) -> bool:
    """True (and says so) when the stored summary was made with the same fingerprint: an
    interrupted question resumes at the experiment it stopped in."""
    path = runner.store.experiment_dir(experiment.name) / "summary.json"
    if runner.fresh or not path.is_file():
        return False
    try:
        stored = runner.store.read_json(f"experiments/{experiment.name}/summary.json")
    except ValueError:
        return False                     # unreadable: run it again and overwrite
    if isinstance(stored, dict) and stored.get("fingerprint") == fingerprint:
        runner.echo(f"[{experiment.name}] already done with these settings (stored); skipped")
        if stored.get("run_id") != runner.store.run_id:      # valid for this run too: not stale
            runner.store.write_json(f"experiments/{experiment.name}/summary.json",
                                    {**stored, "run_id": runner.store.run_id})
        return True
    return False


# -- observations several kinds share (the general rules are report/observe.py's) -----------------
# A float64 gradient check lands below this relative error; 1e-2 or more means a bug
# (scratch/gradient_check.rel_error, the exercises' convention).
RELATIVE_TOLERANCE = 1e-7


def tolerance_words(subject: str, other: str, value: Any, tolerance: float, measure: str, detail: str = "") -> str | None:
    """"<subject> agrees with <other> to 3.6e-09 (<measure>; <detail>; tolerance 1e-07)." or the sentence
    saying it does not; None when the value is not stored. A nan or inf never agrees."""
    from dlcv_keras.report.format import as_number, fmt_sci, is_finite

    value = as_number(value)
    if value is None or value == "" or isinstance(value, str):
        return None
    if is_finite(value) and abs(value) <= tolerance:
        return f"{subject} agrees with {other} to {fmt_sci(value)} ({measure}{'; ' + detail if detail else ''}; " \
               f"tolerance {tolerance:g})."
    return (f"{subject} does not agree with {other}: the {measure} reaches {fmt_sci(value)}, more than the "
            f"{tolerance:g} tolerance{f' ({detail})' if detail else ''}.")


def run_causes(store, run: Mapping[str, Any] | None, *, epochs: Any = None, seed_epochs: Any = None,
               lr: Any = None, seed_lr: Any = None, unstated: Sequence[str] | None = (),
               extra: Sequence[str] = ()) -> list[str]:
    """observe.known_causes, plus the offline pretrained-weights substitute when the question has one."""
    from dlcv_keras.experiments.pretrained_source import substitute
    from dlcv_keras.report.observe import known_causes

    found = substitute(store, run)
    if found is not None:
        cause, banner = found
        dataset = (run or {}).get("dataset") or {}
        if banner and dataset.get("fallback_banner") == banner and dataset.get("requested") in (None, dataset.get("name")):
            # The substitute's banner is not a dataset fallback (same dataset, another task): its own cause says it.
            run = {**run, "dataset": {**dataset, "fallback_banner": None}}
        extra = [*extra, cause]
    return known_causes(run, epochs=epochs, seed_epochs=seed_epochs, lr=lr, seed_lr=seed_lr, unstated=unstated,
                        extra=extra)


def seed_observations(items: Sequence[tuple], run: Mapping[str, Any] | None) -> list[str]:
    """observe.against_seed for several numbers, each item (what, ours, seed, noise, causes); a list
    of causes is spelled out once, later sentences with the same list refer back to it."""
    from dlcv_keras.report.observe import against_seed

    sentences, said = [], {}
    for what, ours, seed, noise_, causes in items:
        key = tuple(causes)
        shown = [f"as for the {said[key]}"] if key in said else list(causes)
        sentence = against_seed(what, ours, seed, run, noise_, shown)
        if sentence is None:
            continue
        if causes and key not in said and "; ".join(causes) in sentence:
            said[key] = what
        sentences.append(sentence)
    return sentences
