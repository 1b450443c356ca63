"""HTTP at its edges (issue 12, point 3): 405 with Allow, HEAD and OPTIONS, what the HTTP parser
refuses, numbers JSON can hold but Python should not, and tokens that never reach the log."""

from __future__ import annotations

import json

import pytest

from tests.rawhttp import send_raw
from tests.support import Gateway, call

GOOD = {"dataset": "residents", "sql": "SELECT COUNT(*) AS n FROM residents", "epsilon": 0.5}


def _allow(reply_header: str | None) -> set[str]:
    return {m.strip() for m in (reply_header or "").split(",") if m.strip()}


def test_405_names_the_allowed_methods(gateway: Gateway) -> None:
    reply = gateway.api("DELETE", "/v1/datasets", "demo-bank")
    assert reply.status == 405 and reply.is_problem
    assert {"GET", "HEAD"} <= _allow(reply.header("Allow")), reply.headers
    assert "Method Method" not in reply.json["detail"] and "DELETE" in reply.json["detail"]
    on_public = call("PUT", gateway.base + "/healthz")
    assert on_public.status == 405 and "GET" in _allow(on_public.header("Allow"))


def test_head_answers_like_get_without_a_body(gateway: Gateway) -> None:
    for path, client in (("/v1/datasets", "demo-bank"), ("/healthz", None), ("/openapi.json", None)):
        got = gateway.api("GET", path, client)
        head = gateway.api("HEAD", path, client)
        assert got.status == 200 and head.status == 200, (path, head.status)
        assert head.body == b""
        assert head.header("Content-Type") == got.header("Content-Type")
    assert gateway.api("HEAD", "/v1/datasets").status == 401  # HEAD is no way around the token


def test_options_answers_204_with_allow(gateway: Gateway) -> None:
    reply = call("OPTIONS", gateway.base + "/v1/datasets")
    assert reply.status == 204 and reply.body == b""
    assert {"GET", "HEAD", "OPTIONS"} <= _allow(reply.header("Allow"))
    post_only = call("OPTIONS", gateway.base + "/v1/queries")
    assert post_only.status == 204 and "POST" in _allow(post_only.header("Allow"))
    missing = call("OPTIONS", gateway.base + "/v1/nothing-here")
    assert missing.status == 404 and missing.is_problem


BAD_REQUESTS = {
    "NUL in a header": b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\nX-Note: a\x00b\r\nAUTH\r\n\r\n",
    "NUL after a token": b"GET /v1/datasets HTTP/1.1\r\nHost: x\r\nAUTH\x00\r\n\r\n",
    "garbage request line": b"NOT HTTP AT ALL\r\n\r\n",
    "bad content-length": b"POST /v1/queries HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nAUTH\r\n\r\n",
    "header line too long": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    "space before colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\nAUTH\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_what_the_http_parser_refuses_is_a_problem(gateway: Gateway, name: str) -> None:
    token = gateway.token("demo-bank")
    raw = BAD_REQUESTS[name].replace(b"AUTH", b"Authorization: Bearer " + token.encode())
    reply = send_raw(gateway.port, raw)
    assert 400 <= reply.status < 500, (name, reply.status, reply.body[:200])
    assert reply.is_problem, (name, reply.headers, reply.body[:200])
    assert reply.header("Server") == "county-gateway", reply.headers
    assert reply.json["code"] in ("invalid_request", "payload_too_large", "request_header_fields_too_large")
    text = reply.body.decode()
    assert "aiohttp" not in text and "Traceback" not in text and "\x00" not in text
    log = (gateway.state_dir / "server.log").read_text(errors="replace")
    assert token not in log and token.split(".")[2] not in log
    assert "Traceback" not in log


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "1" * 4301, "1e999", "-1e400"])
def test_numbers_python_cannot_hold_are_a_client_error(gateway: Gateway, number: str) -> None:
    body = ('{"dataset": "residents", "sql": "SELECT COUNT(*) AS n FROM residents", "epsilon": '
            + number + "}").encode()
    reply = gateway.api("POST", "/v1/queries/preview", "demo-bank", body)
    assert reply.status == 400 and reply.is_problem, (reply.status, reply.body[:300])
    assert reply.json["code"] == "invalid_request"
    assert len(reply.body) < 2000  # the number is not echoed back


def test_no_token_reaches_the_log_whatever_fails(gateway: Gateway) -> None:
    token = gateway.token("demo-insurer")
    auth = {"Authorization": "Bearer " + token}
    gateway.api("POST", "/v1/queries/preview", body=b'{"epsilon": ' + b"7" * 5000 + b"}", headers=auth)
    gateway.api("POST", "/v1/queries", body=json.dumps(GOOD).encode(), headers=auth)
    gateway.api("DELETE", "/v1/datasets", headers=auth)
    send_raw(gateway.port, b"GET /v1/budget HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
             + b"\x01\r\n\r\n")
    log = (gateway.state_dir / "server.log").read_text(errors="replace")
    for needle in (token, token.split(".")[1], token.split(".")[2]):
        assert needle not in log


def test_the_log_filter_masks_credentials_in_messages_and_tracebacks() -> None:
    import io
    import logging

    from gateway.logsetup import RedactCredentials

    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkZW1vLWJhbmsifQ.c2lnbmF0dXJlLWJ5dGVz"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactCredentials())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("header %r", f"Authorization: Bearer {token}")
        logger.warning("basic: Authorization: Basic ZGVtby1iYW5rOnNlY3JldA==")
        logger.warning("form grant_type=client_credentials&client_secret=s3cr3t-value&x=1")
        try:
            raise ValueError(f"bad header b'Authorization: Bearer {token}\\x00'")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in (token, token.split(".")[2], "ZGVtby1iYW5rOnNlY3JldA", "s3cr3t-value"):
        assert secret not in text, secret
    assert text.count("[redacted]") >= 4 and "Traceback" in text and "ValueError" in text
