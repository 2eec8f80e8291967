"""The misclassified-gallery kind (q18): test images the retrained best model gets wrong.

Reads the model an ``EvaluateBest`` of the same run kept (``source``), predicts the test split
through the same input pipeline, and stores the most confidently wrong images with their true
class, predicted class and predicted probabilities (the softmax of the model's logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from dlcv_keras.experiments.base import Experiment, pick, table_values
from dlcv_keras.report.format import as_number, is_finite, pct, read_arrays, read_experiment, require, thousands


@dataclass(frozen=True)
class MisclassifiedGallery(Experiment):
    source: str = "best"

    KIND: ClassVar[str] = "misclassified"
    VIEWS: ClassVar[tuple[str, ...]] = ("misclassified",)
    SETTINGS: ClassVar[Mapping[str, tuple]] = pick("count")

    def run(self, runner) -> None:
        import numpy as np

        from dlcv_keras.training.fit import log_softmax, predict_logits

        count = table_values(runner, self).get("count", 16)
        data = runner.data
        model = runner.models[self.source]
        log_probabilities = log_softmax(predict_logits(model, data.x_test))
        probabilities = np.exp(log_probabilities)
        predicted = probabilities.argmax(axis=1)
        wrong = np.flatnonzero(predicted != data.y_test)
        # Most confident mistakes first: the ones that say most about what the model learned. A saturated
        # softmax gives several a probability of 1 to float precision; among those, the lower the true
        # class's log-probability (read from the logits, it does not round to -inf), the more confident.
        confidence = (log_probabilities[wrong, data.y_test[wrong]], -probabilities[wrong, predicted[wrong]])
        order = wrong[np.lexsort(confidence)][:count]
        runner.store.write_arrays(self.name, images=data.x_test[order], true=data.y_test[order],
                                  predicted=predicted[order], probabilities=probabilities[order].astype(np.float32),
                                  indices=order)
        rows = [{"test_index": int(i), "true": data.class_names[int(data.y_test[i])],
                 "predicted": data.class_names[int(predicted[i])],
                 **{f"p_{name}": float(probabilities[i, k]) for k, name in enumerate(data.class_names)}}
                for i in order]
        summary = {"kind": self.KIND, "title": self.title, "source": self.source, "test_images": len(data.y_test),
                   "wrong": len(wrong), "shown": len(order), "test_accuracy": float(np.mean(predicted == data.y_test)),
                   "class_names": data.class_names}
        runner.store.write_experiment(self.name, summary=summary, tables={"gallery": rows})
        runner.echo(f"[{self.name}] {len(wrong)} of {len(data.y_test)} test images wrong; {len(order)} shown")


def _misclassified(store, section, experiment, reference, run=None) -> dict[str, Any]:
    from dlcv_keras.report import figures  # matplotlib: loaded only to draw

    summary = experiment["summary"]
    rows = require(experiment, "gallery", store, section["experiment"], "gallery.csv", section["title"])
    arrays = read_arrays(store, section["experiment"], section["title"], ("images", "true", "predicted", "probabilities"))
    names = summary.get("class_names") or []
    images = arrays["images"] / 255.0
    per_row = 6
    titles = [f"{row['true']} → {row['predicted']}\n{100 * float(row['p_' + str(row['predicted'])]):.0f} %"
              for row in rows]
    grid = [list(images[i:i + per_row]) for i in range(0, len(images), per_row)]
    title_rows = [titles[i:i + per_row] for i in range(0, len(titles), per_row)]
    figure = figures.data_uri(figures.image_grid(grid, titles=title_rows, cell=1.5)) if len(images) else None
    table = [{"index": row["test_index"], "true": row["true"], "predicted": row["predicted"],
              "probabilities": ", ".join(f"{n} {pct(row.get('p_' + n))} %" for n in names)} for row in rows]
    chance = _chance(summary, run)
    return {"figure": figure, "table": table, "wrong": summary.get("wrong"), "total": summary.get("test_images"),
            "accuracy": pct(summary.get("test_accuracy")),
            "at_chance": chance.words() if chance is not None and not chance.above_chance() else None,
            "observations": _observations(store, summary, rows, run)}


def _chance(summary, run):
    """The gallery model's test accuracy against chance (an exact binomial test), None when not stored. The
    gallery reads the whole test split: run.json's test class counts give its chance level when the run's
    classes are the gallery's (observe.split_chance)."""
    from dlcv_keras.report.observe import chance_test

    names = summary.get("class_names") or []
    total = as_number(summary.get("test_images"))
    if len(names) < 2 or not is_finite(total):
        return None
    dataset = ((run or {}).get("dataset") or {})
    same = dataset.get("class_names") == names and (dataset.get("splits") or {}).get("test") == int(total)
    return chance_test({"dataset": dataset if same else {"class_names": names}}, "test",
                       summary.get("test_accuracy"), n=int(total))


def _observations(store, summary, rows, run) -> list[str]:
    """How many test images are wrong, whether that is the source evaluation's stored test accuracy, the
    most frequent confusion over the whole test split (its confusion matrix), and the most confident mistake."""
    sentences = []
    wrong, total, accuracy = (as_number(summary.get(key)) for key in ("wrong", "test_images", "test_accuracy"))
    if not (is_finite(wrong) and is_finite(total) and total > 0):
        return sentences
    chance = _chance(summary, run)
    learned = chance is None or chance.above_chance()
    if not learned:
        # Said first: a net that did not learn has no "confident" mistakes to read anything into.
        sentences.append(f"The model is at chance on the test split: {chance.words()}. It did not learn, so these "
                         f"are not the mistakes of a classifier: which images it gets wrong, and how sure it is, "
                         f"say nothing about the classes.")
    sentence = f"{thousands(int(wrong))} of {thousands(int(total))} test images are misclassified ({pct(wrong / total)} %)"
    source = summary.get("source")
    found = _source(store, source, run)
    stored = as_number((found.get("summary") or {}).get("test_accuracy"))
    if is_finite(stored) and is_finite(accuracy):
        # Counted over the same images, the two agree to one image when the gallery read the evaluated model.
        same = abs(stored - accuracy) * total < 0.5
        sentence += (f": test accuracy {pct(accuracy)} %, as the {source} evaluation stored it" if same else
                     f": test accuracy {pct(accuracy)} % here, but the {source} evaluation stored {pct(stored)} %: "
                     f"the gallery did not read the same model or images")
    sentences.append(sentence + ".")
    names = [str(n) for n in (found.get("metrics") or {}).get("class_names") or summary.get("class_names") or []]
    matrix = (found.get("metrics") or {}).get("confusion_matrix")
    if isinstance(matrix, list) and wrong > 0:
        pairs = [(count, i, j) for i, row in enumerate(matrix) if isinstance(row, list)
                 for j, count in enumerate(row) if i != j and is_finite(count) and count > 0]
        if pairs and len(names) >= len(matrix):
            count, i, j = max(pairs)
            sentences.append(f"The most frequent confusion on the test split: {names[i]} taken for {names[j]}, "
                             f"{thousands(int(count))} images ({pct(count / wrong)} % of the mistakes).")
    if rows:
        first = rows[0]
        p = as_number(first.get(f"p_{first.get('predicted')}"))
        if is_finite(p) and learned:
            sentences.append(f"The most confident mistake: {first.get('true')} called {first.get('predicted')}, "
                             f"with {pct(p)} % probability.")
        elif is_finite(p):
            sentences.append(f"Its highest probability on a wrong answer is {pct(p)} % ({first.get('true')} called "
                             f"{first.get('predicted')}), with {len(summary.get('class_names') or [])} classes.")
    return sentences


def _source(store, name, run) -> dict[str, Any]:
    """The evaluation the gallery's model came from, when stored and current; {} otherwise."""
    from dlcv_keras.report.context import stale_note

    if not isinstance(name, str) or "/" in name or not (store.experiment_dir(name) / "summary.json").is_file():
        return {}
    found = read_experiment(store, name, name)
    return {} if stale_note(run or {}, found["summary"]) else found


VIEWS = {"misclassified": _misclassified}
REQUIRED_FILES = {"misclassified": ("gallery.csv", "arrays.npz")}
