"""Canonical JSON: the one spelling of a value that hashes, fingerprints and signatures are taken over."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text as is: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(value: Any) -> bytes:
    return canonical_json(value).encode()


def canonical_hash(value: Any) -> str:
    """SHA-256 hex of the canonical JSON."""
    return hashlib.sha256(canonical_bytes(value)).hexdigest()
