"""Every error over real HTTP is one problem+json shape, with no internals (API.md, R-OP-06).

Covers our own errors and aiohttp's (404, 405, 413), the strict JSON rules of R-IN-04 and
R-AU-08, and the parsing functions of gateway/http/body.py directly.
"""

from __future__ import annotations

import builtins
import json
import re
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from gateway import errors
from gateway.errors import InvalidRequest
from gateway.http.body import MAX_DEPTH, parse_json
from gateway.http.validate import validate_body
from tests.support import Gateway

COUNT = "SELECT COUNT(*) AS n FROM residents"
GOOD = {"dataset": "residents", "sql": COUNT, "epsilon": 0.5}


def _class_names() -> set[str]:
    """Exception class names a body must never mention (single words like 'Forbidden' are titles)."""
    ours = {c.__name__ for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)}
    aiohttp_names = {n for n, c in vars(web).items() if isinstance(c, type) and issubclass(c, Exception)}
    python = {n for n, c in vars(builtins).items() if isinstance(c, type) and issubclass(c, BaseException)}
    names = ours | aiohttp_names | python | {"JSONDecodeError", "UnicodeDecodeError", "RecursionError"}
    return {n for n in names if len(re.findall(r"[A-Z]", n)) >= 2} | {"Exception"}


CLASS_NAMES = _class_names()
LEAKS = ("Traceback", 'File "', "/gateway/", ".py", "site-packages", "aiohttp")


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    status: int
    code: str
    client: str | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json(text: str) -> bytes:
    return text.encode()


BIG_FORM = b"grant_type=client_credentials&client_id=demo-bank&client_secret=" + b"x" * 70_000
BIG_JSON = json.dumps({**GOOD, "sql": COUNT + " " * 70_000}).encode()
CASES = [
    Case("malformed json", "POST", "/v1/queries/preview", 400, "invalid_request", "demo-bank",
         _json('{"dataset": "residents", "epsilon": ')),
    Case("duplicate keys", "POST", "/v1/queries/preview", 400, "invalid_request", "demo-bank",
         _json(f'{{"dataset": "residents", "dataset": "vehicles", "sql": "{COUNT}", "epsilon": 1}}')),
    Case("NaN", "POST", "/v1/queries/preview", 400, "invalid_request", "demo-bank",
         _json(f'{{"dataset": "residents", "sql": "{COUNT}", "epsilon": NaN}}')),
    Case("Infinity", "POST", "/v1/queries", 400, "invalid_request", "demo-bank",
         _json(f'{{"dataset": "residents", "sql": "{COUNT}", "epsilon": -Infinity}}')),
    Case("not UTF-8", "POST", "/v1/queries", 400, "invalid_request", "demo-bank",
         b'{"dataset": "r\xe9sidents", "sql": "x", "epsilon": 1}'),
    Case("lone surrogate", "POST", "/v1/queries", 400, "invalid_request", "demo-bank",
         _json(f'{{"dataset": "residents", "epsilon": 1, '
               f'"sql": "{COUNT} WHERE township = \'\\ud800\'"}}')),
    Case("too deep", "POST", "/v1/queries/preview", 400, "invalid_request", "demo-bank",
         _json('{"plan": ' + "[" * 40 + "]" * 40 + ', "dataset": "residents", "epsilon": 1}')),
    Case("not an object", "POST", "/v1/queries/preview", 400, "invalid_request", "demo-bank",
         _json("[1, 2, 3]")),
    Case("unknown field", "POST", "/v1/queries/preview", 400, "invalid_request", "demo-bank",
         json.dumps({**GOOD, "epsilon_limit": 100}).encode()),
    Case("missing grant_type", "POST", "/oauth/token", 400, "invalid_request", None,
         b"client_id=demo-bank", {"Content-Type": "application/x-www-form-urlencoded"}),
    Case("no token", "GET", "/v1/datasets", 401, "unauthorized"),
    Case("garbage token", "GET", "/v1/datasets", 401, "unauthorized",
         headers={"Authorization": "Bearer not.a.jwt"}),
    Case("wrong role", "GET", "/metrics", 403, "forbidden", "demo-bank"),
    Case("requester route for the bureau", "POST", "/v1/queries/preview", 403, "forbidden",
         "demo-bureau", json.dumps(GOOD).encode()),
    Case("unknown route", "GET", "/v1/nothing-here", 404, "not_found", "demo-bank"),
    Case("unknown route, no token", "GET", "/nothing", 404, "not_found"),
    Case("unknown dataset", "GET", "/v1/datasets/secret_files", 404, "not_found", "demo-bank"),
    Case("method", "DELETE", "/v1/datasets", 405, "method_not_allowed", "demo-bank"),
    Case("method on a public route", "POST", "/healthz", 405, "method_not_allowed"),
    Case("form over max_body_bytes", "POST", "/oauth/token", 413, "payload_too_large", None,
         BIG_FORM, {"Content-Type": "application/x-www-form-urlencoded"}),
    Case("json over max_body_bytes", "POST", "/v1/queries/preview", 413, "payload_too_large",
         "demo-bank", BIG_JSON),
    Case("json to the token endpoint", "POST", "/oauth/token", 415, "unsupported_media_type", None,
         b'{"grant_type": "client_credentials"}', {"Content-Type": "application/json"}),
    Case("text to a json route", "POST", "/v1/queries/preview", 415, "unsupported_media_type",
         "demo-bank", json.dumps(GOOD).encode(), {"Content-Type": "text/plain"}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_error_is_one_problem_shape_without_internals(gateway: Gateway, case: Case) -> None:
    reply = gateway.api(case.method, case.path, case.client, case.body, case.headers)
    assert reply.status == case.status, reply.body
    assert (reply.header("content-type") or "").startswith("application/problem+json")
    problem = reply.json
    assert {"type", "title", "status", "detail", "code"} <= set(problem)
    assert problem["status"] == case.status and problem["code"] == case.code
    assert problem["type"].endswith("/" + case.code.replace("_", "-"))
    assert all(isinstance(problem[k], str) and problem[k] for k in ("type", "title", "detail", "code"))
    text = reply.body.decode()
    assert [leak for leak in LEAKS if leak in text] == []
    assert [name for name in CLASS_NAMES if name in text] == []
    if case.status == 401:
        assert (reply.header("www-authenticate") or "").startswith("Bearer")


def test_problem_instance_is_the_request_id(gateway: Gateway) -> None:
    reply = gateway.api("GET", "/v1/nothing", "demo-bank", headers={"X-Request-ID": "req-errors-1"})
    assert reply.status == 404
    assert reply.json["instance"] == "urn:request:req-errors-1"
    assert reply.header("x-request-id") == "req-errors-1"


def test_a_bad_body_leaves_the_server_serving(gateway: Gateway) -> None:
    assert gateway.api("GET", "/healthz").status == 200


# ---------------------------------------------------------------- body.py directly


@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1, "a": 2}',
    b'{"a": {"b": 1, "b": 1}}', b'{"a": 1', b"\xff\xfe{}", b'{"a": "\\udc00"}', b'{"\\ud800": 1}',
    b"", b"nul",
])
def test_parse_json_refuses(raw: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_json(raw)


def test_parse_json_depth_limit_is_exact() -> None:
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(InvalidRequest, match="deeper"):
        parse_json(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    with pytest.raises(InvalidRequest):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


def test_parse_json_keeps_what_is_valid() -> None:
    assert parse_json('{"t": "Lingxi 灵溪", "n": [1, 2.5, true, null]}'.encode()) == {
        "t": "Lingxi 灵溪", "n": [1, 2.5, True, None]}


def test_bodies_are_checked_by_their_schema_with_the_field_named() -> None:
    validate_body("QueryIn", {"dataset": "x", "epsilon": 1, "sql": "SELECT 1"})
    with pytest.raises(InvalidRequest, match="unknown field") as unknown:
        validate_body("QueryIn", {"dataset": "x", "epsilon": 1, "cap": 1})
    assert unknown.value.extra["errors"] == [{"pointer": "", "detail": "unknown field(s): cap"}]
    with pytest.raises(InvalidRequest, match="missing field") as missing:
        validate_body("QueryIn", {"sql": "x"})
    assert missing.value.detail == "missing field(s): dataset, epsilon"
    with pytest.raises(InvalidRequest) as nested:
        validate_body("InvokeIn", {"params": {"min_age": [1]}})
    assert nested.value.detail.startswith("params.min_age: must be ")
    assert nested.value.extra["errors"][0]["pointer"] == "/params/min_age"
