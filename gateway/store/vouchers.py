"""Data vouchers (数据券) in the store: issued by the bureau, redeemed when an invoice is stored.

A redemption takes the organisation's voucher rows in a fixed order under lock (PostgreSQL
`FOR UPDATE`; SQLite has one writer), works out the allocation on the balances it then holds,
and lowers each balance with a conditional update that cannot pass zero, backed by a CHECK.
Its primary key (voucher, organisation, period) keeps an invoice from redeeming a voucher
twice. So two invoices never redeem the same fen, on either store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.settlement import Voucher, VoucherScope
from gateway.errors import Conflict
from gateway.store import audit
from gateway.store.db import Tx

_COLUMNS = ("voucher_id, org_id, amount_minor, balance_minor, currency, valid_from, valid_until, scope, fund, note, "
            "created_by, created_at")


def scope_of(text: str) -> VoucherScope:
    raw = json.loads(text)
    return VoucherScope(tuple(raw.get("datasets", ())), tuple(raw.get("products", ())), raw.get("scenario"))


def _view(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"voucher_id": row[0], "org_id": row[1], "amount_minor": int(row[2]), "balance_minor": int(row[3]),
            "currency": row[4], "valid_from": row[5], "valid_until": row[6], "scope": scope_of(row[7]).as_dict(),
            "fund": row[8], "note": row[9], "created_by": row[10], "created_at": row[11]}


def issue(tx: Tx, voucher_id: str, org_id: str, amount_minor: int, currency: str, valid_from: str,
          valid_until: str, scope: VoucherScope, fund: str, note: str, actor: str) -> dict[str, Any]:
    now = utc_now_text()
    tx.execute(f"INSERT INTO vouchers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (voucher_id, org_id, amount_minor, amount_minor, currency, valid_from, valid_until,
                json.dumps(scope.as_dict(), sort_keys=True), fund, note, actor, now))
    audit.append(tx, "voucher.issued", actor, voucher_id,
                 {"org": org_id, "amount_minor": amount_minor, "currency": currency, "valid_from": valid_from,
                  "valid_until": valid_until, "scope": scope.as_dict(), "fund": fund})
    return get(tx, voucher_id) or {}


def get(tx: Tx, voucher_id: str) -> dict[str, Any] | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM vouchers WHERE voucher_id = ?", (voucher_id,))
    return _with_redemptions(tx, [_view(row)])[0] if row else None


def listing(tx: Tx, org_id: str | None, after: str | None, limit: int) -> list[dict[str, Any]]:
    """Vouchers by id (one organisation's, or all), with their redemptions; keyset-paged."""
    where, args = ["1 = 1"], []
    if org_id is not None:
        where.append("org_id = ?")
        args.append(org_id)
    if after is not None:
        where.append("voucher_id > ?")
        args.append(after)
    rows = tx.all(f"SELECT {_COLUMNS} FROM vouchers WHERE {' AND '.join(where)} ORDER BY voucher_id LIMIT ?",
                  (*args, limit))
    return _with_redemptions(tx, [_view(r) for r in rows])


def _with_redemptions(tx: Tx, vouchers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not vouchers:
        return vouchers
    ids = [v["voucher_id"] for v in vouchers]
    rows = tx.all(f"SELECT voucher_id, period, amount_minor, created_at FROM voucher_redemptions WHERE voucher_id "
                  f"IN ({', '.join('?' for _ in ids)}) ORDER BY period, voucher_id", ids)
    for v in vouchers:
        v["redemptions"] = [{"period": r[1], "amount_minor": int(r[2]), "at": r[3]} for r in rows
                            if r[0] == v["voucher_id"]]
    return vouchers


def balances(tx: Tx, org_id: str, currency: str, *, lock: bool = False) -> list[Voucher]:
    """An organisation's vouchers with a balance left, in id order (the lock order)."""
    rows = tx.all("SELECT voucher_id, balance_minor, valid_from, valid_until, scope FROM vouchers "
                  "WHERE org_id = ? AND currency = ? AND balance_minor > 0 ORDER BY voucher_id"
                  + (" FOR UPDATE" if lock and tx.dialect == "postgres" else ""), (org_id, currency))
    return [Voucher(r[0], int(r[1]), r[2], r[3], scope_of(r[4])) for r in rows]


def redeem(tx: Tx, org_id: str, period: str, taken: Sequence[tuple[str, int]], actor: str) -> None:
    """Lower each voucher by what the invoice of (org, period) takes; all or nothing."""
    now = utc_now_text()
    for voucher_id, amount in taken:
        if tx.execute("UPDATE vouchers SET balance_minor = balance_minor - ? WHERE voucher_id = ? AND org_id = ? "
                      "AND balance_minor >= ?", (amount, voucher_id, org_id, amount)) != 1:
            raise Conflict(f"voucher {voucher_id} no longer holds {amount}")
        tx.execute("INSERT INTO voucher_redemptions (voucher_id, org_id, period, amount_minor, created_at) "
                   "VALUES (?, ?, ?, ?, ?)", (voucher_id, org_id, period, amount, now))
    if taken:
        audit.append(tx, "voucher.redeemed", actor, f"{org_id}/{period}",
                     {"vouchers": [{"voucher_id": v, "amount_minor": a} for v, a in taken]})


def issued_between(tx: Tx, start: str, end: str) -> list[dict[str, Any]]:
    rows = tx.all(f"SELECT {_COLUMNS} FROM vouchers WHERE created_at >= ? AND created_at < ? ORDER BY voucher_id",
                  (start, end))
    return [_view(r) for r in rows]


def redeemed_in(tx: Tx, periods: Sequence[str]) -> list[tuple[str, str, str, int]]:
    """(voucher_id, org_id, period, amount) redeemed on the invoices of these periods."""
    if not periods:
        return []
    rows = tx.all(f"SELECT voucher_id, org_id, period, amount_minor FROM voucher_redemptions WHERE period IN "
                  f"({', '.join('?' for _ in periods)}) ORDER BY period, org_id, voucher_id", list(periods))
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]
