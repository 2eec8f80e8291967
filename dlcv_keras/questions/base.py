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


# -- from-scratch experiments: numpy code from dlcv_keras.scratch, settings from the profile table --
@dataclass(frozen=True)
class ScratchExperiment:
    """An experiment run by ``scratch_experiments``; each kind names its default report section."""
    name: str
    title: str
    template: str = "generic"


@dataclass(frozen=True)
class ScalarGradients(ScratchExperiment):
    """q2: f and its gradients from the scalar engine, checked against TensorFlow and central differences."""
    template: str = "scalar_gradients"


@dataclass(frozen=True)
class ConvBlur(ScratchExperiment):
    """q4: the hand-written conv2d checked against Keras Conv2D, then a Gaussian blur of the first images."""
    template: str = "conv_blur"


@dataclass(frozen=True)
class ConvRegression(ScratchExperiment):
    """q5: a student conv layer learns a fixed conv layer's output under an L2 loss.

    With ``compare_batch_sizes`` (run B) every ``batch_size`` listed in the profile table is
    one run, kept in trials.csv; without it (run A) the table pins one batch size.
    """
    template: str = "conv_l2_batches"
    compare_batch_sizes: bool = False


@dataclass(frozen=True)
class TwoLayerCheck(ScratchExperiment):
    """q6: the two-layer net's scores, loss and gradients on toy data against the references."""
    template: str = "two_layer_check"


@dataclass(frozen=True)
class ToyTraining(ScratchExperiment):
    """q6: train the two-layer net on its toy data until the loss is below a target."""
    template: str = "toy_training"


@dataclass(frozen=True)
class FiniteDifferenceSweep(ScratchExperiment):
    """q16's check on an MLP: epsilon = 1/N differences against the true gradient of one layer."""
    template: str = "finite_difference"


# Experiments that read their own [<profile>.<name>] table from tuners/<question>.toml.
WITH_SPACE = (Search, ScratchExperiment)


@dataclass(frozen=True)
class Question:
    name: str
    title: str
    seed_writeup: str
    dataset: str | None                         # None: the question makes its own data (q2, q6)
    model: str | None                           # a name in models.BUILDERS, for Search experiments
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

    def implementation(self, requested: str | None = None) -> str:
        return requested or self.implementations[0]

    def experiments_for(self, implementation: str | None = None) -> tuple:
        return self.experiments + tuple(self.extra_experiments.get(self.implementation(implementation), ()))

    def space_tables(self, implementation: str | None = None) -> list[str]:
        """Experiments with a table of their own in the search-space file."""
        return [e.name for e in self.experiments_for(implementation) if isinstance(e, WITH_SPACE)]

    def sections(self, implementation: str | None = None) -> list[dict]:
        """run.json's "sections": one per experiment, in order."""
        found = []
        for experiment in self.experiments_for(implementation):
            section = {"template": experiment.template, "experiment": experiment.name, "title": experiment.title}
            if getattr(experiment, "top_k", None):
                section["top_k"] = experiment.top_k
            if isinstance(experiment, SklearnLogistic):
                section["compare_with"] = experiment.compare_with
            found.append(section)
        return found
