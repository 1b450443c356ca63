"""Pages over HTTP: `limit` and an opaque `cursor` in, `{"items", "next"}` and a `Link` header out."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from gateway.core.pages import Key, Page, PageRequest
from gateway.errors import InvalidRequest
from gateway.http.params import CURSOR, LIMIT

MAX_KEY_PARTS, MAX_PART_CHARS = 4, 256


def encode_cursor(key: Key) -> str:
    """Opaque to clients (it may change shape between versions); it names the last key seen."""
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Key:
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor is not valid: take it from a `next` link") from None
    if (not isinstance(value, list) or not 0 < len(value) <= MAX_KEY_PARTS
            or not all(_key_part(v) for v in value)):
        raise InvalidRequest("cursor is not valid: take it from a `next` link")
    return tuple(value)


def _key_part(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_PART_CHARS)


def page_request(request: web.Request) -> PageRequest:
    cursor = CURSOR.read(request)
    return PageRequest(LIMIT.read(request), decode_cursor(cursor) if cursor is not None else None)


def next_link(request: web.Request, page: Page[Any]) -> str | None:
    """The same request (filters and limit kept) starting after this page; a path-absolute reference."""
    if page.next_after is None:
        return None
    return str(request.rel_url.update_query(cursor=encode_cursor(page.next_after)))


def paged(request: web.Request, page: Page[Any], **fields: Any) -> web.Response:
    """The list answer: `fields` (say, the period), `items`, `next`; `Link: <next>; rel="next"` too."""
    link = next_link(request, page)
    headers = {"Link": f'<{link}>; rel="next"'} if link else {}
    return web.json_response({**fields, "items": page.items, "next": link}, headers=headers)
