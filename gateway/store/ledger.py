"""The privacy ledger: reservations, charges, stored releases and usage records.

Every account keeps epsilon (nano-units) and delta (atto-units, R-DP-17) side by side: a charge
reserves both in one conditional update and is refused whole if either would pass its cap.

A query moves RECEIVED -> reserved -> executing (committed before data is touched) ->
committed, or -> released (failure before data: the reservation is returned) or ->
spent_no_release (failure after: the charge stays, nothing is billed) — R-BU-01.
Each step is one of the functions below, run in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import utc_now_text
from gateway.core import status as dataset_status
from gateway.core.budget import atto_to_float, is_lifetime_account, nano_to_float, next_period_start
from gateway.errors import (
    BudgetExhausted,
    Forbidden,
    Unauthorized,
)
from gateway.store import audit
from gateway.store.db import Tx


@dataclass(frozen=True)
class Account:
    """One budget account charged by a query: the requester's grant, or a dataset pool.
    `period` is the query's own unless set (a pool's lifetime account lives in `LIFETIME`)."""

    name: str
    cap_nano: int
    period: str | None = None
    delta_cap_atto: int = 0


LIFETIME = "all"


@dataclass(frozen=True)
class Reservation:
    query_id: str
    org_id: str
    client_id: str
    dataset: str
    product_id: str | None
    period: str
    epsilon_nano: int
    accounts: tuple[Account, ...]
    delta_atto: int = 0
    inputs: tuple[str, ...] = ()  # a view's base and join input, whose status it shares


@dataclass(frozen=True)
class Charge:
    """What a query reserved, read back to settle it."""

    dataset: str
    epsilon_nano: int
    delta_atto: int
    accounts: list[list[str]]


@dataclass(frozen=True)
class Figures:
    """One account in one period: epsilon in nano-units, delta in atto-units."""

    cap_nano: int
    spent_nano: int
    reserved_nano: int
    delta_cap_atto: int = 0
    delta_spent_atto: int = 0
    delta_reserved_atto: int = 0


@dataclass(frozen=True)
class Usage:
    usage_id: str
    price_minor: int
    currency: str
    price_version: str
    purpose_class: str = "industry"


@dataclass(frozen=True)
class StoredRelease:
    query_id: str
    dataset: str
    plan_fingerprint: str
    policy_version: str
    snapshot_id: str
    epsilon_nano: int
    result: dict[str, Any]
    accuracy: dict[str, Any]
    created_at: str
    # The release rendered as plans asked for it (owned by service.queries): a memo beside the
    # fields, like Plan.fingerprint; the fields themselves never change.
    views: dict[int, tuple[Any, str]] = field(default_factory=dict, compare=False, repr=False)


def _lock(tx: Tx) -> str:
    return " FOR UPDATE" if tx.dialect == "postgres" else ""


def _share_lock(tx: Tx) -> str:
    # Held to commit, so a suspension (FOR UPDATE on the same row) orders strictly before or after.
    return " FOR SHARE OF d" if tx.dialect == "postgres" else ""


def check_can_release(tx: Tx, dataset: str, org_id: str, inputs: Sequence[str] = ()) -> None:
    """Dataset and requester status as the store has them now (R-BU-07, R-AU-05); a view's
    inputs (`inputs`) too: a suspension of its base stops it like its own (R-DP-18)."""
    row = tx.one("SELECT d.status, (SELECT o.status FROM organisations o WHERE o.org_id = ?) "
                 "FROM datasets d WHERE d.dataset = ?" + _share_lock(tx), (org_id, dataset))
    statuses = [row[0] if row is not None else None]
    if inputs:
        marks = ", ".join("?" for _ in inputs)
        found: dict[str, str] = dict(tx.all(f"SELECT d.dataset, d.status FROM datasets d WHERE d.dataset IN "
                                            f"({marks})" + _share_lock(tx), tuple(inputs)))
        statuses += [found.get(name) for name in inputs]
    refused = dataset_status.refusal(dataset, dataset_status.worst(statuses))
    if refused is not None:
        raise refused
    assert row is not None
    if row[1] != "active":
        raise Unauthorized("Your organisation is not active (suspended or removed).")


def _charge(tx: Tx, account: Account, period: str, amount: int, delta: int) -> bool:
    """Reserve `amount` epsilon and `delta` on an account: one conditional upsert that cannot pass
    either cap (R-BU-02, R-DP-17).

    The caps follow the grant's and the policy's limits at every charge; the CHECK constraints
    stand behind them. A charge without delta leaves the delta cap as it was, so a delta cap
    lowered below what is spent refuses delta only. On PostgreSQL the row lock is taken here,
    last in the transaction, so contended accounts are held only from this statement to the commit.
    """
    if amount > account.cap_nano or delta > account.delta_cap_atto:
        return False
    row = tx.one(
        "INSERT INTO budget_accounts (account, period, cap_nano, reserved_nano, delta_cap_atto, delta_reserved_atto) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, period) DO UPDATE SET cap_nano = excluded.cap_nano, "
        "reserved_nano = budget_accounts.reserved_nano + excluded.reserved_nano, "
        "delta_cap_atto = CASE WHEN excluded.delta_reserved_atto > 0 THEN excluded.delta_cap_atto "
        "ELSE budget_accounts.delta_cap_atto END, "
        "delta_reserved_atto = budget_accounts.delta_reserved_atto + excluded.delta_reserved_atto "
        "WHERE budget_accounts.spent_nano + budget_accounts.reserved_nano + excluded.reserved_nano "
        "<= excluded.cap_nano AND (excluded.delta_reserved_atto = 0 OR budget_accounts.delta_spent_atto "
        "+ budget_accounts.delta_reserved_atto + excluded.delta_reserved_atto <= excluded.delta_cap_atto) "
        "RETURNING reserved_nano",
        (account.name, period, account.cap_nano, amount, account.delta_cap_atto, delta))
    return row is not None


def reserve(tx: Tx, r: Reservation) -> None:
    """Check status, record the query, then charge every account (all or none)."""
    check_can_release(tx, r.dataset, r.org_id, r.inputs)
    now = utc_now_text()
    tx.execute("INSERT INTO queries (query_id, org_id, client_id, dataset, product_id, period, epsilon_nano, "
               "delta_atto, accounts, state, created_at, updated_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', ?, ?)",
               (r.query_id, r.org_id, r.client_id, r.dataset, r.product_id, r.period, r.epsilon_nano, r.delta_atto,
                json.dumps([[a.name, a.period or r.period] for a in r.accounts]), now, now))
    for account in r.accounts:
        if not _charge(tx, account, account.period or r.period, r.epsilon_nano, r.delta_atto):
            # The transaction rolls back whole. The requester's own remaining budget rides along
            # (R-BU-08): the requester can read it anyway, and it depends on charges, not data.
            raise _exhausted(tx, r, account)


def _exhausted(tx: Tx, r: Reservation, account: Account) -> BudgetExhausted:
    """Which account and which figure refused, when it renews, and what the requester's grant has left."""
    grant, period = r.accounts[0], account.period or r.period
    mine = account_figures(tx, [grant.name], r.period).get(grant.name, Figures(0, 0, 0))
    theirs = account_figures(tx, [account.name], period).get(account.name, Figures(0, 0, 0))
    epsilon_fits = theirs.spent_nano + theirs.reserved_nano + r.epsilon_nano <= account.cap_nano
    what = "delta budget" if epsilon_fits and r.delta_atto else "privacy budget"
    detail, renews_on = exhausted_detail(account, r.period, what)
    remaining = max(grant.cap_nano - mine.spent_nano - mine.reserved_nano, 0)
    delta_left = max(grant.delta_cap_atto - mine.delta_spent_atto - mine.delta_reserved_atto, 0)
    return BudgetExhausted(detail, extra={"epsilon_remaining": nano_to_float(remaining),
                                          "delta_remaining": atto_to_float(delta_left), "renews_on": renews_on})


def exhausted_detail(account: Account, period: str, what: str = "privacy budget") -> tuple[str, str | None]:
    """Which budget is spent, when it renews (None: never) and what the requester can do."""
    if is_lifetime_account(account.name):
        return (f"The {what} of the people in this dataset is spent for good: it never renews. "
                "Answers already released stay available from the cache; ask the bureau about other datasets.",
                None)
    renews = next_period_start(period)
    if account.name.startswith("pool:"):
        return (f"The dataset's {what} for {period} is spent, for every requester; it renews on "
                f"{renews} (county time). Answers already released stay available from the cache.", renews)
    return (f"This query would pass your {what} for {period}; it renews on {renews} (county time). "
            "Ask with a smaller epsilon, reuse a cached answer (the same query again costs nothing), "
            "or ask the bureau for a larger grant.", renews)


def _move(tx: Tx, query_id: str, frm: Sequence[str], to: str) -> Charge | None:
    """Change a query's state if it is in one of `frm`; what it charged."""
    row = tx.one("SELECT dataset, period, epsilon_nano, accounts, state, delta_atto FROM queries WHERE query_id = ?"
                 + _lock(tx), (query_id,))
    if row is None or row[4] not in frm:
        return None
    tx.execute("UPDATE queries SET state = ?, updated_at = ? WHERE query_id = ?", (to, utc_now_text(), query_id))
    return Charge(str(row[0]), int(row[2]), int(row[5]), json.loads(row[3]))


def mark_executing(tx: Tx, query_id: str, org_id: str, inputs: Sequence[str] = ()) -> None:
    """The point of no refund: committed before any row is read. Status is checked again here."""
    row = tx.one("SELECT dataset FROM queries WHERE query_id = ?", (query_id,))
    assert row is not None
    check_can_release(tx, str(row[0]), org_id, inputs)
    if _move(tx, query_id, ("reserved",), "executing") is None:
        raise Forbidden("the reservation is no longer held")


def _settle(tx: Tx, charge: Charge, *, spend: bool) -> None:
    """Move a query's reservation on each (account, period) it charged to spent, or back."""
    eps, delta = charge.epsilon_nano, charge.delta_atto
    for name, period in charge.accounts:
        tx.execute("UPDATE budget_accounts SET reserved_nano = reserved_nano - ?, spent_nano = spent_nano + ?, "
                   "delta_reserved_atto = delta_reserved_atto - ?, delta_spent_atto = delta_spent_atto + ? "
                   "WHERE account = ? AND period = ?",
                   (eps, eps if spend else 0, delta, delta if spend else 0, name, period))


def return_reservation(tx: Tx, query_id: str) -> bool:
    """Failure before data was touched: the reservation goes back."""
    moved = _move(tx, query_id, ("reserved",), "released")
    if moved is None:
        return False
    _settle(tx, moved, spend=False)
    return True


def spend_without_release(tx: Tx, query_id: str, actor: str) -> bool:
    """Failure after data was touched: the charge stays (a refund would leak), nothing is billed."""
    moved = _move(tx, query_id, ("reserved", "executing"), "spent_no_release")
    if moved is None:
        return False
    _settle(tx, moved, spend=True)
    audit.append(tx, "release.failed", actor, query_id, {"dataset": moved.dataset, "epsilon_nano": moved.epsilon_nano,
                                                          "delta_atto": moved.delta_atto})
    return True


@dataclass(frozen=True)
class Commit:
    query_id: str
    org_id: str
    client_id: str
    actor: str
    dataset: str
    product_id: str | None
    cache_key: str
    plan_fingerprint: str
    policy_version: str
    snapshot_id: str
    period: str
    epsilon_nano: int
    result: dict[str, Any]
    accuracy: dict[str, Any]
    release_hash: str
    usage: Usage
    answer: str | None = None  # the columns, rows and accuracy as sent (JSON), for reading back
    delta_atto: int = 0
    inputs: tuple[str, ...] = ()


def commit_release(tx: Tx, c: Commit) -> str:
    """Release, ledger entry, usage record and audit entry in one transaction (invariant 5)."""
    check_can_release(tx, c.dataset, c.org_id, c.inputs)  # a suspension that committed first wins (R-BU-07)
    moved = _move(tx, c.query_id, ("executing",), "committed")
    if moved is None:
        raise Forbidden("the reservation is no longer held")
    _settle(tx, moved, spend=True)
    now = utc_now_text()
    tx.execute("INSERT INTO releases (query_id, cache_key, org_id, dataset, product_id, plan_fingerprint, "
               "policy_version, snapshot_id, period, epsilon_nano, result, accuracy, release_hash, created_at, "
               "answer, delta_atto) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (c.query_id, c.cache_key, c.org_id, c.dataset, c.product_id, c.plan_fingerprint, c.policy_version,
                c.snapshot_id, c.period, c.epsilon_nano, json.dumps(c.result), json.dumps(c.accuracy),
                c.release_hash, now, c.answer, c.delta_atto))
    insert_usage(tx, c.usage, c.query_id, c.org_id, c.client_id, c.dataset, c.product_id, c.period,
                 cached=False, epsilon_nano=c.epsilon_nano, at=now, delta_atto=c.delta_atto)
    audit.append(tx, "release.committed", c.actor, c.query_id,
                 {"dataset": c.dataset, "epsilon_nano": c.epsilon_nano, "delta_atto": c.delta_atto,
                  "policy_version": c.policy_version,
                  "snapshot_id": c.snapshot_id, "release_hash": c.release_hash, "usage_id": c.usage.usage_id,
                  "product": c.product_id})
    return now


def insert_usage(tx: Tx, u: Usage, query_id: str, org_id: str, client_id: str, dataset: str,
                 product_id: str | None, period: str, *, cached: bool, epsilon_nano: int, at: str,
                 delta_atto: int = 0) -> None:
    tx.execute("INSERT INTO usage_records (usage_id, query_id, org_id, client_id, dataset, product_id, period, "
               "cached, epsilon_nano, price_minor, currency, price_version, committed_at, purpose_class, delta_atto) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (u.usage_id, query_id, org_id, client_id, dataset, product_id, period, int(cached),
                epsilon_nano, u.price_minor, u.currency, u.price_version, at, u.purpose_class, delta_atto))


def find_release(tx: Tx, cache_key: str) -> StoredRelease | None:
    row = tx.one("SELECT query_id, dataset, plan_fingerprint, policy_version, snapshot_id, epsilon_nano, result, "
                 "accuracy, created_at FROM releases WHERE cache_key = ? ORDER BY created_at LIMIT 1", (cache_key,))
    if row is None:
        return None
    return StoredRelease(row[0], row[1], row[2], row[3], row[4], int(row[5]), json.loads(row[6]),
                         json.loads(row[7]), row[8])


def serve_cached(tx: Tx, cache_key: str, org_id: str, client_id: str, usage: Usage, period: str,
                 product_id: str | None, known: StoredRelease | None = None,
                 inputs: Sequence[str] = ()) -> StoredRelease | None:
    """A stored release for this cache key, billed as a cached call; None when there is none.
    Releases never change once stored, so a caller may pass one it already read (`known`)."""
    found = known or find_release(tx, cache_key)
    if found is None:
        return None
    check_can_release(tx, found.dataset, org_id, inputs)  # withdrawn data is no longer served (invariant 7)
    insert_usage(tx, usage, found.query_id, org_id, client_id, found.dataset, product_id, period,
                 cached=True, epsilon_nano=0, at=utc_now_text())
    return found


def recover(tx: Tx, lease_cutoff: str) -> tuple[int, int]:
    """At start-up: stale reservations go back; interrupted executions stay spent (R-BU-05)."""
    stale = tx.all("SELECT query_id, state FROM queries WHERE state IN ('reserved', 'executing') "
                   "AND updated_at < ?", (lease_cutoff,))
    returned = spent = 0
    for query_id, state in stale:
        if state == "reserved":
            returned += return_reservation(tx, query_id)
        else:
            spent += spend_without_release(tx, query_id, "recovery")
    return returned, spent


@dataclass(frozen=True)
class BudgetLine:
    dataset: str
    cap_nano: int
    spent_nano: int
    reserved_nano: int


def account_usage(tx: Tx, accounts: Sequence[str], period: str) -> dict[str, tuple[int, int, int]]:
    """account -> (cap, spent, reserved) for the period; absent accounts are untouched."""
    if not accounts:
        return {}
    marks = ", ".join("?" for _ in accounts)
    rows = tx.all(f"SELECT account, cap_nano, spent_nano, reserved_nano FROM budget_accounts "
                  f"WHERE period = ? AND account IN ({marks})", (period, *accounts))
    return {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def account_figures(tx: Tx, accounts: Sequence[str], period: str) -> dict[str, Figures]:
    """account -> both figures for the period; absent accounts are untouched."""
    if not accounts:
        return {}
    marks = ", ".join("?" for _ in accounts)
    rows = tx.all(f"SELECT account, cap_nano, spent_nano, reserved_nano, delta_cap_atto, delta_spent_atto, "
                  f"delta_reserved_atto FROM budget_accounts WHERE period = ? AND account IN ({marks})",
                  (period, *accounts))
    return {r[0]: Figures(*(int(x) for x in r[1:])) for r in rows}


def billable_calls(tx: Tx, org_id: str, dataset: str, period: str) -> int:
    """Calls already billed to a requester on a dataset this period (for free quotas)."""
    row = tx.one("SELECT COUNT(*) FROM usage_records WHERE org_id = ? AND dataset = ? AND period = ? "
                 "AND product_id IS NULL", (org_id, dataset, period))
    return int(row[0]) if row else 0
