"""The scalar-gradients kind (q2): f and its gradients from the micrograd-sized engine, checked
against TensorFlow's autodiff and central differences at each point."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from dlcv_keras.experiments.base import RELATIVE_TOLERANCE, Experiment, pick, table_values, tolerance_words
from dlcv_keras.report.format import DASH, NO_REFERENCE, fmt, fmt_sci, fmt_seconds, fmt_sig, require, summary_or


@dataclass(frozen=True)
class ScalarGradients(Experiment):
    KIND: ClassVar[str] = "scalar_gradients"
    VIEWS: ClassVar[tuple[str, ...]] = ("scalar_gradients",)
    SETTINGS: ClassVar = pick("step")

    def run(self, runner) -> None:
        scalar_gradients(runner, self)


def scalar_gradients(runner, experiment: ScalarGradients) -> None:
    from dlcv_keras.scratch.expression import DEFAULT_EXPRESSION, DEFAULT_POINTS, gradient_table, parse_expression

    values = table_values(runner, experiment)
    text = runner.settings.expression or DEFAULT_EXPRESSION
    points = runner.settings.points or DEFAULT_POINTS
    step = values.get("step", 1e-6)
    started = time.perf_counter()
    expression = parse_expression(text)
    rows = gradient_table(expression, points, h=step)
    summary = {
        "kind": "scalar_gradients", "title": experiment.title, "expression": expression.text,
        "variables": list(expression.variables), "points": [list(p) for p in points], "step": step,
        "max_abs_diff_tf": max(r["max_abs_diff_tf"] for r in rows),
        "max_abs_diff_numeric": max(r["max_abs_diff_numeric"] for r in rows),
        "max_rel_diff_numeric": max(r["max_rel_diff_numeric"] for r in rows),
        "seconds": round(time.perf_counter() - started, 3),
    }
    runner.store.write_experiment(experiment.name, summary=summary, tables={"points": rows})
    runner.echo(f"[{experiment.name}] f = {expression.text}")
    names = list(expression.variables)
    for row in rows:
        grads = ", ".join(f"df/d{v} {row[f'df_d{v}']:.6g}" for v in names)
        runner.echo(f"[{experiment.name}]   at {row['point']}: f {row['value']:.6g}, {grads}")
    runner.echo(f"[{experiment.name}] largest difference: {summary['max_abs_diff_tf']:.1e} vs TensorFlow, "
                f"{summary['max_abs_diff_numeric']:.1e} vs central differences")


# -- report view ------------------------------------------------------------------------------
LARGEST_DIFFERENCES = {  # summary.json / points.csv key -> label; the relative one vs TensorFlow is optional
    "max_abs_diff_tf": "max |Δ| vs TensorFlow autodiff",
    "max_rel_diff_tf": "max relative difference vs TensorFlow autodiff",
    "max_abs_diff_numeric": "max |Δ| vs central differences",
    "max_rel_diff_numeric": "max relative difference vs central differences",
}


def _scalar_gradients(store, section, experiment, reference, run=None) -> dict[str, Any]:
    summary = experiment["summary"]
    points = require(experiment, "points", store, section["experiment"], "points.csv", section["title"])
    variables = [str(v) for v in summary.get("variables") or []]
    if not variables and points:
        variables = [k[len("df_d"):] for k in points[0] if k.startswith("df_d")]
    rows, details = [], []
    for row in points:
        label = row.get("point")
        if not isinstance(label, str) or not label:
            label = fmt([row.get(v) for v in variables])
        rows.append({"point": label, "value": fmt_sig(row.get("value")),
                     "gradient": [fmt_sig(row.get(f"df_d{v}")) for v in variables],
                     "tf": fmt_sci(row.get("max_abs_diff_tf")), "numeric": fmt_sci(row.get("max_abs_diff_numeric"))})
        details.append({"point": label, "quantity": "f", "ours": fmt_sig(row.get("value")),
                        "tf": fmt_sig(row.get("tf_value")), "numeric": DASH})
        for v in variables:
            details.append({"point": label, "quantity": f"df/d{v}", "ours": fmt_sig(row.get(f"df_d{v}")),
                            "tf": fmt_sig(row.get(f"tf_df_d{v}")), "numeric": fmt_sig(row.get(f"numeric_df_d{v}"))})
    return {
        "expression": str(summary.get("expression") or DASH),
        "variables": variables,
        "step": fmt(summary.get("step")),
        "rows": rows,
        "details": details,
        "largest": [{"name": name, "value": fmt_sci(summary_or(summary, key, points))}
                    for key, name in LARGEST_DIFFERENCES.items()
                    if key in summary or any(key in row for row in points)],
        "reference_note": str(reference.get("note") or NO_REFERENCE),
        "seconds": fmt_seconds(summary.get("seconds")),
        "observations": _observations(summary, points),
    }


def _observations(summary, points) -> list[str]:
    """The largest relative difference over every point, against TensorFlow and against central
    differences, each against the float64 tolerance."""
    where = f"over the {len(points)} point{'s' if len(points) != 1 else ''}"
    checks = (("Each of f and its gradients", "TensorFlow's autodiff", "tf"),
              ("Each gradient", f"central differences (step {fmt(summary.get('step'))})", "numeric"))
    sentences = [tolerance_words(subject, other, summary_or(summary, f"max_rel_diff_{key}", points), RELATIVE_TOLERANCE,
                                 f"largest relative difference {where}",
                                 f"largest absolute {fmt_sci(summary_or(summary, f'max_abs_diff_{key}', points))}")
                 for subject, other, key in checks]
    return [sentence for sentence in sentences if sentence]


VIEWS = {"scalar_gradients": _scalar_gradients}
REQUIRED_FILES = {"scalar_gradients": ("points.csv",)}
