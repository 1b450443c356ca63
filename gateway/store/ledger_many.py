"""Budget charges of one key together (issue 18 point 3): the ledger's side of
Store.write_grouped (store/pg_group.py).

Concurrent reservations that charge the same accounts, periods and caps (`charge_key`) are
reserved in one transaction by `reserve_many`: one conditional update per account charges their
sum, so the group passes a cap only if each charge would have passed after the other; if it
does not fit whole (`GroupRefused`), each is reserved on its own by `ledger.reserve`, exactly as
without grouping. Over-spend stays impossible: the cap check is the same statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from gateway.clock import utc_now_text
from gateway.store.db import Tx
from gateway.store.ledger import Reservation, _charge, check_can_release


def charge_key(r: Reservation) -> str:
    """Reservations of one key charge the same accounts, periods and caps, in the same order."""
    return "|".join(f"{a.name}@{a.period or r.period}:{a.cap_nano}:{a.delta_cap_atto}" for a in r.accounts)


class GroupRefused(Exception):
    """A group of reservations cannot be charged whole: each is then reserved on its own."""


def reserve_many(tx: Tx, rs: Sequence[Reservation]) -> None:
    """Reservations of one `charge_key`, all or none (GroupRefused)."""
    for dataset, org_id, inputs in {(r.dataset, r.org_id, r.inputs) for r in rs}:
        check_can_release(tx, dataset, org_id, inputs)
    now = utc_now_text()
    rows = [(r.query_id, r.org_id, r.client_id, r.dataset, r.product_id, r.period, r.epsilon_nano, r.delta_atto,
             json.dumps([[a.name, a.period or r.period] for a in r.accounts]), now, now) for r in rs]
    tx.execute("INSERT INTO queries (query_id, org_id, client_id, dataset, product_id, period, epsilon_nano, "
               "delta_atto, accounts, state, created_at, updated_at) VALUES "
               + ", ".join("(?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?)" for _ in rows),
               [value for row in rows for value in row])
    first = rs[0]
    amount, delta = sum(r.epsilon_nano for r in rs), sum(r.delta_atto for r in rs)
    for account in first.accounts:
        if not _charge(tx, account, account.period or first.period, amount, delta):
            raise GroupRefused()
