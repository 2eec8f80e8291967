"""What a question is: a declaration of its data, default model and experiments.

A question module holds one ``Question`` built from experiment kinds (dlcv_keras/experiments/)
and does no work at import time. The pipeline runs its experiments in order; each experiment
knows the settings its space table may hold, its run step and its report section.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Question:
    name: str
    title: str
    seed_writeup: str
    dataset: str | None                         # None: the question makes its own data (q2, q6)
    model: str | None                           # default model (models.BUILDERS) of experiments naming none
    experiments: tuple
    optimizer: str = "sgd"
    fallback_dataset: str | None = None         # used, with a loud banner, when ``dataset`` cannot be had
    val_fraction: float = 0.2
    early_stopping: bool = False                # apply the profile's [early_stopping] rule to every fit
    reference: dict = field(default_factory=dict)   # the seed's numbers, keyed by experiment name
    implementations: tuple = ("keras",)         # --impl values; the first is the default
    extra_experiments: dict = field(default_factory=dict)   # implementation -> experiments only it runs
    options: tuple = ()                         # question-specific CLI options it accepts ("expr", "kernel_size", ...)
    generated_data: dict | None = None          # run.json "dataset" for a question without a dataset
    uint8_images: bool = False                  # keep images uint8 until a batch forms (data/images.py)
    lessons: tuple = ()                         # what the seed teaches, each checked on the stored numbers (lessons.py)

    def implementation(self, requested: str | None = None) -> str:
        return requested or self.implementations[0]

    def experiments_for(self, implementation: str | None = None) -> tuple:
        return self.experiments + tuple(self.extra_experiments.get(self.implementation(implementation), ()))

    def all_experiments(self) -> tuple:
        """Every implementation's experiments: the tables a space file for this question may hold."""
        extra = [e for group in self.extra_experiments.values() for e in group]
        return self.experiments + tuple(extra)

    def experiment(self, name: str):
        for experiment in self.all_experiments():
            if experiment.name == name:
                return experiment
        raise KeyError(f"{self.name} has no experiment {name!r}")

    def space_tables(self, implementation: str | None = None) -> list[str]:
        """Experiments with a table of their own in the search-space file."""
        return [e.name for e in self.experiments_for(implementation) if e.HAS_TABLE]

    def space_domains(self) -> dict[str, dict]:
        """Table name -> the names it may hold and their domains, for every implementation's experiments."""
        return {e.name: dict(e.accepted(self)) for e in self.all_experiments() if e.HAS_TABLE}

    def search_tuners(self, implementation: str | None = None, requested: str = "grid") -> dict[str, str]:
        """Each search's algorithm, in order: its own when it fixes one (``Search.tuner``), else
        ``requested`` (--tuner)."""
        return {e.name: e.tuner or requested for e in self.experiments_for(implementation) if hasattr(e, "tuner")}

    def takes_tuner(self, implementation: str | None = None) -> bool:
        """Whether --tuner chooses the algorithm of at least one of its searches."""
        return any(e.tuner is None for e in self.experiments_for(implementation) if hasattr(e, "tuner"))

    def models(self, implementation: str | None = None) -> list[str]:
        """The Keras models this question's experiments train, in order (they decide its backend)."""
        return [e.model_name(self) for e in self.experiments_for(implementation) if hasattr(e, "model_name")]

    def sections(self, implementation: str | None = None) -> list[dict]:
        """run.json's "sections": one per shown experiment, in order."""
        return [e.section() for e in self.experiments_for(implementation) if e.show]
