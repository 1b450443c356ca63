"""Tokens over real HTTP: every demo client gets one; every forged or broken one is refused 401."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support import Gateway, b64url, call, jwt_parts

DEMO_CLIENTS = ["demo-bank", "demo-insurer", "demo-bureau", "demo-source-psb", "demo-merchant", "demo-ops"]


@pytest.mark.parametrize("client_id", DEMO_CLIENTS)
def test_every_demo_client_gets_a_token(gateway: Gateway, client_id: str) -> None:
    header, claims, _ = jwt_parts(gateway.token(client_id))
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt" and header["kid"]
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "roles"):
        assert claim in claims
    assert claims["sub"] == client_id
    assert claims["exp"] - claims["iat"] <= 3600
    assert gateway.api("GET", "/v1/datasets", client_id).status == 200


def test_basic_auth_credentials_work(gateway: Gateway) -> None:
    secret = gateway.credentials["demo-bank"]["client_secret"]
    basic = base64.b64encode(f"demo-bank:{secret}".encode()).decode()
    r = gateway.form("/oauth/token", {"grant_type": "client_credentials"}, {"Authorization": "Basic " + basic})
    assert r.status == 200 and r.json["token_type"] == "Bearer"


def test_token_verifies_with_published_jwks(gateway: Gateway) -> None:
    keys = call("GET", gateway.base + "/.well-known/jwks.json").json["keys"]
    assert keys and all("d" not in k for k in keys)
    token = gateway.token("demo-bank")
    kid = jwt_parts(token)[0]["kid"]
    jwk = next(k for k in keys if k["kid"] == kid)
    claims = jwt.decode(token, jwt.PyJWK(jwk), algorithms=["EdDSA"], audience="county-gateway")
    assert claims["sub"] == "demo-bank"


@pytest.mark.parametrize("secret", ["wrong", ""])
def test_wrong_secret_refused(gateway: Gateway, secret: str) -> None:
    r = gateway.form("/oauth/token", {"grant_type": "client_credentials", "client_id": "demo-bank",
                                      "client_secret": secret})
    assert r.status == 401 and r.is_problem


def test_unknown_client_refused_like_wrong_secret(gateway: Gateway) -> None:
    a = gateway.form("/oauth/token", {"grant_type": "client_credentials", "client_id": "nobody",
                                      "client_secret": "x"})
    b = gateway.form("/oauth/token", {"grant_type": "client_credentials", "client_id": "demo-bank",
                                      "client_secret": "x"})
    assert a.status == b.status == 401 and a.json["detail"] == b.json["detail"]


def _forge(header: dict, claims: dict, key: object | None = None, alg: str = "EdDSA") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers=header)  # type: ignore[arg-type]


def _battery(gateway: Gateway) -> dict[str, str | None]:
    good = gateway.token("demo-bank")
    h, p, sig = jwt_parts(good)
    now = int(time.time())
    stranger = Ed25519PrivateKey.generate()
    pub_pem = json.dumps(call("GET", gateway.base + "/.well-known/jwks.json").json["keys"][0])
    unsigned = b64url(json.dumps({"alg": "none", "typ": "at+jwt", "kid": h["kid"]}).encode())

    def signed(**changes: object) -> str:
        return _forge({"kid": h["kid"], "typ": "at+jwt"}, {**p, **changes}, stranger)

    def body(claims: dict) -> str:
        return ".".join([good.split(".")[0], b64url(json.dumps(claims).encode()), sig])

    return {
        "no token": None,
        "not a jwt": "Bearer not-a-jwt",
        "basic scheme": "Basic ZGVtby1iYW5rOng=",
        "expired": signed(exp=now - 3600, iat=now - 4000),
        "not yet valid": signed(nbf=now + 3600),
        "wrong aud": signed(aud="someone-else"),
        "wrong iss": signed(iss="evil"),
        "alg none": "Bearer " + unsigned + "." + b64url(json.dumps(p).encode()) + ".",
        "hs256 with public key": "Bearer " + jwt.encode(p, pub_pem.encode() * 2, algorithm="HS256",
                                                        headers={"kid": h["kid"], "typ": "at+jwt"}),
        "unknown kid": "Bearer " + _forge({"kid": "nope", "typ": "at+jwt"}, p, stranger),
        "signed by a stranger": "Bearer " + signed(),
        "tampered payload": "Bearer " + body({**p, "sub": "demo-bureau", "roles": ["bureau"]}),
        "wrong typ": "Bearer " + jwt.encode(p, stranger, algorithm="EdDSA", headers={"kid": h["kid"]}),
    }


def test_negative_battery_each_401_problem(gateway: Gateway) -> None:
    cases = _battery(gateway)
    for name, auth in cases.items():
        if auth is not None and not auth.startswith(("Bearer", "Basic")):
            auth = "Bearer " + auth
        r = call("GET", gateway.base + "/v1/datasets", headers={"Authorization": auth} if auth else {})
        assert r.status == 401, name
        assert r.is_problem and r.json["code"] == "unauthorized", name
        assert (r.header("WWW-Authenticate") or "").startswith("Bearer "), name
        # R-AU-09: whatever a forger could probe (signature, claims, header) answers alike;
        # tests/test_refusal_messages.py pins the reasons a holder is told.
        if name not in ("no token", "not a jwt", "basic scheme", "unknown kid"):
            assert r.json["detail"] == "The token is not valid.", name
            assert r.header("WWW-Authenticate").startswith('Bearer error="invalid_token"'), name


def test_roles_are_enforced(gateway: Gateway) -> None:
    assert gateway.api("GET", "/metrics", "demo-bank").status == 403
    r = gateway.api("GET", "/metrics", "demo-ops")
    assert r.status == 200 and b"gateway_requests_total" in r.body


def test_unknown_route_and_method_are_problems(gateway: Gateway) -> None:
    r = gateway.api("GET", "/v1/nope", "demo-bank")
    assert r.status == 404 and r.is_problem and r.json["code"] == "not_found"
    r = call("DELETE", gateway.base + "/healthz")
    assert r.status == 405 and r.is_problem
    assert b"Traceback" not in r.body and b"/work" not in r.body
