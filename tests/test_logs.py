"""One JSON log line per request with the R-OP-05 fields, and nothing an operator must not see.

A log line names the route template, never the path; it carries the client id, never a token
or secret; the dataset and the epsilon charged, never SQL text, a literal or a released value.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, call, demo_gateway

FIELDS = {"ts", "level", "msg", "request_id", "replica", "route", "status", "outcome", "client_id",
          "dataset", "policy_version", "epsilon", "duration_ms", "method"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# A literal that appears nowhere but in the SQL we send: it must not reach the log.
LITERAL_TOWNSHIP = "Guanyin"
SQL = (f"SELECT COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
       f"WHERE township IN ('{LITERAL_TOWNSHIP}') AND age BETWEEN 23 AND 61")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    env = {"GATEWAY_REPLICA_ID": "replica-logs"}
    with demo_gateway(tmp_path_factory.mktemp("logs"), demo_data, env=env) as gateway:
        yield gateway


def log_lines(gw: Gateway) -> list[dict[str, Any]]:
    """Every JSON object the server wrote, one per line (other lines are not ours to parse)."""
    text = (gw.state_dir / "server.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def line_of(gw: Gateway, request_id: str) -> dict[str, Any]:
    found = [entry for entry in log_lines(gw) if entry.get("request_id") == request_id]
    assert len(found) == 1, f"{len(found)} log lines for request {request_id}"
    return found[0]


def rid() -> str:
    return "t-" + uuid.uuid4().hex[:16]


def query(gw: Gateway, request_id: str, sql: str = SQL, eps: float = 0.2, key: str | None = None) -> Any:
    headers = {"X-Request-ID": request_id, **({"Idempotency-Key": key} if key else {})}
    return gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "sql": sql, "epsilon": eps},
                  headers)


def test_every_line_is_one_json_object_with_the_r_op_05_fields(gw: Gateway) -> None:
    ids = [rid() for _ in range(3)]
    call("GET", gw.base + "/healthz", headers={"X-Request-ID": ids[0]})
    gw.api("GET", "/v1/datasets", "demo-bank", headers={"X-Request-ID": ids[1]})
    call("GET", gw.base + "/no/such/thing", headers={"X-Request-ID": ids[2]})
    for request_id in ids:
        entry = line_of(gw, request_id)
        assert set(entry) >= FIELDS, FIELDS - set(entry)
        assert RFC3339_UTC.match(entry["ts"]), entry["ts"]
        assert entry["msg"] == "request" and entry["replica"] == "replica-logs"
        assert entry["level"] in {"info", "warning", "error"}
    catalog = line_of(gw, ids[1])
    assert (catalog["route"], catalog["status"], catalog["client_id"]) == ("/v1/datasets", 200, "demo-bank")
    unmatched = line_of(gw, ids[2])
    assert (unmatched["route"], unmatched["status"], unmatched["level"]) == ("_unmatched", 404, "warning")


def test_request_ids_are_passed_through_or_made(gw: Gateway) -> None:
    mine = rid()
    echoed = call("GET", gw.base + "/healthz", headers={"X-Request-ID": mine})
    assert echoed.header("X-Request-ID") == mine
    odd = call("GET", gw.base + "/healthz", headers={"X-Request-ID": "has spaces; and=" + "x" * 80})
    made = odd.header("X-Request-ID") or ""
    assert re.fullmatch(r"[0-9a-f]{32}", made), made
    assert line_of(gw, made)["route"] == "/healthz"


def test_a_release_logs_its_charge_and_policy_but_no_sql_or_value(gw: Gateway) -> None:
    first, cached, replay_key = rid(), rid(), str(uuid.uuid4())
    released = query(gw, first, key=replay_key)
    assert released.status == 200, released.body
    again = query(gw, cached, sql=SQL.replace("BETWEEN 23 AND 61", "BETWEEN 23 AND 61 "))
    replayed_id = rid()
    replayed = query(gw, replayed_id, key=replay_key)
    assert again.json["cached"] is True and replayed.header("Idempotent-Replayed") == "true"

    line = line_of(gw, first)
    assert (line["route"], line["status"], line["outcome"]) == ("/v1/queries", 200, "released")
    assert (line["client_id"], line["dataset"]) == ("demo-bank", "residents")
    assert line["epsilon"] == pytest.approx(0.2)
    assert line["policy_version"] == released.json["policy_version"]
    assert (line_of(gw, cached)["outcome"], line_of(gw, cached)["epsilon"]) == ("cached", 0.0)
    assert (line_of(gw, replayed_id)["outcome"], line_of(gw, replayed_id)["epsilon"]) == ("replayed", 0.0)

    # Only the known fields, so no count or value rides along; and no released mean in any text.
    means = [repr(row[1]) for row in released.json["rows"] if isinstance(row[1], float) and row[1] % 1]
    for entry in (line, line_of(gw, cached), line_of(gw, replayed_id)):
        assert set(entry) == FIELDS, set(entry) ^ FIELDS
        assert not [m for m in means if m in json.dumps(entry)], "a released value reached the log"
    text = (gw.state_dir / "server.log").read_text(errors="replace")
    assert LITERAL_TOWNSHIP not in text and "BETWEEN" not in text and "mean_income" not in text


def test_a_refusal_logs_its_code_and_dataset(gw: Gateway) -> None:
    too_much, bad_sql = rid(), rid()
    assert query(gw, too_much, eps=1.5).status == 422  # income is important: at most 1.0
    assert query(gw, bad_sql, sql="SELECT person_id FROM residents WHERE township = 'Meilin'").status in (400, 422)
    refused = line_of(gw, too_much)
    assert (refused["status"], refused["outcome"], refused["dataset"]) == (422, "policy_violation", "residents")
    assert refused["epsilon"] is None and refused["level"] == "warning"
    text = (gw.state_dir / "server.log").read_text(errors="replace")
    assert "person_id" not in text and "Meilin" not in text


def test_no_token_secret_or_authorization_header_is_logged(gw: Gateway) -> None:
    secret = gw.credentials["demo-insurer"]["client_secret"]
    form_id, basic_id, wrong_id = rid(), rid(), rid()
    token = gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": "demo-insurer",
                                     "client_secret": secret}, {"X-Request-ID": form_id}).json["access_token"]
    basic = base64.b64encode(f"demo-insurer:{secret}".encode()).decode()
    gw.form("/oauth/token", {"grant_type": "client_credentials"},
            {"Authorization": "Basic " + basic, "X-Request-ID": basic_id})
    gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": "demo-insurer",
                             "client_secret": "wrong-" + secret[:8]}, {"X-Request-ID": wrong_id})
    gw.api("GET", "/v1/budget", headers={"Authorization": "Bearer " + token})
    assert line_of(gw, form_id)["status"] == 200 and line_of(gw, wrong_id)["status"] == 401
    text = (gw.state_dir / "server.log").read_text(errors="replace")
    for needle in (secret, secret[:8], token, token.split(".")[2], basic, "Bearer", "Basic", "Authorization"):
        assert needle not in text, f"{needle[:12]}... reached the log"
