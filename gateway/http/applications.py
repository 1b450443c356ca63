"""Applications for grants, their approval and co-signature, and grants (thin handlers)."""

from __future__ import annotations

from aiohttp import web

from gateway.http.admin import body_of
from gateway.http.keys import RUNTIME
from gateway.http.openapi import api
from gateway.http.routing import Route, principal, route
from gateway.service import applications, contracts

READERS = frozenset({"requester", "bureau", "source"})
DECIDERS = frozenset({"bureau", "source"})


@route("POST", "/v1/applications", {"requester"})
@api(request="ApplicationIn", response="Application", status=201)
async def post_application(request: web.Request) -> web.Response:
    """Apply for a grant on a dataset (ad-hoc queries) or a product, with purpose and budget."""
    body = await body_of(request, ("dataset", "product_id", "purpose", "epsilon_per_period", "valid_until",
                                   "purpose_class"), ("purpose", "epsilon_per_period"))
    made = await applications.apply(request.app[RUNTIME], principal(request), body.get("dataset"),
                                    body.get("product_id"), body["purpose"], body["epsilon_per_period"],
                                    body.get("valid_until"), purpose_class=body.get("purpose_class"))
    return web.json_response(made, status=201)


@route("GET", "/v1/applications", READERS)
@api(response="ApplicationList")
async def list_applications(request: web.Request) -> web.Response:
    """Applications the caller may see: its own, on its datasets, or all (the bureau)."""
    items = await applications.list_applications(request.app[RUNTIME], principal(request))
    return web.json_response({"items": items})


@route("GET", "/v1/applications/{application_id}", READERS)
@api(response="Application")
async def get_application(request: web.Request) -> web.Response:
    """One application; another requester's answers 404 like a missing one."""
    app = await applications.visible_application(request.app[RUNTIME], principal(request),
                                                 request.match_info["application_id"])
    return web.json_response(app.as_dict())


@route("POST", "/v1/applications/{application_id}/approve", {"bureau"})
@api(request="ApprovalIn", response="Application")
async def approve_application(request: web.Request) -> web.Response:
    """The bureau approves, possibly with a smaller budget, an expiry or a corrected purpose class."""
    body = (await body_of(request, ("epsilon_per_period", "valid_until", "purpose_class"))
            if request.can_read_body else {})
    done = await applications.approve(request.app[RUNTIME], principal(request), request.match_info["application_id"],
                                      body.get("epsilon_per_period"), body.get("valid_until"),
                                      purpose_class=body.get("purpose_class"))
    return web.json_response(done)


@route("POST", "/v1/applications/{application_id}/cosign", {"source"})
@api(response="Application")
async def cosign_application(request: web.Request) -> web.Response:
    """The owning source department co-signs, before or after the bureau approves."""
    done = await applications.cosign(request.app[RUNTIME], principal(request), request.match_info["application_id"])
    return web.json_response(done)


@route("POST", "/v1/applications/{application_id}/reject", DECIDERS)
@api(request="ReasonRequired", response="Application")
async def reject_application(request: web.Request) -> web.Response:
    """The bureau, or the owning source department, rejects with a reason."""
    body = await body_of(request, ("reason",), ("reason",))
    done = await applications.reject(request.app[RUNTIME], principal(request), request.match_info["application_id"],
                                     body["reason"])
    return web.json_response(done)


@route("GET", "/v1/grants", READERS)
@api(response="GrantList")
async def list_grants(request: web.Request) -> web.Response:
    """Grants the caller may see, with their status (active, expired, revoked, ended)."""
    return web.json_response({"items": await applications.list_grants(request.app[RUNTIME], principal(request))})


@route("GET", "/v1/grants/{grant_id}", READERS)
@api(response="Grant")
async def get_grant(request: web.Request) -> web.Response:
    """One grant; another requester's answers 404 like a missing one."""
    return web.json_response(await applications.get_grant(request.app[RUNTIME], principal(request),
                                                          request.match_info["grant_id"]))


@route("GET", "/v1/grants/{grant_id}/odrl", READERS)
@api(response="OdrlAgreement", response_type="application/ld+json")
async def get_grant_odrl(request: web.Request) -> web.Response:
    """The grant as an ODRL 2.2 Agreement in JSON-LD (its holder, the source department, the bureau)."""
    base = f"{request.scheme}://{request.host}"
    doc = await contracts.grant_agreement(request.app[RUNTIME], principal(request), request.match_info["grant_id"],
                                          base)
    return web.json_response(doc, content_type="application/ld+json")


@route("POST", "/v1/grants/{grant_id}/revoke", DECIDERS)
@api(request="ReasonRequired", response="Grant")
async def revoke_grant(request: web.Request) -> web.Response:
    """Revoke a grant (the bureau, or the owning source department); effective at the next call."""
    body = await body_of(request, ("reason",), ("reason",))
    done = await applications.revoke_grant(request.app[RUNTIME], principal(request), request.match_info["grant_id"],
                                           body["reason"])
    return web.json_response(done)


ROUTES: tuple[Route, ...] = (
    post_application, list_applications, get_application, approve_application, cosign_application,
    get_grant_odrl,
    reject_application, list_grants, get_grant, revoke_grant,
)
