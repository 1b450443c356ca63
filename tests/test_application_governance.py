"""Approvals under the policy in force, co-signed terms held, calendar edges refused
(issue 19 points 6, 7 and 9), over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, Reply, seed_demo_data

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}
PURPOSE = "Pricing rural household credit lines"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("application-governance")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=FAST).start()
    yield gateway
    gateway.stop()


def ok(reply: Reply, status: int = 200) -> Any:
    assert reply.status == status, (reply.status, reply.body[:400])
    return reply.json


def set_access(gw: Gateway, dataset: str, access: dict[str, Any]) -> None:
    doc = ok(gw.api("GET", f"/v1/datasets/{dataset}/policy", "demo-bureau"))["document"]
    doc["access"] = access
    assert ok(gw.api("PUT", f"/v1/datasets/{dataset}/policy", "demo-bureau", json.dumps(doc).encode()))["published"]


def apply(gw: Gateway, dataset: str, epsilon: str, valid_until: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"dataset": dataset, "purpose": PURPOSE, "epsilon_per_period": epsilon}
    if valid_until is not None:
        body["valid_until"] = valid_until
    return ok(gw.api("POST", "/v1/applications", "demo-insurer", body), 201)


def test_a_cosignature_the_policy_now_requires_is_awaited(gw: Gateway) -> None:
    """Point 6: filed while the policy asked nothing of the source, approved after it did."""
    set_access(gw, "enterprises", {"requires_source_cosign": False})
    filed = apply(gw, "enterprises", "3")
    assert filed["status"] == "pending"
    set_access(gw, "enterprises", {"requires_source_cosign": True})
    approved = ok(gw.api("POST", f"/v1/applications/{filed['id']}/approve", "demo-bureau", {}))
    assert approved["status"] == "pending" and approved["grant_id"] is None, approved
    assert approved["approvals"]["source"] is None  # awaited, no longer "not required"
    granted = ok(gw.api("POST", f"/v1/applications/{filed['id']}/cosign", "demo-source-amr"))
    assert granted["status"] == "approved" and granted["grant_id"]


def test_an_automatic_approval_the_policy_no_longer_gives_lapses(gw: Gateway) -> None:
    """Point 6: auto-approved at filing (residents: up to 2.0), co-signed after the policy dropped it."""
    filed = apply(gw, "residents", "1.5")
    assert filed["approvals"]["bureau"]["by"] == "policy:auto-approve"
    set_access(gw, "residents", {"requires_source_cosign": True})
    cosigned = ok(gw.api("POST", f"/v1/applications/{filed['id']}/cosign", "demo-source-psb"))
    assert cosigned["status"] == "pending" and cosigned["grant_id"] is None, cosigned
    assert cosigned["approvals"]["bureau"] is None
    granted = ok(gw.api("POST", f"/v1/applications/{filed['id']}/approve", "demo-bureau", {}))
    assert granted["status"] == "approved" and granted["grant_id"]
    set_access(gw, "residents", {"requires_source_cosign": True, "auto_approve_epsilon": "2.0"})


def test_cosigned_terms_cannot_be_widened_without_a_new_cosignature(gw: Gateway) -> None:
    """Point 7: co-signed until 2027-12-31; the bureau's later expiry voids the co-signature."""
    filed = apply(gw, "vehicles", "4", "2027-12-31")
    cosigned = ok(gw.api("POST", f"/v1/applications/{filed['id']}/cosign", "demo-source-psb"))
    assert cosigned["approvals"]["source"]["terms"]["valid_until"] == filed["valid_until_requested"]
    widened = ok(gw.api("POST", f"/v1/applications/{filed['id']}/approve", "demo-bureau",
                        {"valid_until": "2030-12-31"}))
    assert widened["status"] == "pending" and widened["grant_id"] is None, widened
    assert widened["approvals"]["source"] is None
    again = ok(gw.api("POST", f"/v1/applications/{filed['id']}/cosign", "demo-source-psb"))
    assert again["status"] == "approved"
    assert again["valid_until"] == again["approvals"]["source"]["terms"]["valid_until"]
    grant = ok(gw.api("GET", f"/v1/grants/{again['grant_id']}", "demo-insurer"))
    assert grant["valid_until"].startswith("2030-12-31T16:00:00")  # the end of 31 December in Shanghai

    # Narrower terms stand on the co-signature: granted at once.
    filed = apply(gw, "vehicles", "4", "2027-12-31")
    ok(gw.api("POST", f"/v1/applications/{filed['id']}/cosign", "demo-source-psb"))
    narrowed = ok(gw.api("POST", f"/v1/applications/{filed['id']}/approve", "demo-bureau",
                         {"valid_until": "2027-06-30", "epsilon_per_period": "2"}))
    assert narrowed["status"] == "approved" and narrowed["grant_id"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-01:00", "9999-12-31"])
def test_calendar_edges_are_a_located_400(gw: Gateway, value: str) -> None:
    """Point 9: they used to overflow on conversion to UTC and answer 500 with a traceback."""
    body = {"dataset": "vehicles", "purpose": PURPOSE, "epsilon_per_period": "1", "valid_until": value}
    reply = gw.api("POST", "/v1/applications", "demo-insurer", body)
    assert reply.status == 400 and reply.is_problem and reply.json["field"] == "valid_until", reply.body[:300]
    filed = apply(gw, "vehicles", "1")
    approve = gw.api("POST", f"/v1/applications/{filed['id']}/approve", "demo-bureau", {"valid_until": value})
    assert approve.status == 400 and approve.json["field"] == "valid_until"
