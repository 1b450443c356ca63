"""Who can stall whom (issue 19 points 1-2, issue 11 point 5), over real HTTP.

A requester may not hold the sandbox with costly plans, free previews or a burst of releases:
a query past the cost model is refused (located) before anything is reserved; previews are
padded like releases, metered and rate-limited; and a client never holds more reservations
than it may have releases running.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, Reply, seed_demo_data

FLOOR_MS = 800
ENV = {"GATEWAY_RESPONSE_FLOOR_MS": str(FLOOR_MS), "GATEWAY_RESPONSE_QUANTUM_MS": "200",
       "GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}
BANK, INSURER = "demo-bank", "demo-insurer"
SQL = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= 18 GROUP BY township"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("availability")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=ENV).start()
    yield gateway
    gateway.stop()


def probe_plan(terms: int = 1100, quantiles: int = 16) -> dict[str, Any]:
    """The probe: ~1,100 OR-ed terms and 16 quantiles over township x sex x education (320 groups)."""
    where = {"or": [{"column": "age", "op": "=", "value": n % 110} for n in range(terms)]}
    keys = ["township", "sex", "education"]
    select = [{"column": k} for k in keys] + [
        {"aggregate": "quantile", "column": "income", "q": round(0.05 * (i + 1), 2)} for i in range(quantiles)]
    return {"select": select, "group_by": keys, "where": where}


def ledger_view(gw: Gateway, client: str) -> tuple[Any, int]:
    budget = gw.api("GET", "/v1/budget", client).json["datasets"]
    return budget, len(gw.api("GET", "/v1/usage", client).json["items"])


def metric(gw: Gateway, series: str) -> float:
    text = gw.api("GET", "/metrics", "demo-ops").body.decode()
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, series
    return float(match.group(1))


def test_a_costly_plan_is_refused_located_before_anything_is_reserved(gw: Gateway) -> None:
    before = ledger_view(gw, BANK)
    for path in ("/v1/queries/preview", "/v1/queries"):
        reply = gw.api("POST", path, BANK, {"dataset": "residents", "plan": probe_plan(), "epsilon": 0.01})
        assert reply.status == 422 and reply.is_problem, (path, reply.status, reply.body[:300])
        assert reply.json["code"] == "policy_violation"
        where = {item["limit"]: item["at"] for item in reply.json["limits"]}
        assert where == {"max_query_terms": "where", "max_query_cells": "select",
                         "max_quantile_candidates": "select"}, reply.json
    assert ledger_view(gw, BANK) == before
    # The same question within the limits is answered.
    small = gw.api("POST", "/v1/queries/preview", BANK,
                   {"dataset": "residents", "plan": probe_plan(terms=20, quantiles=1), "epsilon": 0.01})
    assert small.status == 200, small.body[:300]


def test_previews_are_padded_like_releases(gw: Gateway) -> None:
    """R-DP-19: a preview's time says nothing of queues or others' history; it lands on the floor."""
    gw.token(INSURER)
    for n in range(3):
        started = time.monotonic()
        reply = gw.api("POST", "/v1/queries/preview", INSURER,
                       {"dataset": "residents", "sql": SQL, "epsilon": 0.3 + n / 10})
        elapsed = time.monotonic() - started
        assert reply.status == 200, reply.body[:300]
        assert elapsed >= FLOOR_MS / 1000, f"a preview answered in {elapsed:.3f}s, under the floor"


def test_previews_are_metered_and_rate_limited(gw: Gateway) -> None:
    """A burst of previews from one client is cut off with 429; every answered one is counted."""
    counted = metric(gw, 'gateway_previews_total{dataset="vehicles"}')
    body = {"dataset": "vehicles", "sql": "SELECT vehicle_type, COUNT(*) FROM vehicles GROUP BY vehicle_type",
            "epsilon": 0.2}
    with cf.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: gw.api("POST", "/v1/queries/preview", INSURER, body), range(24)))
    statuses = sorted(r.status for r in replies)
    assert set(statuses) == {200, 429}, statuses
    limited = next(r for r in replies if r.status == 429)
    assert limited.is_problem and limited.header("Retry-After")
    answered = statuses.count(200)
    assert metric(gw, 'gateway_previews_total{dataset="vehicles"}') == counted + answered


def live_reservations(db: Path, client: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT COUNT(*) FROM queries WHERE client_id = ? AND state IN ('reserved', 'executing')",
                           (client,)).fetchone()
    return int(row[0])


def test_a_client_holds_no_more_reservations_than_it_may_run(gw: Gateway) -> None:
    """R-RL-01, R-DP-20: with one worker a client has one release running; the others wait
    before reserving (nothing charged while they wait), not after the point of no refund."""
    db = gw.state_dir / "gateway.db"
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(live_reservations(db, BANK))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with cf.ThreadPoolExecutor(6) as pool:
            replies: list[Reply] = list(pool.map(
                lambda i: gw.api("POST", "/v1/queries", BANK, {"dataset": "enterprises", "epsilon": 0.05,
                                                               "sql": f"SELECT COUNT(*) FROM enterprises "
                                                                      f"WHERE employees >= {i}"}), range(6)))
    finally:
        done.set()
        watcher.join()
    assert all(r.status == 200 for r in replies), [r.body[:200] for r in replies]
    assert seen and max(seen) == 1, max(seen)
