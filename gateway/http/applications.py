"""Applications for grants, their approval and co-signature, and grants (thin handlers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.routing import Route, principal, route
from gateway.service import applications, contracts

READERS = frozenset({"requester", "bureau", "source"})
DECIDERS = frozenset({"bureau", "source"})


@route("POST", "/v1/applications", {"requester"}, body="ApplicationIn", answer="Application", status=201,
       problems=(404, 409, 410, 422))
async def post_application(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Apply for a grant on a dataset (ad-hoc queries) or a product, with purpose and budget."""
    made = await applications.apply(request.app[RUNTIME], principal(request), body.get("dataset"),
                                    body.get("product_id"), body["purpose"], body["epsilon_per_period"],
                                    body.get("valid_until"), purpose_class=body.get("purpose_class"))
    return web.json_response(made, status=201)


@route("GET", "/v1/applications", READERS, answer="ApplicationList", paginated=True)
async def list_applications(request: web.Request, page: PageRequest) -> web.Response:
    """Applications the caller may see: its own, on its datasets, or all (the bureau); oldest first."""
    return paged(request, await applications.applications_page(request.app[RUNTIME], principal(request), page))


@route("GET", "/v1/applications/{application_id}", READERS, answer="Application")
async def get_application(request: web.Request, application_id: str) -> web.Response:
    """One application; another requester's answers 404 like a missing one."""
    app = await applications.visible_application(request.app[RUNTIME], principal(request), application_id)
    return web.json_response(app.as_dict())


@route("POST", "/v1/applications/{application_id}/approve", {"bureau"}, body="ApprovalIn", body_optional=True,
       answer="Application", problems=(409,))
async def approve_application(request: web.Request, application_id: str, body: dict[str, Any]) -> web.Response:
    """The bureau approves, possibly with a smaller budget, an expiry or a corrected purpose class, under
    an authorisation agreement (named, or the one in force covering it; 409 when none does)."""
    done = await applications.approve(request.app[RUNTIME], principal(request), application_id,
                                      body.get("epsilon_per_period"), body.get("valid_until"),
                                      purpose_class=body.get("purpose_class"), agreement_id=body.get("agreement_id"))
    return web.json_response(done)


@route("POST", "/v1/applications/{application_id}/cosign", {"source"}, answer="Application", problems=(409,))
async def cosign_application(request: web.Request, application_id: str) -> web.Response:
    """The owning source department co-signs, before or after the bureau approves."""
    done = await applications.cosign(request.app[RUNTIME], principal(request), application_id)
    return web.json_response(done)


@route("POST", "/v1/applications/{application_id}/reject", DECIDERS, body="ReasonRequired", answer="Application",
       problems=(409,))
async def reject_application(request: web.Request, application_id: str, body: dict[str, Any]) -> web.Response:
    """The bureau, or the owning source department, rejects with a reason."""
    done = await applications.reject(request.app[RUNTIME], principal(request), application_id, body["reason"])
    return web.json_response(done)


@route("GET", "/v1/grants", READERS, answer="GrantList", paginated=True)
async def list_grants(request: web.Request, page: PageRequest) -> web.Response:
    """Grants the caller may see, with their status (active, expired, revoked, ended); oldest first."""
    return paged(request, await applications.grants_page(request.app[RUNTIME], principal(request), page))


@route("GET", "/v1/grants/{grant_id}", READERS, answer="Grant")
async def get_grant(request: web.Request, grant_id: str) -> web.Response:
    """One grant; another requester's answers 404 like a missing one."""
    return web.json_response(await applications.get_grant(request.app[RUNTIME], principal(request), grant_id))


@route("GET", "/v1/grants/{grant_id}/odrl", READERS, answer="OdrlAgreement", answer_types=("application/ld+json",))
async def get_grant_odrl(request: web.Request, grant_id: str) -> web.Response:
    """The grant as an ODRL 2.2 Agreement in JSON-LD (its holder, the source department, the bureau)."""
    base = f"{request.scheme}://{request.host}"
    doc = await contracts.grant_agreement(request.app[RUNTIME], principal(request), grant_id, base)
    return web.json_response(doc, content_type="application/ld+json")


@route("POST", "/v1/grants/{grant_id}/revoke", DECIDERS, body="ReasonRequired", answer="Grant", problems=(409,))
async def revoke_grant(request: web.Request, grant_id: str, body: dict[str, Any]) -> web.Response:
    """Revoke a grant (the bureau, or the owning source department); effective at the next call."""
    done = await applications.revoke_grant(request.app[RUNTIME], principal(request), grant_id, body["reason"])
    return web.json_response(done)


ROUTES: tuple[Route, ...] = (
    post_application, list_applications, get_application, approve_application, cosign_application,
    get_grant_odrl,
    reject_application, list_grants, get_grant, revoke_grant,
)
