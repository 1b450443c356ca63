"""Invoices (JSON or CSV), revenue statements and credit notes (thin handlers)."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.core.settlement import settled_csv
from gateway.http.admin import body_of
from gateway.http.keys import RUNTIME
from gateway.http.openapi import api
from gateway.http.queries import idempotency_key
from gateway.http.routing import Route, principal, route
from gateway.service import billing, credits
from gateway.service.admission import request_fingerprint
from gateway.service.answers import REPLAYED

PARTIES = frozenset({"bureau", "source", "merchant"})


def wants_csv(request: web.Request) -> bool:
    """`Accept: text/csv`, unless JSON is listed before it."""
    kinds = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    if "text/csv" not in kinds:
        return False
    return "application/json" not in kinds or kinds.index("text/csv") < kinds.index("application/json")


@route("GET", "/v1/invoices/{period}", {"requester"})
@api(response="Invoice", alternatives=("text/csv",))
async def get_invoice(request: web.Request) -> web.Response:
    """The caller's invoice for a month; `Accept: text/csv` for CSV. Closed months never change."""
    body = await billing.invoice(request.app[RUNTIME], principal(request).org_id, request.match_info["period"])
    if wants_csv(request):
        return web.Response(body=settled_csv(json.loads(body)), content_type="text/csv", charset="utf-8")
    return web.Response(body=body, content_type="application/json")


@route("GET", "/v1/revenue/{period}", PARTIES)
@api(response="RevenueStatements")
async def get_revenue(request: web.Request) -> web.Response:
    """Revenue statements for a month: every party for the bureau, one's own for the others."""
    doc = await billing.statements(request.app[RUNTIME], principal(request), request.match_info["period"])
    return web.json_response(doc)


@route("POST", "/v1/credit-notes", {"bureau"})
@api(request="CreditNoteIn", response="CreditNote", status=201, headers=("Idempotency-Key",))
async def post_credit_note(request: web.Request) -> web.Response:
    """Credit invoiced usage (named by id or by invoice line) on the requester's invoice now open."""
    key = idempotency_key(request)
    body = await body_of(request, credits.FIELDS, ("org_id", "reason"))
    issued = await credits.issue_credit(request.app[RUNTIME], principal(request), body, key,
                                        request_fingerprint(request.path, body))
    return web.Response(status=issued.status, body=issued.body, content_type="application/json",
                        headers=REPLAYED if issued.replayed else None)


ROUTES: tuple[Route, ...] = (get_invoice, get_revenue, post_credit_note)
