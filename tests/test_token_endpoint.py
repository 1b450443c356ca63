"""The token endpoint as OAuth 2.0 clients expect it (issue 12, point 2; R-AU-11).

Errors are RFC 6749 §5.2 (`error`, `error_description`) with the right status and challenge;
authlib's OAuth2 client reads them as refusals; failed attempts are throttled per client id and
per source address; scrypt runs on threads of its own; RFC 8414 metadata points at all of it.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import urllib.parse
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import Gateway, Reply, call, demo_gateway

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _token(gw: Gateway, fields: dict[str, str], headers: dict[str, str] | None = None) -> Reply:
    return gw.form("/oauth/token", fields, headers)


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _is_oauth_error(reply: Reply, status: int, error: str) -> bool:
    body = reply.json
    return (reply.status == status and isinstance(body, dict) and body.get("error") == error
            and isinstance(body.get("error_description"), str) and body["error_description"]
            and "access_token" not in body and reply.header("Cache-Control") == "no-store")


def test_a_wrong_secret_is_invalid_client_with_a_basic_challenge(gateway: Gateway) -> None:
    posted = _token(gateway, {"grant_type": "client_credentials", "client_id": "demo-bank", "client_secret": "no"})
    assert _is_oauth_error(posted, 401, "invalid_client"), (posted.status, posted.body)
    basic = _token(gateway, {"grant_type": "client_credentials"}, _basic("demo-bank", "no"))
    assert _is_oauth_error(basic, 401, "invalid_client"), (basic.status, basic.body)
    for reply in (posted, basic):
        challenge = reply.header("WWW-Authenticate") or ""
        assert challenge.startswith("Basic realm=") and "Bearer" not in challenge, challenge
        assert reply.is_problem  # still our problem shape, with the OAuth members beside it


def test_an_unknown_client_answers_exactly_like_a_wrong_secret(gateway: Gateway) -> None:
    unknown = _token(gateway, {"grant_type": "client_credentials", "client_id": "nobody-at-all", "client_secret": "x"})
    wrong = _token(gateway, {"grant_type": "client_credentials", "client_id": "demo-insurer", "client_secret": "x"})
    strip = lambda r: {k: v for k, v in r.json.items() if k != "instance"}  # noqa: E731
    assert unknown.status == wrong.status == 401 and strip(unknown) == strip(wrong)
    assert unknown.header("WWW-Authenticate") == wrong.header("WWW-Authenticate")


@pytest.mark.parametrize(("fields", "headers", "status", "error"), [
    ({"grant_type": "password", "username": "a", "password": "b"}, "bank", 400, "unsupported_grant_type"),
    ({"grant_type": "authorization_code", "code": "x"}, "bank", 400, "unsupported_grant_type"),
    ({"client_id": "demo-bank"}, None, 400, "invalid_request"),
    ({"grant_type": "client_credentials", "client_id": "demo-bank"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials"}, None, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "client_secret": "x"}, "bank", 400, "invalid_request"),
    ({"grant_type": "client_credentials"}, "bearer", 401, "invalid_client"),
], ids=["password grant", "code grant", "no grant_type", "no secret", "no client at all", "two ways at once",
        "a bearer token"])
def test_each_refusal_has_its_rfc_6749_error(gateway: Gateway, fields: dict[str, str], headers: str | None,
                                             status: int, error: str) -> None:
    secret = gateway.credentials["demo-bank"]["client_secret"]
    h = {"bank": _basic("demo-bank", secret), "bearer": {"Authorization": "Bearer x.y.z"}, None: {}}[headers]
    reply = _token(gateway, fields, h)
    assert _is_oauth_error(reply, status, error), (reply.status, reply.body)


def test_a_repeated_parameter_and_a_wrong_media_type_are_invalid_request(gateway: Gateway) -> None:
    body = b"grant_type=client_credentials&grant_type=client_credentials&client_id=demo-bank&client_secret=x"
    reply = call("POST", gateway.base + "/oauth/token", body, FORM)
    assert _is_oauth_error(reply, 400, "invalid_request"), reply.body
    json_body = call("POST", gateway.base + "/oauth/token", b'{"grant_type": "client_credentials"}',
                     {"Content-Type": "application/json"})
    assert json_body.status == 415 and json_body.json["error"] == "invalid_request"


def _authlib_session(client_id: str, secret: str, method: str):  # type: ignore[no-untyped-def]
    requests_client = pytest.importorskip("authlib.integrations.requests_client")
    return requests_client.OAuth2Session(client_id, secret, token_endpoint_auth_method=method)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_gets_a_token_and_reads_a_refusal_as_one(gateway: Gateway, method: str) -> None:
    from authlib.integrations.base_client import OAuthError

    metadata = call("GET", gateway.base + "/.well-known/oauth-authorization-server").json
    secret = gateway.credentials["demo-insurer"]["client_secret"]
    with _authlib_session("demo-insurer", secret, method) as good:
        token = good.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    bearer = {"Authorization": "Bearer " + token["access_token"]}
    assert gateway.api("GET", "/v1/datasets", headers=bearer).status == 200
    with _authlib_session("demo-insurer", "not-the-secret", method) as bad, pytest.raises(OAuthError) as refused:
        bad.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


def test_rfc_8414_metadata_points_at_the_token_endpoint_and_keys(gateway: Gateway) -> None:
    reply = call("GET", gateway.base + "/.well-known/oauth-authorization-server")
    assert reply.status == 200
    meta = reply.json
    assert meta["token_endpoint"] == gateway.base + "/oauth/token"
    assert meta["jwks_uri"] == gateway.base + "/.well-known/jwks.json"
    assert meta["grant_types_supported"] == ["client_credentials"]
    assert set(meta["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    from tests.support import jwt_parts
    assert meta["issuer"] == jwt_parts(gateway.token("demo-bank"))[1]["iss"]
    assert call("GET", meta["jwks_uri"]).json["keys"]


# ------------------------------------------------------------------ throttling, on gateways of their own

THROTTLE = {"GATEWAY_TOKEN_FAILURES_PER_CLIENT": "3", "GATEWAY_TOKEN_FAILURES_PER_ADDRESS": "8",
            "GATEWAY_TOKEN_FAILURES_PER_MINUTE": "0.5"}


@pytest.fixture
def strict(tmp_path: Path, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path, demo_data, env=THROTTLE) as gw:
        yield gw


def _attempt(gw: Gateway, client_id: str, secret: str) -> Reply:
    return _token(gw, {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})


def test_failed_attempts_are_throttled_per_client_id_then_per_address(strict: Gateway) -> None:
    creds = {c: strict.credentials[c]["client_secret"] for c in ("demo-bank", "demo-insurer", "demo-bureau")}
    assert [_attempt(strict, "demo-bank", "guess").status for _ in range(3)] == [401] * 3
    locked = _attempt(strict, "demo-bank", creds["demo-bank"])  # even the right secret waits now
    assert _is_oauth_error(locked, 429, "slow_down") and locked.is_problem, (locked.status, locked.body)
    assert int(locked.header("Retry-After") or 0) >= 1
    # Another client from the same address is not held up by demo-bank's failures...
    assert _attempt(strict, "demo-insurer", creds["demo-insurer"]).status == 200
    # ...until the address has failed too often, whatever ids it names (unknown ones count too).
    assert [_attempt(strict, f"nobody-{n}", "guess").status for n in range(5)] == [401] * 5
    refused = _attempt(strict, "demo-bureau", creds["demo-bureau"])
    assert _is_oauth_error(refused, 429, "slow_down")


def test_concurrent_guesses_are_held_to_the_allowance(strict: Gateway) -> None:
    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(lambda _: _attempt(strict, "demo-merchant", "guess").status, range(12)))
    # Attempts being checked count as failures until they succeed: at most 3 ran scrypt.
    assert statuses.count(401) == 3 and statuses.count(429) == 9, statuses


# ------------------------------------------------------------------ in process: the secret-check threads

async def test_a_token_is_issued_while_the_default_executor_is_saturated(tmp_path: Path) -> None:
    from gateway.auth.secrets import hash_secret
    from gateway.runtime.open import open_runtime
    from gateway.service.identity import issue_token
    from gateway.settings import load_settings
    from gateway.store import identity

    runtime = await asyncio.to_thread(open_runtime, load_settings(values={"state_dir": str(tmp_path)}))
    try:
        def add(tx, digest: str) -> None:  # type: ignore[no-untyped-def]
            identity.ensure_org(tx, "acme", "Acme", "requester")
            identity.create_client(tx, "acme-1", "acme", ("requester",), digest)

        await runtime.store.write(add, hash_secret("s3cret"))
        release = threading.Event()
        loop = asyncio.get_running_loop()
        # Snapshot builds and other to_thread work share the default executor: fill every thread.
        blockers = [loop.run_in_executor(None, release.wait) for _ in range(64)]
        try:
            access, _ttl = await asyncio.wait_for(issue_token(runtime, "acme-1", "s3cret"), timeout=60)
        finally:
            release.set()
            await asyncio.gather(*blockers)
        assert access.count(".") == 2
    finally:
        await asyncio.to_thread(runtime.close)


def test_the_dummy_hash_costs_what_a_stored_hash_costs() -> None:
    from gateway.auth.secrets import DUMMY_HASH, hash_secret

    with warnings.catch_warnings():
        stored = hash_secret("anything").split("$")
    dummy = DUMMY_HASH.split("$")
    assert dummy[:4] == stored[:4]  # scheme, N, r, p: the work of one check
    assert [len(base64.b64decode(p)) for p in dummy[4:]] == [len(base64.b64decode(p)) for p in stored[4:]]
