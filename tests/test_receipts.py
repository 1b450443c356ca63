"""Signed receipts: every release can be fetched as a compact JWS that verifies offline with the JWKS."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from gateway.auth.receipts import ReceiptInvalid, verify_receipt
from tests.support import BIN, Gateway

SQL = "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex"


def ask(gw: Gateway, sql: str = SQL, client: str = "demo-bank") -> dict:
    r = gw.api("POST", "/v1/queries", client, {"dataset": "residents", "sql": sql, "epsilon": 0.05})
    assert r.status == 200, r.body
    return r.json


def receipt(gw: Gateway, query_id: str, client: str = "demo-bank") -> str:
    r = gw.api("GET", f"/v1/queries/{query_id}/receipt", client)
    assert r.status == 200, r.body
    assert r.header("content-type") or "".startswith("application/jose")
    return r.body.decode()


def test_a_receipt_carries_the_released_numbers_and_verifies_with_the_jwks(gateway: Gateway) -> None:
    answer = ask(gateway)
    jws = receipt(gateway, answer["query_id"])
    jwks = gateway.api("GET", "/.well-known/jwks.json").json
    claims = verify_receipt(jws, jwks)
    assert claims["query_id"] == answer["query_id"] and claims["dataset"] == "residents"
    assert claims["rows"] == answer["rows"] and claims["epsilon"] == "0.05"
    assert claims["snapshot_id"] == answer["snapshot_id"] and claims["policy_version"] == answer["policy_version"]
    assert len(claims["audit_entry_hash"]) == 64 and claims["price"]["currency"] == "CNY"
    header = json.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["kid"] in {k["kid"] for k in jwks["keys"]}


def test_a_cached_answer_has_the_same_receipt_and_json_is_offered(gateway: Gateway) -> None:
    sql = "SELECT township, COUNT(*) AS n FROM residents GROUP BY township"
    first, again = ask(gateway, sql), ask(gateway, sql)
    assert again["cached"] and again["query_id"] == first["query_id"]
    wrapped = gateway.api("GET", f"/v1/queries/{first['query_id']}/receipt", "demo-bank",
                          headers={"Accept": "application/json"})
    assert wrapped.status == 200 and wrapped.json["receipt"] == receipt(gateway, first["query_id"])


def test_a_changed_payload_or_signature_or_unknown_key_does_not_verify(gateway: Gateway) -> None:
    jws = receipt(gateway, ask(gateway)["query_id"])
    jwks = gateway.api("GET", "/.well-known/jwks.json").json
    head, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["rows"][0][1] += 1
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged}.{signature}", f"{head}.{payload}.{signature[:-4]}AAAA", "a.b", ""):
        with pytest.raises(ReceiptInvalid):
            verify_receipt(bad, jwks)
    with pytest.raises(ReceiptInvalid):
        verify_receipt(jws, {"keys": []})


def test_another_organisation_gets_a_404_like_a_missing_release(gateway: Gateway) -> None:
    query_id = ask(gateway)["query_id"]
    theirs = gateway.api("GET", f"/v1/queries/{query_id}/receipt", "demo-insurer")
    missing = gateway.api("GET", "/v1/queries/no-such-query/receipt", "demo-insurer")
    assert theirs.status == missing.status == 404 and theirs.json["detail"] == missing.json["detail"]
    assert gateway.api("GET", f"/v1/queries/{query_id}/receipt", "demo-bureau").status == 403


def test_the_client_fetches_and_verifies_a_receipt(gateway: Gateway) -> None:
    from gateway_client import Client, ReceiptInvalid, verify_receipt

    with Client.from_credentials_file(gateway.state_dir / "demo-credentials.json", "demo-bank") as client:
        answer = client.query("residents", "SELECT COUNT(*) AS n FROM residents WHERE age >= 60", epsilon=0.05)
        jws = client.receipt(answer.query_id)
        claims = verify_receipt(jws, client.jwks())
    assert claims["query_id"] == answer.query_id and claims["rows"] == [list(r) for r in answer.rows]
    with pytest.raises(ReceiptInvalid):
        verify_receipt(jws[:-2] + ("AA" if not jws.endswith("AA") else "BB"), {"keys": []})


def test_a_retired_key_still_verifies_its_receipts_and_no_token(fresh_gateway: Gateway, tmp_path: Path) -> None:
    """After `gateway keys rotate` and the old key's retirement, the JWKS lists it apart under
    `retired_keys` (token verifiers read `keys` only) and `gateway receipt verify` accepts it."""
    gw = fresh_gateway
    answer = ask(gw)
    jws = receipt(gw, answer["query_id"])
    old_kid = json.loads(base64.urlsafe_b64decode(jws.split(".")[0] + "=="))["kid"]
    rotated = subprocess.run([str(BIN / "gateway"), "keys", "rotate", "--state-dir", str(gw.state_dir)],
                             capture_output=True, text=True, timeout=120)
    assert rotated.returncode == 0, rotated.stderr
    with sqlite3.connect(gw.state_dir / "gateway.db") as db:  # as if the retirement time had passed
        db.execute("UPDATE signing_keys SET retire_at = '2000-01-01T00:00:00.000000Z' WHERE kid = ?", (old_kid,))
    jwks = gw.api("GET", "/.well-known/jwks.json").json
    assert old_kid not in {k["kid"] for k in jwks["keys"]}
    assert [k["kid"] for k in jwks["retired_keys"] if k.get("retired")] == [old_kid]
    (tmp_path / "receipt.jws").write_text(jws)
    ok = subprocess.run([str(BIN / "gateway"), "receipt", "verify", str(tmp_path / "receipt.jws"),
                         "--jwks", gw.base + "/.well-known/jwks.json"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and answer["query_id"] in ok.stdout, ok.stderr
    (tmp_path / "forged.jws").write_text(jws[:-3] + ("AAA" if not jws.endswith("AAA") else "BBB"))
    bad = subprocess.run([str(BIN / "gateway"), "receipt", "verify", str(tmp_path / "forged.jws"),
                          "--jwks", gw.base + "/.well-known/jwks.json"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "NOT verified" in bad.stderr
