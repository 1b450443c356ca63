"""Request bodies are read to their end whatever the network does (issue 12, point 1).

A body may arrive in many TCP segments (a slow link, a proxy re-chunking) or in chunked
transfer coding; each is read whole, under `max_body_bytes` (413 past it), before it is parsed.
Each test sends its body in pieces with pauses between them, over a raw socket.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

from tests.rawhttp import chunked, request
from tests.support import Gateway

PREVIEW = {"dataset": "residents", "sql": "SELECT township, COUNT(*) AS n FROM residents GROUP BY township",
           "epsilon": 0.5}
POLICY = Path(__file__).resolve().parent.parent / "policies" / "residents.yaml"


def _pieces(raw: bytes, n: int) -> list[bytes]:
    step = -(-len(raw) // n)
    return [raw[i:i + step] for i in range(0, len(raw), step)]


def _json_headers(gw: Gateway, client: str, **extra: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + gw.token(client), "Content-Type": "application/json", **extra}


def test_a_json_body_in_several_segments_is_read_whole(gateway: Gateway) -> None:
    raw = json.dumps(PREVIEW).encode()
    whole = gateway.api("POST", "/v1/queries/preview", "demo-bank", PREVIEW)
    assert whole.status == 200, whole.body
    dribbled = request(gateway.port, "POST", "/v1/queries/preview",
                       _json_headers(gateway, "demo-bank", **{"Content-Length": str(len(raw))}), _pieces(raw, 4))
    assert dribbled.status == 200, dribbled.body
    assert dribbled.json == whole.json


def test_a_chunked_json_body_in_several_segments_is_read_whole(gateway: Gateway) -> None:
    raw = json.dumps(PREVIEW).encode()
    reply = request(gateway.port, "POST", "/v1/queries/preview",
                    _json_headers(gateway, "demo-bank", **{"Transfer-Encoding": "chunked"}), chunked(_pieces(raw, 3)))
    assert reply.status == 200, reply.body
    assert reply.json["dataset"] == "residents"


def test_a_chunked_body_past_the_limit_is_413_even_after_a_valid_object(gateway: Gateway) -> None:
    junk = [b" " * 32_768] * 3  # 96 KB after the object: past max_body_bytes (64 KiB)
    reply = request(gateway.port, "POST", "/v1/queries/preview",
                    _json_headers(gateway, "demo-bank", **{"Transfer-Encoding": "chunked"}),
                    chunked([json.dumps(PREVIEW).encode(), *junk]), pause=0.2)
    assert reply.status == 413 and reply.is_problem, (reply.status, reply.body[:300])
    assert reply.json["code"] == "payload_too_large"


def test_a_json_body_that_stops_short_is_refused(gateway: Gateway) -> None:
    raw = json.dumps(PREVIEW).encode()
    reply = request(gateway.port, "POST", "/v1/queries/preview",
                    _json_headers(gateway, "demo-bank", **{"Content-Length": str(len(raw) + 10)}), [raw],
                    half_close=True)
    # The client ended before sending what it announced: never parsed as if complete (no reply
    # can reach a closed connection, or a 400 problem where one can).
    assert reply.status == 0 or (reply.status == 400 and reply.is_problem), (reply.status, reply.body)


def _policy_put(gw: Gateway, text: bytes, pieces: list[bytes], **headers: str) -> dict[str, object]:
    head = {"Authorization": "Bearer " + gw.token("demo-bureau"), "Content-Type": "application/yaml", **headers}
    reply = request(gw.port, "PUT", "/v1/datasets/residents/policy?dry_run=true", head, pieces)
    assert reply.status == 200, reply.body
    return dict(reply.json)


def test_a_policy_whose_last_lines_arrive_later_is_diffed_whole(gateway: Gateway) -> None:
    text = POLICY.read_bytes().replace(b"requires_source_cosign: true", b"requires_source_cosign: false")
    assert text != POLICY.read_bytes()
    cut = text.rindex(b"\naccess:")
    at_once = _policy_put(gateway, text, [text], **{"Content-Length": str(len(text))})
    dribbled = _policy_put(gateway, text, [text[:cut], text[cut:]], **{"Content-Length": str(len(text))})
    as_chunks = _policy_put(gateway, text, chunked([text[:cut], text[cut:]]), **{"Transfer-Encoding": "chunked"})
    assert "requires_source_cosign" in json.dumps(at_once["changes"])
    assert dribbled == at_once == as_chunks


def test_a_chunked_policy_past_the_limit_is_413(gateway: Gateway) -> None:
    head = {"Authorization": "Bearer " + gateway.token("demo-bureau"), "Content-Type": "application/yaml",
            "Transfer-Encoding": "chunked"}
    text = POLICY.read_bytes() + b"\n" + b"# padding\n" * 7000
    reply = request(gateway.port, "PUT", "/v1/datasets/residents/policy?dry_run=true", head,
                    chunked(_pieces(text, 3)), pause=0.2)
    assert reply.status == 413 and reply.is_problem, (reply.status, reply.body[:300])


def test_a_token_form_in_several_segments_is_read_whole(gateway: Gateway) -> None:
    secret = gateway.credentials["demo-bank"]["client_secret"]
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": "demo-bank",
                                   "client_secret": secret}).encode()
    reply = request(gateway.port, "POST", "/oauth/token",
                    {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(form))},
                    _pieces(form, 3))
    assert reply.status == 200, reply.body
    assert reply.json["token_type"] == "Bearer"
