"""Every example in docs/query-language.md, run against the demo county over real HTTP.

The document marks its examples (its section "How to read the examples" says how): a fenced
`sql example …` or `json example …` block, then a `yaml outcome` block with what the gateway
answers. Accepted examples must answer 200 on /v1/queries/preview with the documented figures,
and those marked `run=query` also on /v1/queries (small epsilon); refused ones must answer the
documented status, code, detail, position and reasons on both endpoints and spend nothing.
The plan schema printed in the document must hold every JSON plan the gateway accepts, and
every refusal message the parser and the policy checks can write must appear in the document.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import re
import shlex
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.core import checks, jsonplan, literals, sql, sqlparts
from gateway.service import plans
from tests.support import Gateway, Reply

DOC = Path(__file__).resolve().parents[1] / "docs" / "query-language.md"
ATTRIBUTES = {"dataset", "epsilon", "delta", "client", "run", "name", "send"}
OUTCOME_KEYS = {"status", "code", "detail", "position", "reasons", "accuracy", "epsilon", "delta",
                "threshold", "columns", "rows", "cached_from"}
CLIENT_OF = {"vehicles": "demo-insurer"}  # every other demo dataset: demo-bank
# Where refusal messages of a query body are written: the parsers, the checks, and the body's reader.
MESSAGE_SOURCES: tuple[ModuleType | Callable[..., Any], ...] = (
    sql, sqlparts, jsonplan, checks, literals, plans._checked, plans._decimal)


@dataclass(frozen=True)
class Example:
    """One marked example: what is sent, by whom, and the outcome the document promises."""

    line: int
    language: str  # "sql" or "json"
    attrs: dict[str, str]
    text: str
    outcome: dict[str, Any]

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.attrs.get('name') or self.language}"

    @property
    def accepted(self) -> bool:
        return bool(self.outcome["status"] == 200)

    @property
    def client(self) -> str:
        return self.attrs.get("client") or CLIENT_OF.get(self.attrs.get("dataset", ""), "demo-bank")

    def body(self) -> dict[str, Any]:
        if self.attrs.get("send") == "body":
            body: dict[str, Any] = json.loads(self.text)
            return body
        body = {"dataset": self.attrs["dataset"], "epsilon": json.loads(self.attrs.get("epsilon", "1"))}
        if "delta" in self.attrs:
            body["delta"] = json.loads(self.attrs["delta"])
        if self.language == "sql":
            body["sql"] = self.text.rstrip("\n")
        else:
            body["plan"] = json.loads(self.text)
        return body


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line, info string, content) of every top-level fenced block; a longer fence may
    show shorter ones inside it without them counting."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        opening = re.match(r"^(`{3,})(.*)$", lines[i])
        if opening is None:
            i += 1
            continue
        fence, start, i = opening.group(1), i, i + 1
        while i < len(lines) and not re.fullmatch(rf"{fence}`*\s*", lines[i]):
            i += 1
        blocks.append((start + 1, opening.group(2).strip(), "\n".join(lines[start + 1:i]) + "\n"))
        i += 1
    return blocks


def read_examples(text: str) -> list[Example]:
    """Examples in document order; a marker without its partner is an error in the document."""
    examples: list[Example] = []
    pending: tuple[int, str, dict[str, str], str] | None = None
    for line, info, content in fenced_blocks(text):
        words = shlex.split(info)
        if words[1:2] == ["example"]:
            if pending is not None:
                raise ValueError(f"line {pending[0]}: an example without an outcome block after it")
            attrs = dict(w.split("=", 1) for w in words[2:])
            unknown = set(attrs) - ATTRIBUTES
            if unknown or words[0] not in ("sql", "json") or any("=" not in w for w in words[2:]):
                raise ValueError(f"line {line}: bad example marker {info!r}")
            pending = (line, words[0], attrs, content)
        elif words[:2] == ["yaml", "outcome"]:
            if pending is None:
                raise ValueError(f"line {line}: an outcome block without an example before it")
            outcome = yaml.safe_load(content)
            if not isinstance(outcome, dict) or "status" not in outcome or set(outcome) - OUTCOME_KEYS:
                raise ValueError(f"line {line}: an outcome needs a status and only {sorted(OUTCOME_KEYS)}")
            examples.append(Example(pending[0], pending[1], pending[2], pending[3], outcome))
            pending = None
    if pending is not None:
        raise ValueError(f"line {pending[0]}: an example without an outcome block after it")
    return examples


DOC_TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = read_examples(DOC_TEXT)
BY_NAME = {e.attrs["name"]: e for e in EXAMPLES if "name" in e.attrs}
RUN = [e for e in EXAMPLES if e.attrs.get("run") == "query"]
REFUSED = [e for e in EXAMPLES if not e.accepted]


def post(gw: Gateway, path: str, client: str, body: dict[str, Any]) -> Reply:
    """POST, waiting out 429s (the demo clients' rate limit is shared with the whole session)."""
    for _ in range(30):
        reply = gw.api("POST", path, client, body)
        if reply.status != 429:
            return reply
        time.sleep(float(reply.header("Retry-After") or 1))
    raise AssertionError(f"{path} stayed rate limited")


def check_refusal(example: Example, reply: Reply) -> None:
    want, got = example.outcome, reply.json
    where = f"{example.id}: {reply.body[:400]!r}"
    assert reply.status == want["status"] and reply.is_problem, where
    assert got["code"] == want["code"], where
    if "detail" in want:
        assert got["detail"] == want["detail"], where
    if "position" in want:
        position = got.get("position")
        assert (None if position is None else [position["line"], position["column"]]) == want["position"], where
    if "reasons" in want:
        assert got.get("reasons") == want["reasons"], where


def same_figure(got: float | None, want: float | None) -> bool:
    """The document rounds half-widths to three significant figures."""
    if want is None or got is None:
        return got is want
    return math.isclose(got, want, rel_tol=0.01)


def check_preview(example: Example, reply: Reply) -> None:
    want, where = example.outcome, f"{example.id}: {reply.body[:400]!r}"
    assert reply.status == 200, where
    got = reply.json
    if "accuracy" in want:
        columns = got["accuracy"]["columns"]
        assert list(columns) == list(want["accuracy"]), where
        assert all(same_figure(columns[k], v) for k, v in want["accuracy"].items()), where
    for figure in ("epsilon", "delta", "threshold"):  # exact: the charge is the point
        if figure in want:
            assert got[figure] == want[figure], where


@pytest.fixture(scope="module")
def answers() -> dict[str, Reply]:
    """/v1/queries answers of the run=query examples, by example id (shared for cached_from)."""
    return {}


def answer(gw: Gateway, example: Example, answers: dict[str, Reply]) -> Reply:
    if example.id not in answers:
        answers[example.id] = post(gw, "/v1/queries", example.client, example.body())
    return answers[example.id]


def test_the_document_marks_enough_examples_of_every_kind() -> None:
    """A broken marker must not make the document's examples silently disappear."""
    assert len(EXAMPLES) >= 60
    assert {e.language for e in EXAMPLES if e.accepted} == {"sql", "json"}
    assert {e.language for e in REFUSED} == {"sql", "json"}
    assert {e.outcome["code"] for e in REFUSED} >= {"invalid_query", "policy_violation", "invalid_request",
                                                   "forbidden", "not_found"}
    assert 3 <= len(RUN) <= 12 and all(e.accepted for e in RUN)
    for example in EXAMPLES:
        keys = set(example.outcome)
        assert example.accepted or {"code", "detail"} <= keys, f"{example.id}: a refusal shows code and detail"
        assert example.accepted or not keys & {"accuracy", "columns", "rows", "threshold"}, example.id
        assert example.attrs.get("run") == "query" or not keys & {"columns", "rows", "cached_from"}, \
            f"{example.id}: columns, rows and cached_from are checked on /v1/queries: mark it run=query"
        assert "cached_from" not in keys or example.outcome["cached_from"] in BY_NAME, example.id
        assert example.attrs.get("send") == "body" or "dataset" in example.attrs, example.id
    for example in RUN:
        assert float(example.attrs.get("epsilon", "1")) <= 0.2, f"{example.id}: keep the spend small"


def plan_schema() -> dict[str, Any]:
    blocks = [content for _, info, content in fenced_blocks(DOC_TEXT) if info.split()[:2] == ["json", "schema"]]
    assert len(blocks) == 1, "the document prints one plan schema, in a `json schema` block"
    schema: dict[str, Any] = json.loads(blocks[0])
    return schema


def test_the_plan_schema_holds_every_structurally_valid_plan_example() -> None:
    schema = plan_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    valid = [e for e in EXAMPLES if e.language == "json" and e.attrs.get("send") != "body"
             and (e.accepted or e.outcome["code"] == "policy_violation")]
    assert len(valid) >= 5
    for example in valid:
        errors = [e.message for e in validator.iter_errors(json.loads(example.text))]
        assert not errors, (example.id, errors)
    schema_refused = [e for e in EXAMPLES if e.language == "json" and e.attrs.get("send") != "body"
                      and not e.accepted and e.outcome["detail"].startswith("plan.")
                      and e.attrs.get("name", "").startswith("schema-")]
    assert len(schema_refused) >= 5
    for example in schema_refused:
        assert not validator.is_valid(json.loads(example.text)), f"{example.id}: the schema should refuse it"


def _message_fragments(source: ModuleType | Callable[..., Any]) -> set[str]:
    """Literal text of the strings a module writes into refusals (docstrings and asserts aside)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(source)))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            skipped.add(id(body[0].value))
        if isinstance(node, ast.Assert) and node.msg is not None:
            skipped.update(id(n) for n in ast.walk(node.msg))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("search", "match", "compile"):
            skipped.update(id(n) for n in ast.walk(node))
    fragments: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            fragments.update(p.strip() for p in node.value.split("\n"))
    return {f for f in fragments if len(f) >= 12 and " " in f}


def test_every_refusal_message_is_in_the_document() -> None:
    """New or reworded messages in the parser or the checks must be documented too."""
    flat = " ".join(DOC_TEXT.split())
    missing = sorted(f for m in MESSAGE_SOURCES for f in _message_fragments(m) if " ".join(f.split()) not in flat)
    assert not missing, missing


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_on_preview(gateway: Gateway, example: Example) -> None:
    reply = post(gateway, "/v1/queries/preview", example.client, example.body())
    if example.accepted:
        check_preview(example, reply)
    else:
        check_refusal(example, reply)


@pytest.mark.parametrize("example", RUN, ids=[e.id for e in RUN])
def test_example_as_a_query(gateway: Gateway, example: Example, answers: dict[str, Reply]) -> None:
    reply = answer(gateway, example, answers)
    want, where = example.outcome, f"{example.id}: {reply.body[:400]!r}"
    assert reply.status == 200, where
    got = reply.json
    if "columns" in want:
        assert got["columns"] == want["columns"], where
    if "rows" in want:
        assert len(got["rows"]) == want["rows"], where
    if "accuracy" in want:
        assert list(got["accuracy"]["columns"]) == list(want["accuracy"]), where
    if "cached_from" in want:
        first = answer(gateway, BY_NAME[want["cached_from"]], answers)
        assert got["cached"] is True and got["epsilon_spent"] == 0, where
        assert got["query_id"] == first.json["query_id"], where


def test_refused_examples_answer_the_same_on_the_query_endpoint_and_spend_nothing(gateway: Gateway) -> None:
    clients = sorted({e.client for e in REFUSED})
    before = {c: gateway.api("GET", "/v1/budget", c).json["datasets"] for c in clients}
    for example in REFUSED:
        check_refusal(example, post(gateway, "/v1/queries", example.client, example.body()))
    assert {c: gateway.api("GET", "/v1/budget", c).json["datasets"] for c in clients} == before
