"""The bureau's administration: requesters and clients, dataset status, policies (thin handlers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import InvalidRequest, UnsupportedMediaType
from gateway.http.body import json_object, only_fields, read_body
from gateway.http.keys import RUNTIME
from gateway.http.openapi import api
from gateway.http.routing import ANY_ROLE, Route, principal, route
from gateway.service import circulation, requesters

BUREAU = frozenset({"bureau"})
MANAGERS = frozenset({"bureau", "source"})
POLICY_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/json")
NO_STORE = {"Cache-Control": "no-store"}


async def body_of(request: web.Request, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
    body = await json_object(request, max_bytes=request.app[RUNTIME].settings.max_body_bytes)
    only_fields(body, allowed, required)
    return body


async def reason_of(request: web.Request) -> str:
    """An optional `{"reason": ...}` body; an empty body is fine."""
    if not request.can_read_body:
        return ""
    body = await body_of(request, ("reason",))
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 2000:
        raise InvalidRequest("reason must be text of at most 2000 characters")
    return reason


# ---------------------------------------------------------------- requesters and clients


@route("POST", "/v1/requesters", BUREAU)
@api(request="OrgIn", response="Org", status=201)
async def register_requester(request: web.Request) -> web.Response:
    """Register a requester (or merchant) organisation."""
    body = await body_of(request, ("org_id", "name", "kind"), ("org_id", "name"))
    org = await requesters.register(request.app[RUNTIME], principal(request), body["org_id"], body["name"],
                                    body.get("kind", "requester"))
    return web.json_response(org, status=201)


@route("GET", "/v1/requesters", BUREAU)
@api(response="OrgList")
async def list_requesters(request: web.Request) -> web.Response:
    """Registered requester and merchant organisations with their clients."""
    return web.json_response({"items": await requesters.list_orgs(request.app[RUNTIME])})


@route("GET", "/v1/requesters/{org_id}", BUREAU)
@api(response="Org")
async def get_requester(request: web.Request) -> web.Response:
    """One registered organisation with its clients."""
    return web.json_response(await requesters.get_org(request.app[RUNTIME], request.match_info["org_id"]))


@route("POST", "/v1/requesters/{org_id}/clients", BUREAU)
@api(request="ClientIn", response="ClientSecret", status=201)
async def create_client(request: web.Request) -> web.Response:
    """A new client of the organisation; its secret is in this answer only."""
    body = await body_of(request, ("client_id",), ("client_id",))
    made = await requesters.create_client(request.app[RUNTIME], principal(request), request.match_info["org_id"],
                                          body["client_id"])
    return web.json_response(made, status=201, headers=NO_STORE)


@route("POST", "/v1/requesters/{org_id}/suspend", BUREAU)
@api(request="Reason", response="Org")
async def suspend_requester(request: web.Request) -> web.Response:
    """Suspend an organisation: its clients are refused from the next request, tokens or not."""
    org = await requesters.set_org_status(request.app[RUNTIME], principal(request), request.match_info["org_id"],
                                          "suspended", await reason_of(request))
    return web.json_response(org)


@route("POST", "/v1/requesters/{org_id}/reinstate", BUREAU)
@api(request="Reason", response="Org")
async def reinstate_requester(request: web.Request) -> web.Response:
    """Reinstate a suspended organisation."""
    org = await requesters.set_org_status(request.app[RUNTIME], principal(request), request.match_info["org_id"],
                                          "active", await reason_of(request))
    return web.json_response(org)


@route("POST", "/v1/clients/{client_id}/secret", ANY_ROLE)
@api(response="ClientSecret")
async def rotate_client_secret(request: web.Request) -> web.Response:
    """Rotate a client's secret (the bureau any client, an organisation its own); shown once."""
    made = await requesters.rotate_secret(request.app[RUNTIME], principal(request), request.match_info["client_id"])
    return web.json_response(made, headers=NO_STORE)


async def _client_status(request: web.Request, status: str) -> web.Response:
    row = await requesters.set_client_status(request.app[RUNTIME], principal(request),
                                             request.match_info["client_id"], status, await reason_of(request))
    return web.json_response(row)


@route("POST", "/v1/clients/{client_id}/suspend", ANY_ROLE)
@api(request="Reason", response="Client")
async def suspend_client(request: web.Request) -> web.Response:
    """Suspend one client of any kind (the bureau any client, an organisation its own; never itself):
    refused from its next request, tokens or not."""
    return await _client_status(request, "suspended")


@route("POST", "/v1/clients/{client_id}/reinstate", ANY_ROLE)
@api(request="Reason", response="Client")
async def reinstate_client(request: web.Request) -> web.Response:
    """Reinstate (resume) one client (the bureau any client, an organisation its own)."""
    return await _client_status(request, "active")


@route("POST", "/v1/clients/{client_id}/resume", ANY_ROLE)
@api(request="Reason", response="Client")
async def resume_client(request: web.Request) -> web.Response:
    """Resume one client: the same as `/reinstate`."""
    return await _client_status(request, "active")


# ---------------------------------------------------------------- datasets


async def _status(request: web.Request, action: str) -> web.Response:
    result = await circulation.change_status(request.app[RUNTIME], principal(request),
                                             request.match_info["dataset"], action)
    return web.json_response(result)


@route("POST", "/v1/datasets/{dataset}/suspend", MANAGERS)
@api(response="DatasetStatus")
async def suspend_dataset(request: web.Request) -> web.Response:
    """Suspend a dataset (the bureau, or its source department): queries answer 409."""
    return await _status(request, "suspend")


@route("POST", "/v1/datasets/{dataset}/resume", MANAGERS)
@api(response="DatasetStatus")
async def resume_dataset(request: web.Request) -> web.Response:
    """Resume a suspended dataset."""
    return await _status(request, "resume")


@route("POST", "/v1/datasets/{dataset}/withdraw", MANAGERS)
@api(response="DatasetStatus")
async def withdraw_dataset(request: web.Request) -> web.Response:
    """Withdraw a dataset for good: queries answer 410, products stop, grants on it end."""
    return await _status(request, "withdraw")


@route("GET", "/v1/datasets/{dataset}/policy", MANAGERS)
@api(response="PolicyCurrent")
async def get_policy(request: web.Request) -> web.Response:
    """The policy in force and the versions kept for the record."""
    found = await circulation.current_policy(request.app[RUNTIME], principal(request), request.match_info["dataset"])
    return web.json_response(found)


@route("PUT", "/v1/datasets/{dataset}/policy", BUREAU)
@api(request="PolicyText", response="PolicyChange", query=("dry_run",))
async def put_policy(request: web.Request) -> web.Response:
    """Publish a new policy version (YAML or JSON); `?dry_run=true` only shows the difference."""
    if request.content_type not in POLICY_TYPES:
        raise UnsupportedMediaType("send the policy as application/yaml or application/json")
    runtime = request.app[RUNTIME]
    raw = await read_body(request, max_bytes=runtime.settings.max_body_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    dry_run = request.query.get("dry_run", "false").lower() in ("1", "true", "yes")
    result = await circulation.publish_policy(runtime, principal(request), request.match_info["dataset"], text,
                                              dry_run)
    return web.json_response(result)


ROUTES: tuple[Route, ...] = (
    register_requester, list_requesters, get_requester, create_client, suspend_requester, reinstate_requester,
    rotate_client_secret, suspend_client, reinstate_client, resume_client,
    suspend_dataset, resume_dataset, withdraw_dataset, get_policy, put_policy,
)
