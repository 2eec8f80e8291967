"""q2: scalar backpropagation by hand (DS-265 DLCV, Assignment 1, part 2).

A micrograd-style engine evaluates the seed's f(x, y, z) and its three partial derivatives at the
seed's four points; TensorFlow's autodiff and central differences check every number, and the seed's
own table is put beside ours. ``--expr`` and ``--points`` take the user's own function and points.
"""

from dlcv_keras.experiments import ScalarGradients
from dlcv_keras.experiments.scalar_gradients import SEED_TABLE_TOLERANCE
from dlcv_keras.lessons import All, Lesson, Threshold, Value
from dlcv_keras.questions.base import Question
from dlcv_keras.scratch.expression import DEFAULT_EXPRESSION

# Our float64 rounding against exact agreement: the engine and TensorFlow run the same operations.
AUTODIFF_TOLERANCE = 1e-7

LESSONS = (
    Lesson(f"The seed's f(x, y, z) = {DEFAULT_EXPRESSION} and its gradient, computed by reverse-mode "
           f"backpropagation, equal the seed's table at its four points: at each point the relative difference "
           f"over f and its three derivatives is at most {SEED_TABLE_TOLERANCE:g}.",
           All((Threshold(Value("gradients", "seed_points", "points compared with the seed's table"), ">=", 4),
                Threshold(Value("gradients", "max_rel_diff_seed", "the largest relative difference from the seed's "
                                "table"), "<=", SEED_TABLE_TOLERANCE)))),
    Lesson(f"Backpropagation by hand gives the same gradient as TensorFlow's autodiff and as central differences: "
           f"at every point the relative difference is at most {AUTODIFF_TOLERANCE:g}.",
           All((Threshold(Value("gradients", "max_rel_diff_tf", "the largest relative difference from TensorFlow"),
                          "<=", AUTODIFF_TOLERANCE),
                Threshold(Value("gradients", "max_rel_diff_numeric", "the largest relative difference from central "
                                "differences"), "<=", AUTODIFF_TOLERANCE)))),
)

QUESTION = Question(
    name="q2",
    title="Scalar backpropagation (hand-written autodiff)",
    seed_writeup="000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)",
    dataset=None,
    model=None,
    experiments=(
        ScalarGradients("gradients", "f(x, y, z) and df/dx, df/dy, df/dz: engine vs TensorFlow vs central differences"),
    ),
    options=("expr", "points"),
    implementations=("scratch",),
    generated_data={"name": "none", "source": "no dataset: f is evaluated at the given points"},
    lessons=LESSONS,
    # The seed's table (section 2), as printed. It gives no formula: DEFAULT_EXPRESSION is the f that
    # reproduces it (scratch/expression.py says how it was read off the table).
    reference={"gradients": {
        "rows": [
            {"x": 2, "y": 4, "z": 1, "value": -0.23823101469115085, "df_dx": 2.1417102890343505e-16,
             "df_dy": 0.43720979194276516, "df_dz": -0.30697227565888},
            {"x": 9, "y": 14, "z": 3, "value": -1.3132617097862371, "df_dx": -2.5313688314302287e-15,
             "df_dy": -1.148344174369598, "df_dz": 2.672161875217988e-07},
            {"x": 128, "y": 42, "z": 666, "value": -0.3132616875182231, "df_dx": 1.3244281103803985e-14,
             "df_dy": -0.42245219681098717, "df_dz": -0.0},
            {"x": 52, "y": 14, "z": 28, "value": -0.31326168751822264, "df_dx": -6.626324387577346e-15,
             "df_dy": -0.4224521968109866, "df_dz": -0.0},
        ],
        "note": "the seed's table of section 2 (x, y, z, forward value, grad-x, grad-y, grad-z), as printed. Two "
                "cells are cut at the column's edge: grad-z at (2, 4, 1) shows 14 digits (-0.30697227565888), and "
                "at (9, 14, 3) it reads \"2.672161875217988e\", its exponent cut off; we read it as e-07, the "
                "exponent of our value, whose 16 digits it shows. The seed prints no formula for f: ours is the "
                "one that reproduces its table (grad-x is rounding noise around an exact 0, grad-z exactly 0 "
                "where tanh(z**2) rounds to 1).",
    }},
)
