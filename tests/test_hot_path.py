"""The order of the release path (issue 12, point 8).

A query waits for its client's slot before anything is reserved; a replay or a cache hit is one
store transaction; expired Idempotency-Keys go on a schedule, and an organisation holds a
bounded number of them.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandboxprocs import frozen, workers_up
from tests.support import FAST_RATES, Gateway, Reply, call, demo_gateway, free_port

HOT_PATH = ("lookup_release", "reserve", "mark_executing", "commit_release", "return_reservation", "fail_release")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    env = {**FAST_RATES, "GATEWAY_METRICS_PORT": str(free_port()), "GATEWAY_MAX_IN_FLIGHT_PER_CLIENT": "1",
           "GATEWAY_QUERY_TIMEOUT_SECONDS": "120",
           "GATEWAY_IDEMPOTENCY_PURGE_SECONDS": "1",
           "GATEWAY_IDEMPOTENCY_MAX_KEYS": "4"}
    with demo_gateway(tmp_path_factory.mktemp("hot-path"), demo_data, env=env) as g:
        yield g


def query(gw: Gateway, client: str, sql: str, eps: float, key: str | None = None) -> Reply:
    return gw.api("POST", "/v1/queries", client, {"dataset": "residents", "sql": sql, "epsilon": eps},
                  {"Idempotency-Key": key} if key else None)


def remaining(gw: Gateway, client: str) -> float:
    lines = {d["dataset"]: d for d in gw.api("GET", "/v1/budget", client).json["datasets"]}
    return float(lines["residents"]["epsilon_remaining"])


def store_counts(gw: Gateway) -> dict[str, float]:
    text = call("GET", f"http://127.0.0.1:{gw.env['GATEWAY_METRICS_PORT']}/metrics").body.decode()
    found = re.findall(r'^gateway_store_seconds_count\{operation="([a-z_]+)"\} (\S+)$', text, re.M)
    return {op: float(n) for op, n in found}


def hot_path_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {op: after.get(op, 0) - before.get(op, 0) for op in HOT_PATH if after.get(op, 0) != before.get(op, 0)}


def test_a_query_waits_for_its_slot_before_anything_is_reserved(gw: Gateway) -> None:
    assert query(gw, "demo-bank", "SELECT COUNT(*) AS n FROM residents WHERE age >= 20", 0.1).status == 200
    workers = workers_up(gw.proc.pid, 1 + 1)  # type: ignore[union-attr]  # a release and a preview worker
    start = remaining(gw, "demo-bank")
    replies: dict[str, Any] = {}

    def ask(name: str, sql: str, eps: float) -> None:
        replies[name] = query(gw, "demo-bank", sql, eps)

    with frozen(workers):
        first = threading.Thread(target=ask,
                                 args=("first", "SELECT COUNT(*) AS n FROM residents WHERE age >= 21", 0.5))
        first.start()
        _wait(lambda: abs(remaining(gw, "demo-bank") - (start - 0.5)) < 1e-9, "the first query's reservation")
        second = threading.Thread(target=ask,
                                  args=("second", "SELECT COUNT(*) AS n FROM residents WHERE age >= 22", 0.7))
        second.start()
        # The second query is in the gateway, behind the first for the client's only slot: it
        # has reserved nothing (before, it had passed the point of no refund to wait there).
        _wait(lambda: _in_flight(gw) >= 2, "the second query to arrive")
        for _ in range(10):
            assert remaining(gw, "demo-bank") == pytest.approx(start - 0.5)
            time.sleep(0.1)
    first.join(150)
    second.join(150)
    assert replies["first"].status == 200 and replies["second"].status == 200, replies
    assert remaining(gw, "demo-bank") == pytest.approx(start - 1.2)


def _in_flight(gw: Gateway) -> float:
    text = call("GET", f"http://127.0.0.1:{gw.env['GATEWAY_METRICS_PORT']}/metrics").body.decode()
    return float(re.search(r"^gateway_inflight_requests (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]


def _wait(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_cache_hit_or_a_replay_is_one_store_transaction(gw: Gateway) -> None:
    sql = "SELECT sex, COUNT(*) AS n FROM residents WHERE age >= 40 GROUP BY sex"
    released = query(gw, "demo-bank", sql, 0.2, key=str(uuid.uuid4()))
    assert released.status == 200 and released.json["cached"] is False
    for key in (str(uuid.uuid4()), None):
        before = store_counts(gw)
        hit = query(gw, "demo-bank", sql, 0.2, key=key)
        assert hit.status == 200 and hit.json["cached"] is True
        assert hot_path_delta(before, store_counts(gw)) == {"lookup_release": 1}, key
    key = str(uuid.uuid4())
    assert query(gw, "demo-bank", sql, 0.2, key=key).status == 200
    before = store_counts(gw)
    replay = query(gw, "demo-bank", sql, 0.2, key=key)
    assert replay.status == 200 and replay.header("Idempotent-Replayed") == "true"
    assert hot_path_delta(before, store_counts(gw)) == {"lookup_release": 1}


def test_expired_keys_are_purged_on_a_schedule(gw: Gateway) -> None:
    db = sqlite3.connect(gw.state_dir / "gateway.db", timeout=30)
    try:
        with db:
            db.executemany(
                "INSERT INTO idempotency_keys (org_id, idem_key, fingerprint, state, status, body, created_at, "
                "expires_at) VALUES ('lingxi-rural-bank', ?, 'f', 'done', 200, ?, '2020-01-01T00:00:00Z', "
                "'2020-01-02T00:00:00Z')", [(f"old-{n}", "x" * 200) for n in range(2500)])
        count = lambda: db.execute("SELECT COUNT(*) FROM idempotency_keys WHERE idem_key LIKE 'old-%'").fetchone()[0]  # noqa: E731
        assert count() == 2500
        _wait(lambda: count() == 0, "the background purge")
    finally:
        db.close()


def test_an_organisation_holds_a_bounded_number_of_keys(gw: Gateway) -> None:
    keys = [str(uuid.uuid4()) for _ in range(5)]
    first = [query(gw, "demo-insurer", f"SELECT COUNT(*) AS n FROM residents WHERE age >= {30 + i}", 0.1, key=k)
             for i, k in enumerate(keys[:4])]
    assert [r.status for r in first] == [200] * 4
    before = remaining(gw, "demo-insurer")
    refused = query(gw, "demo-insurer", "SELECT COUNT(*) AS n FROM residents WHERE age >= 50", 0.1, key=keys[4])
    assert refused.status == 429 and refused.is_problem and int(refused.header("Retry-After") or 0) >= 1
    assert remaining(gw, "demo-insurer") == pytest.approx(before)  # nothing spent
    replay = query(gw, "demo-insurer", "SELECT COUNT(*) AS n FROM residents WHERE age >= 30", 0.1, key=keys[0])
    assert replay.status == 200 and replay.header("Idempotent-Replayed") == "true"
    other = query(gw, "demo-bank", "SELECT COUNT(*) AS n FROM residents WHERE age >= 51", 0.1, key=keys[4])
    assert other.status == 200  # the bound is each organisation's own (demo-bank holds 3)
