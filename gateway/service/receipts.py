"""Receipts for releases: what the gateway answered, signed, for the requester to keep.

A receipt is for the release a query id names, whether the requester had it fresh, from the
answer cache or replayed by key: the same numbers, the same receipt. Only the organisation
that owns the release gets it; another's answers like a missing one.
"""

from __future__ import annotations

from typing import Any

from gateway.auth.receipts import sign_receipt
from gateway.auth.tokens import Principal
from gateway.core.budget import from_nano
from gateway.runtime.parts import Runtime
from gateway.service.admission import may_ask_again
from gateway.service.visibility import visible
from gateway.store.receipts import ReleaseRecord, release_record

RECEIPT_VERSION = 1


def receipt_claims(record: ReleaseRecord, issuer: str) -> dict[str, Any]:
    """The signed statement: the answer as it was sent (R-AU-10: no row beyond a LIMIT, no helper
    count), epsilon as an exact decimal string; `release_hash` commits to the stored release."""
    shown = record.answer or {"columns": record.result["columns"], "rows": record.result["rows"],
                              "accuracy": record.accuracy}
    return {
        "v": RECEIPT_VERSION, "iss": issuer, "query_id": record.query_id, "dataset": record.dataset,
        "product_id": record.product_id, "snapshot_id": record.snapshot_id,
        "policy_version": record.policy_version, "plan_hash": record.plan_fingerprint,
        "columns": shown["columns"], "rows": shown["rows"], "accuracy": shown["accuracy"],
        "release_hash": record.release_hash, "epsilon": str(from_nano(record.epsilon_nano)),
        "price": ({"price_minor": record.price_minor, "currency": record.currency}
                  if record.price_minor is not None else None),
        "released_at": record.created_at, "audit_entry_hash": record.audit_hash,
    }


async def receipt(runtime: Runtime, who: Principal, query_id: str) -> str:
    record = await runtime.store.read(release_record, query_id)
    mine = visible(record, lambda r: r.org_id == who.org_id, "release")
    await may_ask_again(runtime, who, mine.dataset, mine.product_id)  # as for the release itself
    return sign_receipt(receipt_claims(mine, runtime.settings.issuer), runtime.issuer.key)
