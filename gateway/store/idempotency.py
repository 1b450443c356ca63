"""Idempotency keys, scoped per requester organisation and kept at least a day (R-ID-01..05)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gateway.clock import utc_now, utc_text
from gateway.errors import IdempotencyInProgress, IdempotencyKeyReused
from gateway.store.db import Tx


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


def claim(tx: Tx, org_id: str, key: str, fingerprint: str, ttl_hours: int) -> Replay | None:
    """Claim the key for a new request (None), or the stored answer to replay."""
    now = utc_now()
    tx.execute("DELETE FROM idempotency_keys WHERE org_id = ? AND idem_key = ? AND expires_at <= ?",
               (org_id, key, utc_text(now)))
    inserted = tx.execute(
        "INSERT INTO idempotency_keys (org_id, idem_key, fingerprint, state, created_at, expires_at) "
        "VALUES (?, ?, ?, 'running', ?, ?) ON CONFLICT (org_id, idem_key) DO NOTHING",
        (org_id, key, fingerprint, utc_text(now), utc_text(now + timedelta(hours=ttl_hours))))
    if inserted == 1:
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


def purge_expired(tx: Tx) -> int:
    return tx.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (utc_text(utc_now()),))
