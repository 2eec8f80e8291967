"""One trial in a child process, so that a search's memory stays flat on TensorFlow.

TensorFlow keeps about 60 MB of every traced training function for good: building, fitting and
dropping a width-0.125 ResNet-18 ten times in one process grew it from 1.19 GB to 1.61 GB here,
with ``keras.backend.clear_session()``, ``gc.collect()``, ``malloc_trim`` and the eager context's
cache clearing all tried (keras-team/keras#17458, open). A plain ``tf.function`` training step
leaks the same; eager execution does not. So a TensorFlow search with several trials trains each
one in a child process, which takes its leak with it when it ends.

The children are forked from a ``forkserver`` that imported Keras and TensorFlow once, before
running any op (TensorFlow's threads start with the first op, not at import), so a trial costs
about 0.4 s of start-up instead of the 5 s of a fresh interpreter importing TensorFlow. The
child ignores Ctrl-C: the searching process decides, and ends the child when it stops.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading

from dlcv_keras.validation import InvalidParameterError

# Imported once by the fork server; every trial's process starts with them loaded.
PRELOAD = ("keras", "keras_tuner", "dlcv_keras.tuning.search", "dlcv_keras.data.images",
           "dlcv_keras.data.augment", "dlcv_keras.training.optimizers", "dlcv_keras.training.schedules",
           "dlcv_keras.training.progress")

_context = None
_lock = threading.Lock()


def _forkserver():
    global _context
    with _lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(PRELOAD))
            _context = context
        return _context


def run_isolated(job: dict, *, should_stop) -> dict:
    """``tuning.search.train_and_record(**job)`` in a child process; its record.

    ``should_stop()`` is polled while the child trains: when it turns true (the first Ctrl-C) the
    child is ended and KeyboardInterrupt raised. A bad value found by the child (an
    InvalidParameterError) is raised here as one; any other failure as RuntimeError with its words.
    """
    context = _forkserver()
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_train_in_child, args=(send, job), daemon=True)
    child.start()
    send.close()
    try:
        while not receive.poll(0.2):
            if should_stop():
                raise KeyboardInterrupt
            if not child.is_alive() and not receive.poll(0):
                break
        try:
            kind, payload = receive.recv()
        except EOFError:                       # the child died without a word (killed, out of memory)
            child.join()
            code = child.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise RuntimeError(f"the trial's process ended ({how}) before reporting") from None
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        receive.close()
    if kind == "invalid":
        raise InvalidParameterError(payload)
    if kind == "error":
        raise RuntimeError(payload)
    return payload


def _train_in_child(send, job: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the searching process decides, then ends us
    # Ended with SIGTERM: unwind, so that a model being saved leaves no partial file behind.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        import keras_tuner

        from dlcv_keras.backends import import_tensorflow_quietly
        from dlcv_keras.tuning.search import progress_callbacks, train_and_record

        import_tensorflow_quietly()
        count = getattr(job["hypermodel"], "devices", 1)
        if count > 1:
            from dlcv_keras.training.devices import configure
            configure(count)               # TensorFlow's logical CPU devices, before the trial's first op
        hp = keras_tuner.HyperParameters()
        for name, value in job.pop("values").items():
            hp.Fixed(name, value)
        plan = job.pop("progress")
        record = train_and_record(hp=hp, callbacks=progress_callbacks(plan), **job)
        send.send(("ok", record))
    except InvalidParameterError as error:
        send.send(("invalid", str(error)))
    except BaseException as error:            # reported, not printed: the parent words the failure
        send.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        send.close()
