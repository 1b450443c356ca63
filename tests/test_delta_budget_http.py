"""Delta over HTTP (issue 11.2, R-DP-17): shown in /v1/budget, previews, answers, usage and stored
releases, and refused with 403 budget_exhausted like epsilon once the grant's delta is spent.

The demo's `vehicles` releases private group keys with at most delta 1e-8 a query and caps delta
at 5e-8 a month per requester, so the insurer's sixth private-key query of a month is refused.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support import Gateway

INSURER = "demo-insurer"
PRIVATE = "SELECT township, COUNT(*) AS n FROM vehicles WHERE vehicle_age >= {} GROUP BY township"


def line(gw: Gateway, dataset: str) -> dict[str, Any]:
    body = gw.api("GET", "/v1/budget", INSURER).json
    return next(d for d in body["datasets"] if d["dataset"] == dataset)


def private_query(gw: Gateway, age: int, path: str = "/v1/queries") -> Any:
    return gw.api("POST", path, INSURER, {"dataset": "vehicles", "sql": PRIVATE.format(age),
                                          "epsilon": 0.1, "delta": 1e-8})


def test_delta_is_shown_charged_and_refused_like_epsilon(fresh_gateway: Gateway) -> None:
    gw = fresh_gateway
    start = line(gw, "vehicles")
    assert (start["delta_limit"], start["delta_spent"], start["delta_remaining"]) == (5e-8, 0.0, 5e-8)
    assert line(gw, "residents")["delta_limit"] == 0.0  # no private keys there: no delta to spend
    preview = private_query(gw, 0, "/v1/queries/preview")
    assert preview.status == 200, preview.body
    assert preview.json["delta"] == 1e-8 and preview.json["would_fit"] is True
    assert preview.json["budget"]["delta_remaining"] == 5e-8

    answers = []
    for age in range(5):
        reply = private_query(gw, age)
        assert reply.status == 200, reply.body
        answers.append(reply.json)
        assert reply.json["delta_spent"] == 1e-8 and reply.json["epsilon_spent"] == 0.1
        assert reply.json["budget"]["delta_spent"] == pytest.approx((age + 1) * 1e-8, rel=1e-12)
    spent = line(gw, "vehicles")
    assert spent["delta_remaining"] == 0.0 and spent["delta_spent"] == pytest.approx(5e-8, rel=1e-12)
    assert spent["epsilon_spent"] == pytest.approx(start["epsilon_spent"] + 0.5)

    assert private_query(gw, 9, "/v1/queries/preview").json["would_fit"] is False
    refused = private_query(gw, 9)
    assert refused.status == 403 and refused.json["code"] == "budget_exhausted", refused.body
    assert re.match(r"This query would pass your delta budget for \d{4}-\d{2}; it renews on \d{4}-\d{2}-01 ",
                    refused.json["detail"]), refused.json["detail"]
    assert refused.json["delta_remaining"] == 0.0 and refused.json["epsilon_remaining"] > 0
    assert line(gw, "vehicles") == spent, "a refused charge left something behind"

    public = gw.api("POST", "/v1/queries", INSURER, {"dataset": "vehicles", "epsilon": 0.1,
                                                     "sql": "SELECT township, COUNT(*) AS n FROM vehicles "
                                                            "GROUP BY township"})
    assert public.status == 200 and public.json["delta_spent"] == 0.0, "public keys spend no delta"
    cached = private_query(gw, 0)  # the stored release: no delta, no epsilon
    assert cached.status == 200 and cached.json["cached"] and cached.json["delta_spent"] == 0.0

    usage = {u["query_id"]: u for u in gw.api("GET", "/v1/usage", INSURER).json["items"] if not u["cached"]}
    assert [usage[a["query_id"]]["delta"] for a in answers] == [1e-8] * 5
    stored = gw.api("GET", f"/v1/queries/{answers[0]['query_id']}", INSURER).json
    assert stored["delta_spent"] == 1e-8
