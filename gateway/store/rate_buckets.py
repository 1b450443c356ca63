"""Token buckets shared by every replica: take up to n tokens from a bucket in one transaction.

A bucket holds at most `burst` tokens and refills at `rate` per second from the time of its last
take. Times are the replicas' wall clocks (seconds since the epoch; they must be in NTP sync,
as token expiry already requires); a clock behind the stored time refills nothing.
"""

from __future__ import annotations

import math

from gateway.store.db import Tx


def take(tx: Tx, bucket: str, rate: float, burst: int, want: int, now: float) -> tuple[int, float]:
    """(tokens granted, at most `want` and possibly 0; tokens left after them)."""
    least, greatest = ("LEAST", "GREATEST") if tx.dialect == "postgres" else ("MIN", "MAX")
    row = tx.one(
        "INSERT INTO rate_buckets (bucket, tokens, updated) VALUES (?, ?, ?) ON CONFLICT (bucket) DO UPDATE SET "
        f"tokens = {least}(excluded.tokens, rate_buckets.tokens "
        f"+ {greatest}(0, excluded.updated - rate_buckets.updated) * ?), "
        f"updated = {greatest}(rate_buckets.updated, excluded.updated) RETURNING tokens",
        (bucket, float(burst), now, rate))
    assert row is not None
    available = float(row[0])
    granted = max(0, min(want, math.floor(available)))
    if granted:
        tx.execute("UPDATE rate_buckets SET tokens = tokens - ? WHERE bucket = ?", (granted, bucket))
    return granted, available - granted
