"""What a question is: a declaration of its data, model, experiments and report sections.

A question module holds one ``Question`` and does no work at import time. The
pipeline runs its experiments in order; each experiment names the report section
(a template in report_templates/sections/) that shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Search:
    """A KerasTuner search over the space in tuners/<question>.toml [<profile>.<name>].

    A single-point grid is a plain training run (e.g. a base run). ``base_from`` names an
    earlier search whose best setting fills every value this space leaves out.
    """
    name: str
    title: str
    template: str = "curves"
    base_from: str | None = None
    evaluates_test: bool = False      # also score every trial on the test split (training-fraction plots)
    top_k: int | None = None
    grid_only: bool = False           # every listed value must run (e.g. 10/20/50 %), whatever --tuner says


@dataclass(frozen=True)
class EvaluateBest:
    """Retrain the best setting of ``source`` and evaluate it on train, val and test."""
    name: str
    title: str
    source: str
    template: str = "best"


@dataclass(frozen=True)
class SklearnLogistic:
    """The same data through scikit-learn's LogisticRegression, beside ``compare_with``."""
    name: str
    title: str
    compare_with: str
    template: str = "sklearn"


@dataclass(frozen=True)
class Question:
    name: str
    title: str
    seed_writeup: str
    dataset: str
    model: str                                  # a name in models.BUILDERS
    experiments: tuple
    optimizer: str = "sgd"
    fallback_dataset: str | None = None         # used, with a loud banner, when ``dataset`` cannot be had
    val_fraction: float = 0.2
    early_stopping: bool = False                # apply the profile's [early_stopping] rule to every fit
    reference: dict = field(default_factory=dict)   # the seed's numbers, keyed by experiment name

    @property
    def search_names(self) -> list[str]:
        return [e.name for e in self.experiments if isinstance(e, Search)]

    def sections(self) -> list[dict]:
        """run.json's "sections": one per experiment, in order."""
        found = []
        for experiment in self.experiments:
            section = {"template": experiment.template, "experiment": experiment.name, "title": experiment.title}
            if getattr(experiment, "top_k", None):
                section["top_k"] = experiment.top_k
            if isinstance(experiment, SklearnLogistic):
                section["compare_with"] = experiment.compare_with
            found.append(section)
        return found
