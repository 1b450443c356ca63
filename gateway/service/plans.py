"""A query body read into a plan: the same checks for SQL and the JSON plan form, each SQL text parsed
once per replica (refusals kept too), and long bodies parsed off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.core.jsonplan import parse_json_plan
from gateway.core.plan import Plan
from gateway.core.sql import parse_sql
from gateway.errors import GatewayError, InvalidRequest
from gateway.runtime.cache import Cache
from gateway.runtime.parts import Runtime

SqlKey = tuple[str, Decimal, Decimal, int, str]
# Parsing an 8 KiB SQL text or a 64 KiB JSON plan takes tens of milliseconds of pure Python: on the
# event loop, a client refused 16 times a second stalled every other request (issue 19 point 3).
# Such bodies parse in a thread of their own; a short SQL text (most questions, and every cached
# one) costs well under a millisecond and stays on the loop, where the cache of parsed texts lives.
SHORT_SQL_CHARS = 512


class PlanState:
    """What plan reading keeps per replica: parsed SQL (plans and refusals) and the parser thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.parsed_sql: Cache[SqlKey, Plan | GatewayError] = Cache(2048)
        self.parser = ThreadPoolExecutor(1, thread_name_prefix="query-parse")


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


def _checked(body: dict[str, Any], max_sql_chars: int) -> SqlKey | tuple[dict[str, Any], Decimal, Decimal, str]:
    """The body's parts after the checks both forms share: a SQL key, or (plan, epsilon, delta, dataset)."""
    dataset = body.get("dataset")
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
        return body["sql"], epsilon, delta, max_sql_chars, dataset
    if not isinstance(body["plan"], dict):
        raise InvalidRequest("plan must be an object")
    return body["plan"], epsilon, delta, dataset


def _parse(parts: SqlKey | tuple[dict[str, Any], Decimal, Decimal, str]) -> Plan:
    if len(parts) == 5:
        sql, epsilon, delta, max_chars, dataset = parts
        return parse_sql(str(sql), epsilon=epsilon, delta=delta, max_chars=int(max_chars), dataset=str(dataset))
    plan, epsilon, delta, dataset = parts
    return parse_json_plan(plan, epsilon=epsilon, delta=delta, dataset=str(dataset))


def plan_from_body(runtime: Runtime, body: dict[str, Any]) -> Plan:
    """A query body (`sql` or `plan`) -> Plan, on the calling thread; SQL verdicts kept per text."""
    parts = _checked(body, runtime.settings.max_sql_chars)
    if len(parts) != 5:
        return _parse(parts)
    cache = runtime.owned(PlanState).parsed_sql
    key: SqlKey = parts
    found = cache.get(key)
    if found is None:
        try:
            found = _parse(key)
        except GatewayError as refusal:
            found = refusal
        cache.put(key, found)
    if isinstance(found, GatewayError):
        raise found.fresh()  # a new object each time: no traceback or context carried between requests
    return found


async def read_plan(runtime: Runtime, body: dict[str, Any]) -> Plan:
    """`plan_from_body`, off the event loop unless the body is a short SQL question (the cache is
    touched on the loop only: a long body is parsed afresh in the parser thread)."""
    sql = body.get("sql")
    if isinstance(sql, str) and len(sql) <= SHORT_SQL_CHARS and "plan" not in body:
        return plan_from_body(runtime, body)
    parts = _checked(body, runtime.settings.max_sql_chars)
    return await asyncio.get_running_loop().run_in_executor(runtime.owned(PlanState).parser, _parse, parts)
