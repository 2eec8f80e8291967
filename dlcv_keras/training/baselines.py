"""Non-Keras baselines the seeds compare against."""

from __future__ import annotations

import time
import warnings

import numpy as np


def logistic_regression(x_train, y_train, x_test, y_test, *, max_iter: int = 300, seed: int = 0) -> dict:
    """scikit-learn's multinomial LogisticRegression on the flattened images (q1's part 1.b)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=max_iter, random_state=seed)
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train.reshape(len(x_train), -1), y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    predicted = model.predict(x_test.reshape(len(x_test), -1))
    return {
        "model": f"LogisticRegression(max_iter={max_iter}, solver='lbfgs', C=1.0)",
        "train_accuracy": float(np.mean(model.predict(x_train.reshape(len(x_train), -1)) == y_train)),
        "test_accuracy": float(np.mean(predicted == y_test)),
        "test_predicted": predicted,          # the class per test image (predictions.npz, not the summary)
        "converged": converged,
        "seconds": round(time.perf_counter() - started, 3),
    }
