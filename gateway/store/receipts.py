"""What a receipt is made of, read in one transaction: the stored release, its first usage record
and the hash of the audit entry that committed it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.store.db import Tx


@dataclass(frozen=True)
class ReleaseRecord:
    query_id: str
    org_id: str
    dataset: str
    product_id: str | None
    plan_fingerprint: str
    policy_version: str
    snapshot_id: str
    epsilon_nano: int
    result: dict[str, Any]
    accuracy: dict[str, Any]
    release_hash: str
    created_at: str
    price_minor: int | None
    currency: str | None
    audit_hash: str | None
    answer: dict[str, Any] | None = None  # columns, rows and accuracy as first sent (migration 0007)


def release_record(tx: Tx, query_id: str) -> ReleaseRecord | None:
    row = tx.one("SELECT query_id, org_id, dataset, product_id, plan_fingerprint, policy_version, snapshot_id, "
                 "epsilon_nano, result, accuracy, release_hash, created_at, answer FROM releases WHERE query_id = ?",
                 (query_id,))
    if row is None:
        return None
    usage = tx.one("SELECT price_minor, currency FROM usage_records WHERE query_id = ? AND cached = 0 "
                   "ORDER BY committed_at LIMIT 1", (query_id,))
    entry = tx.one("SELECT hash FROM audit_log WHERE kind = 'release.committed' AND subject = ? "
                   "ORDER BY seq LIMIT 1", (query_id,))
    return ReleaseRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], int(row[7]), json.loads(row[8]),
                         json.loads(row[9]), row[10], row[11], int(usage[0]) if usage else None,
                         usage[1] if usage else None, entry[0] if entry else None,
                         json.loads(row[12]) if row[12] is not None else None)
