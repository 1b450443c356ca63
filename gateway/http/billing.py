"""Invoices (JSON or CSV), revenue statements and credit notes (thin handlers)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.core.settlement import settled_csv
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.params import IDEMPOTENCY_KEY
from gateway.http.replies import wants_csv
from gateway.http.routing import JSON, Route, principal, route
from gateway.service import billing, credits
from gateway.service.admission import request_fingerprint
from gateway.service.answers import REPLAYED

PARTIES = frozenset({"bureau", "source", "merchant"})


@route("GET", "/v1/invoices", {"requester"}, answer="InvoiceList", paginated=True)
async def list_invoices(request: web.Request, page: PageRequest) -> web.Response:
    """The caller's invoices of closed months, newest first, with their totals.

    The month still open is not listed: its invoice, growing with every billed call, is at
    `/v1/invoices/{period}` like any other.
    """
    return paged(request, await billing.invoices_page(request.app[RUNTIME], principal(request).org_id, page))


@route("GET", "/v1/invoices/{period}", {"requester"}, answer="Invoice", answer_types=(JSON, "text/csv"))
async def get_invoice(request: web.Request, period: str) -> web.Response:
    """The caller's invoice for a month; `Accept: text/csv` for CSV. Closed months never change."""
    body = await billing.invoice(request.app[RUNTIME], principal(request).org_id, period)
    if wants_csv(request):
        return web.Response(body=settled_csv(json.loads(body)), content_type="text/csv", charset="utf-8")
    return web.Response(body=body, content_type="application/json")


@route("GET", "/v1/revenue/{period}", PARTIES, answer="RevenueStatements")
async def get_revenue(request: web.Request, period: str) -> web.Response:
    """Revenue statements for a month: every party for the bureau, one's own for the others."""
    doc = await billing.statements(request.app[RUNTIME], principal(request), period)
    return web.json_response(doc)


@route("POST", "/v1/credit-notes", {"bureau"}, body="CreditNoteIn", answer="CreditNote", status=201,
       params=(IDEMPOTENCY_KEY,), problems=(404, 409, 422), headers=("Idempotent-Replayed",))
async def post_credit_note(request: web.Request, body: dict[str, Any], idempotency_key: str | None) -> web.Response:
    """Credit invoiced usage (named by id or by invoice line) on the requester's invoice now open."""
    issued = await credits.issue_credit(request.app[RUNTIME], principal(request), body, idempotency_key,
                                        request_fingerprint(request.path, body))
    return web.Response(status=issued.status, body=issued.body, content_type="application/json",
                        headers=REPLAYED if issued.replayed else None)


ROUTES: tuple[Route, ...] = (list_invoices, get_invoice, get_revenue, post_credit_note)
