"""The scikit-learn kind: the same data through LogisticRegression, beside one of our evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dlcv_keras.experiments.base import Experiment, run_causes, seed_observations
from dlcv_keras.report.format import as_number, fmt, fmt_seconds, is_finite, pct, read_experiment
from dlcv_keras.lessons import Predictions
from dlcv_keras.report.observe import is_stale, noise, paired_words, points, ranking_agreement, winner


@dataclass(frozen=True)
class SklearnLogistic(Experiment):
    """``compare_with`` names the evaluation (an ``EvaluateBest``) shown beside it."""
    compare_with: str = ""

    KIND: ClassVar[str] = "sklearn"
    VIEWS: ClassVar[tuple[str, ...]] = ("sklearn",)
    HAS_TABLE: ClassVar[bool] = False

    def section(self) -> dict[str, Any]:
        return {**super().section(), "compare_with": self.compare_with}

    def run(self, runner) -> None:
        from dlcv_keras.training.baselines import logistic_regression

        data = runner.data
        runner.echo(f"[{self.name}] scikit-learn LogisticRegression on {len(data.y_train)} images")
        result = logistic_regression(data.x_train, data.y_train, data.x_test, data.y_test, seed=runner.settings.seed)
        predicted = result.pop("test_predicted")
        # Its class per test image, so that it is compared with our model image by image (lessons, observations).
        runner.store.write_experiment(self.name, summary={"kind": "sklearn", "title": self.title, **result},
                                      predictions={"labels": data.y_test, "test": predicted})
        runner.echo(f"[{self.name}] train {result['train_accuracy']:.4f}, test {result['test_accuracy']:.4f}")


# -- report view ------------------------------------------------------------------------------
def _sklearn(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary = experiment["summary"]
    other_name = section.get("compare_with")
    # The row names the estimator's class; its full settings are in the note above the table, so
    # a long repr does not squeeze the number columns.
    estimator = str(summary.get("model") or "model").split("(")[0]
    rows = [{"model": f"scikit-learn {estimator}",
             "train": pct(as_number(summary.get("train_accuracy"))), "train_seed": pct(as_number(reference.get("train_accuracy"))),
             "test": pct(as_number(summary.get("test_accuracy"))), "test_seed": pct(as_number(reference.get("test_accuracy")))}]
    other = read_experiment(store, other_name, section["title"])["summary"] if other_name else None
    if other_name:
        stale = "; an earlier run's, not compared" if is_stale(run, other) else ""
        other_ref = {} if stale else (run.get("reference") or {}).get(other_name) or {}
        rows.append({"model": f"our Keras model ({other_name}{stale})",
                     "train": pct(as_number(other.get("train_accuracy"))), "train_seed": pct(as_number(other_ref.get("train_accuracy"))),
                     "test": pct(as_number(other.get("test_accuracy"))), "test_seed": pct(as_number(other_ref.get("test_accuracy")))})
    return {"model": fmt(summary.get("model")), "rows": rows, "compare_with": other_name,
            "seconds": fmt_seconds(summary.get("seconds")),
            "observations": _observations(store, summary, reference, other_name, other, run, section["experiment"])}


def _observations(store, summary, reference, other_name, other, run, name: str = "sklearn") -> list[str]:
    """scikit-learn against our Keras model on the same test images (McNemar's exact test on their stored
    predictions; without them, the margin of two binomial accuracies), in the seed's order or not, and
    scikit-learn's test accuracy against the seed's."""
    sentences = []
    ours = as_number(summary.get("test_accuracy"))
    if other is not None and is_stale(run, other):
        sentences.append(f"Not compared with our Keras model: its evaluation ({other_name}) is an earlier run's.")
    elif other is not None:
        keras = as_number(other.get("test_accuracy"))
        if is_finite(ours) and is_finite(keras):
            paired = Predictions(store).compare((name, None), (other_name, None))
            if paired is not None:
                sentences.append(_capital(paired_words("scikit-learn", "the Keras model", paired[0])) + ".")
                apart = paired[0].significant()
            else:
                margin = noise(run, "test", [keras, ours])
                sentences.append(winner(_ranked(keras, ours), margin, "test accuracy"))
                apart = margin.points is not None and margin.separates(points(keras, ours))
            seed_keras = as_number((((run or {}).get("reference") or {}).get(other_name) or {}).get("test_accuracy"))
            seed_sklearn = as_number(reference.get("test_accuracy"))
            if is_finite(seed_keras) and is_finite(seed_sklearn) and seed_keras != seed_sklearn:
                # Our order counts only where the test above separates the two; otherwise it is within noise.
                sentences.append(ranking_agreement(_ranked(keras, ours), _ranked(seed_keras, seed_sklearn),
                                                   apart=lambda a, b: apart))
    if summary.get("converged") is False:
        sentences.append(f"scikit-learn's solver stopped at its iteration limit without converging "
                         f"({fmt(summary.get('model'))}).")
    sentences += seed_observations([("scikit-learn test accuracy", ours, reference.get("test_accuracy"),
                                     noise(run, "test", [ours, reference.get("test_accuracy")]),
                                     run_causes(store, run, unstated=reference.get("unstated")))], run)
    return sentences


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _ranked(keras: float, sklearn: float) -> list[tuple[str, float]]:
    return sorted([("the Keras model", keras), ("scikit-learn", sklearn)], key=lambda item: -item[1])


VIEWS = {"sklearn": _sklearn}
