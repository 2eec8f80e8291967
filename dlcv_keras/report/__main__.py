"""``python -m dlcv_keras.report q1 q3 [--pdf]``: rebuild write-ups from stored results.

Reads ``results/<question>/<profile>/`` (or ``--results`` / ``DLCV_RESULTS_DIR``), and each
implementation subfolder there (``scratch/`` from ``--impl scratch``), and writes
``report.html`` (and ``report.pdf``) next to it, or one combined ``report-<profile>.html``
for several questions. Never trains.
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
        description="Rebuild the HTML (and PDF) write-up of one or more questions from their stored "
                    "results. Nothing is trained: run `python -m dlcv_keras.run q1` first.",
        epilog="One question writes <results>/<q>/<profile>/report.html; several write one combined "
               "<results>/report-<profile>.html. A question stored with several implementations "
               "(<q>/<profile>/scratch/ from --impl scratch) shows each and compares them. "
               "Exit status 2 means bad input or missing results.")
    parser.add_argument("questions", nargs="+", metavar="QUESTION", help="question names, e.g. q1 q3")
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

    try:
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
