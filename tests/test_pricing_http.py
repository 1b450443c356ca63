"""Prices under the public-data rules over real HTTP: the public price board, fee caps, purpose
classes, trial and cached prices, data vouchers, the allowed revenue and the yearly disclosure."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.http.app import all_routes
from gateway.http.openapi import document
from tests.support import BIN, Gateway, Reply, call, record_agreement, seed_demo_data

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}
BOARD_FIELDS = {"title", "model", "price_minor", "cap_minor", "trial_until", "registration_code"}
REQUESTERS = {"demo-bank": "lingxi-rural-bank", "demo-insurer": "county-mutual-insurance",
              "demo-research": "county-rural-research-institute"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("pricing")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=FAST).start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document(all_routes())


def ok(r: Reply, status: int = 200) -> Any:
    assert r.status == status, (r.status, r.body[:600])
    return r.json


def problem(r: Reply, status: int, code: str) -> dict[str, Any]:
    assert r.status == status and r.is_problem and r.json["code"] == code, (r.status, r.body[:600])
    return dict(r.json)


def valid(spec: dict[str, Any], name: str, value: Any) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    jsonschema.Draft202012Validator(schema).validate(value)


def query(gw: Gateway, client: str, sql: str, dataset: str = "residents", eps: float = 0.05) -> dict[str, Any]:
    return dict(ok(gw.api("POST", "/v1/queries", client, {"dataset": dataset, "sql": sql, "epsilon": eps})))


def period(gw: Gateway) -> str:
    return str(ok(gw.api("GET", "/v1/budget", "demo-bank"))["period"])


def test_the_price_board_is_public_exact_and_within_caps(gw: Gateway, spec: dict[str, Any]) -> None:
    board = ok(call("GET", gw.base + "/v1/public/prices"))
    valid(spec, "PriceBoard", board)
    assert board["currency"] == "CNY"
    for item in board["items"]:
        assert set(item) - BOARD_FIELDS in ({"dataset"}, {"product_id"}), item
        assert item["cap_minor"] is None or item["price_minor"] <= item["cap_minor"]
    by_id = {i.get("product_id") or i["dataset"]: i for i in board["items"]}
    assert {"residents", "enterprises", "income-by-township", "vehicle-values-by-type"} <= set(by_id)
    trial = by_id["vehicle-values-by-type"]
    assert trial["price_minor"] == 300 and trial["trial_until"] is not None and trial["registration_code"]
    assert by_id["residents"] == {"dataset": "residents", "title": "Registered residents", "model": "per_call",
                                  "price_minor": 500, "cap_minor": 800, "trial_until": None,
                                  "registration_code": "DEMO-PD-2026-0001"}
    text = call("GET", gw.base + "/v1/public/prices", headers={"Accept": "text/csv"})
    assert text.status == 200 and text.header("content-type").startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.body.decode())))
    assert len(rows) == len(board["items"]) and rows[0].keys() == {"product_id", "dataset", *BOARD_FIELDS}
    assert {r["product_id"] or r["dataset"]: int(r["price_minor"]) for r in rows} == \
        {k: v["price_minor"] for k, v in by_id.items()}
    assert call("GET", gw.base + "/v1/public/prices?format=csv").body == text.body
    page = call("GET", gw.base + "/console/prices", headers={"Accept-Language": "en"})
    assert page.status == 200 and b"Public price board" in page.body  # the same list, no sign-in
    assert all(item["title"].encode() in page.body for item in board["items"])
    assert "公开价格目录" in call("GET", gw.base + "/console/prices").body.decode()


def test_a_cap_is_a_separate_act_and_refuses_prices_above_it(gw: Gateway, spec: dict[str, Any]) -> None:
    low = problem(gw.api("POST", "/v1/price-caps", "demo-bureau",
                         {"dataset": "residents", "model": "per_call", "cap_minor": 400, "reason": "lower it"}),
                  422, "price_over_cap")
    assert low["reasons"] == ["the price of 500 exceeds the cap of 400 set by the bureau"]
    problem(gw.api("POST", "/v1/price-caps", "demo-bureau",
                   {"dataset": "residents", "model": "per_month", "cap_minor": 10**6, "reason": "other model"}),
            422, "price_over_cap")
    problem(gw.api("POST", "/v1/price-caps", "demo-bureau", {"dataset": "residents", "model": "per_call",
                                                             "cap_minor": -1, "reason": "x"}), 400, "invalid_request")
    made = ok(gw.api("POST", "/v1/price-caps", "demo-bureau",
                     {"dataset": "residents", "model": "per_call", "cap_minor": 700, "registration_code": "REG-R-2",
                      "reason": "annual review"}), 201)
    valid(spec, "PriceCap", made)
    caps = ok(gw.api("GET", "/v1/price-caps", "demo-bureau"))["items"]
    assert caps[-1]["cap_id"] == made["cap_id"] and caps[-1]["set_by"] == "demo-bureau"
    board = {i.get("dataset"): i for i in ok(call("GET", gw.base + "/v1/public/prices"))["items"]}
    assert board["residents"]["cap_minor"] == 700 and caps[-1]["registration_code"] == "REG-R-2"
    # The board shows the dataset's own registration (issue 16 point 2) before the code a cap names.
    assert board["residents"]["registration_code"] == "DEMO-PD-2026-0001"

    # A product: drafted dear, capped by the bureau, refused at publication, then published cheaper.
    draft = {"id": "pricing-towns", "dataset": "residents", "title": "Residents by township",
             "sql": "SELECT township, COUNT(*) AS n FROM residents WHERE age >= :min_age GROUP BY township",
             "parameters": [{"name": "min_age", "type": "integer", "minimum": 0, "maximum": 100, "example": 18}],
             "epsilon": "0.1", "price_minor": 900, "price_model": "per_call", "cached_price_minor": 200}
    ok(gw.api("POST", "/v1/products", "demo-merchant", draft), 201)
    record_agreement(gw, ["residents"], ["pricing-towns"])
    ok(gw.api("POST", "/v1/products/pricing-towns/versions/1/submit", "demo-merchant"))
    ok(gw.api("POST", "/v1/price-caps", "demo-bureau", {"product_id": "pricing-towns", "model": "per_call",
                                                        "cap_minor": 600, "reason": "registered"}), 201)
    refused = problem(gw.api("POST", "/v1/products/pricing-towns/versions/1/publish", "demo-bureau"), 422,
                      "price_over_cap")
    assert "900 exceeds the cap of 600" in refused["detail"]
    problem(gw.api("POST", "/v1/products/pricing-towns/versions", "demo-merchant",
                   {**{k: v for k, v in draft.items() if k not in ("id", "dataset")}, "price_minor": 650}),
            422, "price_over_cap")
    cheaper = {**{k: v for k, v in draft.items() if k not in ("id", "dataset")}, "price_minor": 550,
               "trial_price_minor": 100, "trial_until": "2099-12-31"}
    ok(gw.api("POST", "/v1/products/pricing-towns/versions", "demo-merchant", cheaper), 201)
    ok(gw.api("POST", "/v1/products/pricing-towns/versions/2/submit", "demo-merchant"))
    ok(gw.api("POST", "/v1/products/pricing-towns/versions/2/publish", "demo-bureau"))
    product = ok(gw.api("GET", "/v1/products/pricing-towns", "demo-bank"))
    assert product["price"]["trial_price_minor"] == 100 and product["price"]["price_minor"] == 550

    # A policy change is a price change too, and a dry run says it would be refused.
    policy = ok(gw.api("GET", "/v1/datasets/residents/policy", "demo-bureau"))["document"]
    dearer = yaml.safe_dump({**policy, "pricing": {**policy["pricing"], "per_call_minor": 750}}).encode()
    for suffix in ("?dry_run=true", ""):
        problem(gw.api("PUT", "/v1/datasets/residents/policy" + suffix, "demo-bureau", dearer,
                       {"Content-Type": "application/yaml"}), 422, "price_over_cap")
    assert ok(gw.api("GET", "/v1/datasets/residents", "demo-bank"))["price"]["per_call_minor"] == 500
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["ok"]


def test_public_interest_use_is_free_but_budgeted_metered_and_audited(gw: Gateway) -> None:
    before = {b["dataset"]: b for b in ok(gw.api("GET", "/v1/budget", "demo-research"))["datasets"]}
    answer = query(gw, "demo-research", "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex", eps=0.2)
    assert answer["usage"]["price_minor"] == 0 and answer["epsilon_spent"] == 0.2
    after = {b["dataset"]: b for b in ok(gw.api("GET", "/v1/budget", "demo-research"))["datasets"]}
    assert Decimal(str(after["residents"]["epsilon_spent"])) - Decimal(str(before["residents"]["epsilon_spent"])) \
        == Decimal("0.2")
    usage = ok(gw.api("GET", "/v1/usage", "demo-research"))["items"]
    mine = [u for u in usage if u["usage_id"] == answer["usage"]["usage_id"]]
    assert mine and mine[0]["purpose_class"] == "public_interest" and mine[0]["price_minor"] == 0
    assert ok(gw.api("GET", f"/v1/invoices/{period(gw)}", "demo-research"))["total_minor"] == 0
    priced = query(gw, "demo-bank", "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex", eps=0.2)
    assert priced["usage"]["price_minor"] == 500  # the same query from an industry requester is priced


def test_the_bureau_approves_or_corrects_the_stated_purpose_class(gw: Gateway, spec: dict[str, Any]) -> None:
    body = {"dataset": "enterprises", "purpose": "Mapping rural cooperatives for a public study",
            "epsilon_per_period": 1.0, "purpose_class": "public_interest"}
    stated = ok(gw.api("POST", "/v1/applications", "demo-research", body), 201)
    valid(spec, "Application", stated)
    assert stated["status"] == "pending"  # a free class is never auto-approved, even under the policy's threshold
    problem(gw.api("POST", f"/v1/applications/{stated['id']}/approve", "demo-bureau", {"purpose_class": "charity"}),
            400, "invalid_request")
    corrected = ok(gw.api("POST", f"/v1/applications/{stated['id']}/approve", "demo-bureau",
                          {"purpose_class": "industry"}))
    assert corrected["purpose_class"] == "public_interest" and corrected["purpose_class_approved"] == "industry"
    grant = ok(gw.api("GET", f"/v1/grants/{corrected['grant_id']}", "demo-research"))
    assert grant["purpose_class"] == "industry"
    answer = query(gw, "demo-research", "SELECT COUNT(*) AS n FROM enterprises", dataset="enterprises")
    assert answer["usage"]["price_minor"] == 300
    industry = ok(gw.api("POST", "/v1/applications", "demo-bank", {**body, "purpose_class": None,
                                                                   "purpose": "Credit scoring of cooperatives"}), 201)
    assert industry["purpose_class"] == "industry" and industry["status"] == "approved"  # auto-approved as before


def test_trial_and_cached_prices_are_what_the_calls_cost(gw: Gateway) -> None:
    params = {"params": {"township": "Baishi"}}
    first = ok(gw.api("POST", "/v1/products/vehicle-values-by-type/invoke", "demo-insurer", params))
    again = ok(gw.api("POST", "/v1/products/vehicle-values-by-type/invoke", "demo-insurer", params))
    assert first["usage"]["price_minor"] == 300 and not first["cached"]
    assert again["cached"] and again["usage"]["price_minor"] == 300  # never above the trial price
    sql = "SELECT COUNT(*) AS n FROM residents WHERE age BETWEEN 20 AND 29"
    assert query(gw, "demo-bank", sql)["usage"]["price_minor"] == 500
    cached = query(gw, "demo-bank", sql)
    assert cached["cached"] and cached["usage"]["price_minor"] == 100
    preview = ok(gw.api("POST", "/v1/queries/preview", "demo-bank", {"dataset": "residents", "sql": sql,
                                                                     "epsilon": 0.05}))
    assert preview["price"]["price_minor"] == 500 and preview["price"]["model"] == "per_call"


def test_vouchers_are_issued_listed_and_redeemed_within_scope(gw: Gateway, spec: dict[str, Any]) -> None:
    insurer = REQUESTERS["demo-insurer"]
    count = len(ok(gw.api("GET", "/v1/vouchers", "demo-bureau"))["items"])
    bad = [{"org_id": "nobody", "amount_minor": 100, "valid_from": "2026-01-01", "valid_until": "2099-01-01"},
           {"org_id": insurer, "amount_minor": 0, "valid_from": "2026-01-01", "valid_until": "2099-01-01"},
           {"org_id": insurer, "amount_minor": 5, "valid_from": "2026-01-01", "valid_until": "2020-01-01"},
           {"org_id": insurer, "amount_minor": 5, "valid_from": "2020-01-01", "valid_until": "2020-12-31"},
           {"org_id": insurer, "amount_minor": 5, "valid_from": "2026-13-01", "valid_until": "2099-01-01"},
           {"org_id": insurer, "amount_minor": 5, "valid_from": "2026-01-01", "valid_until": "2099-01-01",
            "scope": {"datasets": ["nowhere"]}},
           {"org_id": "datasmith", "amount_minor": 5, "valid_from": "2026-01-01", "valid_until": "2099-01-01"}]
    for body in bad:
        problem(gw.api("POST", "/v1/vouchers", "demo-bureau", body), 400, "invalid_request")
    assert len(ok(gw.api("GET", "/v1/vouchers", "demo-bureau"))["items"]) == count  # nothing left behind
    assert gw.api("POST", "/v1/vouchers", "demo-bank", bad[0]).status == 403

    query(gw, "demo-insurer", "SELECT COUNT(*) AS n FROM vehicles", dataset="vehicles")
    query(gw, "demo-insurer", "SELECT COUNT(*) AS n FROM residents WHERE age > 60")
    made = ok(gw.api("POST", "/v1/vouchers", "demo-bureau",
                     {"org_id": insurer, "amount_minor": 250, "valid_from": "2026-01-01", "valid_until": "2099-12-31",
                      "scope": {"datasets": ["vehicles"]}, "fund": "county insurance pilot"}), 201)
    valid(spec, "Voucher", made)
    mine = ok(gw.api("GET", "/v1/vouchers", "demo-insurer"))
    valid(spec, "VoucherList", mine)
    assert [v["voucher_id"] for v in mine["items"]] == [made["voucher_id"]]
    assert all(v["org_id"] == REQUESTERS["demo-bank"] for v in ok(gw.api("GET", "/v1/vouchers", "demo-bank"))["items"])
    assert gw.api("GET", f"/v1/vouchers/{made['voucher_id']}", "demo-bank").status == 404
    assert ok(gw.api("GET", f"/v1/vouchers/{made['voucher_id']}", "demo-insurer"))["balance_minor"] == 250
    every = ok(gw.api("GET", "/v1/vouchers?limit=1000", "demo-bureau"))["items"]
    walked, path = [], "/v1/vouchers?limit=1"
    while path:  # keyset pages, path-absolute `next` links, as every growing list
        page = ok(gw.api("GET", path, "demo-bureau"))
        assert len(page["items"]) == 1 and (page["next"] is None or page["next"].startswith("/v1/vouchers?"))
        walked += page["items"]
        path = page["next"]
    assert [v["voucher_id"] for v in walked] == [v["voucher_id"] for v in every] and len(every) >= 2
    problem(gw.api("GET", "/v1/vouchers?cursor=%%%", "demo-bureau"), 400, "invalid_request")

    invoice = ok(gw.api("GET", f"/v1/invoices/{period(gw)}", "demo-insurer"))
    valid(spec, "Invoice", invoice)
    vehicles = sum(ln["amount_minor"] for ln in invoice["lines"] if ln["dataset"] == "vehicles")
    assert invoice["vouchers_applied_minor"] == min(250, vehicles) > 0
    assert all(ln["vouchers_minor"] == 0 for ln in invoice["lines"] if ln["dataset"] != "vehicles")
    assert invoice["amount_due_minor"] == invoice["total_minor"] - invoice["vouchers_applied_minor"]
    rows = list(csv.reader(io.StringIO(gw.api("GET", f"/v1/invoices/{period(gw)}", "demo-insurer",
                                              headers={"Accept": "text/csv"}).body.decode())))
    assert rows[-1][0] == "total" and int(rows[-1][-1]) == invoice["amount_due_minor"]

    statements = ok(gw.api("GET", f"/v1/revenue/{period(gw)}", "demo-bureau"))
    assert sum(s["special_fund_minor"] for s in statements["statements"]) == statements["vouchers_applied_minor"]
    psb = ok(gw.api("GET", f"/v1/revenue/{period(gw)}", "demo-source-psb"))
    assert "vouchers_applied_minor" not in psb and "special_fund_minor" in psb["statements"][0]


def test_the_allowed_revenue_is_set_by_the_bureau_and_measured_net_of_vouchers(gw: Gateway,
                                                                               spec: dict[str, Any]) -> None:
    year = period(gw)[:4]
    shown = ok(gw.api("GET", f"/v1/revenue/allowed/{year}", "demo-bureau"))
    valid(spec, "AllowedRevenue", shown)
    assert shown["allowed_minor"] == 5_000_000
    assert shown["net_minor"] == shown["billed_minor"] - shown["vouchers_minor"]
    problem(gw.api("PUT", f"/v1/revenue/allowed/{year}", "demo-bureau", {"allowed_minor": -5, "reason": "x"}),
            400, "invalid_request")
    changed = ok(gw.api("PUT", f"/v1/revenue/allowed/{year}", "demo-bureau",
                        {"allowed_minor": 1000, "reason": "the county's new allowance"}))
    assert changed["allowed_minor"] == 1000 and changed["headroom_minor"] == max(0, 1000 - changed["net_minor"])
    assert changed["pending_minor"] == max(0, changed["net_minor"] - 1000) - changed["carried_minor"]
    assert gw.api("GET", f"/v1/revenue/allowed/{year}", "demo-bank").status == 403
    problem(gw.api("GET", "/v1/revenue/allowed/20x6", "demo-bureau"), 400, "invalid_request")


def test_the_yearly_disclosure_is_reproducible_and_reconciles(gw: Gateway, spec: dict[str, Any]) -> None:
    year = period(gw)[:4]
    path = f"/v1/reports/annual/{year}"
    bodies = {}
    for accept, kind in (("application/json", "application/json"), ("text/csv", "text/csv"),
                         ("text/html", "text/html")):
        first, second = (gw.api("GET", path, "demo-bureau", headers={"Accept": accept}) for _ in range(2))
        assert first.status == 200 and first.header("content-type").startswith(kind)
        assert first.body == second.body
        bodies[kind] = first.body
    assert gw.api("GET", path, "demo-bank").status == 403
    assert b"<!DOCTYPE html>" in bodies["text/html"] and b"<script" not in bodies["text/html"]
    report = json.loads(bodies["application/json"])
    valid(spec, "AnnualReport", report)

    # Every money figure against the invoices the requesters themselves receive (all activity is this month).
    invoices = [ok(gw.api("GET", f"/v1/invoices/{period(gw)}", client)) for client in REQUESTERS]
    usage_lines = [ln for inv in invoices for ln in inv["lines"] if ln["kind"] == "usage"]
    assert report["invoices"]["usage_minor"] == sum(ln["amount_minor"] for ln in usage_lines)
    assert report["invoices"]["total_minor"] == sum(inv["total_minor"] for inv in invoices)
    assert report["invoices"]["vouchers_applied_minor"] == sum(inv["vouchers_applied_minor"] for inv in invoices)
    assert sum(p["billed_minor"] for p in report["products"]) == report["invoices"]["usage_minor"]
    assert sum(p["calls"] for p in report["products"]) == sum(ln["quantity"] for ln in usage_lines)
    assert sum(c["billed_minor"] for c in report["requester_classes"]) == report["invoices"]["usage_minor"]
    assert sum(s["amount_minor"] for s in report["revenue_shares"]) == report["invoices"]["total_minor"]
    assert report["vouchers"]["redeemed_minor"] == report["invoices"]["vouchers_applied_minor"]
    assert report["free_public_use"]["calls"] >= 1
    # Privacy loss against the ledger: each dataset's spend is the sum of the requesters' grant accounts.
    spent: dict[str, Decimal] = {}
    for client in REQUESTERS:
        for line in ok(gw.api("GET", "/v1/budget", client))["datasets"]:
            spent[line["dataset"]] = spent.get(line["dataset"], Decimal(0)) + Decimal(str(line["epsilon_spent"]))
    disclosed = {d["dataset"]: Decimal(d["epsilon_spent"]) for d in report["privacy"]["datasets"]}
    assert disclosed == {d: e for d, e in spent.items() if e}
    pool = {p["pool"]: Decimal(p["epsilon_spent"]) for p in report["privacy"]["pools"]}
    assert pool["county_people"] == sum(disclosed.get(d, Decimal(0)) for d in ("residents", "social_insurance",
                                                                              "vehicles"))

    printed = subprocess.run([str(BIN / "gateway"), "report", "annual", "--year", year, "--state-dir",
                              str(gw.state_dir)], capture_output=True, timeout=120)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == bodies["application/json"]
    as_csv = subprocess.run([str(BIN / "gateway"), "report", "annual", "--year", year, "--format", "csv",
                             "--state-dir", str(gw.state_dir)], capture_output=True, timeout=120)
    assert as_csv.stdout == bodies["text/csv"]


def test_the_report_command_on_a_missing_state_folder_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run([str(BIN / "gateway"), "report", "annual", "--year", "2026", "--state-dir", str(missing)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "nowhere" in done.stderr and not missing.exists()


def _publish(gw: Gateway, product_id: str, sql: str, **price: Any) -> None:
    draft = {"id": product_id, "dataset": "residents", "title": product_id.replace("-", " ").title(), "sql": sql,
             "parameters": [{"name": "min_age", "type": "integer", "minimum": 0, "maximum": 100, "example": 18}],
             "epsilon": "0.05", **price}
    ok(gw.api("POST", "/v1/products", "demo-merchant", draft), 201)
    record_agreement(gw, ["residents"], [product_id])
    ok(gw.api("POST", f"/v1/products/{product_id}/versions/1/submit", "demo-merchant"))
    ok(gw.api("POST", f"/v1/products/{product_id}/versions/1/publish", "demo-bureau"))


def test_a_subscription_charges_the_month_once_and_volume_charges_per_cell(gw: Gateway) -> None:
    grouped = "SELECT township, COUNT(*) AS n, AVG(income) AS m FROM residents WHERE age >= :min_age GROUP BY township"
    _publish(gw, "monthly-towns", grouped, price_minor=2000, price_model="per_month")
    _publish(gw, "cells-towns", grouped, price_minor=2, price_model="per_cell", cached_price_minor=1)
    invoke = lambda product, age, client="demo-bank": ok(gw.api(  # noqa: E731
        "POST", f"/v1/products/{product}/invoke", client, {"params": {"min_age": age}}))
    assert [invoke("monthly-towns", age)["usage"]["price_minor"] for age in (20, 30, 20)] == [2000, 0, 0]
    assert invoke("monthly-towns", 40, "demo-insurer")["usage"]["price_minor"] == 2000  # its own month
    assert invoke("monthly-towns", 40, "demo-research")["usage"]["price_minor"] == 0  # public interest: free
    fresh, cached = invoke("cells-towns", 25), invoke("cells-towns", 25)
    assert fresh["usage"]["price_minor"] == 20 * 2 * 2 and len(fresh["rows"]) == 20  # townships x 2 values
    assert cached["cached"] and cached["usage"]["price_minor"] == 20 * 2 * 1
    board = {i.get("product_id"): i for i in ok(call("GET", gw.base + "/v1/public/prices"))["items"]}
    assert board["monthly-towns"]["model"] == "per_month" and board["cells-towns"]["model"] == "per_cell"
