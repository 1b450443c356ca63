"""Every endpoint admits exactly the roles it should (R-AU-07), walked over HTTP for every role.

The matrix below is the specification, written out by hand: the route table must match it
(a new route fails here until its roles are decided), and a real server must enforce it. The
walk uses ids that do not exist and empty bodies, so an admitted call changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.http.app import all_routes
from tests.support import FAST_RATES, Gateway, Reply, demo_gateway

PUBLIC: frozenset[str] = frozenset()
ALL = frozenset({"requester", "bureau", "source", "merchant", "ops"})
R, B, S, M, OPS = "requester", "bureau", "source", "merchant", "ops"

EXPECTED: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/oauth/token"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/.well-known/oauth-authorization-server"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/metrics"): frozenset({OPS}),
    ("GET", "/v1/datasets"): ALL,
    ("GET", "/v1/datasets/{dataset}"): ALL,
    ("POST", "/v1/queries"): frozenset({R}),
    ("POST", "/v1/queries/preview"): frozenset({R}),
    ("GET", "/v1/queries/{query_id}"): frozenset({R}),
    ("GET", "/v1/queries/{query_id}/receipt"): frozenset({R}),
    ("GET", "/v1/budget"): frozenset({R}),
    ("GET", "/v1/usage"): frozenset({R, B}),
    ("GET", "/v1/audit/verify"): frozenset({B}),
    ("GET", "/v1/audit/entries"): frozenset({B}),
    ("GET", "/v1/queries"): frozenset({R}),
    ("GET", "/v1/invoices"): frozenset({R}),
    ("PUT", "/v1/datasets/{dataset}/snapshots"): frozenset({B, S}),
    ("GET", "/v1/datasets/{dataset}/snapshots"): frozenset({B, S}),
    ("POST", "/v1/requesters"): frozenset({B}),
    ("GET", "/v1/requesters"): frozenset({B}),
    ("GET", "/v1/requesters/{org_id}"): frozenset({B}),
    ("POST", "/v1/requesters/{org_id}/clients"): frozenset({B}),
    ("POST", "/v1/requesters/{org_id}/suspend"): frozenset({B}),
    ("POST", "/v1/requesters/{org_id}/reinstate"): frozenset({B}),
    # Every kind of organisation manages its own clients; the bureau any (issue 19 point 4).
    ("POST", "/v1/clients"): frozenset({R, M}),  # a further client of one's own organisation
    ("POST", "/v1/clients/{client_id}/secret"): ALL,
    ("POST", "/v1/clients/{client_id}/suspend"): ALL,
    ("POST", "/v1/clients/{client_id}/reinstate"): ALL,
    ("POST", "/v1/clients/{client_id}/resume"): ALL,
    ("POST", "/v1/datasets/{dataset}/suspend"): frozenset({B, S}),
    ("POST", "/v1/datasets/{dataset}/resume"): frozenset({B, S}),
    ("POST", "/v1/datasets/{dataset}/withdraw"): frozenset({B, S}),
    ("GET", "/v1/datasets/{dataset}/policy"): frozenset({B, S}),
    ("PUT", "/v1/datasets/{dataset}/policy"): frozenset({B}),
    ("POST", "/v1/applications"): frozenset({R}),
    ("GET", "/v1/applications"): frozenset({R, B, S}),
    ("GET", "/v1/applications/{application_id}"): frozenset({R, B, S}),
    ("POST", "/v1/applications/{application_id}/approve"): frozenset({B}),
    ("POST", "/v1/applications/{application_id}/cosign"): frozenset({S}),
    ("POST", "/v1/applications/{application_id}/reject"): frozenset({B, S}),
    ("GET", "/v1/grants"): frozenset({R, B, S}),
    ("GET", "/v1/grants/{grant_id}"): frozenset({R, B, S}),
    ("GET", "/v1/grants/{grant_id}/odrl"): frozenset({R, B, S}),
    ("POST", "/v1/grants/{grant_id}/revoke"): frozenset({B, S}),
    # Authorisation agreements (issue 16 point 1): the bureau records and ends them; a source
    # department reads those covering its datasets.
    ("POST", "/v1/agreements"): frozenset({B}),
    ("GET", "/v1/agreements"): frozenset({B, S}),
    ("GET", "/v1/agreements/{agreement_id}"): frozenset({B, S}),
    ("POST", "/v1/agreements/{agreement_id}/end"): frozenset({B}),
    ("GET", "/v1/products"): ALL,
    ("GET", "/v1/products/{product_id}"): ALL,
    ("POST", "/v1/products/{product_id}/invoke"): frozenset({R}),
    ("POST", "/v1/products"): frozenset({M}),
    ("GET", "/v1/products/{product_id}/versions"): frozenset({M, B}),
    ("POST", "/v1/products/{product_id}/versions"): frozenset({M}),
    ("POST", "/v1/products/{product_id}/versions/{version}/try"): frozenset({M, B}),
    ("POST", "/v1/products/{product_id}/versions/{version}/submit"): frozenset({M}),
    ("POST", "/v1/products/{product_id}/versions/{version}/publish"): frozenset({B}),
    ("POST", "/v1/products/{product_id}/versions/{version}/reject"): frozenset({B}),
    ("POST", "/v1/products/{product_id}/suspend"): frozenset({B}),
    ("POST", "/v1/products/{product_id}/resume"): frozenset({B}),
    ("POST", "/v1/products/{product_id}/retire"): frozenset({B}),
    ("GET", "/v1/invoices/{period}"): frozenset({R}),
    ("GET", "/v1/revenue/{period}"): frozenset({B, S, M}),
    ("POST", "/v1/credit-notes"): frozenset({B}),
    ("GET", "/v1/public/prices"): PUBLIC,
    ("POST", "/v1/price-caps"): frozenset({B}),
    ("GET", "/v1/price-caps"): frozenset({B}),
    ("GET", "/v1/revenue/allowed/{year}"): frozenset({B}),
    ("PUT", "/v1/revenue/allowed/{year}"): frozenset({B}),
    ("POST", "/v1/vouchers"): frozenset({B}),
    ("GET", "/v1/vouchers"): frozenset({R, B}),
    ("GET", "/v1/vouchers/{voucher_id}"): frozenset({R, B}),
    ("GET", "/v1/reports/annual/{year}"): frozenset({B}),
    # Registration codes (issue 16 point 2): the bureau records; a dataset's source, a product's merchant read.
    ("PUT", "/v1/datasets/{dataset}/registration"): frozenset({B}),
    ("GET", "/v1/datasets/{dataset}/registration"): frozenset({B, S}),
    ("PUT", "/v1/products/{product_id}/registration"): frozenset({B}),
    ("GET", "/v1/products/{product_id}/registration"): frozenset({B, M}),
}
CALLERS = {R: "demo-bank", B: "demo-bureau", S: "demo-source-psb", M: "demo-merchant", OPS: "demo-ops"}
FILL = {"period": "2099-01", "version": "1", "year": "2099"}
ROLE_REFUSAL = "your role ("  # ... "does not allow this; it needs the <role> role" (issue 12.9)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("matrix"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


def concrete(path: str) -> str:
    """A path with ids nobody has, so an admitted call finds nothing to change."""
    return re.sub(r"\{(\w+)\}", lambda m: FILL.get(m.group(1), "no-such-" + m.group(1).replace("_", "-")), path)


def send(gw: Gateway, method: str, path: str, client: str | None) -> Reply:
    body = {} if method in ("POST", "PUT") else None
    return gw.api(method, concrete(path), client, body)


def refused_by_role(r: Reply) -> bool:
    return r.status == 403 and str(r.json.get("detail")).startswith(ROLE_REFUSAL)


def test_the_route_table_is_the_matrix() -> None:
    table = {(r.method, r.path): r.roles for r in all_routes()}
    assert set(table) == set(EXPECTED), "routes and the access matrix differ"
    wrong = {k: sorted(v) for k, v in table.items() if v != EXPECTED[k]}
    assert wrong == {}


def test_without_a_token_only_public_routes_answer(gw: Gateway) -> None:
    for (method, path), roles in EXPECTED.items():
        r = send(gw, method, path, None)
        if roles:
            assert r.status == 401 and r.is_problem, (method, path, r.status)
        else:
            assert r.status not in (401, 403), (method, path, r.status)


@pytest.mark.parametrize("role", sorted(CALLERS))
def test_each_role_is_admitted_exactly_where_the_matrix_says(gw: Gateway, role: str) -> None:
    wrong = []
    for (method, path), roles in sorted(EXPECTED.items()):
        if not roles:
            continue
        r = send(gw, method, path, CALLERS[role])
        admitted = r.status != 401 and not refused_by_role(r)
        if admitted != (role in roles):
            wrong.append((method, path, r.status))
        if refused_by_role(r) and not all(needed in r.json["detail"] for needed in roles):
            wrong.append((method, path, r.json["detail"]))  # the refusal names every role admitted
        assert r.status < 500, (method, path, r.status, r.body[:200])
    assert wrong == []


def test_a_source_department_manages_only_its_own_datasets(gw: Gateway) -> None:
    for path in ("/v1/datasets/enterprises/suspend", "/v1/datasets/enterprises/withdraw"):
        assert gw.api("POST", path, "demo-source-psb").status == 404
    assert gw.api("GET", "/v1/datasets/residents/policy", "demo-source-amr").status == 404
    assert gw.api("GET", "/v1/datasets/residents/policy", "demo-source-psb").status == 200
    revenue = gw.api("GET", "/v1/revenue/2026-01", "demo-source-amr").json
    assert [s["party"] for s in revenue["statements"]] == ["amr"]


def test_another_requesters_release_and_usage_stay_hidden(gw: Gateway) -> None:
    """R-AU-06: someone else's release answers like a missing one; usage lists one's own."""
    q = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "enterprises", "epsilon": 0.1,
                                                   "sql": "SELECT COUNT(*) AS n FROM enterprises"})
    assert q.status == 200, q.body[:300]
    theirs = gw.api("GET", f"/v1/queries/{q.json['query_id']}", "demo-insurer")
    missing = gw.api("GET", "/v1/queries/" + "0" * 32, "demo-insurer")
    assert theirs.status == missing.status == 404 and theirs.json["detail"] == missing.json["detail"]
    assert gw.api("GET", f"/v1/queries/{q.json['query_id']}", "demo-bank").status == 200
    usage = gw.api("GET", "/v1/usage", "demo-insurer").json["items"]
    assert all(u["org_id"] == "county-mutual-insurance" for u in usage)
    invoice = gw.api("GET", f"/v1/invoices/{q.json['budget']['period']}", "demo-insurer").json
    assert invoice["org_id"] == "county-mutual-insurance" and invoice["lines"] == []
