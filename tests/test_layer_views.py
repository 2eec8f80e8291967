"""The depth study's sentences, from stored rows shaped as a search writes them (no training here):
which settings stayed at chance and whether the gradient reaching the first layer explains it."""

from __future__ import annotations

import struct

from dlcv_keras.experiments.layer_statistics import _at_chance, _series, _why
from dlcv_keras.report import figures


def trial(tid, depth, accuracy):
    return {"trial_id": tid, "status": "completed", "depth": depth, "accuracy": accuracy, "loss": 2.3,
            "val_accuracy": accuracy, "activation": "sigmoid"}


def layers(depth, first, output, epochs=2):
    """layer_stats rows of one trial: every epoch, first layer ``first`` and output ``output`` mean |grad|."""
    rows = []
    for epoch in range(epochs + 1):
        for index in range(1, depth + 2):
            value = first if index == 1 else output if index == depth + 1 else (first + output) / 2
            rows.append({"epoch": epoch, "index": index, "layer": f"dense_{index - 1}", "grad_mean_abs": value})
    return rows


# 10 classes, 100 validation images: 12 % is not above chance by the exact binomial test (p = 0.3), 40 % is.
RUN = {"dataset": {"class_names": [str(k) for k in range(10)], "splits": {"train": 900, "val": 100, "test": 100}}}


def words(rows, by_trial):
    stuck = _at_chance(rows, ["activation"], RUN)["stuck_rows"]
    return _why(rows, stuck, ["activation"], by_trial)


def test_settings_at_chance_with_the_least_gradient_are_said_to_have_vanishing_gradients():
    rows = [trial("0", 1, 0.40), trial("1", 8, 0.10)]
    said = words(rows, {"0": layers(1, 0.02, 0.1), "1": layers(8, 1e-7, 0.1)})
    assert said.startswith("The settings at chance are exactly those whose first layer received the least gradient")
    assert "at most 1.0e-06 (activation=sigmoid, depth 8)" in said
    assert "at least 2.0e-01 (activation=sigmoid, depth 1)" in said


def test_an_output_layer_without_gradient_is_said_first_and_not_counted_as_reaching_the_input():
    rows = [trial("0", 1, 0.40), trial("1", 8, 0.10)]
    said = words(rows, {"0": layers(1, 0.02, 0.1), "1": layers(8, 0.0, 0.0)})
    assert said.startswith("No gradient reached any layer in 1 setting (the output layer's mean |gradient| after "
                           "training was 0): activation=sigmoid, depth 8.")
    assert "Gradients reached the input in every other setting" in said
    assert "in every setting" not in said
    assert words([trial("1", 8, 0.10)], {"1": layers(8, 0.0, 0.0)}).startswith("No gradient reached any layer")


def test_overlapping_shares_name_single_settings_once_and_count_only_what_is_below():
    rows = [trial("0", 2, 0.40), trial("1", 6, 0.12)]
    said = words(rows, {"0": layers(2, 0.001, 0.1), "1": layers(6, 0.005, 0.1)})
    assert said.startswith("The gradient alone does not separate them")
    assert "was 5.0e-02 (activation=sigmoid, depth 6) in the settings at chance" in said
    assert " from " not in said and "all 0 settings" not in said and said.endswith("in those that learned.")


def png_inches(png: bytes) -> tuple[float, float]:
    """A PNG's width and height at the figures' DPI (its IHDR chunk holds them in pixels)."""
    width, height = struct.unpack(">II", png[16:24])
    return width / figures.DPI, height / figures.DPI


def test_ten_depths_of_per_layer_curves_fit_the_page_at_their_own_size_five_a_row():
    """q13's depth study draws one panel per depth (ten in its quick profile): at most five a row, the
    figure no wider than the A4 text, so the PDF prints it unshrunk and its 8-9 pt labels stay 8-9 pt."""
    panels = [(f"depth {d}", _series(layers(d, 1e-3 / d, 0.1, epochs=4), "grad_mean_abs")) for d in range(1, 11)]
    width, height = png_inches(figures.layer_lines_grid(panels, y_label="mean |gradient|"))
    assert width <= figures.TEXT_INCHES
    assert figures.MAX_PANELS_PER_ROW * figures.PANEL_INCHES <= width           # five a row, each wide enough
    rows = 2
    assert rows * 1.5 <= height <= rows * 2.0 + 0.5
    # two depths: two panels side by side, not five columns with three left empty
    narrow, _ = png_inches(figures.layer_lines_grid(panels[:2], y_label="mean |gradient|"))
    assert narrow < width / 1.5
