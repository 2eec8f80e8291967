"""TensorFlow Datasets as a source: first its local cache, then (maybe) a download.

The cache lives in ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``. TFDS itself reads
``TFDS_DATA_DIR`` once, when it is first imported; we read it on every call and pass
it on, so changing the variable later (as the tests do) still takes effect.

On a machine without internet a TFDS download does not always fail fast, so before
downloading we open one TCP connection to the download host, the DNS look-up and the
connection together bounded by 3 s, and give up on any error.

Every failure here raises ``DataUnavailable`` with a short reason such as
"not in the TensorFlow Datasets cache (/root/tensorflow_datasets)"; ``load_dataset``
joins the reasons of all the sources it tried into one message.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import numpy as np

from dlcv_keras.data.base import DataUnavailable, Pool, SourceData

PROBE_HOST = ("storage.googleapis.com", 443)
PROBE_TIMEOUT = 3.0


def cache_dir() -> str | None:
    """The TFDS cache folder to use, or None for TFDS's own default."""
    return os.environ.get("TFDS_DATA_DIR") or None


def is_online(host: tuple[str, int] = PROBE_HOST, timeout: float = PROBE_TIMEOUT) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` seconds, DNS included.

    ``socket.create_connection``'s timeout does not cover the name look-up, and
    ``getaddrinfo`` can block far longer (30 s and more with an unreachable resolver),
    so the look-up runs in a daemon thread we stop waiting for at the deadline; the
    connection attempts then share whatever time is left.
    """
    deadline = time.monotonic() + timeout
    addresses = _resolve(host, timeout)
    if not addresses:       # DNS failure or look-up past the deadline: offline
        return False
    for family, kind, proto, _, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(remaining)
                sock.connect(address)
                return True
        except OSError:     # refused, unreachable, timeout: try the next address
            continue
    return False


def _resolve(host: tuple[str, int], timeout: float) -> list | None:
    """``getaddrinfo`` for a TCP connection to ``host``, or None if it fails or takes
    longer than ``timeout`` (the look-up thread is a daemon, so it never holds up exit)."""
    found: list = []

    def look_up() -> None:
        try:
            found.extend(socket.getaddrinfo(host[0], host[1], 0, socket.SOCK_STREAM))
        except (OSError, UnicodeError):
            pass

    thread = threading.Thread(target=look_up, name="dlcv-dns-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return None
    return found or None


def read_tfds(tfds_name: str, *, allow_download: bool,
              image_size: tuple[int, int] | None = None) -> SourceData:
    """Every split TFDS has for ``tfds_name`` (of "train" and "test") as in-memory pools.

    - image_size: (height, width) to resize to, for datasets whose images vary in size
      (cats_vs_dogs); None keeps the stored size.
    """
    try:
        import tensorflow_datasets as tfds
    except Exception as error:      # not installed, or broken: either way no source
        raise DataUnavailable(f"tensorflow_datasets cannot be imported "
                              f"({type(error).__name__}: {_first_line(error)})") from None

    where = cache_dir() or "~/tensorflow_datasets"
    # Asking an empty cache logs "Variant folder ... has no dataset_info.json" through absl;
    # a missing cache is an expected answer here, reported in our own words below.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        builder = tfds.builder(tfds_name, data_dir=cache_dir())
        prepared = builder.is_prepared()
    except Exception as error:
        raise DataUnavailable(f"TensorFlow Datasets has no usable {tfds_name} "
                              f"({type(error).__name__}: {_first_line(error)})") from None
    finally:
        absl_logger.setLevel(level)
    source = f"TensorFlow Datasets cache ({where})"
    if not prepared:
        if not allow_download:
            raise DataUnavailable(f"not in the TensorFlow Datasets cache ({where}), "
                                  f"download not allowed")
        if not is_online():
            raise DataUnavailable(f"not in the TensorFlow Datasets cache ({where}), download "
                                  f"skipped: {PROBE_HOST[0]} unreachable (offline?)")
        try:
            builder.download_and_prepare()
        except Exception as error:  # network, quota, disk: report it, let the caller decide
            reason = f"{type(error).__name__}: {_first_line(error)}"
            raise DataUnavailable(f"not in the TensorFlow Datasets cache ({where}), "
                                  f"download failed ({reason})") from None
        source = f"TensorFlow Datasets download into {where}"

    pools = {split: _read_split(tfds, builder, split, image_size)
             for split in ("train", "test") if split in builder.info.splits}
    if "train" not in pools:
        raise DataUnavailable(f"TensorFlow Datasets {tfds_name} has no train split")
    return SourceData(pools["train"], pools.get("test"),
                      class_names=list(builder.info.features["label"].names), source=source)


def _read_split(tfds, builder, split: str, image_size) -> Pool:
    if image_size is None:
        # Same-size images: one batch holding the whole split, as numpy.
        images, labels = tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True,
                                                          batch_size=-1))
        return Pool.from_arrays(np.asarray(images, dtype=np.uint8), labels)
    # Images of varying size cannot be batched before resizing: resize one by one.
    from PIL import Image

    height, width = image_size
    images, labels = [], []
    for image, label in tfds.as_numpy(builder.as_dataset(split=split, as_supervised=True)):
        resized = Image.fromarray(image).convert("RGB").resize((width, height),
                                                               Image.Resampling.BILINEAR)
        images.append(np.asarray(resized))
        labels.append(label)
    return Pool.from_arrays(np.stack(images), np.asarray(labels))


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no message"
