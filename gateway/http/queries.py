"""Queries, previews, budget, usage and audit verification over HTTP (thin: parse, call, serialize)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.clock import utc_now
from gateway.core.budget import period_of
from gateway.core.pages import PageRequest
from gateway.errors import NotFound
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.params import IDEMPOTENCY_KEY, PERIOD
from gateway.http.ratelimit import enforce_dataset_rate, enforce_preview_rate
from gateway.http.replies import QUERY_PROBLEMS, reply
from gateway.http.routing import JSON, Route, principal, route
from gateway.service import ledger_views, receipts
from gateway.service.admission import refusals_recorded, request_fingerprint
from gateway.service.plans import read_plan
from gateway.service.queries import preview, run_query


@route("POST", "/v1/queries", {"requester"}, body="QueryIn", answer="QueryAnswer", params=(IDEMPOTENCY_KEY,),
       problems=QUERY_PROBLEMS, headers=("Idempotent-Replayed",))
async def post_query(request: web.Request, body: dict[str, Any], idempotency_key: str | None) -> web.Response:
    """Run an ad-hoc differentially private query (SQL or a JSON plan) and spend its epsilon."""
    runtime = request.app[RUNTIME]
    who = principal(request)
    async with refusals_recorded(runtime, who, body["dataset"]):
        plan = await read_plan(runtime, body)
        await enforce_dataset_rate(request, who, runtime.registry.get(plan.dataset))
        answer = await run_query(runtime, who, plan, idempotency_key=idempotency_key,
                                 request_fingerprint=lambda: request_fingerprint(request.path, body))
    return reply(answer)


@route("POST", "/v1/queries/preview", {"requester"}, body="QueryIn", answer="Preview", problems=QUERY_PROBLEMS)
async def post_preview(request: web.Request, body: dict[str, Any]) -> web.Response:
    """What a query would cost and how accurate it would be; spends nothing, bills nothing."""
    runtime = request.app[RUNTIME]
    who = principal(request)
    async with refusals_recorded(runtime, who, body["dataset"]):
        plan = await read_plan(runtime, body)
        await enforce_dataset_rate(request, who, runtime.registry.get(plan.dataset))
        figures = await preview(runtime, who, plan, throttle=lambda: enforce_preview_rate(request, who))
    return web.json_response(figures)


@route("GET", "/v1/budget", {"requester"}, answer="Budget")
async def get_budget(request: web.Request) -> web.Response:
    """The caller's privacy budget this period, per dataset: limit, spent, remaining."""
    runtime = request.app[RUNTIME]
    period = period_of(utc_now(), runtime.settings.zone)
    lines = await ledger_views.budget(runtime, principal(request).org_id, period)
    return web.json_response({"period": period, "datasets": lines})


@route("GET", "/v1/usage", {"requester", "bureau"}, answer="Usage", params=(PERIOD,), paginated=True)
async def get_usage(request: web.Request, period: str | None, page: PageRequest) -> web.Response:
    """Usage records of a month, one per billed call: a requester's own, or everyone's for the bureau."""
    who = principal(request)
    period = period or period_of(utc_now(), request.app[RUNTIME].settings.zone)
    org = None if who.has("bureau") else who.org_id
    found = await ledger_views.usage_page(request.app[RUNTIME], org, period, page)
    return paged(request, found, period=period)


@route("GET", "/v1/audit/entries", {"bureau"}, answer="AuditEntryList", paginated=True)
async def list_audit_entries(request: web.Request, page: PageRequest) -> web.Response:
    """The audit log's entries in chain order: what changed, who did it, and each entry's hash."""
    return paged(request, await ledger_views.audit_entries_page(request.app[RUNTIME], page))


@route("GET", "/v1/queries", {"requester"}, answer="ReleaseList", paginated=True)
async def list_releases(request: web.Request, page: PageRequest) -> web.Response:
    """The caller's stored releases, oldest first: ids, datasets and epsilon, not the values.

    Each one's values are at `/v1/queries/{query_id}`, its signed receipt at `.../receipt`.
    """
    found = await ledger_views.releases_page(request.app[RUNTIME], principal(request).org_id, page)
    return paged(request, found)


@route("GET", "/v1/audit/verify", {"bureau"}, answer="AuditVerdict")
async def get_audit_verify(request: web.Request) -> web.Response:
    """Check the audit log's whole hash chain."""
    verdict = await ledger_views.verify_audit(request.app[RUNTIME])
    return web.json_response(verdict)


@route("GET", "/v1/queries/{query_id}", {"requester"}, answer="Release")
async def get_release(request: web.Request, query_id: str) -> web.Response:
    """One of the caller's stored releases; another requester's answers 404 like a missing one."""
    found = await ledger_views.release(request.app[RUNTIME], principal(request), query_id)
    if found is None:
        raise NotFound("no such release")
    return web.json_response(found)


@route("GET", "/v1/queries/{query_id}/receipt", {"requester"}, answer="Receipt",
       answer_types=("application/jose", JSON), answer_schemas=((JSON, "ReceiptDocument"),))
async def get_receipt(request: web.Request, query_id: str) -> web.Response:
    """A signed receipt for a release: a compact JWS that anyone holding the JWKS can verify.

    The JWS is the body (application/jose), or `{"receipt": JWS}` with `Accept: application/json`.
    """
    jws = await receipts.receipt(request.app[RUNTIME], principal(request), query_id)
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"receipt": jws})
    return web.Response(text=jws, content_type="application/jose")


ROUTES: tuple[Route, ...] = (post_query, post_preview, get_budget, get_usage, list_audit_entries, get_audit_verify,
                             list_releases, get_release, get_receipt)
