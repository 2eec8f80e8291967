"""``python -m dlcv_keras.report a1 [--pdf]`` or ``... q1 q3``: rebuild write-ups from stored results.

An assignment (a1 ... a5, or ``all`` for the five) writes its write-up to
``<results>/writeups/<assignment>-<profile>.html`` (and ``.pdf``): every question of the seed
assignment in order, those not run listed with their command. Questions write their reports to
``results/<question>/<profile>/report.html``, or one combined ``report-<profile>.html`` for several.
Either way ``<results>/index.html``, the overview of every question, is rewritten. Never trains.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dlcv_keras.validation import InvalidParameterError


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line and exit status 2, like every other error here."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m dlcv_keras.report",
        description="Rebuild assignment write-ups (a1 ... a5, or all) or question reports (q1 q3) from stored "
                    "results. Nothing is trained: run `python -m dlcv_keras.run q1` first.",
        epilog="An assignment writes <results>/writeups/<a>-<profile>.html: a title page, contents, one "
               "numbered chapter per question of the seed assignment (a question not run yet is listed "
               "with the command that runs it), observations computed from the stored numbers, and an "
               "appendix with provenance, commands and search spaces. One question writes "
               "<results>/<q>/<profile>/report.html; several write one combined <results>/report-<profile>.html. "
               "Every call also rewrites <results>/index.html. Exit status 2 means bad input or missing results.")
    parser.add_argument("questions", nargs="+", metavar="NAME",
                        help="assignments a1 ... a5 or all (write-ups), or questions, e.g. q1 q3 (reports)")
    parser.add_argument("--pdf", action="store_true", help="also write a PDF (WeasyPrint) beside the HTML")
    parser.add_argument("--profile", default="quick", help="which stored run to report: smoke, quick or full (default: quick)")
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="results folder (default: $DLCV_RESULTS_DIR, else ./results)")
    parser.add_argument("--output", type=Path, default=None, metavar="PATH",
                        help="output path without or with suffix; .html / .pdf are put on it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    results = args.results or Path(os.environ.get("DLCV_RESULTS_DIR") or "results")
    formats = ("html", "pdf") if args.pdf else ("html",)
    from dlcv_keras.report import build_report
    from dlcv_keras.report.writeup import build_writeups, check_assignments, is_assignment

    try:
        if any(is_assignment(name) for name in args.questions):
            assignments = check_assignments(args.questions)
            if args.output is not None and len(assignments) > 1:
                raise InvalidParameterError(f"--output names one file; it cannot hold {len(assignments)} "
                                            f"write-ups ({', '.join(assignments)})")
            paths = build_writeups(results.expanduser(), assignments, profile=args.profile,
                                   formats=formats, output=args.output)
        else:
            paths = build_report(results.expanduser(), args.questions, profile=args.profile,
                                 formats=formats, output=args.output)
    except InvalidParameterError as error:
        message = " ".join(str(error).split())  # one line, whatever the message held
        print(f"error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write the report: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    from dlcv_keras.report.index import refresh_index
    refresh_index(results.expanduser())     # the overview links the reports just written
    return 0


if __name__ == "__main__":
    sys.exit(main())
