"""q8: regularisation on MNIST (ELL-793, Assignment 2, part 1).

A 784-500-500-10 softmax network trained four ways, each a run of its own: no
regularisation, L2, dropout, and early stopping (patience 20, best weights restored).
One table sets their test loss and accuracy beside the seed's, one figure overlays their
curves; a search over the L2 lambda and the dropout rate follows. The seed does not give its
optimizer, learning rate, lambda or dropout rate: tuners/q8.toml says what we chose.
"""

from dlcv_keras.experiments import RunComparison, Search
from dlcv_keras.questions.base import Question

RUNS = (("none", "no regularisation"), ("l2", "L2"), ("dropout", "dropout"), ("early_stop", "early stopping"))

QUESTION = Question(
    name="q8",
    title="Regularisation, MNIST",
    seed_writeup="002_8c02bd9958ac3707.txt (ELL-793, Assignment 2)",
    dataset="mnist",
    model="mlp",
    optimizer="sgd",
    val_fraction=1 / 6,               # 10k of MNIST's 60k training images, as the seed
    experiments=(
        *(Search(name, f"Training with {label}", show=False, evaluates_test=True, tuner="grid")
          for name, label in RUNS),
        RunComparison("compare", "1.4 No regularisation vs L2 vs dropout vs early stopping", runs=RUNS),
        Search("l2_dropout", "Search over the L2 lambda and the dropout rate", template="effect"),
    ),
    reference={
        "compare": {"rows": [
            {"run": "no regularisation", "test_loss": 0.0766433402, "test_accuracy": 0.9814453125},
            {"run": "L2", "test_loss": 0.0601287782, "test_accuracy": 0.982421875},
            {"run": "dropout", "test_loss": 0.13864083588123, "test_accuracy": 0.966015636920929},
            {"run": "early stopping", "test_loss": 0.065050162374973, "test_accuracy": 0.9803711175918579,
             "epochs_run": 60},
        ], "note": "250 epochs; early stopping (patience 20) halted near epoch 60; the seed reports test "
                   "numbers only, not its optimizer, learning rate, lambda or dropout rate."},
    },
)
