"""Settling invoices in the store: carried excess and vouchers on each invoice, and the carry
of a year's excess over its allowed revenue when a period closes.

An open invoice shows what its vouchers would pay if the month closed now (balances are read,
not touched); closing the month redeems them in the same transaction that stores the invoice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.billing import next_period
from gateway.core.settlement import Carry, carry_split, figures, settle
from gateway.store import audit
from gateway.store import pricing as store_pricing
from gateway.store import vouchers as store_vouchers
from gateway.store.db import Tx


def carries_to(tx: Tx, period: str, org_id: str | None = None) -> dict[str, list[Carry]]:
    """org -> the carry credits due on its invoice of `period`."""
    sql, args = ("SELECT org_id, carry_id, year, from_period, amount_minor, currency FROM revenue_carries "
                 "WHERE to_period = ?"), [period]
    if org_id is not None:
        sql, args = sql + " AND org_id = ?", [*args, org_id]
    out: dict[str, list[Carry]] = {}
    for r in tx.all(sql + " ORDER BY org_id, carry_id", args):
        out.setdefault(r[0], []).append(Carry(r[1], r[2], r[3], int(r[4]), r[5]))
    return out


def settled_open(tx: Tx, doc: Mapping[str, Any]) -> dict[str, Any]:
    """An open invoice with its carry lines and the vouchers it would take now (nothing written)."""
    carries = carries_to(tx, doc["period"], doc["org_id"]).get(doc["org_id"], [])
    vouchers = store_vouchers.balances(tx, doc["org_id"], doc["currency"])
    settled, _taken = settle(doc, carries, vouchers, store_pricing.scenarios(tx))
    return settled


def settled_closing(tx: Tx, doc: Mapping[str, Any], actor: str) -> dict[str, Any]:
    """A closing invoice: its vouchers, locked, are redeemed in this transaction."""
    carries = carries_to(tx, doc["period"], doc["org_id"]).get(doc["org_id"], [])
    vouchers = store_vouchers.balances(tx, doc["org_id"], doc["currency"], lock=True)
    settled, taken = settle(doc, carries, vouchers, store_pricing.scenarios(tx))
    store_vouchers.redeem(tx, doc["org_id"], doc["period"], taken, actor)
    return settled


def stored_documents(tx: Tx, periods: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """period -> org -> the stored (closed) invoice document."""
    if not periods:
        return {}
    rows = tx.all(f"SELECT period, org_id, body FROM invoices WHERE period IN ({', '.join('?' for _ in periods)}) "
                  "ORDER BY period, org_id", list(periods))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for period, org, body in rows:
        out.setdefault(period, {})[org] = json.loads(body)
    return out


def carried(tx: Tx, year: str) -> dict[str, int]:
    """org -> excess of the year already credited (or due on an invoice)."""
    rows = tx.all("SELECT org_id, SUM(amount_minor) FROM revenue_carries WHERE year = ? GROUP BY org_id", (year,))
    return {r[0]: int(r[1]) for r in rows}


def carried_from(tx: Tx, periods: Sequence[str]) -> dict[str, int]:
    """from_period -> excess carried out when it closed."""
    if not periods:
        return {}
    rows = tx.all(f"SELECT from_period, SUM(amount_minor) FROM revenue_carries WHERE from_period IN "
                  f"({', '.join('?' for _ in periods)}) GROUP BY from_period", list(periods))
    return {r[0]: int(r[1]) for r in rows}


def closed_in_year(tx: Tx, year: str, through: str) -> list[str]:
    return [r[0] for r in tx.all("SELECT period FROM billing_periods WHERE period >= ? AND period <= ? "
                                 "ORDER BY period", (f"{year}-01", through))]


def nets(docs: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    return {org: figures(doc).net_minor for org, doc in docs.items()}


def carry_after_close(tx: Tx, period: str, currency: str, actor: str) -> tuple[tuple[str, int], ...]:
    """After `period`'s invoices are stored: credit the year's excess not yet carried on the
    next period's invoices (nothing when the year has no allowed revenue set)."""
    year = period[:4]
    allowed_minor = store_pricing.allowed(tx, year)
    if allowed_minor is None:
        return ()
    docs = stored_documents(tx, closed_in_year(tx, year, period))
    year_net: dict[str, int] = {}
    for by_org in docs.values():
        for org, net in nets(by_org).items():
            year_net[org] = year_net.get(org, 0) + net
    split = carry_split(allowed_minor, year_net, nets(docs.get(period, {})), carried(tx, year))
    now, target = utc_now_text(), next_period(period)
    for org, amount in split:
        tx.execute("INSERT INTO revenue_carries (carry_id, year, from_period, to_period, org_id, amount_minor, "
                   "currency, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (f"carry-{period}-{org}", year, period, target, org, amount, currency, now))
    if split:
        audit.append(tx, "revenue.carried", actor, year,
                     {"from_period": period, "to_period": target, "allowed_minor": allowed_minor,
                      "credits": [{"org": org, "amount_minor": amount} for org, amount in split]})
    return split
