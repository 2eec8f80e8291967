"""The five seed assignments (../shared/QUESTIONS.md): a1 ... a5, each the questions of one seed write-up.

An assignment's questions are not listed here: each question module names its seed write-up
(``Question.seed_writeup``), and an assignment takes every question whose seed is its file, in
question order. Course and title are the seed's own front matter.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcv_keras.questions import QUESTIONS
from dlcv_keras.validation import InvalidParameterError


@dataclass(frozen=True)
class Assignment:
    name: str          # "a1"
    seed_file: str     # the seed write-up in ../shared/seeds/
    course: str
    title: str

    @property
    def questions(self) -> list[str]:
        return questions_of(self.name)


ASSIGNMENTS: dict[str, Assignment] = {a.name: a for a in (
    Assignment("a1", "000_55ae3891dde185a2.txt", "DS-265 Deep Learning for Computer Vision", "Assignment 1"),
    Assignment("a2", "001_abbb178859d60717.txt", "HLCV (High-Level Computer Vision)",
               "Exercise 2: Deep neural networks and backpropagation"),
    Assignment("a3", "002_8c02bd9958ac3707.txt", "ELL-793 Computer Vision",
               "Assignment 2: Convolutional neural networks"),
    Assignment("a4", "003_22c6e2386fbda391.txt", "Deep Learning", "Programming Assignment 1"),
    Assignment("a5", "004_9963c858e23e4d1d.txt", "IFT6135-H2019 Representation Learning",
               "Assignment 1 (practical): multilayer perceptrons, convolutional networks and Kaggle"),
)}


def get_assignment(name: str) -> Assignment:
    if name in ASSIGNMENTS:
        return ASSIGNMENTS[name]
    raise InvalidParameterError(f"assignment must be one of {', '.join(map(repr, ASSIGNMENTS))} or 'all', got {name!r}")


def questions_of(name: str) -> list[str]:
    """The assignment's questions, in question order: those whose seed write-up is its seed file."""
    seed_file = get_assignment(name).seed_file
    return [q for q, question in QUESTIONS.items() if question.seed_writeup.split()[0] == seed_file]


def assignment_of(question: str) -> str:
    """The assignment a question belongs to ("a1" for q1)."""
    for name in ASSIGNMENTS:
        if question in questions_of(name):
            return name
    raise InvalidParameterError(f"question {question!r} belongs to no assignment")


__all__ = ["Assignment", "ASSIGNMENTS", "get_assignment", "questions_of", "assignment_of"]
