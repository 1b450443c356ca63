"""Rate limits per client (R-RL-01..03): token buckets, 429 with headers, refused calls spend nothing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.http import ratelimit
from gateway.http.ratelimit import RateLimiter
from tests.store_support import postgres_schema
from tests.support import Gateway, Reply, demo_gateway, record_agreement, seed_demo_data


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_spends_its_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=2.0, burst=3, clock=clock)
    decisions = [limiter.take(("c",)) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    refused = decisions[-1].headers()
    assert refused == {"RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "1",
                       "Retry-After": "1"}
    clock.now += 0.5  # one token back at 2 per second
    assert limiter.take(("c",)).allowed and not limiter.take(("c",)).allowed
    clock.now += 60
    assert [limiter.take(("c",)).allowed for _ in range(4)] == [True, True, True, False]


def test_buckets_are_per_key_and_may_have_their_own_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=1.0, burst=1, clock=clock)
    assert limiter.take(("a",)).allowed and not limiter.take(("a",)).allowed
    assert limiter.take(("b",)).allowed
    assert [limiter.take(("a", "residents"), 0.1, 2).allowed for _ in range(3)] == [True, True, False]
    assert limiter.take(("a", "residents"), 0.1, 2).reset_seconds == 10


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 10)
    clock = Clock()
    limiter = RateLimiter(per_second=1.0, burst=1, clock=clock)
    for n in range(50):
        limiter.take((f"client-{n}",))
        clock.now += 1.0  # every earlier bucket has refilled: forgettable
    assert len(limiter.buckets) <= 10


# ---------------------------------------------------------------- over HTTP

TIGHT = {"GATEWAY_RATE_LIMIT_PER_SECOND": "0.02", "GATEWAY_RATE_LIMIT_BURST": "6"}


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("ratelimit"), demo_data, env=TIGHT) as gateway:
        yield gateway


def assert_rate_limited(r: Reply, limit: str) -> None:
    assert r.status == 429 and r.is_problem and r.json["code"] == "rate_limited"
    assert int(r.header("Retry-After") or 0) >= 1
    assert r.header("RateLimit-Limit") == limit and r.header("RateLimit-Remaining") == "0"
    assert int(r.header("RateLimit-Reset") or 0) >= 1


def test_refused_calls_reserve_spend_and_bill_nothing(tight: Gateway) -> None:
    """R-RL-02: the calls past the burst are 429 and leave no usage record and no charge."""
    replies = [tight.api("POST", "/v1/queries", "demo-insurer",
                         {"dataset": "residents", "epsilon": 0.1,
                          "sql": f"SELECT COUNT(*) AS n FROM residents WHERE age >= {18 + n}"}) for n in range(8)]
    assert [r.status for r in replies] == [200] * 6 + [429] * 2
    assert_rate_limited(replies[-1], "6")
    usage = tight.api("GET", "/v1/usage", "demo-bureau").json["items"]
    mine = [u for u in usage if u["org_id"] == "county-mutual-insurance"]
    assert len(mine) == 6 and abs(sum(u["epsilon"] for u in mine) - 0.6) < 1e-9
    metrics = tight.api("GET", "/metrics", "demo-ops").body.decode()
    assert any(line.startswith("gateway_rate_limited_total") and float(line.split()[-1]) >= 2
               for line in metrics.splitlines())


def test_a_policy_rate_limit_applies_per_client_and_dataset(tight: Gateway) -> None:
    """The dataset's own bucket (policy `rate_limit`) refuses before the client's runs out."""
    policy = tight.api("GET", "/v1/datasets/enterprises/policy", "demo-bureau").json["document"]
    policy["rate_limit"] = {"per_second": 0.01, "burst": 2}
    r = tight.api("PUT", "/v1/datasets/enterprises/policy", "demo-bureau", policy)
    assert r.status == 200 and r.json["published"], r.body
    draft = {"id": "firms-by-industry", "dataset": "enterprises", "title": "Firms by industry",
             "sql": "SELECT industry, COUNT(*) AS n FROM enterprises WHERE employees >= :min GROUP BY industry",
             "parameters": [{"name": "min", "type": "integer", "minimum": 0, "maximum": 1000}],
             "epsilon": "0.1", "price_minor": 10}
    assert tight.api("POST", "/v1/products", "demo-merchant", draft).status == 201
    assert tight.api("POST", "/v1/products/firms-by-industry/versions/1/submit", "demo-merchant").status == 200
    record_agreement(tight, ["enterprises"], ["firms-by-industry"])
    assert tight.api("POST", "/v1/products/firms-by-industry/versions/1/publish", "demo-bureau").status == 200
    calls = [tight.api("POST", "/v1/products/firms-by-industry/invoke", "demo-bank", {"params": {"min": n}})
             for n in range(3)]
    assert [c.status for c in calls] == [200, 200, 429]
    assert_rate_limited(calls[-1], "2")
    assert tight.api("GET", "/v1/budget", "demo-bank").status == 200  # the client's own bucket has tokens


@pytest.mark.slow  # about 50 s: three replicas on PostgreSQL under load (make test-slow)
def test_the_limit_is_shared_by_replicas(tmp_path: Path, demo_data: Path, postgres_dsn: str) -> None:
    """R-RL-03: replicas on one PostgreSQL share each client's bucket (docs/circulation.md): a
    client that spent its burst on one replica is refused by the other one too. Three replicas
    under load: tests/test_faults_postgres.py; the tolerance: tests/test_shared_ratelimit.py."""
    with postgres_schema(postgres_dsn) as dsn:
        env = {**TIGHT, "GATEWAY_RATE_LIMIT_BURST": "3", "GATEWAY_STORE_DSN": dsn}
        a_dir, b_dir = tmp_path / "a", tmp_path / "b"
        for d in (a_dir, b_dir):
            seed_demo_data(d, demo_data)
        a = Gateway(a_dir, env=env).start()
        try:
            shutil.copyfile(a_dir / "demo-credentials.json", b_dir / "demo-credentials.json")
            b = Gateway(b_dir, env=env).start()
            try:
                b.tokens["demo-bank"] = a.token("demo-bank")  # one token, valid on both replicas
                assert [a.api("GET", "/v1/budget", "demo-bank").status for _ in range(4)] == [200, 200, 200, 429]
                refused = [b.api("GET", "/v1/budget", "demo-bank") for _ in range(2)]
                assert [r.status for r in refused] == [429, 429]
                assert_rate_limited(refused[-1], "3")
            finally:
                b.stop()
        finally:
            a.stop()
