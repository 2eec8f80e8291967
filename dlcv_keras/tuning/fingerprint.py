"""Stable short hashes of what shapes a result; kept free of Keras so any step can use them."""

from __future__ import annotations

import hashlib
import json


def fingerprint(*parts) -> str:
    """A short, stable hash of JSON-able parts (data hash, space, profile, seed, code versions, ...)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
