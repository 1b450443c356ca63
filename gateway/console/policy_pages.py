"""Policies: the bureau reads a dataset's policy, edits it, sees every located problem or the
difference, and only then publishes (the API's PUT /v1/datasets/{id}/policy path)."""

from __future__ import annotations

import yaml
from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.web import Page, api_roles, form, page, render, runtime_of, see_other, visit
from gateway.errors import InvalidRequest, Unprocessable
from gateway.http import admin
from gateway.service import circulation

READERS = api_roles(admin.get_policy)
EDITORS = api_roles(admin.put_policy)


@page("GET", "/policies", EDITORS, nav=N_("Policies"))
async def policies(request: web.Request) -> web.Response:
    registry = runtime_of(request).registry
    items = [{"dataset": d, "version": p.version, "owner": p.owner, "status": registry.status.get(d, "active")}
             for d, p in sorted(registry.policies.items())]
    return render(request, "policies.html", items=items)


def _yaml(document: object) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


@page("GET", "/policies/{dataset}", READERS)
async def policy(request: web.Request) -> web.Response:
    found = await circulation.current_policy(runtime_of(request), visit(request).who, request.match_info["dataset"])
    return render(request, "policy.html", found=found, text=_yaml(found["document"]), outcome=None, problems=[],
                  may_edit=bool(visit(request).who.roles & EDITORS))


def _text(request: web.Request) -> str:
    text = form(request).get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest("the policy text is empty")
    return text.replace("\r\n", "\n")


async def _check(request: web.Request, dry_run: bool) -> tuple[dict[str, object] | None, list[dict[str, object]]]:
    runtime, who, dataset = runtime_of(request), visit(request).who, request.match_info["dataset"]
    try:
        return await circulation.publish_policy(runtime, who, dataset, _text(request), dry_run), []
    except Unprocessable as exc:
        return None, list(exc.extra.get("problems", []))


@page("POST", "/policies/{dataset}/check", EDITORS)
async def check(request: web.Request) -> web.Response:
    """Validate and show the difference; nothing is published (problems are audited)."""
    outcome, problems = await _check(request, dry_run=True)
    found = await circulation.current_policy(runtime_of(request), visit(request).who, request.match_info["dataset"])
    return render(request, "policy.html", status=422 if problems else 200, found=found, text=_text(request),
                  outcome=outcome, problems=problems, may_edit=True)


@page("POST", "/policies/{dataset}/publish", EDITORS)
async def publish(request: web.Request) -> web.Response:
    _outcome, problems = await _check(request, dry_run=False)
    if problems:
        found = await circulation.current_policy(runtime_of(request), visit(request).who,
                                                 request.match_info["dataset"])
        return render(request, "policy.html", status=422, found=found, text=_text(request), outcome=None,
                      problems=problems, may_edit=True)
    return see_other(f"/console/policies/{request.match_info['dataset']}?done=published")


PAGES: tuple[Page, ...] = (policies, policy, check, publish)
