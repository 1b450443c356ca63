"""The open month's revenue statements are built at most once per refresh interval (issue 19, also seen).

`GET /v1/revenue/{open month}` built every organisation's open invoice on the store's reader
threads at each call; a department polling it slowed every other read. Now one build serves
every call for `revenue_refresh_seconds`, and the answer says when it was built (`as_of`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Gateway, seed_demo_data

ENV = {"GATEWAY_REVENUE_REFRESH_SECONDS": "3600"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("revenue-open-month")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=ENV).start()
    yield gateway
    gateway.stop()


def query(gw: Gateway, n: int) -> None:
    reply = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "epsilon": 0.1,
                                                         "sql": f"SELECT COUNT(*) FROM residents WHERE age >= {n}"})
    assert reply.status == 200, reply.body[:300]


def test_one_build_serves_the_open_month_until_it_is_refreshed(gw: Gateway) -> None:
    query(gw, 1)
    period = gw.api("GET", "/v1/budget", "demo-bank").json["period"]
    first = gw.api("GET", f"/v1/revenue/{period}", "demo-bureau").json
    assert first["status"] == "open" and first["as_of"] and first["invoices_total_minor"] == 500
    query(gw, 2)
    again = gw.api("GET", f"/v1/revenue/{period}", "demo-bureau").json
    assert again == first  # the same build, though a call was billed since
    own = gw.api("GET", f"/v1/revenue/{period}", "demo-source-psb").json
    assert own["as_of"] == first["as_of"] and [s["party"] for s in own["statements"]] == ["psb"]
    invoice = gw.api("GET", f"/v1/invoices/{period}", "demo-bank").json
    assert invoice["total_minor"] == 1000  # a requester's own invoice stays live
