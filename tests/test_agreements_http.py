"""Authorisation agreements over HTTP (issue 16 point 1), on SQLite and on PostgreSQL.

The bureau records an agreement (authorising body, operator, datasets, products, term, duties,
exit terms, the document's hash); every grant and product stands on one; a grant or product
outside its agreement's scope or term is refused; ending an agreement ends what stands on it by
the rule a dataset withdrawal uses (grants end, pending applications close, products stop).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store_support import postgres_schema
from tests.support import FAST_RATES, Gateway, Reply, agreement_body, record_agreement, seed_demo_data

DEMO_AGREEMENT = "agr-demo-county"
COUNT = "SELECT vehicle_type, COUNT(*) AS n FROM vehicles GROUP BY vehicle_type"
PRODUCT_BODY = {
    "title": "Vehicles by type", "description": "Registered vehicles per type in a township.",
    "sql": "SELECT vehicle_type, COUNT(*) AS vehicles FROM vehicles WHERE township = :township GROUP BY vehicle_type",
    "parameters": [{"name": "township", "type": "string", "example": "Lingxi"}], "epsilon": "0.2",
    "price_minor": 100}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp(f"agreements-{request.param}")
    seed_demo_data(state, demo_data)
    if request.param == "sqlite":
        with Gateway(state, env=FAST_RATES) as gateway:
            yield gateway
        return
    dsn = request.getfixturevalue("postgres_dsn")
    with postgres_schema(dsn) as schema_dsn, \
            Gateway(state, env={**FAST_RATES, "GATEWAY_STORE_DSN": schema_dsn}) as gateway:
        yield gateway


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body[:500])
    return reply.json


def problem(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status == status and reply.is_problem, (reply.status, reply.body[:500])
    if code is not None:
        assert reply.json["code"] == code, reply.json
    return dict(reply.json)


def listing(gw: Gateway, client: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    path: str | None = "/v1/agreements?limit=2"
    while path:
        page = ok(gw.api("GET", path, client))
        items += page["items"]
        path = urllib.parse.urlsplit(page["next"]).path + "?" + urllib.parse.urlsplit(page["next"]).query \
            if page["next"] else None
    return items


def audit_kinds(gw: Gateway, subject: str) -> list[str]:
    kinds: list[str] = []
    path: str | None = "/v1/audit/entries?limit=500"
    while path:
        page = ok(gw.api("GET", path, "demo-bureau"))
        kinds += [e["kind"] for e in page["items"] if e["subject"] == subject]
        nxt = page["next"]
        path = urllib.parse.urlsplit(nxt).path + "?" + urllib.parse.urlsplit(nxt).query if nxt else None
    return kinds


def apply(gw: Gateway, client: str, dataset: str | None = None, product_id: str | None = None) -> str:
    body: dict[str, Any] = {"purpose": "Pricing car loans for county residents", "epsilon_per_period": "3"}
    body.update({"dataset": dataset} if dataset else {"product_id": product_id})
    return str(ok(gw.api("POST", "/v1/applications", client, body), 201)["id"])


def publish_new_product(gw: Gateway, product_id: str, agreement_id: str | None) -> Reply:
    ok(gw.api("POST", "/v1/products", "demo-merchant", {"id": product_id, "dataset": "vehicles", **PRODUCT_BODY}), 201)
    ok(gw.api("POST", f"/v1/products/{product_id}/versions/1/submit", "demo-merchant"))
    body = {"agreement_id": agreement_id} if agreement_id else None
    return gw.api("POST", f"/v1/products/{product_id}/versions/1/publish", "demo-bureau", body)


def test_the_demo_stands_on_one_agreement(gw: Gateway) -> None:
    demo = ok(gw.api("GET", f"/v1/agreements/{DEMO_AGREEMENT}", "demo-bureau"))
    assert demo["status"] == "active" and len(demo["document_sha256"]) == 64
    assert {"residents", "enterprises", "vehicles", "social_insurance"} <= set(demo["datasets"])
    assert {"income-by-township", "vehicle-values-by-type"} <= set(demo["product_ids"])
    grants = ok(gw.api("GET", "/v1/grants", "demo-bank"))["items"]
    assert grants and all(g["agreement_id"] == DEMO_AGREEMENT for g in grants)
    one = ok(gw.api("GET", f"/v1/grants/{grants[0]['grant_id']}", "demo-bank"))
    assert one["agreement_id"] == DEMO_AGREEMENT
    odrl = ok(gw.api("GET", f"/v1/grants/{grants[0]['grant_id']}/odrl", "demo-bank"))
    assert odrl["gw:agreement"] == DEMO_AGREEMENT and odrl["dct:source"].endswith(f"/v1/agreements/{DEMO_AGREEMENT}")


def test_create_list_get_and_who_sees_what(gw: Gateway) -> None:
    made = ok(gw.api("POST", "/v1/agreements", "demo-bureau", agreement_body(["enterprises"], ["firm-counts"])), 201)
    assert made["status"] == "active" and made["datasets"] == ["enterprises"] and made["product_ids"] == ["firm-counts"]
    assert made["created_by"] == "demo-bureau" and made["ended_at"] is None
    assert ok(gw.api("GET", f"/v1/agreements/{made['id']}", "demo-bureau")) == made
    assert made["id"] in {a["id"] for a in listing(gw, "demo-bureau")}
    # A source department sees the agreements covering its datasets only: amr owns enterprises, psb does not.
    assert ok(gw.api("GET", f"/v1/agreements/{made['id']}", "demo-source-amr"))["id"] == made["id"]
    theirs = problem(gw.api("GET", f"/v1/agreements/{made['id']}", "demo-source-psb"), 404)
    missing = problem(gw.api("GET", "/v1/agreements/agr-nope", "demo-source-psb"), 404)
    assert theirs["detail"] == missing["detail"]
    psb_sees = {a["id"] for a in listing(gw, "demo-source-psb")}
    assert DEMO_AGREEMENT in psb_sees and made["id"] not in psb_sees
    # Requesters and merchants neither see nor record agreements.
    for client in ("demo-bank", "demo-merchant", "demo-ops"):
        problem(gw.api("GET", "/v1/agreements", client), 403)
        problem(gw.api("POST", "/v1/agreements", client, agreement_body(["residents"])), 403)
    problem(gw.api("POST", f"/v1/agreements/{made['id']}/end", "demo-source-amr", {"reason": "no"}), 403)
    assert "agreement.created" in audit_kinds(gw, made["id"])


@pytest.mark.parametrize("change", [
    {"datasets": []}, {"datasets": ["no-such-dataset"]}, {"datasets": ["residents", "residents"]},
    {"datasets": "residents"}, {"product_ids": ["Bad Id"]}, {"starts_on": "2026-13-01"},
    {"ends_on": "2020-01-01", "starts_on": "2019-01-01"}, {"starts_on": "2030-01-02", "ends_on": "2030-01-01"},
    {"document_sha256": "ABC"}, {"document_sha256": "g" * 64}, {"duties": "   "}, {"operator": ""},
    {"exit_terms": None}, {"authorising_body": "x" * 201}, {"status": "ended"}, {"created_by": "someone"},
])
def test_a_bad_body_is_refused_and_leaves_nothing(gw: Gateway, change: dict[str, Any]) -> None:
    before = listing(gw, "demo-bureau")
    body = {**agreement_body(["residents"]), **change}
    problem(gw.api("POST", "/v1/agreements", "demo-bureau", body), 400, "invalid_request")
    assert listing(gw, "demo-bureau") == before


def test_an_approval_outside_the_agreements_scope_or_term_is_refused(gw: Gateway) -> None:
    enterprises_only = record_agreement(gw, ["enterprises"], days=30)
    app = apply(gw, "demo-insurer", "social_insurance")
    outside = problem(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau",
                             {"agreement_id": enterprises_only}), 409)
    assert "outside the scope" in outside["detail"]
    beyond = problem(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau",
                            {"agreement_id": DEMO_AGREEMENT, "valid_until": "2046-06-30"}), 409)
    assert "past the end of agreement" in beyond["detail"] and "2045-12-31" in beyond["detail"]
    later = record_agreement(gw, ["social_insurance"], starts_in=10)
    assert "not in force" in problem(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau",
                                            {"agreement_id": later}), 409)["detail"]
    problem(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau", {"agreement_id": "agr-nope"}), 409)
    assert ok(gw.api("GET", f"/v1/applications/{app}", "demo-bureau"))["status"] == "pending"  # nothing written
    # Unnamed: the agreement in force covering it (the demo's: it runs longest).
    done = ok(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau"))
    if done["status"] == "pending":  # the source department co-signs first
        done = ok(gw.api("POST", f"/v1/applications/{app}/cosign", "demo-source-hrss"))
    assert done["agreement_id"] == DEMO_AGREEMENT
    assert ok(gw.api("GET", f"/v1/grants/{done['grant_id']}", "demo-insurer"))["agreement_id"] == DEMO_AGREEMENT


def test_a_product_is_published_only_under_an_agreement_listing_it(gw: Gateway) -> None:
    refused = problem(publish_new_product(gw, "unlisted-vehicles", None), 409)
    assert "no authorisation agreement in force covers product 'unlisted-vehicles'" in refused["detail"]
    other = record_agreement(gw, ["enterprises"], ["unlisted-vehicles"])  # lists it, but not its dataset
    problem(gw.api("POST", "/v1/products/unlisted-vehicles/versions/1/publish", "demo-bureau",
                   {"agreement_id": other}), 409)
    assert "unlisted-vehicles" not in {p["id"] for p in ok(gw.api("GET", "/v1/products", "demo-bank"))["items"]}


def test_ending_an_agreement_ends_what_stands_on_it(gw: Gateway) -> None:
    agreement = record_agreement(gw, ["vehicles"], ["car-counts"])
    ok(publish_new_product(gw, "car-counts", agreement))
    app = apply(gw, "demo-bank", "vehicles")
    done = ok(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau", {"agreement_id": agreement}))
    if done["status"] == "pending":
        done = ok(gw.api("POST", f"/v1/applications/{app}/cosign", "demo-source-psb"))
    grant_id = done["grant_id"]
    assert ok(gw.api("GET", f"/v1/grants/{grant_id}", "demo-bank"))["agreement_id"] == agreement
    pending = apply(gw, "demo-research", "vehicles")  # approved under it, awaiting the co-signature
    half = ok(gw.api("POST", f"/v1/applications/{pending}/approve", "demo-bureau", {"agreement_id": agreement}))
    query = {"dataset": "vehicles", "sql": COUNT, "epsilon": 0.1}
    ok(gw.api("POST", "/v1/queries", "demo-bank", query))
    ok(gw.api("POST", "/v1/products/car-counts/invoke", "demo-bank", {"params": {"township": "Lingxi"}}))

    problem(gw.api("POST", f"/v1/agreements/{agreement}/end", "demo-bureau", {"reason": "  "}), 400)
    ended = ok(gw.api("POST", f"/v1/agreements/{agreement}/end", "demo-bureau", {"reason": "operator exited"}))
    assert ended["status"] == "ended" and ended["end_reason"] == "operator exited"
    assert ended["grants_ended"] == 1 and ended["products_stopped"] == ["car-counts"]
    assert ended["applications_closed"] == (1 if half["status"] == "pending" else 0)
    assert ok(gw.api("GET", f"/v1/grants/{grant_id}", "demo-bank"))["status"] == "ended"
    if half["status"] == "pending":
        assert ok(gw.api("GET", f"/v1/applications/{pending}", "demo-bureau"))["status"] == "closed"
    again = problem(gw.api("POST", "/v1/queries", "demo-bank", {**query, "epsilon": 0.2}), 410, "agreement_ended")
    assert agreement in again["detail"] and again["agreement_id"] == agreement
    stopped = problem(gw.api("POST", "/v1/products/car-counts/invoke", "demo-bank",
                             {"params": {"township": "Lingxi"}}), 410, "agreement_ended")
    assert "stopped" in stopped["detail"]
    assert "car-counts" not in {p["id"] for p in ok(gw.api("GET", "/v1/products", "demo-bank"))["items"]}
    problem(gw.api("POST", f"/v1/agreements/{agreement}/end", "demo-bureau", {"reason": "twice"}), 409)
    assert "agreement.ended" in audit_kinds(gw, agreement)
    assert "grant.ended" in audit_kinds(gw, grant_id)
    # What stood on the demo's agreement is untouched; a new grant cannot stand on the ended one.
    ok(gw.api("POST", "/v1/queries", "demo-insurer", query))
    app = apply(gw, "demo-bank", "vehicles")
    assert "not in force (ended)" in problem(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau",
                                                    {"agreement_id": agreement}), 409)["detail"]
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["ok"] is True


def test_the_demo_agreements_end_stops_the_demo(gw: Gateway) -> None:
    """Last in the module: everything of the demo stands on its agreement."""
    ok(gw.api("POST", f"/v1/agreements/{DEMO_AGREEMENT}/end", "demo-bureau", {"reason": "end of the pilot"}))
    refused = problem(gw.api("POST", "/v1/queries", "demo-bank",
                             {"dataset": "residents", "sql": "SELECT COUNT(*) AS n FROM residents",
                              "epsilon": 0.1}), 410, "agreement_ended")
    assert DEMO_AGREEMENT in refused["detail"]
    problem(gw.api("GET", "/v1/products/income-by-township", "demo-bank"), 410, "agreement_ended")
    assert ok(gw.api("GET", "/v1/products", "demo-bank"))["items"] == []
    app = apply(gw, "demo-insurer", "residents")
    none = problem(gw.api("POST", f"/v1/applications/{app}/approve", "demo-bureau"), 409)
    assert "no authorisation agreement in force covers dataset 'residents'" in none["detail"]
