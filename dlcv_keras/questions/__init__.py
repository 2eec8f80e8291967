"""The question catalogue (../shared/QUESTIONS.md): q1 ... q18, each a declaration in its own module."""

from __future__ import annotations

from dlcv_keras.questions import q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18
from dlcv_keras.questions.base import Question
from dlcv_keras.validation import InvalidParameterError

QUESTIONS: dict[str, Question] = {module.QUESTION.name: module.QUESTION for module in (
    q1, q2, q3, q4, q5, q6, q7, q8, q9, q10, q11, q12, q13, q14, q15, q16, q17, q18)}


def get_question(name: str) -> Question:
    if name in QUESTIONS:
        return QUESTIONS[name]
    runnable = ", ".join(repr(q) for q in QUESTIONS)
    raise InvalidParameterError(f"question must be one of {runnable} or 'all' (see --list), got {name!r}")


__all__ = ["QUESTIONS", "Question", "get_question"]
