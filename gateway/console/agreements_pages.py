"""The bureau's page of authorisation agreements: the list, a form to record one, and an end action
(a source department reads those covering its datasets)."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.web import Page, api_roles, form, page, render, runtime_of, see_other, visit
from gateway.http import agreements as api
from gateway.service import agreements


def _ids(text: str | None) -> list[str]:
    """Ids typed into one field, separated by commas or spaces."""
    return [part for part in re.split(r"[\s,，]+", text or "") if part]


@page("GET", "/agreements", api_roles(api.list_agreements), nav=N_("Authorisation agreements"))
async def list_page(request: web.Request) -> web.Response:
    runtime, who = runtime_of(request), visit(request).who
    items = await agreements.list_agreements(runtime, who)
    return render(request, "agreements.html", items=items, may_record=bool(who.roles & api.post_agreement.roles),
                  datasets=sorted(runtime.registry.policies))


@page("POST", "/agreements", api_roles(api.post_agreement))
async def record(request: web.Request) -> web.Response:
    fields = form(request)
    body = {name: fields.get(name) for name in ("authorising_body", "operator", "starts_on", "ends_on", "duties",
                                                "exit_terms", "document_sha256")}
    body["datasets"], body["product_ids"] = fields.getall("datasets", []), _ids(fields.get("product_ids"))
    await agreements.create(runtime_of(request), visit(request).who, body)
    return see_other("/console/agreements?done=recorded")


@page("POST", "/agreements/{agreement_id}/end", api_roles(api.end_agreement))
async def end(request: web.Request) -> web.Response:
    await agreements.end(runtime_of(request), visit(request).who, request.match_info["agreement_id"],
                         form(request).get("reason"))
    return see_other("/console/agreements?done=ended")


PAGES: tuple[Page, ...] = (list_page, record, end)
