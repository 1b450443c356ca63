"""Authorisation agreements: recorded and ended by the bureau, read by it and the source
departments whose datasets they cover (thin handlers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.routing import Route, principal, route
from gateway.service import agreements

BUREAU = frozenset({"bureau"})
READERS = frozenset({"bureau", "source"})


@route("POST", "/v1/agreements", BUREAU, body="AgreementIn", answer="Agreement", status=201)
async def post_agreement(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Record an authorisation agreement (授权运营协议): authorising body, operator, datasets and products
    in scope, term, duties, exit terms and the signed document's SHA-256. Grants and products stand on one."""
    made = await agreements.create(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


@route("GET", "/v1/agreements", READERS, answer="AgreementList", paginated=True)
async def list_agreements(request: web.Request, page: PageRequest) -> web.Response:
    """Agreements the caller may see (a source department: those covering its datasets); oldest first."""
    return paged(request, await agreements.agreements_page(request.app[RUNTIME], principal(request), page))


@route("GET", "/v1/agreements/{agreement_id}", READERS, answer="Agreement")
async def get_agreement(request: web.Request, agreement_id: str) -> web.Response:
    """One agreement; one the caller may not see answers 404 like a missing one."""
    return web.json_response(await agreements.get(request.app[RUNTIME], principal(request), agreement_id))


@route("POST", "/v1/agreements/{agreement_id}/end", BUREAU, body="ReasonRequired", answer="Agreement",
       problems=(409,))
async def end_agreement(request: web.Request, agreement_id: str, body: dict[str, Any]) -> web.Response:
    """End an agreement for good: the grants standing on it end, its pending applications close and its
    products stop, from the next request (the same rule as a dataset withdrawal)."""
    done = await agreements.end(request.app[RUNTIME], principal(request), agreement_id, body["reason"])
    return web.json_response(done)


ROUTES: tuple[Route, ...] = (post_agreement, list_agreements, get_agreement, end_agreement)
