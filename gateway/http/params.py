"""Query and header parameters: each declared once, with the schema that both checks it and documents it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.http.schema_parts import PERIOD as PERIOD_SCHEMA
from gateway.http.schema_parts import Schema
from gateway.http.validate import first_problem

Where = Literal["query", "header"]
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class Param:
    """A query or header parameter; the handler receives it decoded as `arg` (None when absent)."""

    name: str
    where: Where
    schema: Schema
    description: str
    example: Any
    refusal: str = ""  # the 400's wording when the value does not fit; a located default otherwise

    @property
    def arg(self) -> str:
        return self.name.lower().replace("-", "_")

    def read(self, request: web.Request) -> Any:
        raw = (request.query if self.where == "query" else request.headers).get(self.name)
        if raw is None:
            return self.schema.get("default")
        value = self._decode(raw)
        problem = first_problem(self.schema, value)
        if problem is not None:
            raise self._refused(problem)
        return value

    def _decode(self, raw: str) -> Any:
        kind = self.schema.get("type")
        if kind == "integer":
            digits = raw[1:] if raw.startswith("-") else raw
            if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
                raise self._refused("must be an integer")
            return int(raw)
        if kind == "boolean":
            if raw.lower() not in _TRUE + _FALSE:
                raise self._refused("must be true or false")
            return raw.lower() in _TRUE
        return raw

    def _refused(self, problem: str) -> InvalidRequest:
        detail = self.refusal or f"{self.where} parameter {self.name} {problem}"
        return InvalidRequest(detail, extra={"errors": [{"parameter": self.name, "detail": problem}]})


MAX_PAGE = 1000

PERIOD = Param("period", "query", PERIOD_SCHEMA,
               "A calendar month, YYYY-MM, in the gateway's time zone (default: the current one).",
               "2026-11", refusal="period must be written YYYY-MM")
LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100},
              f"Items per page, 1 to {MAX_PAGE} (default 100).", 50,
              refusal=f"limit must be an integer from 1 to {MAX_PAGE}")
# Short enough that a request line with one never nears the HTTP parser's 8 KiB limit.
CURSOR = Param("cursor", "query", {"type": "string", "minLength": 1, "maxLength": 600},
               "Where the previous page ended: the opaque `cursor` of its `next` link.", "WyIyMDI2LTExLTAxIl0")
DRY_RUN = Param("dry_run", "query", {"type": "boolean", "default": False},
                "Only show what would change; publish nothing.", True)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key", "header", {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$"},
    "1 to 255 printable characters, unique per request you mean: a retry with the same key and body returns "
    "the first answer byte for byte and neither spends nor bills again.", "3f1c9a5e-0b7d-4f7e-9d1a-5b2c8e4f6a10",
    refusal="Idempotency-Key must be 1 to 255 printable characters")
