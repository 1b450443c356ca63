"""A bank reaching past its own objects and role (R-AU-05, -06, -07, -08).

Another requester's release, grant, application, client, usage, invoice and Idempotency-Key
answer exactly like missing ones; a suspended bank's still-valid token stops working within
a second on every route; extra fields that would set caps, prices or owners are refused; and
the bureau's and departments' actions, tried with real ids, are refused and change nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import FAST_RATES, Gateway, Reply, b64url, demo_gateway, jwt_parts

BANK, INSURER, BANK_ORG = "demo-bank", "demo-insurer", "lingxi-rural-bank"
ROLE_REFUSAL = "your role (requester) does not allow this; it needs the "
COUNT = "SELECT COUNT(*) AS n FROM enterprises"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("attacks-authz"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def bank_objects(gw: Gateway) -> dict[str, str]:
    """Objects the bank owns: a release, an application, and an Idempotency-Key it used."""
    key = "bank-" + uuid.uuid4().hex
    release = gw.api("POST", "/v1/queries", BANK, {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1},
                     {"Idempotency-Key": key})
    assert release.status == 200, release.body[:300]
    application = gw.api("POST", "/v1/applications", BANK, {
        "dataset": "vehicles", "purpose": "Pricing car loans for county residents", "epsilon_per_period": "3"})
    assert application.status == 201, application.body[:300]
    return {"query": release.json["query_id"], "application": application.json["id"], "key": key,
            "grant": "demo-grant-1", "client": BANK}


def same_answer(a: Reply, b: Reply) -> bool:
    """Status, headers and body alike but for the request's own id and date."""
    def shape(r: Reply) -> tuple[int, dict[str, str], dict[str, Any]]:
        body = {k: v for k, v in r.json.items() if k != "instance"}
        headers = {k.lower(): v for k, v in r.headers.items() if k.lower() not in ("date", "x-request-id")}
        return r.status, headers, body
    return shape(a) == shape(b)


def test_another_requesters_objects_answer_like_missing_ones(gw: Gateway, bank_objects: dict[str, str]) -> None:
    """R-AU-06 for every id a requester can name in a path."""
    probes = [("GET", "/v1/queries/{}", "query", "0" * 32), ("GET", "/v1/grants/{}", "grant", "demo-grant-999"),
              ("GET", "/v1/applications/{}", "application", "app-0000000000000000"),
              ("POST", "/v1/clients/{}/secret", "client", "no-such-client")]
    for method, path, kind, missing in probes:
        theirs = gw.api(method, path.format(bank_objects[kind]), INSURER)
        nothing = gw.api(method, path.format(missing), INSURER)
        assert theirs.status == 404 and same_answer(theirs, nothing), (kind, theirs.body, nothing.body)
    gw.tokens.pop(BANK, None)
    assert gw.token(BANK), "the bank's secret was not rotated by the insurer"


def test_lists_usage_and_invoices_hold_only_ones_own(gw: Gateway, bank_objects: dict[str, str]) -> None:
    period = gw.api("GET", "/v1/budget", INSURER).json["period"]
    usage = gw.api("GET", f"/v1/usage?period={period}&org_id={BANK_ORG}", INSURER).json["items"]
    assert all(u["org_id"] != BANK_ORG for u in usage), "query parameters choose nothing"
    assert bank_objects["query"] not in json.dumps(usage)
    invoice = gw.api("GET", f"/v1/invoices/{period}?org_id={BANK_ORG}", INSURER)
    assert invoice.status == 200 and invoice.json["invoice_id"].startswith("county-mutual-insurance")
    assert all(line["dataset"] != "enterprises" for line in invoice.json["lines"])
    grants = gw.api("GET", "/v1/grants", INSURER).json["items"]
    applications = gw.api("GET", "/v1/applications", INSURER).json["items"]
    assert {g["org_id"] for g in grants} == {"county-mutual-insurance"}
    assert all(a["org_id"] != BANK_ORG for a in applications)
    budget = gw.api("GET", f"/v1/budget?org_id={BANK_ORG}", INSURER).json
    assert {d["dataset"] for d in budget["datasets"]} == {"residents", "vehicles"}


def test_another_requesters_idempotency_key_is_a_new_key(gw: Gateway, bank_objects: dict[str, str]) -> None:
    """Keys are scoped per requester: the insurer neither replays nor collides with the bank's."""
    body = {"dataset": "residents", "sql": "SELECT COUNT(*) AS n FROM residents", "epsilon": 0.1}
    mine = gw.api("POST", "/v1/queries", INSURER, body, {"Idempotency-Key": bank_objects["key"]})
    assert mine.status == 200 and mine.header("Idempotent-Replayed") is None, mine.body[:300]
    assert mine.json["query_id"] != bank_objects["query"] and mine.json["dataset"] == "residents"
    replay = gw.api("POST", "/v1/queries", BANK, {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1},
                    {"Idempotency-Key": bank_objects["key"]})
    assert replay.status == 200 and replay.header("Idempotent-Replayed") == "true"
    assert replay.json["query_id"] == bank_objects["query"]


def refused_for(gw: Gateway, calls: dict[str, Callable[[], Reply]]) -> dict[str, int]:
    return {name: call().status for name, call in calls.items()}


def bank_calls(gw: Gateway, token: str, key: str) -> dict[str, Callable[[], Reply]]:
    """Every kind of call the bank makes, with a token it got before the suspension."""
    auth = {"Authorization": "Bearer " + token}
    query = {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1}
    return {
        "budget": lambda: gw.api("GET", "/v1/budget", headers=auth),
        "cached query": lambda: gw.api("POST", "/v1/queries", body=query, headers=auth),
        "idempotent replay": lambda: gw.api("POST", "/v1/queries", body=query,
                                            headers={**auth, "Idempotency-Key": key}),
        "preview": lambda: gw.api("POST", "/v1/queries/preview", body=query, headers=auth),
        "product": lambda: gw.api("POST", "/v1/products/income-by-township/invoke",
                                  body={"params": {"min_age": 20, "max_age": 30}}, headers=auth),
        "usage": lambda: gw.api("GET", "/v1/usage", headers=auth),
        "own secret": lambda: gw.api("POST", f"/v1/clients/{BANK}/secret", headers=auth),
    }


def seconds_until_refused(gw: Gateway, token: str) -> float:
    started = time.monotonic()
    while gw.api("GET", "/v1/budget", headers={"Authorization": "Bearer " + token}).status != 401:
        assert time.monotonic() - started < 5, "a suspended requester is still served"
        time.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.parametrize("scope", ["organisation", "client"])
def test_a_suspended_requesters_valid_token_is_refused_within_a_second(gw: Gateway, bank_objects: dict[str, str],
                                                                         scope: str) -> None:
    """R-AU-05: the status is read on every request, so a token that still verifies is refused
    on every route, a new token is refused, and nothing is spent or billed meanwhile."""
    gw.tokens.pop(BANK, None)
    token = gw.token(BANK)
    before = gw.api("GET", "/v1/budget", BANK).json, len(gw.api("GET", "/v1/usage", BANK).json["items"])
    target = f"/v1/requesters/{BANK_ORG}" if scope == "organisation" else f"/v1/clients/{BANK}"
    assert gw.api("POST", f"{target}/suspend", "demo-bureau", {"reason": "audit finding"}).status == 200
    try:
        assert seconds_until_refused(gw, token) <= 1.0
        statuses = refused_for(gw, bank_calls(gw, token, bank_objects["key"]))
        assert set(statuses.values()) == {401}, statuses
        secret = gw.credentials[BANK]["client_secret"]
        fresh = gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": BANK,
                                         "client_secret": secret})
        assert fresh.status == 401
    finally:
        assert gw.api("POST", f"{target}/reinstate", "demo-bureau", {}).status == 200
    deadline = time.monotonic() + 1.0
    while gw.api("GET", "/v1/budget", headers={"Authorization": "Bearer " + token}).status != 200:
        assert time.monotonic() < deadline, "reinstatement did not take effect within a second"
        time.sleep(0.02)
    assert (gw.api("GET", "/v1/budget", BANK).json, len(gw.api("GET", "/v1/usage", BANK).json["items"])) == before


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/queries", {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1, "org_id": "county-mutual-insurance"}),
    ("/v1/queries", {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1, "epsilon_limit": 100}),
    ("/v1/queries", {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1, "price_minor": 0}),
    ("/v1/queries", {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1, "cached": True}),
    ("/v1/queries/preview", {"dataset": "enterprises", "sql": COUNT, "epsilon": 0.1, "client_id": "demo-bureau"}),
    ("/v1/products/income-by-township/invoke", {"params": {"min_age": 20, "max_age": 30}, "price_minor": 0}),
    ("/v1/products/income-by-township/invoke", {"params": {"min_age": 20, "max_age": 30}, "epsilon": 0.01}),
    ("/v1/applications", {"dataset": "vehicles", "purpose": "x", "epsilon_per_period": "3", "status": "approved"}),
    ("/v1/applications", {"dataset": "vehicles", "purpose": "x", "epsilon_per_period": "3",
                          "org_id": "county-mutual-insurance"}),
    ("/v1/applications", {"dataset": "vehicles", "purpose": "x", "epsilon_per_period": "3",
                          "epsilon_approved": "100"}),
])
def test_mass_assignment_is_refused(gw: Gateway, path: str, body: dict[str, Any]) -> None:
    """R-AU-08: unknown fields are a 400 naming them; nothing is spent, billed or created."""
    before = (gw.api("GET", "/v1/budget", BANK).json, gw.api("GET", "/v1/usage", BANK).json,
              gw.api("GET", "/v1/applications", BANK).json)
    reply = gw.api("POST", path, BANK, body)
    assert reply.status == 400 and reply.is_problem and "unknown field" in reply.json["detail"], reply.body[:300]
    after = (gw.api("GET", "/v1/budget", BANK).json, gw.api("GET", "/v1/usage", BANK).json,
             gw.api("GET", "/v1/applications", BANK).json)
    assert after == before


def world(gw: Gateway, application: str) -> dict[str, Any]:
    """What the bureau and departments control, as the bureau sees it."""
    return {
        "catalog": gw.api("GET", "/v1/datasets", "demo-bureau").json,
        "policy": gw.api("GET", "/v1/datasets/residents/policy", "demo-bureau").json["version"],
        "application": gw.api("GET", f"/v1/applications/{application}", "demo-bureau").json["status"],
        "grants": gw.api("GET", "/v1/grants", "demo-bureau").json,
        "orgs": gw.api("GET", "/v1/requesters", "demo-bureau").json,
        "products": gw.api("GET", "/v1/products/income-by-township/versions", "demo-bureau").json,
        "snapshots": gw.api("GET", "/v1/datasets/residents/snapshots", "demo-bureau").json["current"],
    }


def test_another_organisations_client_cannot_be_suspended_and_looks_missing(gw: Gateway) -> None:
    """Any organisation may suspend its own clients (issue 19): another's answers like a missing one."""
    theirs = gw.api("POST", "/v1/clients/demo-insurer/suspend", "demo-bank", {"reason": "x"})
    missing = gw.api("POST", "/v1/clients/no-such-client/suspend", "demo-bank", {"reason": "x"})
    assert theirs.status == missing.status == 404 and theirs.json["detail"] == missing.json["detail"]


def test_a_requester_cannot_act_as_bureau_department_or_merchant(gw: Gateway, bank_objects: dict[str, str]) -> None:
    """R-AU-07 with real ids: every privileged action is a 403 for the bank and changes nothing."""
    app = bank_objects["application"]
    policy = gw.api("GET", "/v1/datasets/residents/policy", "demo-bureau").json["document"]
    attempts: list[tuple[str, str, Any]] = [
        ("POST", "/v1/datasets/residents/suspend", None), ("POST", "/v1/datasets/residents/withdraw", None),
        ("POST", "/v1/datasets/vehicles/resume", None), ("GET", "/v1/audit/verify", None),
        ("PUT", "/v1/datasets/residents/snapshots", b"PAR1"), ("GET", "/v1/datasets/residents/snapshots", None),
        ("PUT", "/v1/datasets/residents/policy", json.dumps(policy).encode()),
        ("GET", "/v1/datasets/residents/policy", None),
        ("POST", f"/v1/applications/{app}/approve", {"epsilon_per_period": "100"}),
        ("POST", f"/v1/applications/{app}/cosign", None), ("POST", f"/v1/applications/{app}/reject", {"reason": "x"}),
        ("POST", "/v1/grants/demo-grant-1/revoke", {"reason": "x"}),
        ("POST", "/v1/products/income-by-township/versions/1/publish", None),
        ("POST", "/v1/products/income-by-township/versions/1/reject", {"reason": "x"}),
        ("POST", "/v1/products", {"id": "bank-product", "dataset": "residents", "title": "t",
                                  "sql": "SELECT COUNT(*) FROM residents", "epsilon": "0.1", "price_minor": 0}),
        ("POST", "/v1/requesters", {"org_id": "shadow-bank", "name": "Shadow"}),
        ("POST", f"/v1/requesters/{BANK_ORG}/clients", {"client_id": "bank-second"}),
        ("POST", "/v1/requesters/county-mutual-insurance/suspend", None),
        ("POST", f"/v1/requesters/{BANK_ORG}/reinstate", None),
        ("POST", "/v1/credit-notes", {"org_id": BANK_ORG, "dataset": "residents", "refers_to_period": "2026-01",
                                      "amount_minor": 100000, "reason": "x"}),
        ("GET", "/v1/requesters", None), ("GET", "/metrics", None), ("GET", "/v1/revenue/2026-01", None),
    ]
    before = world(gw, app)
    for method, path, body in attempts:
        headers = {"Content-Type": "application/octet-stream"} if isinstance(body, bytes) and path.endswith(
            "snapshots") else {"Content-Type": "application/json"} if isinstance(body, bytes) else None
        reply = gw.api(method, path, BANK, body, headers)
        assert reply.status == 403 and reply.json["detail"].startswith(ROLE_REFUSAL), (method, path, reply.status)
    # Every organisation manages its own clients (issue 19 point 4): another's answers like a missing one.
    for action in ("suspend", "resume", "secret"):
        assert gw.api("POST", f"/v1/clients/demo-insurer/{action}", BANK).status == 404
    assert world(gw, app) == before


def test_a_token_with_forged_roles_is_refused(gw: Gateway) -> None:
    """The bank edits its own token to claim the bureau role, or strips the signature."""
    header, payload, signature = jwt_parts(gw.token(BANK))
    forged_payload = b64url(json.dumps({**payload, "roles": ["bureau"], "scope": "bureau"}).encode())
    forged = f"{b64url(json.dumps(header).encode())}.{forged_payload}.{signature}"
    unsigned = f"{b64url(json.dumps({**header, 'alg': 'none'}).encode())}.{forged_payload}."
    for token in (forged, unsigned):
        reply = gw.api("GET", "/v1/audit/verify", headers={"Authorization": "Bearer " + token})
        assert reply.status == 401 and reply.is_problem
        assert (reply.header("WWW-Authenticate") or "").startswith('Bearer error="invalid_token"')
