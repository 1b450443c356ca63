"""Credit notes against invoiced usage, in the store: what was billed and credited, and the issue.

The note, its allocations (one per usage record) and its audit entry are written in one
transaction, so the caps of `core.credits` are checked against the store as it is at commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.billing import CreditItem, UsageItem
from gateway.errors import NotFound, Unprocessable
from gateway.store import audit
from gateway.store.db import Tx
from gateway.store.invoices import stored_invoice, usage_items

_INVOICED = "EXISTS (SELECT 1 FROM invoice_items i WHERE i.item_id = u.usage_id AND i.kind = 'usage')"


def org_exists(tx: Tx, org_id: str) -> bool:
    return tx.one("SELECT 1 FROM organisations WHERE org_id = ?", (org_id,)) is not None


def invoiced_usage(tx: Tx, org_id: str, usage_ids: Sequence[str]) -> list[UsageItem]:
    """The named records of this organisation; 404 for any that is not (like a missing one), 422 for
    any not on a closed invoice yet."""
    ids = sorted(set(usage_ids))
    marks = ", ".join("?" for _ in ids)
    found = usage_items(tx, f"u.usage_id IN ({marks}) AND u.org_id = ?", (*ids, org_id))
    if len(found) != len(ids):
        raise NotFound("no such usage record for that organisation")
    invoiced = {u.usage_id for u in usage_items(tx, f"u.usage_id IN ({marks}) AND {_INVOICED}", ids)}
    if invoiced != set(ids):
        raise Unprocessable("only usage on a closed invoice can be credited; the month is still open")
    return found


def line_usage(tx: Tx, org_id: str, period: str, line: int) -> list[UsageItem]:
    """The usage records behind one usage line of an organisation's closed invoice."""
    body = stored_invoice(tx, org_id, period)
    lines = json.loads(body)["lines"] if body else []
    if not 1 <= line <= len(lines) or lines[line - 1]["kind"] != "usage":
        raise NotFound("no such usage line on that invoice")
    want = lines[line - 1]
    on_invoice = usage_items(tx, "u.org_id = ? AND EXISTS (SELECT 1 FROM invoice_items i WHERE "
                                 "i.item_id = u.usage_id AND i.kind = 'usage' AND i.period = ?)", (org_id, period))
    return [u for u in on_invoice
            if (u.dataset, u.product_id, u.usage_period, u.cached, u.price_version, u.policy_version,
                u.merchant_org, u.currency, u.price_minor)
            == (want["dataset"], want["product_id"], want["usage_period"], want["cached"], want["price_version"],
                want["policy_version"], want["merchant"], want["currency"], want["unit_price_minor"])]


def credited(tx: Tx, usage_ids: Sequence[str]) -> dict[str, int]:
    """usage id -> everything credited against it so far."""
    ids = sorted(set(usage_ids))
    if not ids:
        return {}
    rows = tx.all(f"SELECT usage_id, SUM(amount_minor) FROM credit_allocations WHERE usage_id IN "
                  f"({', '.join('?' for _ in ids)}) GROUP BY usage_id", ids)
    return {r[0]: int(r[1]) for r in rows}


def issue(tx: Tx, note: CreditItem, allocations: Mapping[str, int], actor: str) -> str:
    """The note, its allocations and its audit entry; returns the time it was created."""
    now = utc_now_text()
    tx.execute("INSERT INTO credit_notes (credit_id, org_id, dataset, product_id, refers_to_period, amount_minor, "
               "currency, policy_version, merchant_org, reason, created_by, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (note.credit_id, note.org_id, note.dataset, note.product_id, note.refers_to_period,
                note.amount_minor, note.currency, note.policy_version, note.merchant_org, note.reason, actor, now))
    for usage_id, amount in sorted(allocations.items()):
        tx.execute("INSERT INTO credit_allocations (credit_id, usage_id, amount_minor) VALUES (?, ?, ?)",
                   (note.credit_id, usage_id, amount))
    payload: dict[str, Any] = {
        "org": note.org_id, "dataset": note.dataset, "amount_minor": note.amount_minor, "currency": note.currency,
        "refers_to": note.refers_to_period, "reason": note.reason, "usage": sorted(allocations)}
    audit.append(tx, "credit_note.issued", actor, note.credit_id, payload)
    return now
