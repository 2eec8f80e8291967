"""The question catalogue (../shared/QUESTIONS.md): q1 ... q18, and the ones this version runs."""

from __future__ import annotations

from dlcv_keras.questions import q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18
from dlcv_keras.questions.base import Question
from dlcv_keras.validation import InvalidParameterError

QUESTIONS: dict[str, Question] = {q.name: q for q in (q1.QUESTION, q2.QUESTION, q3.QUESTION, q4.QUESTION,
                                                      q5.QUESTION, q6.QUESTION, q7.QUESTION, q8.QUESTION, q9.QUESTION,
                                                      q10.QUESTION, q11.QUESTION, q12.QUESTION, q13.QUESTION, q14.QUESTION, q15.QUESTION, q16.QUESTION,
                                                      q17.QUESTION, q18.QUESTION)}

# Every question of the catalogue, for --list; those not in QUESTIONS are planned.
CATALOGUE = {
    "q1": "Single-layer (linear softmax) classifier, MNIST",
    "q2": "Scalar backpropagation (hand-written autodiff)",
    "q3": "Modular vector backpropagation: 2-layer MLP, MNIST",
    "q4": "Convolution module by hand (Gaussian blur)",
    "q5": "Convolution layer with L2 loss, CIFAR-10",
    "q6": "Two-layer network from scratch, toy data",
    "q7": "Two-layer network on CIFAR-10",
    "q8": "Regularisation, MNIST",
    "q9": "ResNet-18 from scratch, CIFAR-10",
    "q10": "ResNet-18 from pretrained weights, CIFAR-10",
    "q11": "Tiny-CIFAR-10 with augmentation and dropout",
    "q12": "Activation maps",
    "q13": "Activation functions and vanishing gradients, grayscale CIFAR-10",
    "q14": "Regularisation, Gurmukhi digits",
    "q15": "Weight initialisation, MNIST MLP",
    "q16": "MLP search and gradient validation, MNIST",
    "q17": "CNN vs MLP, MNIST",
    "q18": "Cats vs dogs",
}


def get_question(name: str) -> Question:
    if name in QUESTIONS:
        return QUESTIONS[name]
    runnable = ", ".join(repr(q) for q in QUESTIONS)
    if name in CATALOGUE:
        raise InvalidParameterError(
            f"question must be one this version runs ({runnable}, or 'all'), got {name!r} (planned, not implemented yet)")
    raise InvalidParameterError(f"question must be one of {runnable} or 'all' (see --list), got {name!r}")


__all__ = ["CATALOGUE", "QUESTIONS", "Question", "get_question"]
