"""Reads for people's overviews: audit pages, product versions by state, a merchant's products,
refusals and releases since a time. Plain SQL, read-only."""

from __future__ import annotations

import json
from typing import Any

from gateway.store.db import Tx
from gateway.store.products import _VERSION_COLUMNS, Product, ProductVersion, _version


def audit_page(tx: Tx, before_seq: int | None, limit: int, kind: str | None) -> list[dict[str, Any]]:
    """Newest first, `limit` entries older than `before_seq`, of one kind prefix or all."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if before_seq is not None:
        where.append("seq < ?")
        params.append(before_seq)
    if kind:
        where.append("kind >= ? AND kind < ?")  # a prefix, without LIKE's wildcards
        params.extend([kind, kind + "\uffff"])
    rows = tx.all(f"SELECT seq, at, kind, actor, subject, payload, hash FROM audit_log WHERE {' AND '.join(where)} "
                  "ORDER BY seq DESC LIMIT ?", [*params, limit])
    return [{"seq": int(r[0]), "at": r[1], "kind": r[2], "actor": r[3], "subject": r[4],
             "payload": json.loads(r[5]), "hash": r[6]} for r in rows]


def audit_since(tx: Tx, kind: str, since: str, subject: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    sql = "SELECT seq, at, actor, subject, payload FROM audit_log WHERE kind = ? AND at >= ?"
    params: list[Any] = [kind, since]
    if subject is not None:
        sql += " AND subject = ?"
        params.append(subject)
    rows = tx.all(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
    return [{"seq": int(r[0]), "at": r[1], "actor": r[2], "subject": r[3], "payload": json.loads(r[4])} for r in rows]


def versions_in_state(tx: Tx, status: str) -> list[tuple[Product, ProductVersion]]:
    rows = tx.all(f"SELECT p.merchant_org, p.dataset, p.published_version, p.created_at, "
                  f"{', '.join('v.' + c.strip() for c in _VERSION_COLUMNS.split(','))} FROM product_versions v "
                  "JOIN products p ON p.product_id = v.product_id WHERE v.status = ? ORDER BY v.submitted_at, "
                  "v.product_id", (status,))
    out = []
    for r in rows:
        v = _version(r[4:])
        out.append((Product(v.product_id, r[0], r[1], int(r[2]) if r[2] is not None else None, r[3]), v))
    return out


def products_of(tx: Tx, merchant_org: str | None) -> list[Product]:
    sql = "SELECT product_id, merchant_org, dataset, published_version, created_at FROM products"
    params: tuple[str, ...] = ()
    if merchant_org is not None:
        sql += " WHERE merchant_org = ?"
        params = (merchant_org,)
    rows = tx.all(sql + " ORDER BY product_id", params)
    return [Product(r[0], r[1], r[2], int(r[3]) if r[3] is not None else None, r[4]) for r in rows]


def releases_since(tx: Tx, since: str) -> list[tuple[str, int, int]]:
    """(dataset, releases, epsilon_nano) of fresh releases committed since `since`."""
    rows = tx.all("SELECT dataset, COUNT(*), COALESCE(SUM(epsilon_nano), 0) FROM releases WHERE created_at >= ? "
                  "GROUP BY dataset ORDER BY dataset", (since,))
    return [(r[0], int(r[1]), int(r[2])) for r in rows]
