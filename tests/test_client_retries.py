"""The client between itself and the gateway: answers lost, connections cut, 503s from a proxy,
rate limits, tokens renewed, lists served in pages — and never a second charge for one query."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client_proxy import FrontProxy
from tests.client_support import BY_TOWNSHIP, SKIP_REASON, Sleeps, client, spent
from tests.support import Gateway, demo_gateway, free_port

gc = pytest.importorskip("gateway_client", reason=SKIP_REASON)
Client, RetryPolicy = gc.Client, gc.RetryPolicy
# Scores of cells with two quantiles each, a release that takes a few hundred milliseconds: as slow
# as one query may be (with `sex` too, the quantiles' candidates pass gateway/core/cost.py's limit).
SLOW_RELEASE = "SELECT township, education, MEDIAN(income) AS m, QUANTILE(income, 0.9) AS q " \
               "FROM residents WHERE age >= 30 GROUP BY township, education"


def test_lost_answer_is_retried_with_the_same_key_and_spends_once(client_gateway: Gateway) -> None:
    with FrontProxy(client_gateway.base) as proxy, client(client_gateway, base_url=proxy.base) as gw:
        before = spent(gw, "residents")
        proxy.fault("POST", "/v1/queries", "lose")  # the gateway answers; the answer never arrives
        answer = gw.query("residents", BY_TOWNSHIP.format(age=28), epsilon=0.5)
        posts = proxy.requests("POST", "/v1/queries")
        assert len(posts) == 2
        assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"] == answer.idempotency_key
        assert answer.replayed is True and answer.epsilon_spent == 0.5
        assert spent(gw, "residents") == pytest.approx(before + 0.5)


def test_retry_while_the_first_try_still_runs_waits_for_its_answer(client_gateway: Gateway) -> None:
    """A 409 `idempotency_in_progress` is retried only after a try of the same call went unanswered
    (`test_client_units` pins that decision; here a slow release keeps the first try running)."""
    waits = Sleeps()
    with FrontProxy(client_gateway.base) as proxy, \
            client(client_gateway, base_url=proxy.base, retry=RetryPolicy(attempts=8, backoff=0.05), sleep=waits) as gw:
        before = spent(gw, "residents")
        proxy.fault("POST", "/v1/queries", "cut")  # the connection drops; the gateway goes on working
        answer = gw.query("residents", SLOW_RELEASE, epsilon=0.3)
        posts = proxy.requests("POST", "/v1/queries")
        assert {s.headers["Idempotency-Key"] for s in posts} == {answer.idempotency_key}
        # the retry found the first try still running (409), waited, and then got the first's answer
        statuses = [s.status for s in posts[1:]]
        assert statuses == [409] * (len(statuses) - 1) + [200] and len(statuses) >= 2
        assert answer.replayed is True and len(waits.waits) == len(posts) - 1
        assert spent(gw, "residents") == pytest.approx(before + 0.3)


def test_503_is_retried_after_its_retry_after_and_4xx_never(client_gateway: Gateway) -> None:
    waits = Sleeps()
    with FrontProxy(client_gateway.base) as proxy, client(client_gateway, base_url=proxy.base, sleep=waits) as gw:
        proxy.fault("GET", "/v1/budget", "unavailable", retry_after=1)
        assert gw.budget()["datasets"]
        assert len(waits.waits) == 1 and waits.waits[0] >= 1
        assert len(proxy.requests("GET", "/v1/budget")) == 2
        for call in (lambda: gw.dataset("nope"),
                     lambda: gw.query("residents", "SELECT age, COUNT(*) FROM residents GROUP BY age", epsilon=1)):
            seen = len(proxy.seen)
            with pytest.raises(gc.GatewayError) as refused:
                call()
            assert 400 <= refused.value.status < 500 and len(proxy.seen) == seen + 1
        assert len(waits.waits) == 1


def test_503_past_the_last_try_is_raised(client_gateway: Gateway) -> None:
    waits = Sleeps()
    with FrontProxy(client_gateway.base) as proxy, \
            client(client_gateway, base_url=proxy.base, sleep=waits, retry=RetryPolicy(attempts=2)) as gw:
        gw.catalog()  # the token first
        for _ in range(2):
            proxy.fault("GET", "/v1/budget", "unavailable", retry_after=1)
        with pytest.raises(gc.Unavailable) as unavailable:
            gw.budget()
        assert unavailable.value.retry_after == 1 and unavailable.value.status == 503
        assert len(waits.waits) == 1


def test_no_gateway_at_all(tmp_path: Path) -> None:
    waits = Sleeps()
    with Client(f"http://127.0.0.1:{free_port()}", "demo-bank", "x", sleep=waits,
                retry=RetryPolicy(attempts=3, backoff=0.01)) as gw, pytest.raises(gc.ConnectionFailed) as failed:
        gw.catalog()
    assert len(waits.waits) == 2 and failed.value.status is None


def test_tokens_are_reused_and_renewed_after_a_401(client_gateway: Gateway) -> None:
    with FrontProxy(client_gateway.base) as proxy, client(client_gateway, base_url=proxy.base) as gw:
        gw.catalog()
        gw.budget()
        gw.products()
        assert len(proxy.requests("POST", "/oauth/token")) == 1
        gw.tokens.token = gw.tokens.token[:-4] + "AAAA"  # as after a key rotation: the gateway refuses it
        assert gw.budget()["datasets"]
        assert len(proxy.requests("POST", "/oauth/token")) == 2
        assert [s.path for s in proxy.seen[-3:]] == ["/v1/budget", "/oauth/token", "/v1/budget"]


@pytest.mark.parametrize("shape", [{}, {"link_only": True}, {"absolute": True}])
def test_usage_follows_every_page(client_gateway: Gateway, shape: dict[str, bool]) -> None:
    with client(client_gateway) as direct:
        for age in (32, 33, 34):
            direct.query("residents", BY_TOWNSHIP.format(age=age), epsilon=0.5)
        whole = direct.usage()
    assert len(whole) >= 3
    with FrontProxy(client_gateway.base) as proxy, client(client_gateway, base_url=proxy.base) as gw:
        proxy.paginate("/v1/usage", 2, **shape)
        assert gw.usage() == whole
        assert len(proxy.requests("GET", "/v1/usage")) == (len(whole) + 1) // 2
        assert all("cursor=" in s.path for s in proxy.requests("GET", "/v1/usage")[1:])


def test_usage_without_pages_is_one_request(client_gateway: Gateway) -> None:
    """Today's gateway answers `{"period", "items"}` with no `next`: one request, every item."""
    with FrontProxy(client_gateway.base) as proxy, client(client_gateway, base_url=proxy.base) as gw:
        items = gw.usage(page_size=1)
        answered = client_gateway.api("GET", "/v1/usage?limit=1", "demo-bank").json
        if answered.get("next") is None:
            assert len(proxy.requests("GET", "/v1/usage")) == 1
        assert items == client_gateway.api("GET", "/v1/usage", "demo-bank").json["items"]


def test_rate_limit_is_waited_out(tmp_path: Path, demo_data: Path) -> None:
    slow = {"GATEWAY_RATE_LIMIT_PER_SECOND": "0.5", "GATEWAY_RATE_LIMIT_BURST": "1"}
    with demo_gateway(tmp_path, demo_data, env=slow) as limited_gw:
        waits = Sleeps()
        with client(limited_gw, sleep=waits) as gw:
            gw.catalog()  # takes the one token in the bucket
            assert gw.budget()["datasets"]  # refused with 429, waited out, answered
            assert waits.waits and min(waits.waits) >= 1
        with client(limited_gw, retry=RetryPolicy(attempts=1)) as impatient:
            with pytest.raises(gc.RateLimited) as limited:
                impatient.catalog()
                impatient.catalog()
            assert limited.value.status == 429 and limited.value.retry_after is not None
            assert limited.value.retry_after >= 1
