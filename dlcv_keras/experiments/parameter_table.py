"""The parameter-table kind (q17): each listed model's layers and parameter counts, beside the seed's.

The models are built (not trained) with the question's input shape and the builders' own
defaults, so the table is what the search and the retrained runs train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from dlcv_keras.experiments.base import Experiment
from dlcv_keras.report.format import DASH, fmt, require, thousands


@dataclass(frozen=True)
class ParameterTable(Experiment):
    """``models``: (model name from models.BUILDERS, label) pairs, one table each."""
    models: tuple[tuple[str, str], ...] = ()

    KIND: ClassVar[str] = "parameter_table"
    VIEWS: ClassVar[tuple[str, ...]] = ("parameter_table",)
    HAS_TABLE: ClassVar[bool] = False

    def run(self, runner) -> None:
        from dlcv_keras.experiments.search import hypermodel_for
        from dlcv_keras.models import get_builder, parameter_table

        rows, totals = [], {}
        data = runner.data
        for model_name, label in self.models:
            kwargs = hypermodel_for(runner, model_name).model_kwargs({})
            model = get_builder(model_name)(data.input_shape, data.num_classes, **kwargs)
            table = parameter_table(model)
            totals[model_name] = sum(r["params"] for r in table)
            rows.extend({"model": model_name, "label": label, **row} for row in table)
            runner.echo(f"[{self.name}] {label}: {totals[model_name]:,} parameters")
        summary = {"kind": self.KIND, "title": self.title, "models": [m for m, _ in self.models],
                   "labels": [label for _, label in self.models], "totals": totals,
                   "input_shape": list(data.input_shape), "num_classes": data.num_classes}
        runner.store.write_experiment(self.name, summary=summary, tables={"layers": rows})


def _parameter_table(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary = experiment["summary"]
    rows = require(experiment, "layers", store, section["experiment"], "layers.csv", section["title"])
    seed_totals = reference.get("totals") or {}
    models = []
    for model_name, label in zip(summary.get("models") or [], summary.get("labels") or []):
        layers = [r for r in rows if r.get("model") == model_name]
        total = (summary.get("totals") or {}).get(model_name)
        seed = seed_totals.get(model_name)
        models.append({
            "label": label, "total": thousands(total), "seed": thousands(seed) if seed is not None else DASH,
            "matches": seed is not None and total == seed,
            "layers": [{"layer": fmt(r.get("layer")), "type": fmt(r.get("type")), "shape": fmt(r.get("output_shape")),
                        "params": thousands(r.get("params"))} for r in layers],
        })
    return {"models": models, "input_shape": " x ".join(str(d) for d in summary.get("input_shape") or []),
            "observations": _observations(summary, seed_totals)}


def _observations(summary, seed_totals) -> list[str]:
    """Each model's total against the seed's count, and how many times larger the largest model is."""
    totals = {label: (summary.get("totals") or {}).get(name)
              for name, label in zip(summary.get("models") or [], summary.get("labels") or [])}
    seeds = {label: seed_totals.get(name) for name, label in zip(summary.get("models") or [], summary.get("labels") or [])}
    sentences = []
    for label, total in totals.items():
        seed = seeds[label]
        if not (isinstance(total, int) and isinstance(seed, int)):
            continue
        if total == seed:
            sentences.append(f"{label}: {thousands(total)} parameters, exactly the seed's count.")
        else:
            sentences.append(f"{label}: {thousands(total)} parameters, {thousands(abs(total - seed))} "
                             f"{'more' if total > seed else 'fewer'} than the seed's {thousands(seed)} "
                             f"({100 * (total - seed) / seed:+.1f} %).")
    counted = {label: total for label, total in totals.items() if isinstance(total, int) and total > 0}
    if len(counted) >= 2:
        big, small = max(counted, key=counted.get), min(counted, key=counted.get)
        sentences.append(f"{big} has {counted[big] / counted[small]:.1f} times the parameters of {small}.")
    return sentences


VIEWS = {"parameter_table": _parameter_table}
REQUIRED_FILES = {"parameter_table": ("layers.csv",)}
