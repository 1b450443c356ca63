"""What fuzzing the API (tests/test_schemathesis.py) found, pinned as plain tests."""

from __future__ import annotations

from tests.support import Gateway


def test_a_credit_note_for_an_unknown_organisation_is_a_404_and_writes_nothing(gateway: Gateway) -> None:
    """It was a 500: the insert broke the organisation's foreign key."""
    before = gateway.api("GET", "/v1/audit/verify", "demo-bureau").json["entries"]
    reply = gateway.api("POST", "/v1/credit-notes", "demo-bureau", {
        "org_id": "no-such-org", "usage_ids": ["u-1"], "reason": "A call billed twice after a network fault"})
    assert reply.status == 404 and reply.is_problem and reply.json["code"] == "not_found", reply.body[:300]
    assert gateway.api("GET", "/v1/audit/verify", "demo-bureau").json["entries"] == before
