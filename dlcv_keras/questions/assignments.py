"""The assignments the questions come from: one per seed write-up in ../shared/seeds/.

A question's assignment is the seed file its ``seed_writeup`` names first
("000_55ae3891dde185a2.txt (DS-265 DLCV, Assignment 1)" -> a1), so the catalogue
(dlcv_keras/questions/q*.py) stays the one place that says which question is whose.
Course and title are the seed files' own headings.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcv_keras.questions import QUESTIONS, get_question
from dlcv_keras.validation import InvalidParameterError

__all__ = ["Assignment", "ASSIGNMENTS", "questions_of", "assignment_of"]


@dataclass(frozen=True)
class Assignment:
    name: str           # "a1"
    seed_file: str      # "000_55ae3891dde185a2.txt"
    course: str
    title: str


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


def _seed_file(question: str) -> str:
    return get_question(question).seed_writeup.split()[0]


def questions_of(name: str) -> list[str]:
    """The questions of assignment ``name`` ("a1"), in catalogue order."""
    if name not in ASSIGNMENTS:
        raise InvalidParameterError(f"assignment must be one of {', '.join(map(repr, ASSIGNMENTS))}, got {name!r}")
    return [q for q in QUESTIONS if _seed_file(q) == ASSIGNMENTS[name].seed_file]


def assignment_of(question: str) -> str:
    """The assignment ("a1") whose seed write-up ``question`` comes from."""
    seed_file = _seed_file(question)
    for assignment in ASSIGNMENTS.values():
        if assignment.seed_file == seed_file:
            return assignment.name
    raise InvalidParameterError(f"{question}'s seed write-up {seed_file!r} belongs to no assignment "
                                f"(dlcv_keras/questions/assignments.py lists {', '.join(ASSIGNMENTS)})")
