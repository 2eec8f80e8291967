"""The results store: JSON and CSV files under results/<question>/<profile>/.

Never imports keras, so it can be tested (and read by the report) in milliseconds.
"""

from dlcv_keras.results.lock import RunLock, RunLockError, read_lock
from dlcv_keras.results.store import SCHEMA_VERSION, ResultsStore, atomic_write_bytes, atomic_write_text

__all__ = ["SCHEMA_VERSION", "ResultsStore", "RunLock", "RunLockError", "atomic_write_bytes", "atomic_write_text",
           "read_lock"]
