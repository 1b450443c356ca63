"""What must hold after any fault: read straight from the store (SQLite or PostgreSQL alike).

Each check returns the problems it found (empty when all is well), so a test can show them all.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.fault_load import Outcome

Rows = Callable[[str], list[tuple[Any, ...]]]


def sqlite_rows(db: Path) -> Rows:
    """Read a live gateway's SQLite store (WAL: readers do not disturb the writer)."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute(sql).fetchall()
    return rows


def ledger_problems(rows: Rows) -> list[str]:
    """No reservation or claim left; every budget account balances with the queries that charged
    it, to the nano-epsilon; every committed query has its one release and one fresh usage record."""
    problems = []
    states = {str(s): int(n) for s, n in rows("SELECT state, COUNT(*) FROM queries GROUP BY state")}
    if states.get("reserved") or states.get("executing"):
        problems.append(f"unfinished queries left: {states}")
    running = rows("SELECT COUNT(*) FROM idempotency_keys WHERE state = 'running'")[0][0]
    if running:
        problems.append(f"{running} idempotency keys still running")
    expected: dict[tuple[str, str], int] = defaultdict(int)
    for accounts, eps in rows("SELECT accounts, epsilon_nano FROM queries "
                              "WHERE state IN ('committed', 'spent_no_release')"):
        for name, period in json.loads(accounts):
            expected[(name, period)] += int(eps)
    for account, period, spent, reserved in rows("SELECT account, period, spent_nano, reserved_nano "
                                                 "FROM budget_accounts"):
        if int(reserved):
            problems.append(f"{account} {period}: {reserved} nano-epsilon still reserved")
        owed = expected.pop((account, period), 0)
        if int(spent) != owed:
            problems.append(f"{account} {period}: spent {spent} but the queries charged {owed}")
    problems += [f"{a} {p}: charged {n} by queries but has no account" for (a, p), n in expected.items() if n]
    twice = rows("SELECT query_id, COUNT(*) FROM usage_records WHERE cached = 0 GROUP BY query_id HAVING COUNT(*) > 1")
    problems += [f"query {q} billed {n} times as a fresh release" for q, n in twice]
    unreleased = rows("SELECT q.query_id FROM queries q LEFT JOIN releases r ON r.query_id = q.query_id "
                      "WHERE q.state = 'committed' AND r.query_id IS NULL")
    problems += [f"query {q} committed without its release" for (q,) in unreleased]
    strays = rows("SELECT u.usage_id FROM usage_records u JOIN queries q ON q.query_id = u.query_id "
                  "WHERE u.cached = 0 AND q.state <> 'committed'")
    problems += [f"usage {u} bills a release that never committed" for (u,) in strays]
    return problems


def billing_problems(outcomes: Iterable[Outcome], billed: dict[str, str]) -> list[str]:
    """Every 200 a client received is stored and billed once (its usage record names its query),
    and every usage record billed is an answer some client received. `billed`: usage id -> query
    id, of the records made while the load ran."""
    answered: dict[str, str] = {}
    for o in outcomes:
        if o.billed and o.answer is not None:
            answered[o.answer["usage"]["usage_id"]] = o.answer["query_id"]
    problems = [f"a 200 ({usage} of query {query}) is not in the store"
                for usage, query in answered.items() if billed.get(usage) != query]
    problems += [f"usage {usage} (query {query}) was billed but no client got its answer"
                 for usage, query in billed.items() if usage not in answered]
    return problems


def refusal_problems(outcomes: Iterable[Outcome], allowed: set[tuple[int, str | None]]) -> list[str]:
    """Every non-200 is one of `allowed` (status, code); every 503 says when to come back."""
    problems = []
    for o in outcomes:
        if o.status == 200:
            continue
        if (o.status, o.code) not in allowed:
            problems.append(f"{o.kind} on replica {o.replica}: {o.status} {o.code} {o.answer}")
        elif o.status == 503 and not (o.retry_after or "").isdigit():
            problems.append(f"{o.kind}: 503 without Retry-After")
    return problems
