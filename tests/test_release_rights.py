"""A stored release is served exactly as answered, and only while asking again would be allowed
(issue 11.4, R-AU-10): `GET /v1/queries/{id}` and its signed receipt, over real HTTP against a
demo gateway."""

from __future__ import annotations

from typing import Any

from gateway.auth.receipts import verify_receipt
from tests.support import Gateway, Reply

BANK, INSURER, BUREAU = "demo-bank", "demo-insurer", "demo-bureau"
# LIMIT 2 of 20 townships, and a mean, whose noisy count is a helper the answer never shows.
SQL = ("SELECT township, AVG(income) AS mean_income FROM residents WHERE age >= 18 "
       "GROUP BY township ORDER BY mean_income DESC LIMIT 2")


def ask(gw: Gateway, client: str, sql: str = SQL) -> Reply:
    return gw.api("POST", "/v1/queries", client, {"dataset": "residents", "sql": sql, "epsilon": 0.2})


def stored(gw: Gateway, client: str, query_id: str) -> Reply:
    return gw.api("GET", f"/v1/queries/{query_id}", client)


def same_refusal(a: Reply, b: Reply) -> bool:
    keep = ("status", "code", "detail", "title", "type")
    return a.status == b.status and {k: a.json[k] for k in keep} == {k: b.json[k] for k in keep}


def everything_but_the_release(body: dict[str, Any]) -> str:
    return repr(sorted(body.items()))


def test_the_stored_release_is_the_answer_as_sent(fresh_gateway: Gateway) -> None:
    gw = fresh_gateway
    answer = ask(gw, BANK)
    assert answer.status == 200, answer.body
    sent = answer.json
    got = stored(gw, BANK, sent["query_id"])
    assert got.status == 200, got.body
    body = got.json
    assert body["columns"] == sent["columns"] == ["township", "mean_income"]
    assert body["rows"] == sent["rows"] and len(body["rows"]) == 2
    assert body["accuracy"] == sent["accuracy"]
    assert body["release"] == {"columns": sent["columns"], "rows": sent["rows"]}
    assert body["epsilon_spent"] == sent["epsilon_spent"] and body["delta_spent"] == 0
    assert "count(*)" not in got.body.decode(), "the helper count of the mean leaked"
    receipt = gw.api("GET", f"/v1/queries/{sent['query_id']}/receipt", BANK)
    claims = verify_receipt(receipt.body.decode(), gw.api("GET", "/.well-known/jwks.json").json)
    assert (claims["columns"], claims["rows"]) == (sent["columns"], sent["rows"]), "the receipt signs more"
    assert claims["accuracy"] == sent["accuracy"]
    # Asked again with another LIMIT, the same release comes from the cache: what was first
    # answered stays what is stored.
    again = ask(gw, BANK, SQL.replace("LIMIT 2", "LIMIT 5"))
    assert again.status == 200 and again.json["cached"] and len(again.json["rows"]) == 5
    assert stored(gw, BANK, sent["query_id"]).json["rows"] == sent["rows"]


def test_a_stored_release_answers_only_while_the_question_would_be(fresh_gateway: Gateway) -> None:
    gw = fresh_gateway
    mine = ask(gw, INSURER)
    assert mine.status == 200, mine.body
    query_id = mine.json["query_id"]
    assert stored(gw, INSURER, query_id).status == 200

    assert gw.api("POST", "/v1/datasets/residents/suspend", BUREAU).status == 200
    refused, reread = ask(gw, INSURER), stored(gw, INSURER, query_id)
    assert refused.json["code"] == "dataset_suspended" and same_refusal(refused, reread), reread.body
    assert same_refusal(refused, gw.api("GET", f"/v1/queries/{query_id}/receipt", INSURER))
    assert gw.api("POST", "/v1/datasets/residents/resume", BUREAU).status == 200
    assert stored(gw, INSURER, query_id).status == 200

    grant = next(g for g in gw.api("GET", "/v1/grants", INSURER).json["items"] if g["dataset"] == "residents")
    revoked = gw.api("POST", f"/v1/grants/{grant['id']}/revoke", BUREAU, {"reason": "contract ended"})
    assert revoked.status == 200, revoked.body
    refused, reread = ask(gw, INSURER), stored(gw, INSURER, query_id)
    assert refused.json["code"] == "forbidden" and same_refusal(refused, reread), reread.body

    bank = ask(gw, BANK)
    assert gw.api("POST", "/v1/datasets/residents/withdraw", BUREAU).status == 200
    refused, reread = ask(gw, BANK), stored(gw, BANK, bank.json["query_id"])
    assert refused.json["code"] == "dataset_withdrawn" and same_refusal(refused, reread), reread.body
    # Another organisation's release still answers exactly like a missing one, whatever its state.
    theirs, missing = stored(gw, INSURER, bank.json["query_id"]), stored(gw, INSURER, "0" * 32)
    assert theirs.status == missing.status == 404 and theirs.json["detail"] == missing.json["detail"]
