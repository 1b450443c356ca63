"""kill -9 with queries in flight: after a restart every 200 is stored, budgets balance with the
ledger, no reservation is left, the audit chain verifies, and retries replay stored answers."""

from __future__ import annotations

import concurrent.futures as cf
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from tests.support import Gateway, Reply, seed_demo_data

pytestmark = pytest.mark.slow


def _fire(gw: Gateway, key: str, i: int) -> tuple[str, Reply | None]:
    body = {"dataset": "enterprises", "epsilon": 0.05,
            "sql": f"SELECT industry, COUNT(*) AS n FROM enterprises WHERE employees >= {i} GROUP BY industry"}
    try:
        return key, gw.api("POST", "/v1/queries", "demo-bank", body, {"Idempotency-Key": key})
    except OSError:
        return key, None  # the connection died with the process


def test_kill_9_in_flight_then_recover(tmp_path: Path, demo_data: Path) -> None:
    seed_demo_data(tmp_path, demo_data)
    gw = Gateway(tmp_path).start()
    gw.token("demo-bank")
    keys = [str(uuid.uuid4()) for _ in range(40)]
    results = []
    with cf.ThreadPoolExecutor(8) as ex:
        futures = [ex.submit(_fire, gw, k, i) for i, k in enumerate(keys)]
        for future in cf.as_completed(futures):
            results.append(future.result())
            if sum(1 for _k, r in results if r is not None and r.status == 200) == 5:
                gw.kill()  # with more queries queued and in flight
    ok = {k: r for k, r in results if r is not None and r.status == 200}
    assert len(ok) < len(keys), "everything finished before the kill"

    gw = Gateway(tmp_path, port=gw.port).start()
    try:
        usage = gw.api("GET", "/v1/usage", "demo-bank").json["items"]
        stored = {u["query_id"] for u in usage}
        for reply in ok.values():
            assert reply.json["query_id"] in stored, "a 200 the client got is not in the store"
        with sqlite3.connect(tmp_path / "gateway.db") as db:
            states = dict(db.execute("SELECT state, COUNT(*) FROM queries GROUP BY state").fetchall())
            assert not states.get("reserved") and not states.get("executing"), states
            spent = db.execute("SELECT COALESCE(SUM(epsilon_nano), 0) FROM queries "
                               "WHERE state IN ('committed', 'spent_no_release') AND dataset = 'enterprises'"
                               ).fetchone()[0]
            account = db.execute("SELECT spent_nano, reserved_nano FROM budget_accounts "
                                 "WHERE account LIKE 'grant:%:enterprises'").fetchone()
            assert account == (spent, 0), "the budget does not balance with the ledger"
        assert gw.api("GET", "/v1/audit/verify", "demo-bureau").json["ok"] is True
        for key, i in [(k, keys.index(k)) for k in ok]:
            _key, again = _fire(gw, key, i)
            assert again is not None and again.body == ok[key].body, "a retry did not replay the stored answer"
        # Keys whose request died: a retry either replays a stored failure or runs afresh, never 409 forever.
        lost = [k for k in keys if k not in ok]
        for key in lost[:5]:
            _key, again = _fire(gw, key, keys.index(key))
            assert again is not None and again.status in (200, 500), again.status if again else None
    finally:
        gw.stop()
    assert time.time()
