"""Figures for the write-up: matplotlib (Agg canvas) -> PNG bytes -> ``data:`` URI.

Every function takes plain Python values (lists of dicts as read from the results
store) and returns PNG bytes. ``data_uri`` turns them into a ``data:image/png;base64,``
string, so the HTML report is one self-contained file and WeasyPrint renders the
same images into the PDF.

Figures are drawn on ``matplotlib.figure.Figure`` objects with an explicit Agg
canvas and cleared after saving: no pyplot, so no global figure registry to leak
figures into. Non-finite values (a diverged trial's nan/inf) are dropped
before plotting; callers also leave diverged trials out.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Iterable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display needed; the report may run on a headless server

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 100
# The A4 page's text width (report.css: 210 mm less two 14 mm margins), in inches: a figure no wider is
# printed at its own size, so its fonts keep their point size; a wider one is shrunk to fit.
TEXT_INCHES = 7.0
MAX_PANELS_PER_ROW = 5      # small multiples: more a row would shrink each panel below PANEL_INCHES
PANEL_INCHES = 1.3
_RC = {"font.size": 9, "axes.titlesize": 10, "axes.grid": True,
       "grid.alpha": 0.3, "legend.fontsize": 8}


def _plain(text: Any) -> str:
    """A label shown as typed: a "$" in a class name must not start matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, width_ratios=None):
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, width_ratios=width_ratios)
    return fig, axes


def _to_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    # No "Software" stamp, so the same results give the same bytes.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buffer.getvalue()


def _series(history: Iterable[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in history:
        if _finite(row.get("epoch")) and _finite(row.get(key)):
            xs.append(row["epoch"])
            ys.append(row[key])
    return xs, ys


ACCURACY_LABEL = "accuracy (%)"   # every accuracy axis is in percent, as the tables beside it


def _plot_curves(ax_loss, ax_acc, history: Sequence[Mapping[str, Any]], label: str | None, color,
                 val_color=None) -> None:
    for ax, metric, scale in ((ax_loss, "loss", 1), (ax_acc, "accuracy", 100)):
        for prefix, style in (("", "-"), ("val_", "--")):
            xs, ys = _series(history, prefix + metric)
            if not xs:
                continue
            split = "val" if prefix else "train"
            name = _plain(f"{label} {split}" if label else split)
            line_color = (val_color or color) if prefix else color
            ax.plot(xs, [scale * y for y in ys], style, color=line_color, label=name,
                    marker="." if len(xs) < 15 else None)
            low, high = f"{prefix}{metric}_min", f"{prefix}{metric}_max"
            band = [(row["epoch"], scale * row[low], scale * row[high]) for row in history
                    if all(_finite(row.get(k)) for k in ("epoch", low, high))]
            if band:
                ax.fill_between(*zip(*band), color=line_color, alpha=0.15, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def learning_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], *, title: str | None = None) -> bytes:
    """Loss and accuracy per epoch, train (solid) and val (dashed), one colour per trial.

    ``curves`` maps a label (trial id, "best", ...) to that trial's history rows. Rows that also
    hold "<metric>_min" and "<metric>_max" (a run of repeats: its mean, lowest and highest repeat
    per epoch) shade the band between them.
    """
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(8.0, 3.2, 1, 2)
        ax_loss, ax_acc = axes[0]
        single = len(curves) == 1
        for i, (label, history) in enumerate(curves.items()):
            _plot_curves(ax_loss, ax_acc, history, None if single else str(label), f"C{i % 10}",
                         "C1" if single else None)
        for ax, name in ((ax_loss, "loss"), (ax_acc, ACCURACY_LABEL)):
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
        if title:
            fig.suptitle(_plain(title))
        if len(curves) > 3:
            # Many trials: one legend entry per colour, under the panels, where it hides no line.
            trains = [line for line in ax_loss.lines if line.get_label().endswith(" train")]
            return _with_legend_below(fig, trains, [line.get_label()[:-len(" train")] for line in trains])
        for ax in (ax_loss, ax_acc):
            if ax.lines:
                ax.legend(loc="best")
        return _to_png(fig)


def effect_plot(trials: Sequence[Mapping[str, Any]], x: str, group: Sequence[str], *,
                y: str = "val_accuracy", log_x: bool = True, spread: str | None = None) -> bytes:
    """``y`` against hyperparameter ``x``, one line per combination of the ``group`` columns. ``spread``: the
    column holding each point's standard deviation (rows that are means over seeds), drawn as ± bars."""
    lines: dict[tuple, list[tuple[float, float, float]]] = {}
    for row in trials:
        if _finite(row.get(x)) and _finite(row.get(y)):
            key = tuple(row.get(g) for g in group)
            sd = row.get(spread) if spread else None
            lines.setdefault(key, []).append((row[x], row[y], sd if _finite(sd) else 0.0))
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(6.0, 3.6)
        ax = axes[0][0]
        for i, (key, points) in enumerate(sorted(lines.items(), key=lambda kv: _sort_key(kv[0]))):
            points.sort()
            label = _plain(", ".join(f"{g}={_short(v)}" for g, v in zip(group, key))) or None
            ax.plot([p[0] for p in points], [100 * p[1] for p in points], "o-", color=f"C{i % 10}", label=label)
            if any(p[2] for p in points):
                ax.errorbar([p[0] for p in points], [100 * p[1] for p in points], yerr=[100 * p[2] for p in points],
                            fmt="none", ecolor=f"C{i % 10}", capsize=3)
        if log_x and all(p[0] > 0 for pts in lines.values() for p in pts) and lines:
            ax.set_xscale("log")
        ax.set_xlabel(_plain(x))
        ax.set_ylabel(_plain(f"{y} (%)"))
        if any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines):
            ax.legend(loc="best")
        return _to_png(fig)


def per_class_bars(class_names: Sequence[str], accuracies: Sequence[float]) -> bytes:
    """Per-class test accuracy as a bar chart (percent)."""
    names = [_plain(n) for n in class_names]
    values = [100 * a if _finite(a) else 0.0 for a in accuracies]
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(max(4.0, min(10.0, 0.45 * len(names) + 2)), 3.2)
        ax = axes[0][0]
        ax.bar(range(len(values)), values, color="C0")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(names, rotation=45 if max((len(n) for n in names), default=0) > 3 else 0,
                           ha="right" if max((len(n) for n in names), default=0) > 3 else "center")
        finite = [v for v in values if v > 0]
        low = max(0.0, min(finite) - 5) if finite else 0.0
        ax.set_ylim(low, 100)
        ax.set_ylabel("test accuracy (%)")
        ax.set_xlabel("class")
        return _to_png(fig)


def confusion_matrix(matrix: Sequence[Sequence[float]], class_names: Sequence[str]) -> bytes:
    """Annotated heatmap; rows are true classes, columns predicted ones."""
    n = len(matrix)
    names = [_plain(c) for c in class_names][:n]
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        size = max(3.5, min(7.0, 0.4 * n + 1.5))
        fig, axes = _new_figure(size + 0.8, size)
        ax = axes[0][0]
        image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(names, rotation=90 if max((len(c) for c in names), default=0) > 3 else 0)
        ax.set_yticklabels(names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if n <= 20:
            peak = max((v for row in matrix for v in row if _finite(v)), default=0) or 1
            for i, row in enumerate(matrix):
                for j, value in enumerate(row):
                    ax.text(j, i, _short(value), ha="center", va="center", fontsize=7 if n > 10 else 8,
                            color="white" if _finite(value) and value > peak / 2 else "black")
        return _to_png(fig)


def fraction_vs_accuracy(fractions: Sequence[float], accuracies: Sequence[float], *,
                         y_label: str = "test accuracy (%)",
                         reference: Sequence[tuple[float, float]] = (), spread: Sequence[Any] = ()) -> bytes:
    """Training fraction (percent of the training data) against test accuracy. ``spread``: each accuracy's
    standard deviation (means over seeds), drawn as ± bars."""
    sds = [sd if _finite(sd) else 0.0 for sd in spread] or [0.0] * len(fractions)
    points = sorted((f, a, sd) for f, a, sd in zip(fractions, accuracies, sds) if _finite(f) and _finite(a))
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(5.5, 3.4)
        ax = axes[0][0]
        ax.plot([100 * f for f, _, _ in points], [100 * a for _, a, _ in points], "o-", color="C0", label="ours")
        if any(sd for _, _, sd in points):
            ax.errorbar([100 * f for f, _, _ in points], [100 * a for _, a, _ in points],
                        yerr=[100 * sd for _, _, sd in points], fmt="none", ecolor="C0", capsize=3)
        ref = sorted((f, a) for f, a in reference if _finite(f) and _finite(a))
        if ref:
            ax.plot([100 * f for f, _ in ref], [100 * a for _, a in ref], "s--", color="C1", label="seed reference")
            ax.legend(loc="best")
        ax.set_xlabel("training data used (%)")
        ax.set_ylabel(y_label)
        return _to_png(fig)


def curves_per_fraction(panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> bytes:
    """Small multiples: one column per training fraction, loss on top, accuracy below."""
    n = max(1, len(panels))
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(min(10.0, 3.0 * n + 0.5), 5.0, 2, n)
        for col, (label, history) in enumerate(panels):
            ax_loss, ax_acc = axes[0][col], axes[1][col]
            _plot_curves(ax_loss, ax_acc, history, None, "C0", "C1")
            ax_loss.set_title(_plain(label))
            ax_loss.set_ylabel("loss")
            ax_acc.set_ylabel(ACCURACY_LABEL)
            ax_acc.set_xlabel("epoch")
            if col == 0 and ax_loss.lines:
                ax_loss.legend(loc="best")
        return _to_png(fig)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(key: tuple) -> tuple:
    return tuple((0, v) if _finite(v) else (1, str(v)) for v in key)


# -- from-scratch questions (q2, q4, q5, q6, q16) ----------------------------------
def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


def _wide_range(values: Sequence[float], decades: int = 2) -> bool:
    """True when positive values span more than ``decades`` decades, so a log axis reads better."""
    values = [v for v in values if _positive(v)]
    return bool(values) and max(values) / min(values) > 10 ** decades


def kernel_heatmap(kernel: Sequence[Sequence[float]]) -> bytes:
    """A convolution kernel as a heatmap with each weight printed in its cell."""
    import numpy as np

    weights = np.asarray(kernel, dtype=float)
    rows, cols = weights.shape
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        size = max(2.6, min(6.0, 0.45 * max(rows, cols) + 0.8))
        fig, axes = _new_figure(size + 0.8, size)
        ax = axes[0][0]
        image = ax.imshow(np.ma.masked_invalid(weights), cmap="viridis", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        if max(rows, cols) <= 11:
            finite = weights[np.isfinite(weights)]
            middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            for i in range(rows):
                for j in range(cols):
                    value = weights[i, j]
                    ax.text(j, i, f"{value:.3f}" if math.isfinite(value) else str(value), ha="center",
                            va="center", fontsize=7 if max(rows, cols) > 7 else 8,
                            color="black" if math.isfinite(value) and value > middle else "white")
        return _to_png(fig)


def _show_image(ax, image, *, vmin: float = 0.0, vmax: float = 1.0) -> None:
    """One (H, W) or (H, W, C) image: gray for one channel, colour for three; non-finite pixels masked."""
    import numpy as np

    pixels = np.asarray(image, dtype=float)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        ax.imshow(np.clip(np.nan_to_num(pixels, nan=0.0, posinf=vmax, neginf=vmin), 0.0, 1.0),
                  interpolation="nearest")
    else:
        if pixels.ndim == 3:  # another channel count: show the first one
            pixels = pixels[..., 0]
        ax.imshow(np.ma.masked_invalid(pixels), cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def image_row(images: Sequence[Any], titles: Sequence[str] = ()) -> bytes:
    """Images side by side (values in [0, 1]; gray for one channel, colour for RGB)."""
    n = max(1, len(images))
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        fig, axes = _new_figure(min(10.0, 1.6 * n + 0.3), 1.9, 1, n)
        for i, image in enumerate(images):
            _show_image(axes[0][i], image)
            if i < len(titles):
                axes[0][i].set_title(_plain(titles[i]), fontsize=8)
        return _to_png(fig)


def blur_grid(originals: Sequence[Any], blurred: Sequence[Any]) -> bytes:
    """One row per image: the original, then each output channel of the convolution (gray).

    Every blurred panel shares one gray scale, [min(0, lowest), max(1, highest)] over all
    finite outputs, so brightness compares across panels.
    """
    import numpy as np

    outputs = np.asarray(blurred, dtype=float)
    finite = outputs[np.isfinite(outputs)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = max(1.0, float(finite.max())) if finite.size else 1.0
    rows, channels = outputs.shape[0], outputs.shape[-1]
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        cell = min(1.5, 9.5 / (channels + 1))
        fig, axes = _new_figure(cell * (channels + 1) + 0.3, cell * rows + 0.4, rows, channels + 1)
        for r in range(rows):
            _show_image(axes[r][0], originals[r])
            for c in range(channels):
                _show_image(axes[r][c + 1], outputs[r, ..., c], vmin=low, vmax=high)
            axes[r][0].set_ylabel(f"image {r + 1}", fontsize=8)
        axes[0][0].set_title("original", fontsize=8)
        for c in range(channels):
            axes[0][c + 1].set_title(f"channel {c + 1}", fontsize=8)
        return _to_png(fig)


def _event_lines(ax, events: Sequence[tuple[Any, str, str]]) -> None:
    """Vertical dotted lines at the epochs where something happened (loss inf, loss nan)."""
    for epoch, label, color in events:
        if _finite(epoch):
            ax.axvline(epoch, color=color, linestyle=":", linewidth=1.5, label=_plain(label))


def divergence_plot(history: Sequence[Mapping[str, Any]], *, first_inf: Any = None,
                    first_nan: Any = None) -> bytes:
    """log10 of the finite losses (and output L2 norms) per epoch; inf/nan epochs marked, not plotted.

    log10 on a linear axis rather than a log axis: values near 1e300 overflow matplotlib's
    log-axis margins."""
    events = [(first_inf, f"loss = inf from epoch {_short(first_inf)}", "C3"),
              (first_nan, f"loss = nan from epoch {_short(first_nan)}", "C4")]
    panels = [("loss", "loss")]
    if any(_finite(row.get("l2_norm")) for row in history):
        panels.append(("l2_norm", "L2 norm between the outputs"))
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(4.2 * len(panels) + 0.5, 3.2, 1, len(panels))
        for ax, (key, name) in zip(axes[0], panels):
            xs, ys = _series(history, key)
            points = [(x, math.log10(y)) for x, y in zip(xs, ys) if y > 0]   # log10 needs positive values
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="C0", markersize=3,
                        label=f"finite {name}")
            else:
                ax.text(0.5, 0.5, f"no finite {name}", ha="center", va="center", transform=ax.transAxes)
            _event_lines(ax, events)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(_plain(f"log10 {name}" if points else name))
            if ax.lines:
                ax.legend(loc="best")
        return _to_png(fig)


def per_epoch_lines(curves: Mapping[str, Sequence[Mapping[str, Any]]],
                    panels: Sequence[tuple[str, str]]) -> bytes:
    """One panel per (column, axis label), one line per label of ``curves``; log y over wide ranges."""
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(4.0 * len(panels) + 0.5, 3.2, 1, len(panels))
        for ax, (key, name) in zip(axes[0], panels):
            values = []
            for i, (label, history) in enumerate(curves.items()):
                xs, ys = _series(history, key)
                if xs:
                    ax.plot(xs, ys, "-", color=f"C{i % 10}", label=_plain(label),
                            marker="." if len(xs) < 15 else None)
                    values += ys
            if _wide_range(values) and all(v > 0 for v in values):
                ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(_plain(name))
            if ax.lines:
                ax.legend(loc="best")
        return _to_png(fig)


def value_vs_batch_size(ours: Sequence[tuple[float, float]], reference: Sequence[tuple[float, float]] = (),
                        *, y_label: str = "final L2 norm between the outputs") -> bytes:
    """A final value against the batch size: ours (solid) and the seed's (dashed)."""
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(5.0, 3.2)
        ax = axes[0][0]
        for points, style, color, label in ((ours, "o-", "C0", "ours"), (reference, "s--", "C1", "seed reference")):
            points = sorted((x, y) for x, y in points if _finite(x) and _finite(y))
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], style, color=color, label=label)
        ax.set_xlabel("batch size")
        ax.set_ylabel(_plain(y_label))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(loc="best")
        return _to_png(fig)


def loss_vs_iteration(history: Sequence[Mapping[str, Any]], *, target: Any = None) -> bytes:
    """Training loss per iteration (the ``epoch`` column), with the target loss as a dashed line."""
    xs, ys = _series(history, "loss")
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(6.0, 3.2)
        ax = axes[0][0]
        ax.plot(xs, ys, "-", color="C0", label="training loss")
        if _finite(target):
            ax.axhline(target, color="C3", linestyle="--", label=f"target {_short(target)}")
        if ys and all(y > 0 for y in ys) and (not _finite(target) or target > 0):
            ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.legend(loc="best")
        return _to_png(fig)


def gap_vs_n(points: Sequence[tuple[float, float]]) -> bytes:
    """Largest |analytic - numeric| gradient gap against N, log-log; zero or non-finite gaps skipped."""
    points = sorted((n, g) for n, g in points if _positive(n) and _positive(g))
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(5.0, 3.2)
        ax = axes[0][0]
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", color="C0")
        ax.set_xscale("log")
        if points:
            ax.set_yscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("max |analytic - numeric|")
        return _to_png(fig)


def numeric_vs_n(series: Mapping[Any, Sequence[Mapping[str, Any]]]) -> bytes:
    """Each parameter's numeric gradient against N (log x, solid), its analytic value dashed, same colour."""
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(6.5, 3.6)
        ax = axes[0][0]
        for i, (index, rows) in enumerate(series.items()):
            color = f"C{i % 10}"
            rows = sorted((r for r in rows if _positive(r.get("N"))), key=lambda r: r["N"])
            numeric = [(r["N"], r["numeric"]) for r in rows if _finite(r.get("numeric"))]
            analytic = [(r["N"], r["analytic"]) for r in rows if _finite(r.get("analytic"))]
            if numeric:
                ax.plot([p[0] for p in numeric], [p[1] for p in numeric], "o-", color=color, markersize=3,
                        label=_plain(f"#{index}"))
            if len(analytic) == 1:
                ax.axhline(analytic[0][1], color=color, linestyle="--", linewidth=1)
            elif analytic:
                ax.plot([p[0] for p in analytic], [p[1] for p in analytic], "--", color=color, linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("gradient")
        if ax.lines:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="parameter")
        return _to_png(fig)


def image_grid(rows: Sequence[Sequence[Any]], *, row_labels: Sequence[str] = (), col_labels: Sequence[str] = (),
               titles: Sequence[Sequence[str]] = (), cell: float = 1.1) -> bytes:
    """A grid of images (values in [0, 1]; gray for one channel, colour for RGB), one list per row.

    ``titles[r][c]`` goes above a single image (a gallery's "true / predicted"); ``row_labels``
    and ``col_labels`` name whole rows and columns. Rows may be shorter than the widest.
    """
    nrows = max(1, len(rows))
    ncols = max(1, max((len(r) for r in rows), default=1))
    cell = min(cell, 9.5 / ncols)
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        fig, axes = _new_figure(cell * ncols + (0.9 if row_labels else 0.2), cell * nrows + 0.35 * (1 + bool(titles)),
                                nrows, ncols)
        for r in range(nrows):
            for c in range(ncols):
                ax = axes[r][c]
                if r < len(rows) and c < len(rows[r]):
                    _show_image(ax, rows[r][c])
                    if r < len(titles) and c < len(titles[r]) and titles[r][c]:
                        ax.set_title(_plain(titles[r][c]), fontsize=7)
                else:
                    ax.axis("off")
            if r < len(row_labels):
                axes[r][0].set_ylabel(_plain(row_labels[r]), fontsize=7, rotation=0, ha="right", va="center")
        for c, label in enumerate(col_labels[:ncols]):
            if not titles:
                axes[0][c].set_title(_plain(label), fontsize=7)
        return _to_png(fig)


# -- what instruments saw inside a network (q7, q13, q15) --------------------------------------
def depth_study(lines: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Final training loss (left) and accuracy (right, train solid, val dashed) against depth;
    ``lines`` maps a group label ("activation=relu") to one row per depth. One legend, by colour, below."""
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(8.0, 3.2, 1, 2)
        ax_loss, ax_acc = axes[0]
        for i, (label, rows) in enumerate(lines.items()):
            color = f"C{i % 10}"
            rows = sorted(rows, key=lambda r: r["depth"])
            for ax, key, style, scale in ((ax_loss, "loss", "o-", 1), (ax_acc, "accuracy", "o-", 100),
                                          (ax_acc, "val_accuracy", "s--", 100)):
                points = [(r["depth"], scale * r[key]) for r in rows if _finite(r.get(key))]
                if points:
                    ax.plot(*zip(*points), style, color=color, markersize=4,
                            label=_plain(label) if ax is ax_loss else None)
        for ax, name in ((ax_loss, "final training loss"), (ax_acc, "final accuracy (%)")):
            ax.set_xlabel("depth (hidden layers)")
            ax.set_ylabel(name)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _with_legend_below(fig, *ax_loss.get_legend_handles_labels())


def _with_legend_below(fig: Figure, handles, labels) -> bytes:
    """PNG bytes of ``fig`` with a legend of ``handles`` under the panels (inside, it would hide lines):
    the figure grows by the legend's height and the panels are laid out above it."""
    if handles:
        legend_height = 0.2 * math.ceil(len(handles) / 2) + 0.15          # inches: two columns of entries
        height = fig.get_figheight() + legend_height
        fig.set_figheight(height)
        fig.tight_layout(rect=(0, legend_height / height, 1, 1))
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    else:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buffer.getvalue()


def layer_lines_grid(panels: Sequence[tuple[str, Mapping[int, Sequence[tuple[float, float]]]]], *,
                     y_label: str, columns: int = MAX_PANELS_PER_ROW) -> bytes:
    """Small multiples, one panel per (title, {layer index: [(epoch, value), ...]}): a line per
    layer, dark at the input and light at the output, on one shared log y axis.

    At most ``columns`` panels a row, each at least ``PANEL_INCHES`` wide, and the figure no wider than
    the A4 text (``TEXT_INCHES``): printed at its own size, its labels keep the size they are set in."""
    from matplotlib import colormaps

    columns = max(1, min(columns, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    width = min(TEXT_INCHES, max(PANEL_INCHES * columns, 3.0) + 0.4)
    cmap = colormaps["viridis"]
    with matplotlib.rc_context({**_RC, "xtick.labelsize": 8, "ytick.labelsize": 8}):
        fig = Figure(figsize=(width, 1.75 * rows + 0.3), dpi=DPI)
        FigureCanvasAgg(fig)
        # One y scale for every panel: its tick labels once, on the left of each row.
        axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
        values = [v for _, layers in panels for points in layers.values() for _, v in points if _positive(v)]
        low, high = (min(values), max(values)) if values else (1e-8, 1.0)
        shown = len(panels)
        for k, ax in enumerate(axes.flat):
            if k >= shown:
                ax.set_visible(False)
                continue
            title, layers = panels[k]
            count = max(len(layers), 1)
            for index, points in sorted(layers.items()):
                points = [(e, v) for e, v in points if _positive(v)]
                if points:
                    ax.plot(*zip(*points), "-", color=cmap(0.9 * (index - 1) / max(count - 1, 1)), linewidth=1.2)
            ax.set_yscale("log")
            ax.set_ylim(low / 1.5, high * 1.5)
            ax.set_title(_plain(title), fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            if k % columns == 0:
                ax.set_ylabel(_plain(y_label), fontsize=8)
            if k + columns >= shown:          # the lowest panel of its column
                ax.set_xlabel("epoch", fontsize=8)
        return _to_png(fig)


def ratio_vs_depth(lines: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], *, y_label: str) -> bytes:
    """``lines``: group label -> {"at initialisation": [(depth, ratio)], "after training": [...]};
    one colour per group, solid after training, dashed at initialisation, log y; legend below."""
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(6.5, 3.6)
        ax = axes[0][0]
        for i, (label, moments) in enumerate(lines.items()):
            for moment, points in moments.items():
                points = sorted(p for p in points if _positive(p[1]))
                if points:
                    dashed = moment == "at initialisation"
                    ax.plot(*zip(*points), "--" if dashed else "-", marker="o", markersize=3, color=f"C{i % 10}",
                            label=None if dashed else _plain(label))
        ax.set_yscale("log")
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel(_plain(y_label))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _with_legend_below(fig, *ax.get_legend_handles_labels())


def statistics_vs_layer(lines: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Mean (left) and standard deviation (right, log y when wide) of each layer's activations
    against the layer's depth, one line per label (an initialiser)."""
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(8.0, 3.2, 1, 2)
        for ax, key, name in ((axes[0][0], "act_mean", "activation mean"), (axes[0][1], "act_std", "activation std")):
            values = []
            for i, (label, rows) in enumerate(lines.items()):
                points = [(r["index"], r[key]) for r in sorted(rows, key=lambda r: r["index"]) if _finite(r.get(key))]
                if points:
                    ax.plot(*zip(*points), "o-", color=f"C{i % 10}", label=_plain(label), markersize=4)
                    values += [abs(v) for _, v in points]
            # Scales over decades (N(0, 1) weights): symmetric log, which also draws zeros and negative means.
            if _wide_range(values):
                ax.set_yscale("symlog", linthresh=1e-3)
            ax.set_xlabel("layer (1 = nearest the input)")
            ax.set_ylabel(name)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(lines) > 3:
            return _with_legend_below(fig, *axes[0][0].get_legend_handles_labels())
        for ax in axes[0]:
            if ax.lines:
                ax.legend(loc="best")
        return _to_png(fig)


# -- a search's trials (effect, top-table and multi-trial curve sections) ---------------------------
def scale_of(values: Sequence[Any]) -> str:
    """How a hyperparameter's values lie on an axis or a colour scale: "log" for positive numbers spanning
    more than a decade (lr, l2: a grid of them is evenly spaced in log10), "linear" for other numbers,
    "categories" for anything else (evenly spaced, in sorted order)."""
    values = list(values)
    if values and all(_finite(v) for v in values):
        return "log" if all(v > 0 for v in values) and _wide_range(values, decades=1) else "linear"
    return "categories"


def categories(values: Sequence[Any]) -> list[Any]:
    """The distinct values, numbers first in order, then the rest by their text."""
    distinct = {_short(v): v for v in values}
    return sorted(distinct.values(), key=lambda v: _sort_key((v,)))


def positions(values: Sequence[Any], scale: str) -> list[float]:
    """Where each value sits on a ``scale_of`` axis: log10, the number itself, or its category's index."""
    if scale == "log":
        return [math.log10(v) for v in values]
    if scale == "linear":
        return [float(v) for v in values]
    index = {_short(v): i for i, v in enumerate(categories(values))}
    return [float(index[_short(v)]) for v in values]


def _tick(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else _plain(_short(value))


def trial_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], colour: Mapping[str, Any], name: str) -> bytes:
    """Every trial's validation accuracy (left) and loss (right) per epoch, one line per trial, coloured by its
    value of hyperparameter ``name`` (``colour`` maps each label of ``curves`` to it): a colour bar for numbers
    (log scale when ``scale_of`` says so), a legend below for categories."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.lines import Line2D

    values = [colour[label] for label in curves]
    scale = scale_of(values)
    with matplotlib.rc_context(_RC):
        if scale == "categories":
            fig, axes = _new_figure(8.0, 3.2, 1, 2)
            shown = categories(values)
            by_value = {_short(v): f"C{i % 10}" for i, v in enumerate(shown)}
            colour_of = lambda v: by_value[_short(v)]  # noqa: E731
        else:
            fig, axes = _new_figure(8.6, 3.2, 1, 3, width_ratios=[1, 1, 0.05])
            low, high = min(values), max(values)
            norm = (LogNorm if scale == "log" else Normalize)(low, high if high > low else low + 1)
            cmap = colormaps["viridis"]
            colour_of = lambda v: cmap(norm(v))  # noqa: E731
        ax_acc, ax_loss = axes[0][0], axes[0][1]
        losses = []
        for label, history in curves.items():
            for ax, key, factor in ((ax_acc, "val_accuracy", 100), (ax_loss, "val_loss", 1)):
                xs, ys = _series(history, key)
                if xs:
                    ax.plot(xs, [factor * y for y in ys], "-", color=colour_of(colour[label]), linewidth=1.2,
                            alpha=0.85, marker="." if len(xs) < 15 else None)
                    losses += ys if key == "val_loss" else []
        if _wide_range(losses) and all(v > 0 for v in losses):
            ax_loss.set_yscale("log")
        for ax, ylabel in ((ax_acc, "val accuracy (%)"), (ax_loss, "val loss")):
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if scale == "categories":
            handles = [Line2D([], [], color=by_value[_short(v)]) for v in shown]
            return _with_legend_below(fig, handles, [_plain(f"{name}={_short(v)}") for v in shown])
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=axes[0][2],
                     label=_plain(name + (" (log scale)" if scale == "log" else "")))
        return _to_png(fig)


def parallel_coordinates(trials: Sequence[Mapping[str, Any]], columns: Sequence[str], *,
                         objective: str = "val_accuracy") -> bytes:
    """One vertical axis per hyperparameter in ``columns`` and a last one for ``objective`` (percent); each
    trial a line through its values, coloured by ``objective`` (the best drawn on top). Numbers run from
    low (bottom) to high, log-spaced when ``scale_of`` says so; categories are evenly spaced. Trials
    without a finite ``objective`` are left out."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    rows = sorted((r for r in trials if _finite(r.get(objective))), key=lambda r: r[objective])
    axes_spec = []                       # (axis name, each row's height in [0, 1], [(height, tick label)])
    for column in [*columns, objective]:
        values = [100 * r[objective] for r in rows] if column == objective else [r.get(column) for r in rows]
        scale = scale_of(values)
        raw = positions(values, scale)
        low, high = (min(raw), max(raw)) if raw else (0.0, 0.0)
        height = (lambda p, low=low, high=high: 0.5 if high == low else (p - low) / (high - low))
        if scale == "categories":
            ticks = [(height(i), _tick(v)) for i, v in enumerate(categories(values))]
        else:
            distinct = sorted(set(values))
            if len(distinct) > 6 or column == objective:     # a range or accuracies: lowest, middle, highest
                distinct = [distinct[0], distinct[len(distinct) // 2], distinct[-1]] if distinct else []
            ticks = [(height(positions([v], scale)[0]), _tick(v)) for v in distinct]
        axes_spec.append((f"{objective} (%)" if column == objective else column, [height(p) for p in raw], ticks))
    cmap = colormaps["viridis"]
    accuracies = [r[objective] for r in rows]
    norm = Normalize(min(accuracies, default=0.0), max(accuracies, default=1.0))
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        fig, axes = _new_figure(min(10.0, 1.5 * len(axes_spec) + 1.5), 3.6)
        ax = axes[0][0]
        for i, row in enumerate(rows):
            ax.plot(range(len(axes_spec)), [spec[1][i] for spec in axes_spec], "-", color=cmap(norm(row[objective])),
                    linewidth=1.2, alpha=0.8)
        for k, (_, _, ticks) in enumerate(axes_spec):
            ax.axvline(k, color="0.3", linewidth=0.8)
            for height, label in ticks:
                ax.text(k + 0.04, height, label, fontsize=7, va="center", ha="left",
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})
        ax.set_xticks(range(len(axes_spec)))
        ax.set_xticklabels([_plain(spec[0]) for spec in axes_spec])
        ax.set_yticks([])
        ax.set_xlim(-0.2, len(axes_spec) - 0.6)
        ax.set_ylim(-0.06, 1.06)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        return _to_png(fig)


def importance_chart(shares: Mapping[str, float], *, x_label: str, rest: tuple[str, float] | None = None) -> bytes:
    """One horizontal bar per hyperparameter, the largest on top; ``rest`` (label, value) is a grey bar
    below them (what no single hyperparameter explains)."""
    bars = sorted(((name, value) for name, value in shares.items() if _finite(value)), key=lambda kv: kv[1])
    colours = ["C0"] * len(bars)
    if rest is not None and _finite(rest[1]):
        bars, colours = [rest, *bars], ["0.6", *colours]
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(5.5, 0.35 * len(bars) + 1.2)
        ax = axes[0][0]
        ax.barh(range(len(bars)), [value for _, value in bars], color=colours)
        ax.set_yticks(range(len(bars)))
        ax.set_yticklabels([_plain(name) for name, _ in bars])
        ax.axvline(0, color="0.3", linewidth=0.8)
        ax.set_xlabel(_plain(x_label))
        return _to_png(fig)


def running_best(accuracies: Sequence[Any]) -> bytes:
    """A search's trials in the order they ran: each one's validation accuracy (dots; a trial without one,
    rejected or diverged, is skipped but keeps its number) and the best so far (steps)."""
    points = [(i, 100 * a) for i, a in enumerate(accuracies, start=1) if _finite(a)]
    best, steps = -math.inf, []
    for i, value in points:
        best = max(best, value)
        steps.append((i, best))
    with matplotlib.rc_context(_RC):
        fig, axes = _new_figure(5.5, 3.2)
        ax = axes[0][0]
        if points:
            ax.plot(*zip(*points), "o", color="C0", markersize=4, label="trial")
            ax.step(*zip(*steps), where="post", color="C1", label="best so far")
            ax.legend(loc="lower right")
        ax.set_xlabel("trial (in the order the search ran them)")
        ax.set_ylabel("val accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        return _to_png(fig)
