"""The scalar-gradients kind (q2): f and its gradients from the micrograd-sized engine, checked
against TensorFlow's autodiff and central differences at each point, and, when the run evaluates the
seed's f, against the seed's own table (the question's reference ``rows``)."""

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


# f and its gradient "equal" the seed's table when each point's relative difference (``relative_difference``
# over f and its derivatives) is at most this: float64 rounding of the same operations, and the seed's
# cells cut at 14 to 17 digits, stay below 1e-14; a different f, or a sign, is far above.
SEED_TABLE_TOLERANCE = 1e-12


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
        "max_rel_diff_tf": max(r["max_rel_diff_tf"] for r in rows),
        "max_abs_diff_numeric": max(r["max_abs_diff_numeric"] for r in rows),
        "max_rel_diff_numeric": max(r["max_rel_diff_numeric"] for r in rows),
        "seconds": round(time.perf_counter() - started, 3),
    }
    # The seed's table is of the seed's f: another f (--expr) is not compared with it.
    seed_rows = (runner.question.reference.get(experiment.name) or {}).get("rows") or []
    if expression.text == DEFAULT_EXPRESSION:
        summary["seed_points"] = against_seed_table(rows, seed_rows, list(expression.variables))
        if summary["seed_points"]:
            summary["max_rel_diff_seed"] = max(r["seed_rel_diff"] for r in rows if "seed_rel_diff" in r)
    runner.store.write_experiment(experiment.name, summary=summary, tables={"points": rows})
    runner.echo(f"[{experiment.name}] f = {expression.text}")
    names = list(expression.variables)
    for row in rows:
        grads = ", ".join(f"df/d{v} {row[f'df_d{v}']:.6g}" for v in names)
        runner.echo(f"[{experiment.name}]   at {row['point']}: f {row['value']:.6g}, {grads}")
    runner.echo(f"[{experiment.name}] largest difference: {summary['max_abs_diff_tf']:.1e} vs TensorFlow, "
                f"{summary['max_abs_diff_numeric']:.1e} vs central differences")
    if "max_rel_diff_seed" in summary:
        runner.echo(f"[{experiment.name}] largest relative difference from the seed's table: "
                    f"{summary['max_rel_diff_seed']:.1e} over its {summary['seed_points']} points")


def against_seed_table(rows: list[dict], seed_rows, variables: list[str]) -> int:
    """Add to each of ``rows`` at one of the seed's points its numbers (``seed_value``, ``seed_df_dx``, ...)
    and ``seed_rel_diff``, the point's relative difference over f and its gradient. Returns how many
    points were compared."""
    from dlcv_keras.scratch.expression import relative_difference

    by_point = {tuple(float(r[v]) for v in variables): r for r in seed_rows}
    keys = ["value", *(f"df_d{v}" for v in variables)]
    compared = 0
    for row in rows:
        seed = by_point.get(tuple(row[v] for v in variables))
        if seed is None:
            continue
        row.update({f"seed_{k}": float(seed[k]) for k in keys})
        row["seed_rel_diff"] = relative_difference([row[k] for k in keys], [float(seed[k]) for k in keys])
        compared += 1
    return compared


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
    # The seed's table beside ours, every digit of both: the shortest text that reads back as the same
    # float64 (Python's repr), as the seed's notebook printed its numbers.
    seed_table = [{"point": row.get("point"), "quantity": quantity, "ours": _digits(row.get(key)),
                   "seed": _digits(row.get(f"seed_{key}")), "difference": fmt_sci(row.get("seed_rel_diff"))
                   if quantity == "f" else ""}
                  for row in points if "seed_rel_diff" in row
                  for quantity, key in (("f", "value"), *((f"df/d{v}", f"df_d{v}") for v in variables))]
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
        "seed_table": seed_table,
        "seconds": fmt_seconds(summary.get("seconds")),
        "observations": _observations(summary, points, reference),
    }


def _digits(value: Any) -> str:
    """Every digit of a float64: its repr (-0.30697227565888, 2.672161875217988e-07)."""
    from dlcv_keras.report.format import as_number, is_finite

    value = as_number(value)
    return repr(float(value)) if is_finite(value) else fmt(value)


def _observations(summary, points, reference) -> list[str]:
    """The largest relative difference over every point, against the seed's table (when this run's f is
    the seed's), TensorFlow and central differences, each against its tolerance."""
    where = f"over the {len(points)} point{'s' if len(points) != 1 else ''}"
    seed = []
    if summary.get("max_rel_diff_seed") is not None:
        seed.append(tolerance_words("f and its gradient", "the seed's table", summary["max_rel_diff_seed"],
                                    SEED_TABLE_TOLERANCE, f"largest relative difference over the "
                                    f"{summary.get('seed_points')} of its points this run evaluated"))
    elif "seed_points" in summary:
        seed.append("This run evaluated the seed's f at none of the seed's points, so nothing is compared with "
                    "the seed's table.")
    elif reference.get("rows"):
        seed.append(f"This run's f is not the seed's ({summary.get('expression')}), so it is not compared with "
                    f"the seed's table.")
    checks = (("Each of f and its gradients", "TensorFlow's autodiff", "tf"),
              ("Each gradient", f"central differences (step {fmt(summary.get('step'))})", "numeric"))
    sentences = [tolerance_words(subject, other, summary_or(summary, f"max_rel_diff_{key}", points), RELATIVE_TOLERANCE,
                                 f"largest relative difference {where}",
                                 f"largest absolute {fmt_sci(summary_or(summary, f'max_abs_diff_{key}', points))}")
                 for subject, other, key in checks]
    return [sentence for sentence in [*seed, *sentences] if sentence]


VIEWS = {"scalar_gradients": _scalar_gradients}
REQUIRED_FILES = {"scalar_gradients": ("points.csv",)}
