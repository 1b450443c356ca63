"""A published product can be stopped (issue 19 point 5).

With its merchant suspended a product kept selling (and earning the merchant revenue) and stayed
listed; the bureau could neither withdraw nor supersede a published version. Products now carry
a status the bureau controls: suspended products stop at the next request (409), retired ones
answer 410 until the bureau publishes another version.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, Reply, seed_demo_data

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}
PRODUCT = "income-by-township"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("product-governance")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=FAST).start()
    yield gateway
    gateway.stop()


def invoke(gw: Gateway, min_age: int) -> Reply:
    return gw.api("POST", f"/v1/products/{PRODUCT}/invoke", "demo-bank", {"params": {"min_age": min_age,
                                                                                     "max_age": 60}})


def listed(gw: Gateway) -> set[str]:
    return {p["id"] for p in gw.api("GET", "/v1/products", "demo-bank").json["items"]}


def usage_count(gw: Gateway) -> int:
    return len(gw.api("GET", "/v1/usage", "demo-bank").json["items"])


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body[:400])
    return reply.json


def test_a_suspended_merchants_products_stop_selling_at_the_next_request(gw: Gateway) -> None:
    ok(invoke(gw, 20))
    ok(gw.api("POST", "/v1/requesters/datasmith/suspend", "demo-bureau", {"reason": "licence lapsed"}))
    before = usage_count(gw)
    refused = invoke(gw, 21)
    assert refused.status == 409 and refused.json["code"] == "product_suspended", refused.body[:300]
    assert usage_count(gw) == before  # no usage, so no revenue to the merchant
    assert PRODUCT not in listed(gw)
    assert ok(gw.api("GET", f"/v1/products/{PRODUCT}", "demo-bank"))["status"] == "suspended"
    ok(gw.api("POST", "/v1/requesters/datasmith/reinstate", "demo-bureau"))
    ok(invoke(gw, 21))
    assert PRODUCT in listed(gw)


def test_the_bureau_suspends_resumes_and_retires_a_published_version(gw: Gateway) -> None:
    assert gw.api("POST", f"/v1/products/{PRODUCT}/suspend", "demo-merchant").status == 403
    made = ok(gw.api("POST", f"/v1/products/{PRODUCT}/suspend", "demo-bureau", {"reason": "complaint"}))
    assert made["sale_status"] == "suspended"
    assert invoke(gw, 22).json["code"] == "product_suspended"
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/resume", "demo-bureau"))
    ok(invoke(gw, 22))

    ok(gw.api("POST", f"/v1/products/{PRODUCT}/retire", "demo-bureau", {"reason": "superseded by policy"}))
    for reply in (invoke(gw, 23), gw.api("GET", f"/v1/products/{PRODUCT}", "demo-bank")):
        assert reply.status == 410 and reply.json["code"] == "product_retired" and reply.is_problem
    assert PRODUCT not in listed(gw)
    # A retirement is lifted only by a new version the bureau publishes; resuming is not enough.
    assert gw.api("POST", f"/v1/products/{PRODUCT}/resume", "demo-bureau").status == 409
    versions = ok(gw.api("GET", f"/v1/products/{PRODUCT}/versions", "demo-merchant"))["items"]
    definition = dict(versions[-1]["definition"])
    draft = {k: definition[k] for k in ("title", "description", "sql", "parameters", "epsilon", "currency")}
    draft["price_minor"] = 900
    version = ok(gw.api("POST", f"/v1/products/{PRODUCT}/versions", "demo-merchant", draft), 201)["version"]
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/versions/{version}/submit", "demo-merchant"))
    ok(gw.api("POST", f"/v1/products/{PRODUCT}/versions/{version}/publish", "demo-bureau"))
    answer = ok(invoke(gw, 24))
    assert answer["usage"]["price_minor"] == 900
    assert ok(gw.api("GET", "/v1/audit/verify", "demo-bureau"))["ok"] is True
