"""Applications for access and grants: a requester applies; the source department co-signs or
refuses; the bureau approves or rejects with a reason; grants are listed and revoked."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.web import Page, api_roles, form, page, render, runtime_of, see_other, visit
from gateway.http import applications as api
from gateway.service import applications, products


def _pending_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda a: (a["status"] != "pending", a["created_at"]), reverse=False)


@page("GET", "/applications", api_roles(api.post_application), nav=N_("Applications"))
async def my_applications(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    items = await applications.list_applications(runtime, visit(request).who)
    return render(request, "applications.html", items=list(reversed(items)),
                  datasets=sorted(d for d, s in runtime.registry.status.items() if s != "withdrawn"),
                  products=await products.published(runtime))


@page("POST", "/applications", api_roles(api.post_application))
async def apply(request: web.Request) -> web.Response:
    fields = form(request)
    target = str(fields.get("target", ""))
    kind, _sep, name = target.partition(":")
    until = str(fields.get("valid_until") or "") or None
    await applications.apply(runtime_of(request), visit(request).who, name if kind == "dataset" else None,
                             name if kind == "product" else None, fields.get("purpose"),
                             fields.get("epsilon_per_period"), until)
    return see_other("/console/applications?done=applied")


@page("GET", "/applications/review", api_roles(api.approve_application), nav=N_("Applications to decide"))
async def review(request: web.Request) -> web.Response:
    items = await applications.list_applications(runtime_of(request), visit(request).who)
    return render(request, "review.html", items=_pending_first(items), mode="bureau")


@page("GET", "/applications/cosign", api_roles(api.cosign_application), nav=N_("Applications to co-sign"))
async def cosign_queue(request: web.Request) -> web.Response:
    items = await applications.list_applications(runtime_of(request), visit(request).who)
    return render(request, "review.html", items=_pending_first(items), mode="source")


def _back(request: web.Request) -> str:
    return "/console/applications/review" if visit(request).who.has("bureau") else "/console/applications/cosign"


@page("POST", "/applications/{application_id}/approve", api_roles(api.approve_application))
async def approve(request: web.Request) -> web.Response:
    fields = form(request)
    await applications.approve(runtime_of(request), visit(request).who, request.match_info["application_id"],
                               fields.get("epsilon_per_period") or None, fields.get("valid_until") or None)
    return see_other(_back(request) + "?done=approved")


@page("POST", "/applications/{application_id}/cosign", api_roles(api.cosign_application))
async def cosign(request: web.Request) -> web.Response:
    await applications.cosign(runtime_of(request), visit(request).who, request.match_info["application_id"])
    return see_other(_back(request) + "?done=cosigned")


@page("POST", "/applications/{application_id}/reject", api_roles(api.reject_application))
async def reject(request: web.Request) -> web.Response:
    await applications.reject(runtime_of(request), visit(request).who, request.match_info["application_id"],
                              form(request).get("reason"))
    return see_other(_back(request) + "?done=rejected")


@page("GET", "/grants", api_roles(api.list_grants), nav=N_("Grants"))
async def grants(request: web.Request) -> web.Response:
    items = await applications.list_grants(runtime_of(request), visit(request).who)
    return render(request, "grants.html", items=items,
                  may_revoke=bool(visit(request).who.roles & api.revoke_grant.roles))


@page("POST", "/grants/{grant_id}/revoke", api_roles(api.revoke_grant))
async def revoke(request: web.Request) -> web.Response:
    await applications.revoke_grant(runtime_of(request), visit(request).who, request.match_info["grant_id"],
                                    form(request).get("reason"))
    return see_other("/console/grants?done=revoked")


PAGES: tuple[Page, ...] = (my_applications, apply, review, cosign_queue, approve, cosign, reject, grants, revoke)
