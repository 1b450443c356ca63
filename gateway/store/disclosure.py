"""What the yearly disclosure reads beyond the invoices: usage by invoice, privacy loss by account,
price acts and dataset events from the audit log. Plain reads; nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.store.db import Tx

_PLACES = "({})"


def _marks(items: Sequence[Any]) -> str:
    return _PLACES.format(", ".join("?" for _ in items))


def invoiced_usage(tx: Tx, periods: Sequence[str]) -> list[tuple[str, str, str, str | None, str, int, str]]:
    """(invoice period, org, dataset, product, purpose class, price, currency) of every usage
    record that the closed invoices of these periods hold."""
    if not periods:
        return []
    rows = tx.all("SELECT i.period, u.org_id, u.dataset, u.product_id, u.purpose_class, u.price_minor, u.currency "
                  "FROM invoice_items i JOIN usage_records u ON u.usage_id = i.item_id "
                  f"WHERE i.kind = 'usage' AND i.period IN {_marks(periods)} ORDER BY i.period, u.usage_id",
                  list(periods))
    return [(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6]) for r in rows]


def purpose_classes(tx: Tx, usage_ids: Sequence[str]) -> dict[str, str]:
    """usage id -> purpose class, for usage not yet on a closed invoice."""
    out: dict[str, str] = {}
    for start in range(0, len(usage_ids), 500):
        chunk = list(usage_ids[start:start + 500])
        for r in tx.all(f"SELECT usage_id, purpose_class FROM usage_records WHERE usage_id IN {_marks(chunk)}",
                        chunk):
            out[r[0]] = r[1]
    return out


def spent_by_query(tx: Tx, first: str, last: str) -> list[tuple[str, str, int, list[str]]]:
    """(dataset, period, epsilon_nano, pool accounts charged) per charge that stayed spent."""
    rows = tx.all("SELECT dataset, period, epsilon_nano, accounts FROM queries WHERE state IN "
                  "('committed', 'spent_no_release') AND period >= ? AND period <= ? ORDER BY query_id",
                  (first, last))
    return [(r[0], r[1], int(r[2]), [name for name, _p in json.loads(r[3]) if name.startswith("pool:")])
            for r in rows]


def pool_accounts(tx: Tx, first: str, last: str) -> list[tuple[str, str, int, int]]:
    """(pool account, period, cap_nano, spent_nano) of the periods."""
    rows = tx.all("SELECT account, period, cap_nano, spent_nano FROM budget_accounts WHERE account LIKE 'pool:%' "
                  "AND period >= ? AND period <= ? ORDER BY account, period", (first, last))
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def events(tx: Tx, kinds: Sequence[str], until: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(at, kind, subject, payload) of audit entries of these kinds before `until`, in order."""
    rows = tx.all(f"SELECT at, kind, subject, payload FROM audit_log WHERE kind IN {_marks(kinds)} AND at < ? "
                  "ORDER BY seq", (*kinds, until))
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def policy_documents(tx: Tx, versions: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not versions:
        return {}
    rows = tx.all(f"SELECT version, document FROM policy_versions WHERE version IN {_marks(versions)}",
                  list(versions))
    return {r[0]: json.loads(r[1]) for r in rows}


def product_definitions(tx: Tx, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for product_id, version in keys:
        row = tx.one("SELECT definition FROM product_versions WHERE product_id = ? AND version = ?",
                     (product_id, version))
        if row is not None:
            out[(product_id, version)] = json.loads(row[0])
    return out
