"""Billing in the store: usage and credit notes as invoice items, closed periods, stored invoices.

Closing a period assigns to it every usage record and credit note committed before its end
that no invoice holds yet, and stores each requester's invoice as bytes, with its hash in the
audit log (R-BI-02). A closed invoice is served from those bytes and never changes; a record
committed after the close (clock skew, a long transaction) is late and lands on the next
period's invoice (R-BI-04).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import utc_now_text, utc_text
from gateway.core.billing import (
    CreditItem,
    UsageItem,
    build_invoice,
    next_period,
    periods_between,
)
from gateway.core.budget import period_bounds, period_of
from gateway.core.canonical import canonical_bytes
from gateway.core.pages import Page, PageRequest
from gateway.core.registration import codes_of
from gateway.store import audit, registrations, settlement
from gateway.store.db import Tx
from gateway.store.pages import read_page

_USAGE = ("SELECT u.usage_id, u.org_id, u.dataset, u.product_id, u.period, u.cached, u.price_minor, u.currency, "
          "u.price_version, r.policy_version, p.merchant_org, u.committed_at FROM usage_records u "
          "LEFT JOIN releases r ON r.query_id = u.query_id LEFT JOIN products p ON p.product_id = u.product_id")
_CREDITS = ("SELECT c.credit_id, c.org_id, c.dataset, c.product_id, c.refers_to_period, c.amount_minor, "
            "c.currency, c.policy_version, c.merchant_org, c.reason FROM credit_notes c")


def _usage(row: tuple[Any, ...]) -> UsageItem:
    price_version = str(row[8])
    policy_version = row[9] or (price_version[7:] if price_version.startswith("policy:") else "")
    return UsageItem(row[0], row[1], row[2], row[3], row[4], bool(row[5]), int(row[6]), row[7], price_version,
                     policy_version, row[10], row[11])


def _credit(row: tuple[Any, ...]) -> CreditItem:
    return CreditItem(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6], row[7], row[8], row[9])


def _org_filter(alias: str, org_id: str | None) -> tuple[str, tuple[Any, ...]]:
    return (f" AND {alias}.org_id = ?", (org_id,)) if org_id is not None else ("", ())


def open_items(tx: Tx, org_id: str | None, before: str | None = None) -> tuple[list[UsageItem], list[CreditItem]]:
    """What no invoice holds yet (committed before `before` when given): the open period's."""
    since = _open_window_start(tx)
    where, params = _org_filter("u", org_id)
    sql = _USAGE + " WHERE NOT EXISTS (SELECT 1 FROM invoice_items i WHERE i.item_id = u.usage_id)" + where
    args: tuple[Any, ...] = params
    if since:
        sql, args = sql + " AND u.committed_at >= ?", (*args, since)
    if before:
        sql, args = sql + " AND u.committed_at < ?", (*args, before)
    usage = tx.all(sql, args)
    where, params = _org_filter("c", org_id)
    sql = _CREDITS + " WHERE NOT EXISTS (SELECT 1 FROM invoice_items i WHERE i.item_id = c.credit_id)" + where
    args = params
    if before:
        sql, args = sql + " AND c.created_at < ?", (*args, before)
    return [_usage(r) for r in usage], [_credit(r) for r in tx.all(sql, args)]


def _open_window_start(tx: Tx) -> str | None:
    """Late records of a closed period commit within seconds of its end, so the scan for
    unassigned usage starts at the last closed period's start instead of the beginning."""
    row = tx.one("SELECT MAX(period) FROM billing_periods")
    if row is None or row[0] is None:
        return None
    first_of_month = str(row[0]) + "-01T00:00:00.000000Z"
    # A UTC day of margin covers time zones east or west of UTC around the month start.
    return _days_before(first_of_month, 1)


def _days_before(utc: str, days: int) -> str:
    moment = datetime.strptime(utc, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (moment - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def closed_periods(tx: Tx) -> list[str]:
    return [r[0] for r in tx.all("SELECT period FROM billing_periods ORDER BY period")]


def is_closed(tx: Tx, period: str) -> bool:
    return tx.one("SELECT 1 FROM billing_periods WHERE period = ?", (period,)) is not None


def _first_activity_period(tx: Tx, zone: ZoneInfo) -> str | None:
    row = tx.one("SELECT MIN(committed_at) FROM usage_records")
    credit = tx.one("SELECT MIN(created_at) FROM credit_notes")
    firsts = [r[0] for r in (row, credit) if r is not None and r[0] is not None]
    if not firsts:
        return None
    moment = datetime.strptime(min(firsts), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=ZoneInfo("UTC"))
    return period_of(moment, zone)


def close_through(tx: Tx, last: str, zone: ZoneInfo, currency: str, actor: str) -> list[str]:
    """Close every period not yet closed up to `last` (which must have ended), in order."""
    done = closed_periods(tx)
    first = next_period(done[-1]) if done else _first_activity_period(tx, zone) or last
    closed = []
    for period in periods_between(first, last):
        if _close_one(tx, period, zone, currency, actor):
            closed.append(period)
    return closed


def _close_one(tx: Tx, period: str, zone: ZoneInfo, currency: str, actor: str) -> bool:
    now = utc_now_text()
    # The primary key makes a concurrent close of the same period wait, then do nothing.
    if tx.execute("INSERT INTO billing_periods (period, closed_at, closed_by, items) VALUES (?, ?, ?, 0) "
                  "ON CONFLICT (period) DO NOTHING", (period, now, actor)) != 1:
        return False
    end = utc_text(period_bounds(period, zone)[1])
    usage, credits = open_items(tx, None, before=end)
    for u in usage:
        tx.execute("INSERT INTO invoice_items (item_id, kind, org_id, period) VALUES (?, 'usage', ?, ?)",
                   (u.usage_id, u.org_id, period))
    for c in credits:
        tx.execute("INSERT INTO invoice_items (item_id, kind, org_id, period) VALUES (?, 'credit', ?, ?)",
                   (c.credit_id, c.org_id, period))
    hashes, codes = {}, codes_of(registrations.current(tx))  # the codes in force at closing stay on the invoice
    carried_in = settlement.carries_to(tx, period)
    for org_id in sorted({u.org_id for u in usage} | {c.org_id for c in credits} | set(carried_in)):
        invoice = build_invoice(org_id, period, "closed", currency, [u for u in usage if u.org_id == org_id],
                                [c for c in credits if c.org_id == org_id], codes)
        body = canonical_bytes(settlement.settled_closing(tx, invoice.as_dict(), actor))
        digest = hashlib.sha256(body).hexdigest()
        tx.execute("INSERT INTO invoices (org_id, period, body, sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                   (org_id, period, body.decode(), digest, now))
        hashes[org_id] = digest
    tx.execute("UPDATE billing_periods SET items = ? WHERE period = ?", (len(usage) + len(credits), period))
    audit.append(tx, "invoice.period_closed", actor, period,
                 {"items": len(usage) + len(credits), "invoices": hashes})
    settlement.carry_after_close(tx, period, currency, actor)
    return True


def stored_invoice(tx: Tx, org_id: str, period: str) -> bytes | None:
    row = tx.one("SELECT body FROM invoices WHERE org_id = ? AND period = ?", (org_id, period))
    return str(row[0]).encode() if row else None


def stored_invoices_page(tx: Tx, org_id: str, page: PageRequest) -> Page[tuple[str, bytes]]:
    """An organisation's stored (closed) invoices, newest month first: (period, body)."""
    return read_page(tx, "period, body", "invoices", "org_id = ?", (org_id,), ("period",), page,
                     lambda r: (str(r[0]), str(r[1]).encode()), descending=True)


def stored_invoices(tx: Tx, period: str) -> dict[str, bytes]:
    rows = tx.all("SELECT org_id, body FROM invoices WHERE period = ? ORDER BY org_id", (period,))
    return {r[0]: str(r[1]).encode() for r in rows}


def revenue_rules(tx: Tx, versions: Sequence[str]) -> dict[str, tuple[tuple[str, int], ...]]:
    """policy version -> its revenue shares, for the versions that lines ran under."""
    wanted = sorted({v for v in versions if v})
    if not wanted:
        return {}
    rows = tx.all(f"SELECT version, document FROM policy_versions WHERE version IN "
                  f"({', '.join('?' for _ in wanted)})", wanted)
    return {r[0]: tuple(sorted(json.loads(r[1])["revenue_shares"].items())) for r in rows}


def usage_items(tx: Tx, where: str, params: Sequence[Any]) -> list[UsageItem]:
    """Usage records (as invoice items) matching a WHERE clause over `usage_records u`."""
    return [_usage(r) for r in tx.all(_USAGE + " WHERE " + where, params)]
