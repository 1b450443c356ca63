"""The client's I/O-free rules: what is retried and how long it waits, when a token is renewed,
which link is the next page, which exception an answer becomes, how intervals become columns."""

from __future__ import annotations

import email.utils
import json

import pytest

gc = pytest.importorskip("gateway_client", reason="the client is not installed: pip install -e clients/python[polars]")
from gateway_client import _protocol as p  # noqa: E402
from gateway_client.errors import error_from_answer, parse_retry_after  # noqa: E402

httpx = pytest.importorskip("httpx")


def problem(status: int, code: str, **extra: object) -> bytes:
    return json.dumps({"type": "x", "title": "t", "status": status, "detail": "d", "code": code, **extra}).encode()


@pytest.mark.parametrize(("status", "body", "cls", "code"), [
    (400, problem(400, "invalid_request"), gc.InvalidRequest, "invalid_request"),
    (400, problem(400, "invalid_query", position={"line": 1, "column": 8}), gc.InvalidQuery, "invalid_query"),
    (401, problem(401, "unauthorized"), gc.Unauthorized, "unauthorized"),
    (403, problem(403, "forbidden"), gc.Forbidden, "forbidden"),
    (403, problem(403, "budget_exhausted", epsilon_remaining=0.25), gc.BudgetExhausted, "budget_exhausted"),
    (404, problem(404, "not_found"), gc.NotFound, "not_found"),
    (409, problem(409, "idempotency_in_progress"), gc.IdempotencyInProgress, "idempotency_in_progress"),
    (409, problem(409, "dataset_suspended"), gc.DatasetSuspended, "dataset_suspended"),
    (410, problem(410, "dataset_withdrawn"), gc.DatasetWithdrawn, "dataset_withdrawn"),
    (413, problem(413, "payload_too_large"), gc.PayloadTooLarge, "payload_too_large"),
    (422, problem(422, "policy_violation", reasons=["a", "b"]), gc.PolicyViolation, "policy_violation"),
    (422, problem(422, "idempotency_key_reused"), gc.IdempotencyKeyReused, "idempotency_key_reused"),
    (429, problem(429, "rate_limited"), gc.RateLimited, "rate_limited"),
    (500, problem(500, "release_failed"), gc.ReleaseFailed, "release_failed"),
    (503, problem(503, "unavailable"), gc.Unavailable, "unavailable"),
    (418, problem(418, "a_code_from_the_future"), gc.GatewayError, "a_code_from_the_future"),
    (401, b'{"error": "invalid_client", "error_description": "bad secret"}', gc.Unauthorized, "invalid_client"),
    (400, b'{"error": "unsupported_grant_type"}', gc.InvalidRequest, "unsupported_grant_type"),
    (400, b'{"error": "invalid_request", "error_description": "no id"}', gc.InvalidRequest, "invalid_request"),
    (502, b"<html>Bad Gateway</html>", gc.GatewayError, "gateway_error"),
])
def test_answers_become_the_right_exception(status: int, body: bytes, cls: type, code: str) -> None:
    error = error_from_answer(status, {"X-Request-ID": "r1"}, body)
    assert type(error) is cls and error.status == status and error.code == code and error.request_id == "r1"
    assert isinstance(error, gc.GatewayError) and isinstance(error.problem, dict) and error.detail


def test_every_code_the_gateway_answers_has_its_class() -> None:
    """A new refusal on the server (product_retired, agreement_ended...) gets its class here too,
    with the same status; only the server's generic 500 stays a plain GatewayError."""
    import inspect

    from gateway import errors as server

    codes = {c.code: c.status for _, c in inspect.getmembers(server, inspect.isclass)
             if issubclass(c, server.GatewayError) and c.code != "internal_error"}
    assert {"product_retired", "agreement_ended", "price_over_cap"} <= set(codes)
    for code, status in codes.items():
        error = error_from_answer(status, {}, problem(status, code))
        assert type(error) is not gc.GatewayError and error.code == code and error.status == status, code
        assert type(error).default_status == status, code  # OAuth's invalid_client is an Unauthorized


def test_exception_extras() -> None:
    violation = error_from_answer(422, {}, problem(422, "policy_violation", reasons=["a", "b"]))
    assert violation.reasons == ("a", "b")
    query = error_from_answer(400, {}, problem(400, "invalid_query", position={"line": 2, "column": 3}))
    assert query.position == {"line": 2, "column": 3}
    limited = error_from_answer(429, {"Retry-After": "7"}, problem(429, "rate_limited"))
    assert limited.retry_after == 7
    exhausted = error_from_answer(403, {}, problem(403, "budget_exhausted", epsilon_remaining=0.25))
    assert exhausted.epsilon_remaining == 0.25
    oauth = error_from_answer(401, {}, b'{"error": "invalid_client", "error_description": "bad secret"}')
    assert oauth.detail == "bad secret"


def test_retry_after_as_seconds_or_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30)
    assert parse_retry_after(email.utils.formatdate(1_000_000, usegmt=True), now=1_000_030) == 0


def test_waits_grow_honour_retry_after_and_stop() -> None:
    policy = p.RetryPolicy(attempts=4, backoff=0.5, max_wait=10)
    assert [policy.delay(n, None, rand=lambda: 1.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]
    assert policy.delay(1, 3.0, rand=lambda: 1.0) == 3.0  # never sooner than the gateway asked
    assert policy.delay(1, 11.0) is None  # longer than max_wait: raise instead of sitting it out


def errors(status: int, code: str) -> gc.GatewayError:
    return error_from_answer(status, {}, problem(status, code))


def test_what_is_tried_again() -> None:
    policy = p.RetryPolicy(attempts=3, backoff=0.0)
    for status, code in ((429, "rate_limited"), (503, "unavailable")):
        assert p.Tries(policy).after_error(status, errors(status, code)) == 0.0
    for status, code in ((400, "invalid_query"), (403, "budget_exhausted"), (404, "not_found"),
                         (409, "dataset_suspended"), (422, "policy_violation"), (500, "release_failed")):
        with pytest.raises(gc.GatewayError):
            p.Tries(policy).after_error(status, errors(status, code))
    tries = p.Tries(policy)
    tries.after_error(503, errors(503, "unavailable"))
    tries.after_error(503, errors(503, "unavailable"))
    with pytest.raises(gc.Unavailable):  # the third try was the last
        tries.after_error(503, errors(503, "unavailable"))


def test_a_401_renews_the_token_once() -> None:
    tries = p.Tries(p.RetryPolicy())
    assert tries.after_error(401, errors(401, "unauthorized")) is None
    with pytest.raises(gc.Unauthorized):
        tries.after_error(401, errors(401, "unauthorized"))
    with pytest.raises(gc.Unauthorized):  # the token endpoint's own 401 is final
        p.Tries(p.RetryPolicy(), renewable=False).after_error(401, errors(401, "unauthorized"))


def test_in_progress_is_waited_for_only_after_an_unanswered_try() -> None:
    in_progress = errors(409, "idempotency_in_progress")
    with pytest.raises(gc.IdempotencyInProgress):  # someone else's request with that key: final
        p.Tries(p.RetryPolicy(), spends=True).after_error(409, in_progress)
    tries = p.Tries(p.RetryPolicy(backoff=0.0), spends=True)
    tries.after_no_answer(gc.ConnectionFailed({"detail": "reset"}))
    assert tries.after_error(409, in_progress) == 0.0
    reading = p.Tries(p.RetryPolicy(backoff=0.0), spends=False)
    reading.after_no_answer(gc.ConnectionFailed({"detail": "reset"}))
    with pytest.raises(gc.IdempotencyInProgress):
        reading.after_error(409, in_progress)


def test_a_spending_call_keeps_one_key() -> None:
    call = p.query_call("/v1/queries", "residents", "SELECT 1", None, 0.5, 0, spends=True)
    assert call.idempotency_key and len(call.idempotency_key) == 32
    assert p.query_call("/v1/queries", "r", "s", None, 0.5, 0, "mine", spends=True).idempotency_key == "mine"
    assert p.query_call("/v1/queries/preview", "r", "s", None, 0.5, 0, spends=False).idempotency_key is None
    assert call.body == {"dataset": "residents", "sql": "SELECT 1", "epsilon": 0.5, "delta": 0}


def test_tokens_are_renewed_before_they_expire() -> None:
    cache = p.TokenCache()
    cache.store({"access_token": "t", "expires_in": 900}, now=1000.0)
    assert cache.fresh(1000.0 + 719) == "t" and cache.fresh(1000.0 + 720) is None
    cache.store({"access_token": "u", "expires_in": 30}, now=0.0)
    assert cache.fresh(19.9) == "u" and cache.fresh(20.0) is None  # at least 10 s before expiry
    cache.forget()
    assert cache.fresh(0.0) is None
    with pytest.raises(ValueError):
        cache.store({"token_type": "Bearer"}, now=0.0)


@pytest.mark.parametrize(("headers", "body", "expected"), [
    ({}, {"items": [], "next": "/v1/usage?cursor=abc"}, "/v1/usage?cursor=abc"),
    ({}, {"items": [], "next": None}, None),
    ({}, {"period": "2026-11", "items": []}, None),
    ({"link": '</v1/usage?cursor=x>; rel="next"'}, {"items": []}, "/v1/usage?cursor=x"),
    ({"link": '</a>; rel="prev", <http://h/b?c=1>; rel="next"'}, {"items": []}, "http://h/b?c=1"),
    ({"link": "</a>; rel=next"}, {"items": []}, "/a"),
    ({"link": '</a>; rel="prev"'}, {"items": []}, None),
])
def test_next_page_link(headers: dict[str, str], body: object, expected: str | None) -> None:
    assert p.next_link(httpx.Headers(headers), body) == expected


def test_next_page_stays_on_the_gateway() -> None:
    base = httpx.URL("https://gw.example/prefix/")
    here = httpx.URL("https://gw.example/prefix/v1/usage?period=2026-11")
    assert str(p.resolve_next(base, here, "usage?cursor=2")) == "https://gw.example/prefix/v1/usage?cursor=2"
    assert str(p.resolve_next(base, here, "/prefix/v1/usage?cursor=2")).endswith("/prefix/v1/usage?cursor=2")
    with pytest.raises(ValueError):
        p.resolve_next(base, here, "https://elsewhere.example/v1/usage?cursor=2")


WIRE = {"query_id": "q1", "dataset": "residents", "columns": ["township", "n", "median_income"],
        "rows": [["Lingxi", 100, 30000.0], ["Baishi", 50, 20000.0]],
        "accuracy": {"alpha": 0.05, "columns": {"n": 2.5, "median_income": None}},
        "epsilon_spent": 0.5, "cached": False, "budget": {"epsilon_remaining": 9.5}, "usage": {"price_minor": 500}}


def test_intervals_beside_the_values() -> None:
    answer = gc.Answer.from_wire(WIRE)
    assert answer.table("halfwidth") == (
        ["township", "n", "n_halfwidth", "median_income", "median_income_halfwidth"],
        [["Lingxi", 100, 2.5, 30000.0, None], ["Baishi", 50, 2.5, 20000.0, None]])
    assert answer.table("bounds") == (
        ["township", "n", "n_lo", "n_hi", "median_income", "median_income_lo", "median_income_hi"],
        [["Lingxi", 100, 97.5, 102.5, 30000.0, None, None], ["Baishi", 50, 47.5, 52.5, 20000.0, None, None]])
    assert answer.table() == (WIRE["columns"], WIRE["rows"])
    with pytest.raises(ValueError):
        answer.table("percent")  # type: ignore[arg-type]


def test_a_stored_release_reads_as_an_answer() -> None:
    stored = {"query_id": "q1", "dataset": "residents",
              "release": {"columns": ["township", "count(*)"], "rows": [["Lingxi", 100]]},
              "accuracy": {"count(*)": 2.5}, "epsilon_spent": 0.5}
    answer = gc.Answer.from_wire(stored)
    assert answer.columns == ["township", "count(*)"] and answer.halfwidths == {"count(*)": 2.5}
    assert answer.alpha is None and answer.cached is False
