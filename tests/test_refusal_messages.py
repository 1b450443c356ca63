"""Refusals that say why and what to do (issue 12, point 9), without helping a forger.

A 401 names its reason where the reason is the caller's own business (no token, the wrong
scheme, not a JWT, a key this gateway does not know, an expired or early token of ours); a
token that fails its signature or claims gets one generic answer, whichever check failed. A 403
names the role needed; a budget refusal says when the budget renews and what to do meanwhile.
"""

from __future__ import annotations

import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.store.ledger import Account, exhausted_detail
from tests.support import Gateway, call, jwt_parts

GENERIC = "The token is not valid."


def _own_key(gw: Gateway) -> Ed25519PrivateKey:
    """The gateway's newest signing key, from its state folder (as an insider would have it)."""
    newest = sorted((gw.state_dir / "keys").glob("*.pem"))[-1]
    key = serialization.load_pem_private_key(newest.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def _refusal(gw: Gateway, authorization: str | None) -> tuple[str, str]:
    reply = call("GET", gw.base + "/v1/datasets", headers={"Authorization": authorization} if authorization else {})
    assert reply.status == 401 and reply.is_problem and reply.json["code"] == "unauthorized", reply.body
    return reply.json["detail"], reply.header("WWW-Authenticate") or ""


def test_each_401_says_why_where_that_helps_no_forger(gateway: Gateway) -> None:
    good = gateway.token("demo-bank")
    header, claims, _sig = jwt_parts(good)
    now = int(time.time())
    ours, stranger = _own_key(gateway), Ed25519PrivateKey.generate()

    def token(key: Ed25519PrivateKey, kid: str = header["kid"], **changes: object) -> str:
        signed = jwt.encode({**claims, **changes}, key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt"})
        return "Bearer " + signed

    reasons = {
        "no token": (None, "required"),
        "basic": ("Basic ZGVtby1iYW5rOng=", "Bearer"),
        "not a jwt": ("Bearer not-a-jwt", "malformed"),
        "unknown key": (token(stranger, kid="no-such-kid"), "key this gateway does not know"),
        "expired": (token(ours, exp=now - 600, iat=now - 1200, nbf=now - 1200), "expired"),
        "early": (token(ours, nbf=now + 3600, iat=now), "not valid yet"),
    }
    for name, (auth, phrase) in reasons.items():
        detail, challenge = _refusal(gateway, auth)
        assert phrase in detail, (name, detail)
        assert challenge.startswith("Bearer"), (name, challenge)
    # A forger learns nothing about which check failed: signature, claims or header.
    forged = [token(stranger, exp=now - 600, iat=now - 1200), token(stranger, aud="elsewhere"), token(stranger),
              token(ours, aud="elsewhere"), token(ours, iss="evil"),
              "Bearer " + jwt.encode(claims, stranger, algorithm="EdDSA", headers={"kid": header["kid"]})]
    details = {_refusal(gateway, auth)[0] for auth in forged}
    assert details == {GENERIC}, details
    assert _refusal(gateway, forged[0])[1].startswith('Bearer error="invalid_token"')


def test_403_names_the_role_needed(gateway: Gateway) -> None:
    reply = gateway.api("GET", "/metrics", "demo-bank")
    assert reply.status == 403 and reply.json["code"] == "forbidden"
    detail = reply.json["detail"]
    assert "ops" in detail and "requester" in detail, detail
    bureau_only = gateway.api("GET", "/v1/audit/verify", "demo-bank")
    assert bureau_only.status == 403 and "bureau" in bureau_only.json["detail"]


def test_budget_refusals_say_when_the_budget_renews_and_what_to_do() -> None:
    grant = exhausted_detail(Account("grant:lender:residents", 10), "2026-12")
    pool = exhausted_detail(Account("pool:county_people", 500), "2026-12")
    lifetime = exhausted_detail(Account("pool-lifetime:county_people", 1200, "all"), "2026-12")
    assert grant[1] == pool[1] == "2027-01-01" and lifetime[1] is None
    assert "2027-01-01" in grant[0] and "smaller epsilon" in grant[0] and "cached" in grant[0]
    assert "2027-01-01" in pool[0] and "every requester" in pool[0]
    assert "never renews" in lifetime[0]


