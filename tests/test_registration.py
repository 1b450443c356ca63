"""Registration codes (登记结果查询码, issue 16 point 2), over real HTTP and in both stores.

The bureau records a dataset's or a product's nationally unified code; the catalog, the price
board, invoices and ODRL agreements show it. A product registration covers one version (its SQL,
parameters and price): publishing another marks it `reregistration_required`. With
GATEWAY_REGISTRATION_REQUIRED a product publishes and sells only while its code is valid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.pages import PageRequest
from gateway.core.registration import Registration, parse_code, product_fingerprint, status_of, usable
from gateway.errors import Conflict, InvalidRequest
from gateway.store import audit
from gateway.store import registrations as store_registrations
from gateway.store.db import Store
from tests.console_support import Visitor, demo_users
from tests.store_support import open_test_store
from tests.support import FAST_RATES, Gateway, Reply, call, demo_gateway, record_agreement

PRODUCT, TOWNS = "income-by-township", "reg-towns"
BAD_CODES = ["demo-dp-2026-0001", "SHORT-1", "A" * 65, "DEMO--DP-2026", "-DEMO-DP-2026", "DEMO-DP-2026-",
             "DEMO DP 2026", "DEMO-DP-2026-0001\n", "DEMO_DP_2026", 20260001, None, ""]


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body[:400])
    return reply.json


def refused(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status and reply.is_problem and reply.json["code"] == code, (reply.status, reply.body[:400])
    return dict(reply.json)


# ---------------------------------------------------------------- the rule (pure)


def test_the_code_format_is_strict() -> None:
    assert parse_code("DEMO-DP-2026-0001") == "DEMO-DP-2026-0001"
    assert parse_code("A1B2C3D4") == "A1B2C3D4" and parse_code("A" * 64) == "A" * 64
    for bad in BAD_CODES:
        with pytest.raises(InvalidRequest):
            parse_code(bad)


def test_a_product_registration_covers_its_version_sql_parameters_and_price() -> None:
    d = {"sql": "SELECT COUNT(*) AS n FROM t", "parameters": [], "price_minor": 800, "currency": "CNY",
         "title": "T"}
    reg = Registration("product:p", "REG-00000001", "registered", 1, product_fingerprint(1, d), "b", "t")
    assert status_of(reg, product_fingerprint(1, {**d, "title": "renamed"})) == "registered"
    for changed in ({**d, "price_minor": 900}, {**d, "sql": "SELECT COUNT(*) AS m FROM t"},
                    {**d, "parameters": [{"name": "x"}]}, {**d, "trial_price_minor": 1}):
        assert status_of(reg, product_fingerprint(1, changed)) == "reregistration_required"
    assert status_of(reg, product_fingerprint(2, d)) == "reregistration_required"
    assert status_of(None) == "unregistered"
    assert status_of(Registration("dataset:d", "REG-00000002", "revoked", None, None, "b", "t")) == "revoked"
    assert usable(False, "unregistered") and usable(True, "registered")
    assert not any(usable(True, s) for s in ("unregistered", "reregistration_required", "revoked"))


# ---------------------------------------------------------------- the store, SQLite and PostgreSQL


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    with open_test_store(request.param, tmp_path, dsn) as s:
        yield s


def test_the_store_keeps_one_registration_per_subject_and_audits_every_act(store: Store) -> None:
    first = Registration("dataset:residents", "CN-DS-2026-0001", "registered", None, None, "bureau-1", "")
    made = store.run_sync(store_registrations.record, first)
    assert made.code == "CN-DS-2026-0001" and made.recorded_at
    renewed = store.run_sync(store_registrations.record,
                             Registration("dataset:residents", "CN-DS-2026-0002", "revoked", None, None, "b2", "", "x"))
    assert (renewed.code, renewed.status, renewed.recorded_by) == ("CN-DS-2026-0002", "revoked", "b2")
    assert renewed.note == "x"
    store.run_sync(store_registrations.record,
                   Registration("product:p", "CN-DP-2026-0001", "registered", 3, "f" * 64, "b", ""))
    before = store.run_sync(store_registrations.current, write=False)
    with pytest.raises(Conflict):  # one code names one subject
        store.run_sync(store_registrations.record,
                       Registration("product:q", "CN-DP-2026-0001", "registered", 1, "e" * 64, "b", ""))
    assert store.run_sync(store_registrations.current, write=False) == before
    verdict = store.run_sync(audit.verify, write=False)
    kinds = [e["kind"] for e in store.run_sync(audit.entries_page, PageRequest(1000), write=False).items]
    assert verdict.ok and kinds.count("registration.recorded") == 2 and kinds.count("registration.revoked") == 1


# ---------------------------------------------------------------- over HTTP: the demo county, setting off


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("registration"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


def registration_of(items: list[dict[str, Any]], key: str, ident: str) -> dict[str, Any]:
    return next(dict(i["registration"]) for i in items if i[key] == ident)


def board(gw: Gateway) -> dict[str, dict[str, Any]]:
    return {i.get("product_id") or i["dataset"]: i for i in ok(call("GET", gw.base + "/v1/public/prices"))["items"]}


def test_the_demo_shows_its_codes_in_the_catalog_and_on_the_price_board(gw: Gateway) -> None:
    datasets = ok(gw.api("GET", "/v1/datasets", "demo-bank"))["datasets"]
    assert registration_of(datasets, "id", "residents") == {"code": "DEMO-PD-2026-0001", "status": "registered"}
    assert ok(gw.api("GET", "/v1/datasets/residents", "demo-ops"))["registration"] == \
        {"code": "DEMO-PD-2026-0001", "status": "registered"}
    products = ok(gw.api("GET", "/v1/products", "demo-insurer"))["items"]
    assert registration_of(products, "id", PRODUCT) == {"code": "DEMO-DP-2026-0001", "status": "registered"}
    assert ok(gw.api("GET", f"/v1/products/{PRODUCT}", "demo-bank"))["registration"]["code"] == "DEMO-DP-2026-0001"
    prices = board(gw)
    assert prices[PRODUCT]["registration_code"] == "DEMO-DP-2026-0001"
    assert prices["vehicle-values-by-type"]["registration_code"] == "DEMO-DP-2026-0002"


def test_the_bureau_records_a_code_and_owners_read_it(gw: Gateway) -> None:
    made = ok(gw.api("PUT", "/v1/datasets/enterprises/registration", "demo-bureau",
                     {"code": "CN-DS-3301-000042", "note": "registered with the provincial platform"}))
    assert made["dataset"] == "enterprises" and made["code"] == "CN-DS-3301-000042"
    assert made["status"] == "registered" and made["recorded_by"] == "demo-bureau"
    assert ok(gw.api("GET", "/v1/datasets/enterprises/registration", "demo-source-amr")) == made
    refused(gw.api("GET", "/v1/datasets/enterprises/registration", "demo-source-psb"), 404, "not_found")
    refused(gw.api("GET", "/v1/datasets/enterprises/registration", "demo-bank"), 403, "forbidden")
    refused(gw.api("PUT", "/v1/datasets/enterprises/registration", "demo-source-amr", {"code": "CN-DS-3301-000043"}),
            403, "forbidden")
    mine = ok(gw.api("GET", f"/v1/products/{PRODUCT}/registration", "demo-merchant"))
    assert (mine["code"], mine["registered_version"], mine["published_version"]) == ("DEMO-DP-2026-0001", 1, 1)
    refused(gw.api("GET", f"/v1/products/{PRODUCT}/registration", "demo-source-psb"), 403, "forbidden")
    refused(gw.api("PUT", f"/v1/products/{PRODUCT}/registration", "demo-merchant", {"code": "CN-DP-3301-000001"}),
            403, "forbidden")
    assert registration_of(ok(gw.api("GET", "/v1/datasets", "demo-bank"))["datasets"], "id", "enterprises") == \
        {"code": "CN-DS-3301-000042", "status": "registered"}
    entries = ok(gw.api("GET", "/v1/audit/entries?limit=500", "demo-bureau"))["items"]
    assert any(e["kind"] == "registration.recorded" and e["subject"] == "dataset:enterprises"
               and e["payload"]["code"] == "CN-DS-3301-000042" for e in entries)


def test_refused_registrations_leave_nothing(gw: Gateway) -> None:
    before = ok(gw.api("GET", "/v1/datasets/vehicles/registration", "demo-bureau"))
    verified = ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["entries"]
    for bad in BAD_CODES:
        refused(gw.api("PUT", "/v1/datasets/vehicles/registration", "demo-bureau", {"code": bad}), 400,
                "invalid_request")
    refused(gw.api("PUT", "/v1/datasets/vehicles/registration", "demo-bureau",
                   {"code": "CN-DS-3301-000099", "status": "pending"}), 400, "invalid_request")
    refused(gw.api("PUT", "/v1/datasets/vehicles/registration", "demo-bureau",
                   {"code": "CN-DS-3301-000099", "version": 1}), 400, "invalid_request")
    taken = refused(gw.api("PUT", "/v1/datasets/vehicles/registration", "demo-bureau", {"code": "DEMO-DP-2026-0001"}),
                    409, "conflict")
    assert "another dataset or product" in taken["detail"]
    refused(gw.api("PUT", "/v1/datasets/nowhere/registration", "demo-bureau", {"code": "CN-DS-3301-000099"}), 404,
            "not_found")
    refused(gw.api("PUT", "/v1/products/nowhere/registration", "demo-bureau", {"code": "CN-DS-3301-000099"}), 404,
            "not_found")
    refused(gw.api("PUT", f"/v1/products/{PRODUCT}/registration", "demo-bureau",
                   {"code": "CN-DS-3301-000099", "version": 7}), 409, "conflict")
    assert ok(gw.api("GET", "/v1/datasets/vehicles/registration", "demo-bureau")) == before
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["entries"] == verified


def test_invoices_and_odrl_agreements_carry_the_codes(gw: Gateway) -> None:
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/invoke", "demo-bank", {"params": {"min_age": 30, "max_age": 40}}))
    ok(gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "enterprises", "epsilon": 0.1,
                                                   "sql": "SELECT COUNT(*) AS n FROM enterprises"}))
    period = ok(gw.api("GET", "/v1/budget", "demo-bank"))["period"]
    lines = ok(gw.api("GET", f"/v1/invoices/{period}", "demo-bank"))["lines"]
    codes = {(ln["product_id"] or ln["dataset"]): ln["registration_code"] for ln in lines}
    assert codes[PRODUCT] == "DEMO-DP-2026-0001" and codes["enterprises"] == "CN-DS-3301-000042"
    text = gw.api("GET", f"/v1/invoices/{period}", "demo-bank", headers={"Accept": "text/csv"}).body.decode()
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["line"] != "total"]
    assert {(r["product_id"] or r["dataset"]): r["registration_code"] for r in rows} == codes
    grants = ok(gw.api("GET", "/v1/grants", "demo-bank"))["items"]
    residents = next(g for g in grants if g["dataset"] == "residents" and not g.get("product_id"))
    odrl = ok(gw.api("GET", f"/v1/grants/{residents['grant_id']}/odrl", "demo-bank"))
    assert odrl["target"]["gw:registrationCode"] == "DEMO-PD-2026-0001"


def test_the_console_shows_the_codes(gw: Gateway) -> None:
    users = demo_users(gw.state_dir)
    bank = Visitor(gw.base)
    assert bank.login("bank-analyst", users["bank-analyst"]["password"]).status == 303
    catalog = bank.get("/console/catalog").body.decode()
    assert "DEMO-PD-2026-0001" in catalog and "CN-DS-3301-000042" in catalog and "已登记" in catalog
    assert "DEMO-PD-2026-0001" in bank.get("/console/catalog/residents").body.decode()
    assert "DEMO-DP-2026-0001" in bank.get("/console/market").body.decode()
    merchant = Visitor(gw.base, headers={"Accept-Language": "en"})
    assert merchant.login("merchant-dev", users["merchant-dev"]["password"]).status == 303
    page = merchant.get(f"/console/products/{PRODUCT}").body.decode()
    assert "DEMO-DP-2026-0001" in page and "covers version 1" in page


def new_version(gw: Gateway, product_id: str, price_minor: int) -> int:
    """A version that changes only the price; submitted."""
    versions = ok(gw.api("GET", f"/v1/products/{product_id}/versions", "demo-merchant"))["items"]
    d = versions[-1]["definition"]
    body = {**{k: d[k] for k in ("title", "description", "sql", "parameters", "epsilon", "currency")},
            "price_minor": price_minor}
    version = int(ok(gw.api("POST", f"/v1/products/{product_id}/versions", "demo-merchant", body), 201)["version"])
    ok(gw.api("POST", f"/v1/products/{product_id}/versions/{version}/submit", "demo-merchant"))
    return version


def test_a_price_change_marks_the_product_for_reregistration(gw: Gateway) -> None:
    version = new_version(gw, PRODUCT, 900)
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/versions/{version}/publish", "demo-bureau"))  # the setting is off
    shown = ok(gw.api("GET", f"/v1/products/{PRODUCT}", "demo-bank"))["registration"]
    assert shown == {"code": "DEMO-DP-2026-0001", "status": "reregistration_required"}
    assert board(gw)[PRODUCT]["registration_code"] is None  # the board shows only a code valid for what sells
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/invoke", "demo-bank", {"params": {"min_age": 30, "max_age": 41}}))


# ---------------------------------------------------------------- the county requires registration


def test_with_registration_required_only_registered_products_publish_and_sell(gw: Gateway) -> None:
    gw.stop()
    gw.env = {**gw.env, "GATEWAY_REGISTRATION_REQUIRED": "true"}
    gw.start()
    params = {"params": {"min_age": 30, "max_age": 42}}
    usage = len(ok(gw.api("GET", "/v1/usage", "demo-bank"))["items"])
    stale = refused(gw.api("POST", f"/v1/products/{PRODUCT}/invoke", "demo-bank", params), 409,
                    "registration_required")
    assert "reregistration_required" in stale["detail"] and stale["registration_status"] == "reregistration_required"
    assert len(ok(gw.api("GET", "/v1/usage", "demo-bank"))["items"]) == usage  # refused before anything is spent
    renewed = ok(gw.api("PUT", f"/v1/products/{PRODUCT}/registration", "demo-bureau", {"code": "DEMO-DP-2026-0001"}))
    assert renewed["status"] == "registered" and renewed["registered_version"] == renewed["published_version"]
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/invoke", "demo-bank", params))
    assert board(gw)[PRODUCT]["registration_code"] == "DEMO-DP-2026-0001"

    # A new product is published only once registered.
    draft = {"id": TOWNS, "dataset": "residents", "title": "Residents by township",
             "sql": "SELECT township, COUNT(*) AS n FROM residents WHERE age >= :min_age GROUP BY township",
             "parameters": [{"name": "min_age", "type": "integer", "minimum": 0, "maximum": 100, "example": 18}],
             "epsilon": "0.1", "price_minor": 300}
    ok(gw.api("POST", "/v1/products", "demo-merchant", draft), 201)
    ok(gw.api("POST", f"/v1/products/{TOWNS}/versions/1/submit", "demo-merchant"))
    record_agreement(gw, ["residents"], [TOWNS])  # so that only the registration can refuse it
    unregistered = refused(gw.api("POST", f"/v1/products/{TOWNS}/versions/1/publish", "demo-bureau"), 409,
                           "registration_required")
    assert "unregistered" in unregistered["detail"]
    refused(gw.api("GET", f"/v1/products/{TOWNS}", "demo-bank"), 404, "not_found")  # nothing was published
    ahead = ok(gw.api("PUT", f"/v1/products/{TOWNS}/registration", "demo-bureau", {"code": "CN-DP-3301-000007"}))
    assert (ahead["status"], ahead["registered_version"], ahead["published_version"]) == ("registered", 1, None)
    ok(gw.api("POST", f"/v1/products/{TOWNS}/versions/1/publish", "demo-bureau"))
    ok(gw.api("POST", f"/v1/products/{TOWNS}/invoke", "demo-bank", {"params": {"min_age": 20}}))

    # A price change: version 2 is refused until registered; registered ahead, it is what must sell.
    version = new_version(gw, TOWNS, 400)
    refused(gw.api("POST", f"/v1/products/{TOWNS}/versions/{version}/publish", "demo-bureau"), 409,
            "registration_required")
    ok(gw.api("PUT", f"/v1/products/{TOWNS}/registration", "demo-bureau", {"code": "CN-DP-3301-000007",
                                                                          "version": version}))
    refused(gw.api("POST", f"/v1/products/{TOWNS}/invoke", "demo-bank", {"params": {"min_age": 21}}), 409,
            "registration_required")
    ok(gw.api("POST", f"/v1/products/{TOWNS}/versions/{version}/publish", "demo-bureau"))
    answer = ok(gw.api("POST", f"/v1/products/{TOWNS}/invoke", "demo-bank", {"params": {"min_age": 21}}))
    assert answer["usage"]["price_minor"] == 400

    # A revoked registration stops the product at the next call.
    revoked = ok(gw.api("PUT", f"/v1/products/{TOWNS}/registration", "demo-bureau",
                        {"code": "CN-DP-3301-000007", "status": "revoked", "note": "registration withdrawn"}))
    assert revoked["status"] == "revoked"
    refused(gw.api("POST", f"/v1/products/{TOWNS}/invoke", "demo-bank", {"params": {"min_age": 22}}), 409,
            "registration_required")
    assert registration_of(ok(gw.api("GET", "/v1/products", "demo-bank"))["items"], "id", TOWNS)["status"] == "revoked"
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["ok"] is True
