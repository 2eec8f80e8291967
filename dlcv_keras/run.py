"""Command line: ``python -m dlcv_keras.run q3 [--profile quick] [--tuner grid] ...``.

argparse and main() only; the work is in pipeline.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dlcv_keras import backends
from dlcv_keras.questions import QUESTIONS, get_question
from dlcv_keras.settings import PROFILES, REPORT_FORMATS, TUNERS, Settings
from dlcv_keras.training import devices
from dlcv_keras.tuning.cluster import CONNECT_TIMEOUT, MIN_TRIAL_TIMEOUT, TRIAL_TIMEOUT
from dlcv_keras.validation import InvalidParameterError, check_choice, check_float, check_int

EPILOG = """\
profiles:
  smoke   seconds per question on 2 CPU cores; tiny data, for tests
  quick   a few minutes per question on 2 CPU cores; every experiment and figure (default)
  full    the seed write-up's own settings (epochs, grids, splits); a GPU helps

data (first that works): --data-dir / DLCV_DATA_DIR holding <dataset>/ (MNIST as IDX .gz
files, image sets as class folders), then the TensorFlow Datasets cache, then its download.
When their dataset cannot be had, q3, q4 and q5 run on scikit-learn's bundled digits and
say so loudly; q2 and q6 need no dataset.

results go to RESULTS/<question>/<profile>/ (JSON + CSV); an interrupted run resumes
where it stopped when the same command is run again (--fresh starts over, moving the old
KerasTuner projects aside). A second run on the same results folder stops at once.

several questions: each runs in a process of its own, one after the other, with its own
backend; a failing question does not stop the others, Ctrl-C stops them all, and the exit
status is the worst of theirs (0 done, 1 a trial failed, 2 bad input, 130 interrupted).

searches across machines (KerasTuner's distributed mode): every machine runs the same command
with KERASTUNER_TUNER_ID (exactly "chief" on one, any other id such as worker1 on the rest),
KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT (the chief's address and port). The results
folder must be one shared filesystem. The chief serves over gRPC without TLS or authentication:
use a private network or an SSH tunnel. A worker that is silent for --trial-timeout seconds
loses its trial to another; one restarted with its id takes its trial up again.

speed: dense models (q1, q3) train on Keras's JAX backend through a compiled epoch loop,
convolutional ones on TensorFlow; export KERAS_BACKEND=tensorflow|jax to choose yourself.
TensorFlow's oneDNN kernels are on even where TensorFlow would leave them off (CPUs without
AVX-512 VNNI/BF16, AVX-VNNI or AMX); export TF_ENABLE_ONEDNN_OPTS=0 to keep them off.
Compiled loops are cached in ~/.cache/dlcv_keras (DLCV_CACHE_DIR moves it).
`python -m dlcv_keras.bench --quick` measures the training path on this machine.

examples:
  python -m dlcv_keras.run q3
  python -m dlcv_keras.run q3 --impl scratch          # the same MLP on hand-written numpy modules
  python -m dlcv_keras.run q2 --expr "x*y + sin(z)" --points "2,4,1;9,14,3"
  python -m dlcv_keras.run q4 --kernel-size 7 --sigma 1.5
  python -m dlcv_keras.run q1 --profile smoke --dataset digits --report pdf
  python -m dlcv_keras.run q1 --workers 2             # one search, two worker processes
  DLCV_DATA_DIR=../shared/datasets python -m dlcv_keras.run all --profile quick
"""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ("error: ...") and exit status 2, like every other."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m dlcv_keras.run",
        description="Run deep-learning-for-computer-vision assignment questions: load data, tune with "
                    "KerasTuner, retrain the best setting, evaluate, store results and write a report.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("questions", nargs="*", metavar="QUESTION",
                        help=f"question(s) to run: {', '.join(QUESTIONS)} or 'all' (see --list)")
    parser.add_argument("--list", action="store_true", help="list the question catalogue and exit")
    parser.add_argument("--profile", default="quick", help=f"one of {', '.join(PROFILES)} (default: quick)")
    parser.add_argument("--tuner", help=f"search algorithm of the searches that do not fix their own: "
                                        f"{', '.join(TUNERS)} (default: grid). A question none of whose searches "
                                        f"takes it refuses it")
    parser.add_argument("--dataset", help="run on another dataset than the question's own (e.g. digits)")
    parser.add_argument("--data-dir", type=Path, help="folder holding local dataset copies (default: $DLCV_DATA_DIR)")
    parser.add_argument("--results", type=Path, help="results folder (default: $DLCV_RESULTS_DIR or ./results)")
    parser.add_argument("--space", type=Path, help="search-space TOML file to use instead of the packaged tuners/<question>.toml")
    parser.add_argument("--seed", type=int, default=0, help="random seed for splits, initialisation and search (default: 0)")
    parser.add_argument("--report", default="html", help=f"write-up to produce after the run: {', '.join(REPORT_FORMATS)} "
                                                         "(pdf writes HTML and PDF; default: html)")
    parser.add_argument("--impl", help="implementation for questions that have two: keras (Keras layers) or scratch "
                                       "(hand-written numpy modules; q3). Default: the question's own")
    parser.add_argument("--expr", help="q2: the function of x, y, z to differentiate, e.g. 'x*y + sin(z)' "
                                       "(numbers, pi, + - * / **, exp log sin cos tanh sigmoid relu; default: the seed's f)")
    parser.add_argument("--points", help="q2: points to evaluate at, e.g. '2,4,1;9,14,3' (default: the seed's four)")
    parser.add_argument("--kernel-size", help="q4: Gaussian kernel size, an odd int such as 5 (or 5x5)")
    parser.add_argument("--sigma", type=float, help="q4: Gaussian kernel sigma in pixels, > 0 (default 0.8)")
    parser.add_argument("--image-size", type=int, metavar="PIXELS",
                        help="q10, q18: resize the dataset's images to PIXELS x PIXELS (default: the dataset's own; "
                             "cats vs dogs 64, as the seed)")
    parser.add_argument("--weights", metavar="PATH",
                        help="q10: start from these weights: a keras-hub preset folder (ResNet-18) or a .weights.h5 "
                             "file of this package's ResNet-18 backbone (default: keras-hub's ImageNet "
                             "resnet_18_imagenet when online, else a source checkpoint trained here)")
    parser.add_argument("--no-fallback", action="store_true",
                        help="fail instead of running on digits when a question's dataset cannot be had")
    parser.add_argument("--no-download", action="store_true", help="never try to download a dataset")
    parser.add_argument("--fresh", action="store_true",
                        help="start over: move stored KerasTuner projects aside (never deleted) and redo every "
                             "experiment instead of resuming (use after a 'torn' or foreign tuner project error)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="share each search's trials among N worker processes on this machine (a chief and N "
                             "workers on 127.0.0.1, each pinned to its share of the cores or to one GPU); results "
                             "are the same as one process's. Across machines see 'searches across machines' below")
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS",
                        help=f"a worker's wait for an unreachable chief before it gives up (default: "
                             f"{CONNECT_TIMEOUT:g})")
    parser.add_argument("--trial-timeout", type=float, metavar="SECONDS",
                        help=f"the chief hands a trial to another worker when its worker has been silent (no "
                             f"heartbeat, sent every second) this long; at least {MIN_TRIAL_TIMEOUT:g} (default: "
                             f"{TRIAL_TIMEOUT:g})")
    parser.add_argument("--devices", default="1", metavar="N|all",
                        help="train each trial data-parallel on N devices: N GPUs, or on a machine without a GPU N "
                             "logical CPU devices (they share its cores: the same code path, no speed-up); 'all' = "
                             "every GPU, or one logical CPU device per core. The batch size stays the global one, "
                             "split across the devices, whose gradients are summed (TensorFlow: MirroredStrategy; "
                             "JAX: keras.distribution.DataParallel). Keras questions only (default: 1, one device)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the final summary lines")
    return parser


def list_questions() -> str:
    width = max(len(q.seed_writeup) for q in QUESTIONS.values())
    lines = [f"{'question':<9} {'seed write-up':<{width}}  title"]
    for name, question in QUESTIONS.items():
        lines.append(f"{name:<9} {question.seed_writeup:<{width}}  {question.title}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(list_questions())
        return 0
    try:
        from dlcv_keras.launcher import pin_to_launcher_share

        pin_to_launcher_share()          # a local worker: its cores, before any library starts threads
        names = resolve_questions(args.questions)
        check_choice("--profile", args.profile, PROFILES)
        check_choice("--report", args.report, REPORT_FORMATS)
        check_int("--seed", args.seed, low=0, high=2**31 - 1)
        if args.dataset is not None:
            from dlcv_keras.data import DATASETS
            check_choice("--dataset", args.dataset, DATASETS)
        if args.data_dir is not None and not args.data_dir.is_dir():
            raise InvalidParameterError(f"--data-dir must be an existing folder, got {str(args.data_dir)!r}")
        options = question_options(args, names)
        options["tuner"] = tuner_option(args, names)
        options["devices"] = devices_option(args, names)
        settings = Settings.from_environment(
            profile=args.profile, seed=args.seed, data_dir=args.data_dir,
            results_dir=args.results, dataset=args.dataset, allow_fallback=not args.no_fallback,
            allow_download=not args.no_download, space_file=args.space, report=args.report,
            fresh=args.fresh or None, progress=not args.quiet, **options)
        check_results_dir(settings.results_dir)
        if args.workers is not None:
            check_int("--workers", args.workers, low=1, high=MAX_WORKERS)
            if args.devices != "1":
                raise InvalidParameterError(
                    f"--devices must be 1 with --workers (each local worker trains on one GPU or on its share of the "
                    f"cores), got --devices {args.devices} --workers {args.workers}: use one or the other")
        if args.connect_timeout is not None:
            check_float("--connect-timeout", args.connect_timeout, low=0, high=7 * 24 * 3600, closed="right")
        if args.trial_timeout is not None:
            # At least three heartbeats: a worker says it is alive every second while it trains.
            check_float("--trial-timeout", args.trial_timeout, low=MIN_TRIAL_TIMEOUT, high=7 * 24 * 3600)
        if len(names) > 1:
            return run_each_in_child(names, settings, {name: child_options(parser, args, name) for name in names},
                                     quiet=args.quiet)
        cluster = cluster_for(args, parser, names[0])
        return run(names[0], settings, quiet=args.quiet, cluster=cluster)
    except InvalidParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:          # the results folder or disk gave out mid-run
        print(f"error: cannot write results: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume where it stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        from dlcv_keras.tuning.search import TrialError
        if not isinstance(exc, TrialError) or os.environ.get("DLCV_DEBUG"):
            raise
        print(f"error: {exc} (finished trials are kept: run the same command again to retry; "
              f"DLCV_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


# Every --impl some question offers ("keras", "scratch"), in catalogue order.
IMPLEMENTATIONS = tuple(dict.fromkeys(i for q in QUESTIONS.values() for i in q.implementations))


def question_options(args: argparse.Namespace, names: list[str]) -> dict:
    """--impl, --expr, --points, --kernel-size, --sigma, --image-size, --weights: checked against the
    questions that take them."""
    given = {option: getattr(args, option) for option in QUESTION_OPTIONS}
    for option, value in given.items():
        if value is not None and not any(option in get_question(name).options for name in names):
            owners = [name for name, q in QUESTIONS.items() if option in q.options]
            flag = "--" + option.replace("_", "-")
            raise InvalidParameterError(f"{flag} applies to {', '.join(owners)} only, got it with {', '.join(names)}")
    if args.dataset is not None:
        for name in names:
            if get_question(name).dataset is None:
                raise InvalidParameterError(f"--dataset does not apply to {name} (it makes its own data), "
                                            f"got {args.dataset!r}")
    options: dict = {}
    if args.impl is not None:
        check_choice("--impl", args.impl, IMPLEMENTATIONS)
        for name in names:
            offered = get_question(name).implementations
            if args.impl not in offered:
                raise InvalidParameterError(
                    f"--impl must be one of {', '.join(map(repr, offered))} for {name}, got {args.impl!r}")
        options["implementation"] = args.impl
    if args.expr is not None or args.points is not None:
        from dlcv_keras.scratch.expression import VARIABLES, parse_expression, parse_points

        if args.expr is not None:
            options["expression"] = parse_expression(args.expr).text
        if args.points is not None:
            options["points"] = parse_points(args.points, arity=len(VARIABLES))
    if args.kernel_size is not None:
        options["kernel_size"] = parse_kernel_size(args.kernel_size)
    if args.sigma is not None:
        options["sigma"] = check_float("--sigma", args.sigma, low=0, high=100, closed="right")   # as in tuners/
    if args.image_size is not None:
        options["image_size"] = check_int("--image-size", args.image_size, low=8, high=1024)
    if args.weights is not None:
        options["weights"] = args.weights
    return options


def tuner_option(args: argparse.Namespace, names: list[str]) -> str | None:
    """--tuner, for the questions with a search it chooses the algorithm of (the others' searches each fix
    their own: a grid of listed values, or q16's and q18's random search). A run of several questions
    passes it to those only (``child_options``); given to none of them, it is a one-line error."""
    if args.tuner is None:
        return None
    check_choice("--tuner", args.tuner, TUNERS)
    if not any(get_question(name).takes_tuner(args.impl) for name in names):
        owners = [name for name, q in QUESTIONS.items() if q.takes_tuner()]
        fixed = "; ".join(f"{name}: {_kinds(get_question(name).search_tuners(args.impl))}" for name in names)
        raise InvalidParameterError(f"--tuner applies to the questions with a search it chooses ({', '.join(owners)}) "
                                    f"only, got --tuner {args.tuner} with {', '.join(names)}, whose searches each "
                                    f"run their own algorithm ({fixed})")
    return args.tuner


def _kinds(tuners: dict[str, str]) -> str:
    return " and ".join(dict.fromkeys(tuners.values())) or "no search"


def trains_keras(name: str, implementation: str | None) -> bool:
    """Whether question ``name`` trains Keras models with ``--impl implementation`` (what --devices spreads)."""
    question = get_question(name)
    return question.implementation(implementation) == "keras"


def devices_option(args: argparse.Namespace, names: list[str]) -> int | str:
    """--devices: "all" or an int >= 1 (its upper bound is the machine's, checked once the backend is
    chosen: ``run``). More than one device is for questions that train Keras models; a run of several
    questions passes it to those only (``child_options``), as the question-specific options."""
    spec = devices.parse(args.devices)
    if spec != 1 and not any(trains_keras(name, args.impl) for name in names):
        if args.impl is not None and args.impl != "keras":
            raise InvalidParameterError(f"--devices must be 1 with --impl {args.impl} (hand-written numpy modules "
                                        f"train on one CPU), got {args.devices!r}")
        owners = [name for name in QUESTIONS if trains_keras(name, None)]
        raise InvalidParameterError(f"--devices applies to the questions training Keras models ({', '.join(owners)}) "
                                    f"only, got it with {', '.join(names)}")
    return spec


def parse_kernel_size(text: str) -> int:
    """"5" or "5x5" -> 5; a Gaussian needs a square kernel with a centre pixel."""
    expected = "an odd int >= 1 such as 5, or NxN with equal odd sides (a square kernel with a centre pixel)"
    sides = text.lower().replace(" ", "").split("x")
    if len(sides) > 2 or not all(side.isascii() and side.isdigit() for side in sides):
        raise InvalidParameterError(f"--kernel-size must be {expected}, got {text!r}")
    size = int(sides[0])
    if len({int(side) for side in sides}) != 1 or size < 1 or size % 2 == 0 or size > 99:
        raise InvalidParameterError(f"--kernel-size must be {expected} up to 99, got {text!r}")
    return size


def check_results_dir(path: Path) -> None:
    """The results folder must be a folder we can write, or creatable in one; checked before any work."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InvalidParameterError(f"--results must be a folder (or a path that can become one), got {str(path)!r}: "
                                    f"{str(probe)!r} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"--results must be a writable folder, got {str(path)!r} "
                                    f"({str(probe)!r} is not writable)")


def resolve_questions(names: list[str]) -> list[str]:
    if not names:
        raise InvalidParameterError(f"QUESTION must be given: one of {', '.join(map(repr, QUESTIONS))} or 'all', got nothing")
    if "all" in names:
        return list(QUESTIONS)
    for name in names:
        get_question(name)
    return list(dict.fromkeys(names))


MAX_WORKERS = 64


def cluster_for(args: argparse.Namespace, parser: argparse.ArgumentParser, name: str):
    """This process's part in a shared search (``--workers`` or KerasTuner's variables), or None."""
    from dlcv_keras.tuning.cluster import cluster_from_environment

    cluster = cluster_from_environment(
        workers=args.workers or 0, connect_timeout=args.connect_timeout or CONNECT_TIMEOUT,
        trial_timeout=args.trial_timeout or TRIAL_TIMEOUT)
    if cluster is not None and cluster.local_workers:
        # Each worker runs the chief's own command; --fresh and the report are the chief's business.
        options = [o for o in child_options(parser, args, name)
                   if not o.startswith(("--workers", "--fresh", "--report"))]
        cluster.worker_command = [sys.executable, "-m", "dlcv_keras.run", name, *options, "--report=none"]
    return cluster


def run(name: str, settings: Settings, *, quiet: bool = False, cluster=None) -> int:
    """One question in this process, on the backend fastest for its models (chosen before Keras loads).
    With a worker's ``cluster``, only the trials its chief hands out."""
    question = get_question(name)
    backends.choose(question.models(settings.implementation))
    if settings.devices != 1:
        devices.prepare(settings.devices)       # before Keras: JAX reads its device count once
        settings = dataclasses.replace(settings, devices=devices.resolve(settings.devices))
    from dlcv_keras import pipeline

    echo = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    if cluster is not None and cluster.is_worker:
        cluster.echo = echo
        pipeline.run_worker(question, settings, cluster, echo)
        return 0
    started = time.perf_counter()
    store = pipeline.results_store(question, settings)
    try:
        store = pipeline.run_question(question, settings, echo=echo, cluster=cluster)
        if settings.report != "none":
            from dlcv_keras.report import build_report
            formats = ("html", "pdf") if settings.report == "pdf" else ("html",)
            for path in build_report(settings.results_dir, [name], settings.profile, formats=formats):
                print(f"report: {path}")
    finally:
        if cluster is not None:
            # Stopped early (bad input, Ctrl-C), the workers have nothing to finish: no waiting for them.
            cluster.close(grace=0.0 if sys.exc_info()[0] is not None else 5.0)
        # results/index.html follows every run that got as far as recording itself, finished or not
        # (a run stopped before its run.json leaves no trace at all).
        if store.exists():
            from dlcv_keras.report.index import refresh_index
            refresh_index(settings.results_dir)
    print(f"{name}: results in {store.root}")
    if quiet and (store.root / "lessons.json").is_file():
        # The run's verdict is a result: -q keeps it (the run itself echoed it, with each lesson, otherwise).
        from dlcv_keras.lessons import scoreboard
        found = store.read_json("lessons.json")
        print(f"{name}: {scoreboard(found)['reproduced']} of {len(found)} lessons reproduced")
    if not quiet:
        print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


QUESTION_OPTIONS = ("expr", "points", "kernel_size", "sigma", "image_size", "weights")    # each goes only to the questions taking it


def child_options(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> list[str]:
    """The command-line options given (all but the questions) that apply to question ``name``, for its
    process. Values are passed as ``--flag=value``, so one starting with "-" (``--expr=-x*y``) stays a value."""
    found = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "list"):
            continue
        if action.dest in QUESTION_OPTIONS and action.dest not in get_question(name).options:
            continue
        if action.dest == "devices" and not trains_keras(name, args.impl):
            continue
        if action.dest == "tuner" and not get_question(name).takes_tuner(args.impl):
            continue
        value = getattr(args, action.dest)
        if value is None or value == action.default:
            continue
        flag = next(f for f in action.option_strings if f.startswith("--"))
        found.append(flag if isinstance(action, argparse._StoreTrueAction) else f"{flag}={value}")
    return found


def run_each_in_child(names: list[str], settings: Settings, options: dict[str, list[str]], *,
                      quiet: bool = False) -> int:
    """Each question in a child process of its own (``python -m dlcv_keras.run q ...``), one after
    the other: each gets the backend fastest for it, its output streams through, and a failing
    question does not stop the next. Ctrl-C stops the running one (it keeps what finished, as a
    single run does) and starts no other. Returns the worst exit status."""
    from dlcv_keras import pipeline

    # Every question's space file and options, before the first one starts (each knowing which run before it).
    for i, name in enumerate(names):
        pipeline.check_space(get_question(name), dataclasses.replace(settings, runs_after=tuple(names[:i])))
    started = time.perf_counter()
    statuses: dict[str, int] = {}
    for name in names:
        command = [sys.executable, "-m", "dlcv_keras.run", name, *options[name]]
        # A session of its own: a terminal's Ctrl-C reaches only us, and we pass on exactly one SIGINT
        # (the child's tuner reads a second one as "stop this instant", mid-write).
        child = subprocess.Popen(command, start_new_session=True)
        try:
            statuses[name] = exit_status(child.wait())
        except KeyboardInterrupt:
            _stop(child)
            statuses[name] = 130          # whatever the child made of it, the user asked to stop
        if statuses[name] == 130:
            break
    worst = max(statuses.values())
    summary = ", ".join(f"{name} {STATUS_WORDS.get(code, f'exit {code}')}" for name, code in statuses.items())
    skipped = [name for name in names if name not in statuses]
    if skipped:
        summary += f"; not started: {', '.join(skipped)}"
    print(f"questions: {summary}" + ("" if quiet else f" ({time.perf_counter() - started:.0f} s)"), flush=True)
    return worst


STATUS_WORDS = {0: "done", 1: "failed (exit 1)", 2: "bad input (exit 2)", 130: "interrupted"}


def exit_status(code: int) -> int:
    """A child's return code as a shell reports it: killed by signal s (code -s) is 128 + s."""
    return 128 - code if code < 0 else code


def _stop(child: subprocess.Popen) -> None:
    """After Ctrl-C: pass one SIGINT on (the child finishes its group of batches, keeps what finished
    and exits); a second Ctrl-C passes a second one on (stop now); kill only a child that will not stop."""
    child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=300)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=10)
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        child.wait()


if __name__ == "__main__":
    sys.exit(main())
