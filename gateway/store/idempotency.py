"""Idempotency keys, scoped per requester organisation and kept at least a day (R-ID-01..05)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.clock import utc_now, utc_text
from gateway.errors import IdempotencyInProgress, IdempotencyKeyReused, RateLimited
from gateway.store.db import Tx


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


def claim(tx: Tx, org_id: str, key: str, fingerprint: str, ttl_hours: int, max_keys: int | None = None
          ) -> Replay | None:
    """Claim the key for a new request (None), or the stored answer to replay.

    Keys keep whole answers for at least a day, so an organisation holds at most `max_keys` of
    them: a new key past that is refused (429 until the oldest expires), never an old one
    dropped early, which would turn a retry into a second charge.
    """
    now = utc_now()
    tx.execute("DELETE FROM idempotency_keys WHERE org_id = ? AND idem_key = ? AND expires_at <= ?",
               (org_id, key, utc_text(now)))
    inserted = tx.execute(
        "INSERT INTO idempotency_keys (org_id, idem_key, fingerprint, state, created_at, expires_at) "
        "VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (org_id, idem_key) DO NOTHING",
        (org_id, key, fingerprint, utc_text(now), utc_text(now + timedelta(hours=ttl_hours))))
    if inserted == 1:
        if max_keys is not None:
            _within_bound(tx, org_id, max_keys, now)
        return None
    row = tx.one("SELECT fingerprint, state, status, body FROM idempotency_keys WHERE org_id = ? AND idem_key = ?",
                 (org_id, key))
    assert row is not None
    if row[0] != fingerprint:
        raise IdempotencyKeyReused("This Idempotency-Key was used with a different request.")
    if row[1] == "running":
        raise IdempotencyInProgress("A request with this Idempotency-Key is still running.")
    return Replay(int(row[2]), str(row[3]))


def attach_query(tx: Tx, org_id: str, key: str, query_id: str) -> None:
    tx.execute("UPDATE idempotency_keys SET query_id = ? WHERE org_id = ? AND idem_key = ?", (query_id, org_id, key))


def complete(tx: Tx, org_id: str, key: str, status: int, body: str) -> None:
    tx.execute("UPDATE idempotency_keys SET state = 'done', status = ?, body = ? WHERE org_id = ? AND idem_key = ?",
               (status, body, org_id, key))


def forget(tx: Tx, org_id: str, key: str) -> None:
    """A refusal before any reservation is not stored: the key may be used again (R-ID-04)."""
    tx.execute("DELETE FROM idempotency_keys WHERE org_id = ? AND idem_key = ? AND state = 'running'", (org_id, key))


def finish_interrupted(tx: Tx, failure_body: str, lease_cutoff: str) -> int:
    """At start-up: stale claims whose query ended without an answer get the stored failure, or go."""
    rows = tx.all("SELECT k.org_id, k.idem_key, q.state FROM idempotency_keys k LEFT JOIN queries q "
                  "ON q.query_id = k.query_id WHERE k.state = 'running' AND k.created_at < ?", (lease_cutoff,))
    for org_id, key, state in rows:
        if state == "spent_no_release":
            complete(tx, org_id, key, 500, failure_body)
        elif state in (None, "released"):
            forget(tx, org_id, key)
    return len(rows)


def _within_bound(tx: Tx, org_id: str, max_keys: int, now: datetime) -> None:
    row = tx.one("SELECT COUNT(*), MIN(expires_at) FROM idempotency_keys WHERE org_id = ? AND expires_at > ?",
                 (org_id, utc_text(now)))
    if row is not None and int(row[0]) > max_keys:
        oldest = datetime.fromisoformat(str(row[1]).replace("Z", "+00:00"))
        wait = max(1, math.ceil((oldest - now).total_seconds()))
        raise RateLimited(f"Your organisation already holds {max_keys} Idempotency-Keys, the most kept at once; "
                          "a new one can be taken when the oldest expires.", headers={"Retry-After": str(wait)})


PURGE_BATCH = 1000


def purge_expired(tx: Tx, batch: int = PURGE_BATCH) -> int:
    """Delete up to `batch` expired keys (their answers with them); the caller repeats while a
    whole batch went, so no single transaction holds the writer for long."""
    return tx.execute(
        "DELETE FROM idempotency_keys WHERE (org_id, idem_key) IN (SELECT org_id, idem_key FROM idempotency_keys "
        "WHERE expires_at <= ? LIMIT ?)", (utc_text(utc_now()), batch))
