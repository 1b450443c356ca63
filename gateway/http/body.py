"""Strict request bodies: read to their end under a limit; JSON without NaN, duplicate keys or deep
nesting (R-IN-04, R-AU-08)."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

MAX_DEPTH = 16


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(f"duplicate key {key!r} in JSON body")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    """1e999 is valid JSON syntax but no number Python can hold (it would become infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise InvalidRequest("a number in the body is out of range")
    return value


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _unicode(value: Any) -> bool:
    """No lone surrogates ("\\ud800" is valid JSON syntax but not text; it breaks encode())."""
    if isinstance(value, str):
        return value.isascii() or not any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return all(_unicode(k) and _unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_unicode(v) for v in value)
    return True


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                           parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON at line {exc.lineno}, column {exc.colno}") from None
    except ValueError:  # an integer past Python's 4,300-digit conversion limit
        raise InvalidRequest("a number in the body has too many digits") from None
    except RecursionError:
        raise InvalidRequest("JSON nested too deeply") from None
    if _depth(value) > MAX_DEPTH:
        raise InvalidRequest(f"JSON nested deeper than {MAX_DEPTH}")
    if not _unicode(value):
        raise InvalidRequest("the body holds a lone UTF-16 surrogate, which is not text")
    return value


async def read_body(request: web.Request, *, max_bytes: int) -> bytes:
    """The whole body, however many segments or chunks it came in; 413 as soon as it passes
    `max_bytes` (announced or counted), 400 when the client stops short of what it announced."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("The request body is over the configured limit.")
    received = bytearray()
    try:
        # One read returns what has arrived so far, not the body: read until the end.
        async for piece in request.content.iter_any():
            received += piece
            if len(received) > max_bytes:
                raise PayloadTooLarge("The request body is over the configured limit.")
    except (HttpProcessingError, ConnectionError):
        raise InvalidRequest("the body ended before its announced end") from None
    return bytes(received)


async def json_object(request: web.Request, *, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or a clear 400/413/415."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType("send the body as application/json")
    value = parse_json(await read_body(request, max_bytes=max_bytes))
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    return value

