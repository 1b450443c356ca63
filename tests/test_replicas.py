"""Three replicas on one PostgreSQL behave as one gateway (issue 6; DESIGN §8; R-AU-05, R-AD-02).

Three `gateway serve --demo` processes on loopback ports share a fresh PostgreSQL schema and one
state folder (keys, credentials, data), started one after the other as a rolling deploy would.
Budgets, cached answers, suspensions, tokens and the audit chain must be shared: a requester
cannot tell which replica answered, and cannot spend more by spreading queries over them.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.store_support import postgres_schema
from tests.support import Gateway, Reply, seed_demo_data

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
NAMES = ("replica-a", "replica-b", "replica-c")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, demo_data: Path,
             postgres_dsn: str) -> Iterator[tuple[Gateway, ...]]:
    state = tmp_path_factory.mktemp("replicas")
    seed_demo_data(state, demo_data)
    with postgres_schema(postgres_dsn) as dsn:
        started: list[Gateway] = []
        try:
            for name in NAMES:
                started.append(Gateway(state, env={"GATEWAY_STORE_DSN": dsn, "GATEWAY_REPLICA_ID": name}).start())
            yield tuple(started)
        finally:
            for gw in started:
                gw.stop()


def test_later_replicas_reuse_the_first_ones_credentials_and_keys(replicas: tuple[Gateway, ...]) -> None:
    a, b, c = replicas
    assert a.state_dir == b.state_dir == c.state_dir
    assert len(list((a.state_dir / "keys").glob("*.pem"))) == 1
    secret = a.credentials["demo-bank"]["client_secret"]
    for gw in replicas:  # the file was rewritten by each start, with the same secrets
        reply = gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": "demo-bank",
                                         "client_secret": secret})
        assert reply.status == 200, (gw.port, reply.body)


def test_a_token_from_one_replica_is_accepted_by_the_others(replicas: tuple[Gateway, ...]) -> None:
    a, b, c = replicas
    token = a.token("demo-bank")
    for gw in (b, c):
        reply = gw.api("GET", "/v1/budget", headers={"Authorization": "Bearer " + token})
        assert reply.status == 200, reply.body
    assert a.api("GET", "/.well-known/jwks.json").json == c.api("GET", "/.well-known/jwks.json").json


def test_a_cached_answer_from_one_replica_is_served_by_another(replicas: tuple[Gateway, ...]) -> None:
    a, b, _ = replicas
    body = {"dataset": "residents", "sql": "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex", "epsilon": 0.3}
    first = a.api("POST", "/v1/queries", "demo-bank", body)
    assert first.status == 200 and first.json["cached"] is False, first.body
    second = b.api("POST", "/v1/queries", "demo-bank", body)
    assert second.status == 200, second.body
    assert (second.json["cached"], second.json["epsilon_spent"]) == (True, 0.0)
    assert (second.json["query_id"], second.json["rows"]) == (first.json["query_id"], first.json["rows"])
    # cache_scope is "requester": another requester's identical question is a fresh release.
    other = b.api("POST", "/v1/queries", "demo-insurer", body)
    assert other.status == 200 and other.json["cached"] is False, other.body


def test_a_suspension_through_one_replica_refuses_on_another_within_a_second(
        replicas: tuple[Gateway, ...]) -> None:
    a, b, c = replicas
    body = {"dataset": "enterprises", "sql": "SELECT COUNT(*) AS n FROM enterprises", "epsilon": 0.1}
    assert b.api("POST", "/v1/queries", "demo-bank", body).status == 200
    suspended = a.api("POST", "/v1/datasets/enterprises/suspend", "demo-bureau")
    assert suspended.status == 200, suspended.body
    time.sleep(1.0)  # R-AU-05 / invariant 7: every replica refuses within a second
    for gw, eps in ((b, 0.11), (c, 0.12)):
        refused = gw.api("POST", "/v1/queries", "demo-bank", {**body, "epsilon": eps})
        assert (refused.status, refused.json["code"]) == (409, "dataset_suspended"), refused.body
    resumed = c.api("POST", "/v1/datasets/enterprises/resume", "demo-bureau")
    assert resumed.status == 200, resumed.body
    time.sleep(1.0)
    assert a.api("POST", "/v1/queries", "demo-bank", {**body, "epsilon": 0.13}).status == 200


def _spread_query(gw: Gateway, token: str, body: dict[str, object]) -> Reply:
    """One query; a 429 (a replica's per-client rate limit) is waited out and retried."""
    for _ in range(50):
        reply = gw.api("POST", "/v1/queries", body=body, headers={"Authorization": "Bearer " + token})
        if reply.status != 429:
            return reply
        time.sleep(min(float(reply.header("Retry-After") or 1), 2.0))
    return reply


def insurer_residents(gw: Gateway) -> dict[str, float]:
    lines = gw.api("GET", "/v1/budget", "demo-insurer").json["datasets"]
    return {d["dataset"]: d for d in lines}["residents"]


def test_a_budget_spent_through_three_replicas_is_never_overspent(replicas: tuple[Gateway, ...]) -> None:
    eps, attempts = 0.05, 300  # demo-insurer's residents grant (5.0) has room for at most 100
    before = insurer_residents(replicas[0])
    fits = round(before["epsilon_remaining"] * 1000) // round(eps * 1000)
    assert 50 <= fits < attempts
    token = replicas[0].token("demo-insurer")
    townships = ("Chengguan", "Lingxi", "Baishi", "Qiaotou", "Dongfeng", "Xinhe")
    bodies = [{"dataset": "residents", "epsilon": eps,  # all different: every one a fresh release
               "sql": f"SELECT COUNT(*) AS n FROM residents WHERE age >= {age} AND township = '{town}'"}
              for age, town in itertools.islice(itertools.product(range(0, 100), townships), attempts)]
    targets = itertools.cycle(replicas)
    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(lambda job: _spread_query(*job), [(next(targets), token, b) for b in bodies]))
    statuses = sorted({r.status for r in replies})
    assert statuses == [200, 403], statuses
    assert {r.json["code"] for r in replies if r.status == 403} == {"budget_exhausted"}
    released = [r for r in replies if r.status == 200]
    assert all(r.json["cached"] is False for r in released)
    assert len(released) == fits, (len(released), fits)
    for gw in replicas:
        after = insurer_residents(gw)
        assert after["epsilon_spent"] == pytest.approx(before["epsilon_spent"] + fits * eps, abs=1e-9), after
        assert 0 <= after["epsilon_remaining"] < eps, after
    usage = replicas[1].api("GET", "/v1/usage", "demo-insurer").json["items"]
    charged = {u["query_id"] for u in usage if u["dataset"] == "residents" and not u["cached"]}
    assert charged >= {r.json["query_id"] for r in released}


def test_all_replicas_see_one_audit_chain_that_verifies(replicas: tuple[Gateway, ...]) -> None:
    bureau = {"Authorization": "Bearer " + replicas[0].token("demo-bureau")}  # issuing one is an entry too
    verdicts = [gw.api("GET", "/v1/audit/verify", headers=bureau) for gw in replicas]
    assert all(v.status == 200 and v.json["ok"] is True for v in verdicts), [v.body for v in verdicts]
    assert len({json.dumps(v.json, sort_keys=True) for v in verdicts}) == 1, [v.json for v in verdicts]
    assert verdicts[0].json["entries"] > 100  # the releases above, from all three replicas
