"""Queries, previews, budget, usage and audit verification over HTTP (thin: parse, call, serialize)."""

from __future__ import annotations

import asyncio
import functools
import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from gateway.clock import utc_now
from gateway.core.budget import period_of
from gateway.core.jsonplan import parse_json_plan
from gateway.core.plan import Plan
from gateway.core.sql import parse_sql
from gateway.errors import InvalidRequest, NotFound
from gateway.http.body import json_object, only_fields
from gateway.http.keys import DATASET, RELEASE_LOG, RUNTIME
from gateway.http.ratelimit import enforce_dataset_rate, enforce_preview_rate
from gateway.http.routing import Route, principal, route
from gateway.service import ledger_views, receipts
from gateway.service.admission import refusals_recorded, request_fingerprint
from gateway.service.answers import QueryReply
from gateway.service.queries import preview, run_query

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # R-ID-01: printable, at most 255
_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
QUERY_FIELDS = ("dataset", "sql", "plan", "epsilon", "delta")
# Parsing an 8 KiB SQL text or a 64 KiB JSON plan takes tens of milliseconds of pure Python: on
# the event loop, a client refused 16 times a second stalled every other request (issue 19
# point 3). Such bodies parse in a thread of their own; a short SQL text (most questions, and
# every cached one) costs well under a millisecond and stays on the loop.
_PARSER = ThreadPoolExecutor(1, thread_name_prefix="query-parse")
SHORT_SQL_CHARS = 512


def _decimal(body: dict[str, Any], name: str, default: str | None = None) -> Decimal:
    raw = body.get(name, default)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidRequest(f"{name} must be a number")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidRequest(f"{name} must be a number") from None
    if not value.is_finite() or value < 0:
        raise InvalidRequest(f"{name} must be a finite, non-negative number")
    return value


def plan_from_body(body: dict[str, Any], max_sql_chars: int) -> Plan:
    """A query body (`sql` or `plan`) -> Plan; both forms meet the same checks after."""
    only_fields(body, QUERY_FIELDS, ("dataset", "epsilon"))
    dataset = body["dataset"]
    if not isinstance(dataset, str):
        raise InvalidRequest("dataset must be a string")
    epsilon, delta = _decimal(body, "epsilon"), _decimal(body, "delta", "0")
    if epsilon == 0:
        raise InvalidRequest("epsilon must be positive")
    if ("sql" in body) == ("plan" in body):
        raise InvalidRequest("send exactly one of sql and plan")
    if "sql" in body:
        if not isinstance(body["sql"], str):
            raise InvalidRequest("sql must be a string")
        return _parsed_sql(body["sql"], epsilon, delta, max_sql_chars, dataset)
    if not isinstance(body["plan"], dict):
        raise InvalidRequest("plan must be an object")
    return parse_json_plan(body["plan"], epsilon=epsilon, delta=delta, dataset=dataset)


async def read_plan(body: dict[str, Any], max_sql_chars: int) -> Plan:
    """`plan_from_body`, off the event loop unless the body is a short SQL question."""
    sql = body.get("sql")
    if isinstance(sql, str) and len(sql) <= SHORT_SQL_CHARS and "plan" not in body:
        return plan_from_body(body, max_sql_chars)
    return await asyncio.get_running_loop().run_in_executor(_PARSER, plan_from_body, body, max_sql_chars)


@functools.lru_cache(maxsize=2048)
def _parsed_sql(sql: str, epsilon: Decimal, delta: Decimal, max_chars: int, dataset: str) -> Plan:
    """Plans are immutable, so a repeated question is parsed once (refusals are not cached)."""
    return parse_sql(sql, epsilon=epsilon, delta=delta, max_chars=max_chars, dataset=dataset)


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable characters")
    return key


def reply(answer: QueryReply) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body, headers=answer.headers,
                            content_type="application/json" if answer.status < 400 else "application/problem+json")
    response[RELEASE_LOG] = answer.log
    return response


@route("POST", "/v1/queries", {"requester"})
async def post_query(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    key = idempotency_key(request)
    body = await json_object(request, max_bytes=runtime.settings.max_body_bytes)
    who = principal(request)
    dataset = body.get("dataset") if isinstance(body.get("dataset"), str) else None
    if dataset is not None:
        request[DATASET] = dataset
    async with refusals_recorded(runtime, who, dataset):
        plan = await read_plan(body, runtime.settings.max_sql_chars)
        await enforce_dataset_rate(request, who, runtime.registry.get(plan.dataset))
        answer = await run_query(runtime, who, plan, idempotency_key=key,
                                 request_fingerprint=lambda: request_fingerprint(request.path, body))
    return reply(answer)


@route("POST", "/v1/queries/preview", {"requester"})
async def post_preview(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await json_object(request, max_bytes=runtime.settings.max_body_bytes)
    who = principal(request)
    dataset = body.get("dataset") if isinstance(body.get("dataset"), str) else None
    async with refusals_recorded(runtime, who, dataset):
        plan = await read_plan(body, runtime.settings.max_sql_chars)
        await enforce_dataset_rate(request, who, runtime.registry.get(plan.dataset))
        figures = await preview(runtime, who, plan, throttle=lambda: enforce_preview_rate(request, who))
    return web.json_response(figures)


@route("GET", "/v1/budget", {"requester"})
async def get_budget(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    period = period_of(utc_now(), runtime.settings.zone)
    lines = await ledger_views.budget(runtime, principal(request).org_id, period)
    return web.json_response({"period": period, "datasets": lines})


def _period(request: web.Request) -> str:
    runtime = request.app[RUNTIME]
    period = request.query.get("period") or period_of(utc_now(), runtime.settings.zone)
    if not _PERIOD.match(period):
        raise InvalidRequest("period must be written YYYY-MM")
    return period


@route("GET", "/v1/usage", {"requester", "bureau"})
async def get_usage(request: web.Request) -> web.Response:
    who = principal(request)
    period = _period(request)
    org = None if who.has("bureau") else who.org_id
    items = await ledger_views.usage(request.app[RUNTIME], org, period)
    return web.json_response({"period": period, "items": items})


@route("GET", "/v1/audit/verify", {"bureau"})
async def get_audit_verify(request: web.Request) -> web.Response:
    verdict = await ledger_views.verify_audit(request.app[RUNTIME])
    return web.json_response(verdict)


@route("GET", "/v1/queries/{query_id}", {"requester"})
async def get_release(request: web.Request) -> web.Response:
    found = await ledger_views.release(request.app[RUNTIME], principal(request), request.match_info["query_id"])
    if found is None:
        raise NotFound("no such release")
    return web.json_response(found)


@route("GET", "/v1/queries/{query_id}/receipt", {"requester"})
async def get_receipt(request: web.Request) -> web.Response:
    """A signed receipt for a release: a compact JWS that anyone holding the JWKS can verify."""
    jws = await receipts.receipt(request.app[RUNTIME], principal(request), request.match_info["query_id"])
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"receipt": jws})
    return web.Response(text=jws, content_type="application/jose")


ROUTES: tuple[Route, ...] = (post_query, post_preview, get_budget, get_usage, get_audit_verify, get_release,
                             get_receipt)
