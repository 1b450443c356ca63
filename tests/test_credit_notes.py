"""Credit notes are held to the usage they correct (issue 19 point 8), over real HTTP.

A credit of 10^12 for a month without usage was accepted, credits for 2000-01 too, nothing capped
what was credited against a month, a retried POST credited twice, an unknown organisation
answered 500, and the refund was split by the revenue shares in force when it was issued.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, Reply, seed_demo_data

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}
BANK_ORG = "lingxi-rural-bank"


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body[:400])
    return reply.json


def previous(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    """The bank's usage of last month: three residents queries (500 each) and two product calls."""
    state = tmp_path_factory.mktemp("credit-notes")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=FAST).start()
    for n in range(3):
        ok(gateway.api("POST", "/v1/queries", "demo-bank", {
            "dataset": "residents", "epsilon": 0.1, "sql": f"SELECT COUNT(*) FROM residents WHERE age >= {n}"}))
    for n in range(2):
        ok(gateway.api("POST", "/v1/products/income-by-township/invoke", "demo-bank",
                       {"params": {"min_age": 30 + n, "max_age": 60}}))
    period = ok(gateway.api("GET", "/v1/budget", "demo-bank"))["period"]
    last = previous(period)
    # The usage moves to last month, as if the month had ended since: nothing has been closed yet.
    with sqlite3.connect(state / "gateway.db") as db:
        db.execute("UPDATE usage_records SET period = ?, committed_at = ?", (last, f"{last}-15T04:00:00.000000Z"))
    yield gateway
    gateway.stop()


def periods(gw: Gateway) -> tuple[str, str]:
    now = ok(gw.api("GET", "/v1/budget", "demo-bank"))["period"]
    return previous(now), now


def lines_of(gw: Gateway, period: str) -> list[dict[str, Any]]:
    return ok(gw.api("GET", f"/v1/invoices/{period}", "demo-bank"))["lines"]


def credit(gw: Gateway, body: dict[str, Any], key: str | None = None) -> Reply:
    headers = {"Idempotency-Key": key} if key else None
    return gw.api("POST", "/v1/credit-notes", "demo-bureau", {"reason": "a correction", **body}, headers)


def usage_ids(gw: Gateway, period: str, product: str | None) -> list[str]:
    items = ok(gw.api("GET", f"/v1/usage?period={period}", "demo-bank"))["items"]
    return sorted(i["usage_id"] for i in items if i.get("product_id") == product)


def test_a_credit_names_invoiced_usage_of_a_known_organisation(gw: Gateway) -> None:
    last, now = periods(gw)
    closed = lines_of(gw, last)
    assert [(ln["kind"], ln["amount_minor"]) for ln in closed if ln["product_id"] is None] == [("usage", 1500)]
    unknown = credit(gw, {"org_id": "no-such-bank", "invoice": {"period": last, "line": 1}, "amount_minor": 10})
    assert unknown.status == 404 and unknown.is_problem
    for body in ({"org_id": BANK_ORG, "invoice": {"period": "2000-01", "line": 1}},
                 {"org_id": "county-mutual-insurance", "usage_ids": usage_ids(gw, last, None)},
                 {"org_id": BANK_ORG, "usage_ids": ["no-such-usage"]}):
        assert credit(gw, body).status == 404, body
    nothing_named = credit(gw, {"org_id": BANK_ORG, "dataset": "residents", "refers_to_period": last,
                                "amount_minor": 10**12})
    assert nothing_named.status == 400
    too_much = credit(gw, {"org_id": BANK_ORG, "usage_ids": usage_ids(gw, last, None), "amount_minor": 10**12})
    assert too_much.status == 422 and too_much.json["creditable_minor"] == 1500
    mixed = credit(gw, {"org_id": BANK_ORG, "usage_ids": usage_ids(gw, last, None)[:1]
                        + usage_ids(gw, last, "income-by-township")[:1]})
    assert mixed.status == 422
    assert [ln for ln in lines_of(gw, now) if ln["kind"] == "credit"] == []


def test_credits_are_capped_idempotent_and_split_as_the_usage_was(gw: Gateway) -> None:
    last, now = periods(gw)
    # The shares change after the usage: psb 60% -> 10%. A credit still splits 60/30/10.
    doc = ok(gw.api("GET", "/v1/datasets/residents/policy", "demo-bureau"))["document"]
    doc["revenue_shares"] = {"psb": 1000, "bureau": 8000, "merchant": 1000}
    assert ok(gw.api("PUT", "/v1/datasets/residents/policy", "demo-bureau", json.dumps(doc).encode()))["published"]

    line = next(n for n, ln in enumerate(lines_of(gw, last), start=1) if ln["product_id"] is None)
    first = credit(gw, {"org_id": BANK_ORG, "invoice": {"period": last, "line": line}, "amount_minor": 1000}, "cn-1")
    made = ok(first, 201)
    assert made["amount_minor"] == 1000 and made["creditable_minor"] == 500 and made["refers_to_period"] == last
    again = credit(gw, {"org_id": BANK_ORG, "invoice": {"period": last, "line": line}, "amount_minor": 1000}, "cn-1")
    assert again.status == 201 and again.body == first.body and again.header("Idempotent-Replayed") == "true"
    other = credit(gw, {"org_id": BANK_ORG, "invoice": {"period": last, "line": line}, "amount_minor": 999}, "cn-1")
    assert other.status == 422 and other.json["code"] == "idempotency_key_reused"

    rest = ok(credit(gw, {"org_id": BANK_ORG, "usage_ids": usage_ids(gw, last, None)}), 201)
    assert rest["amount_minor"] == 500 and rest["creditable_minor"] == 0
    spent = credit(gw, {"org_id": BANK_ORG, "usage_ids": usage_ids(gw, last, None), "amount_minor": 1})
    assert spent.status == 422 and spent.json["creditable_minor"] == 0

    product = ok(credit(gw, {"org_id": BANK_ORG, "usage_ids": usage_ids(gw, last, "income-by-township")}), 201)
    assert product["amount_minor"] == 1600 and product["merchant"] == "datasmith"

    credits = [ln for ln in lines_of(gw, now) if ln["kind"] == "credit"]
    assert sorted(ln["amount_minor"] for ln in credits) == [-1600, -1000, -500]
    statements = {s["party"]: s for s in ok(gw.api("GET", f"/v1/revenue/{now}", "demo-bureau"))["statements"]}
    shares = {(p, ln["product_id"]): ln["amount_minor"] for p, s in statements.items() for ln in s["lines"]}
    assert shares[("psb", None)] == -900 and shares[("psb", "income-by-township")] == -960  # the old 60%
    assert shares[("bureau", None)] == -600  # 30% and, for ad-hoc queries, the merchant's 10%
    assert shares[("datasmith", "income-by-township")] == -160  # the merchant's 10% of its product's calls
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["ok"] is True


def test_the_open_month_cannot_be_credited(gw: Gateway) -> None:
    ok(gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "epsilon": 0.1,
                                                     "sql": "SELECT COUNT(*) FROM residents WHERE age >= 40"}))
    _last, now = periods(gw)
    open_usage = usage_ids(gw, now, None)
    assert open_usage
    reply = credit(gw, {"org_id": BANK_ORG, "usage_ids": open_usage})
    assert reply.status == 422 and "open" in reply.json["detail"]
