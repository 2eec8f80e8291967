"""A run's lessons.json (dlcv_keras/lessons.py wrote it) as the report shows it.

Each lesson of the seed is a claim with a verdict computed on the stored numbers; the report only
reads them: at the head of a chapter ("What this question teaches, and whether our run shows it"),
as one "What this shows" line at its end, on the write-up's title page as a scoreboard, and as a
column of results/index.html. Lessons stored by an earlier run (their run_id is not run.json's) are
shown as that run's, never as this one's.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from dlcv_keras.lessons import LESSONS_FILE, NOT_COMPARABLE, NOT_REPRODUCED, REPRODUCED, VERDICTS, scoreboard
from dlcv_keras.report.format import read_json
from dlcv_keras.results import ResultsStore
from dlcv_keras.validation import InvalidParameterError

VERDICT_WORDS = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not reproduced", NOT_COMPARABLE: "not comparable"}


def read_lessons(store: ResultsStore, run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's lessons, checked and counted, or None when the run has not judged them (yet)."""
    if not (store.root / LESSONS_FILE).is_file():
        return None
    found = read_json(store, LESSONS_FILE)
    where = store.root / LESSONS_FILE
    if not isinstance(found, list) or not found:
        got = "an empty list" if found == [] else type(found).__name__
        raise InvalidParameterError(f"{where} must hold a non-empty JSON list of lessons, got {got}")
    lessons = []
    for number, lesson in enumerate(found, 1):
        if not isinstance(lesson, Mapping) or not isinstance(lesson.get("claim"), str) \
                or lesson.get("verdict") not in VERDICTS or not isinstance(lesson.get("evidence"), Mapping) \
                or not isinstance(lesson.get("cause"), (str, type(None))) \
                or not isinstance(lesson.get("run_id"), (str, type(None))):
            raise InvalidParameterError(" ".join(
                f"lesson {number} in {where} needs a \"claim\", a \"verdict\" (one of {', '.join(VERDICTS)}), an "
                f"\"evidence\" object, and a \"cause\" and \"run_id\" that are text or null; got {lesson!r}"[:400]
                .split()))
        lessons.append({"claim": lesson["claim"], "headline": headline(lesson["claim"]),
                        "verdict": lesson["verdict"], "verdict_words": VERDICT_WORDS[lesson["verdict"]],
                        "evidence": str(lesson["evidence"].get("text") or ""), "cause": lesson.get("cause")})
    written = {lesson.get("run_id") for lesson in found}
    # Judged by this run only when every lesson carries run.json's run id and the run is complete
    # (an interrupted rerun is rewriting the numbers the old verdicts read).
    stale = run.get("status") != "complete" or written != {run.get("run_id")}
    counts = scoreboard(found)
    return {"lessons": lessons, "counts": counts, "total": len(lessons),
            "all_reproduced": counts[REPRODUCED] == len(lessons), "stale": stale,
            "judged_by": "an earlier run" if stale else "this run",
            "shows": shows(lessons, "An earlier run" if stale else "This run")}


def headline(claim: str) -> str:
    """A claim's plain statement: its words before the first colon outside parentheses (the rest says how
    it is checked)."""
    depth = 0
    for i, char in enumerate(claim):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and claim.startswith(": ", i):
            return claim[:i]
    return claim.rstrip(".")


def shows(lessons: Sequence[Mapping[str, Any]], who: str = "This run") -> str:
    """The chapter's closing line, drawn from its lessons' verdicts only: each claim's headline as written."""
    held = [lesson["headline"] for lesson in lessons if lesson["verdict"] == REPRODUCED]
    missed = [lesson for lesson in lessons if lesson["verdict"] != REPRODUCED]
    if not held:
        said = f"{who} reproduces none of the seed's {len(lessons)} lessons."
    elif not missed:
        said = f"{who} reproduces {'the' if len(lessons) == 1 else f'all {len(lessons)} of the'} seed's lessons: "
        said += "; ".join(held) + "."
    else:
        said = f"{who} reproduces {len(held)} of the seed's {len(lessons)} lessons: " + "; ".join(held) + "."
    for lesson in missed:
        why = f" ({lesson['cause']})" if lesson.get("cause") else ""
        said += f" Not shown ({lesson['verdict_words']}): {lesson['headline']}{why}."
    return said


def index_words(found: Mapping[str, Any] | None) -> str:
    """results/index.html's lessons cell: "3 of 4 reproduced" (and what the rest are)."""
    if found is None:
        return "not judged"
    counts = found["counts"]
    words = f"{counts[REPRODUCED]} of {found['total']} reproduced"
    rest = [f"{counts[v]} {VERDICT_WORDS[v]}" for v in (NOT_REPRODUCED, NOT_COMPARABLE) if counts[v]]
    return words + (f" ({', '.join(rest)})" if rest else "") + (", an earlier run's" if found["stale"] else "")


def title_scoreboard(chapters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The write-up's title-page table: each question's lessons by verdict, and how many questions
    reproduce every lesson (this run's verdicts only)."""
    rows, judged, complete = [], 0, 0
    for chapter in chapters:
        found = chapter.get("lessons")
        if found is None:
            words = "not run" if chapter.get("not_run") else "not judged (lessons are judged when a run completes)"
            rows.append({"question": chapter["question"], "title": chapter["title"], "cells": None, "stale": False,
                         "words": words})
            continue
        judged += 1
        complete += found["all_reproduced"] and not found["stale"]
        rows.append({"question": chapter["question"], "title": chapter["title"], "stale": found["stale"],
                     "cells": [found["counts"][v] for v in VERDICTS], "total": found["total"]})
    return {"rows": rows, "headers": [VERDICT_WORDS[v] for v in VERDICTS], "judged": judged,
            "every_lesson": complete, "questions": len(chapters)}
