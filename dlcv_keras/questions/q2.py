"""q2: scalar backpropagation by hand (DS-265 DLCV, Assignment 1, part 2).

A micrograd-style engine evaluates f(x, y, z) and its three partial derivatives at the
seed's points; TensorFlow's autodiff and central differences check every number.
``--expr`` and ``--points`` take the user's own function and points.
"""

from dlcv_keras.experiments import ScalarGradients
from dlcv_keras.questions.base import Question

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
    # The seed shows its derivation, not a table of numbers: nothing to put beside ours.
    reference={},
)
