"""The bureau's administration: requesters and clients, dataset status, policies (thin handlers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.errors import InvalidRequest, UnsupportedMediaType
from gateway.http.body import read_body
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.params import DRY_RUN
from gateway.http.reasons import REASON, reason_of
from gateway.http.routing import ANY_ROLE, Route, principal, route
from gateway.service import circulation, requesters

BUREAU = frozenset({"bureau"})
MANAGERS = frozenset({"bureau", "source"})
# Organisations that register with the bureau create further clients of their own.
SELF_SERVICE = frozenset({"requester", "merchant"})
POLICY_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/json")
NO_STORE = {"Cache-Control": "no-store"}


# ---------------------------------------------------------------- requesters and clients


@route("POST", "/v1/requesters", BUREAU, body="OrgIn", answer="Org", status=201, problems=(409,))
async def register_requester(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Register a requester (or merchant) organisation."""
    org = await requesters.register(request.app[RUNTIME], principal(request), body["org_id"], body["name"],
                                    body.get("kind", "requester"))
    return web.json_response(org, status=201)


@route("GET", "/v1/requesters", BUREAU, answer="OrgList", paginated=True)
async def list_requesters(request: web.Request, page: PageRequest) -> web.Response:
    """Registered requester and merchant organisations with their clients, by id."""
    return paged(request, await requesters.orgs_page(request.app[RUNTIME], page))


@route("GET", "/v1/requesters/{org_id}", BUREAU, answer="Org")
async def get_requester(request: web.Request, org_id: str) -> web.Response:
    """One registered organisation with its clients."""
    return web.json_response(await requesters.get_org(request.app[RUNTIME], org_id))


@route("POST", "/v1/requesters/{org_id}/clients", BUREAU, body="ClientIn", answer="ClientSecret", status=201,
       problems=(409,))
async def create_client(request: web.Request, org_id: str, body: dict[str, Any]) -> web.Response:
    """A new client of the organisation; its secret is in this answer only."""
    made = await requesters.create_client(request.app[RUNTIME], principal(request), org_id, body["client_id"])
    return web.json_response(made, status=201, headers=NO_STORE)


@route("POST", "/v1/clients", SELF_SERVICE, body="ClientIn", answer="ClientSecret", status=201, problems=(409,))
async def create_own_client(request: web.Request, body: dict[str, Any]) -> web.Response:
    """A new client of the caller's own organisation (a requester or merchant), with the
    organisation's one role; its secret is in this answer only."""
    who = principal(request)
    made = await requesters.create_client(request.app[RUNTIME], who, who.org_id, body["client_id"])
    return web.json_response(made, status=201, headers=NO_STORE)


@route("POST", "/v1/requesters/{org_id}/suspend", BUREAU, **REASON, answer="Org")
async def suspend_requester(request: web.Request, org_id: str, body: dict[str, Any]) -> web.Response:
    """Suspend an organisation: its clients are refused from the next request, tokens or not."""
    org = await requesters.set_org_status(request.app[RUNTIME], principal(request), org_id, "suspended",
                                          reason_of(body))
    return web.json_response(org)


@route("POST", "/v1/requesters/{org_id}/reinstate", BUREAU, **REASON, answer="Org")
async def reinstate_requester(request: web.Request, org_id: str, body: dict[str, Any]) -> web.Response:
    """Reinstate a suspended organisation."""
    org = await requesters.set_org_status(request.app[RUNTIME], principal(request), org_id, "active",
                                          reason_of(body))
    return web.json_response(org)


@route("POST", "/v1/clients/{client_id}/secret", ANY_ROLE, answer="ClientSecret")
async def rotate_client_secret(request: web.Request, client_id: str) -> web.Response:
    """Rotate a client's secret (the bureau any client, an organisation its own); shown once."""
    made = await requesters.rotate_secret(request.app[RUNTIME], principal(request), client_id)
    return web.json_response(made, headers=NO_STORE)


async def _client_status(request: web.Request, client_id: str, status: str, body: dict[str, Any]) -> web.Response:
    row = await requesters.set_client_status(request.app[RUNTIME], principal(request), client_id, status,
                                             reason_of(body))
    return web.json_response(row)


@route("POST", "/v1/clients/{client_id}/suspend", ANY_ROLE, **REASON, answer="Client", problems=(409,))
async def suspend_client(request: web.Request, client_id: str, body: dict[str, Any]) -> web.Response:
    """Suspend one client of any kind (the bureau any client, an organisation its own; never itself):
    refused from its next request, tokens or not."""
    return await _client_status(request, client_id, "suspended", body)


@route("POST", "/v1/clients/{client_id}/reinstate", ANY_ROLE, **REASON, answer="Client", problems=(409,))
async def reinstate_client(request: web.Request, client_id: str, body: dict[str, Any]) -> web.Response:
    """Reinstate (resume) one client (the bureau any client, an organisation its own)."""
    return await _client_status(request, client_id, "active", body)


@route("POST", "/v1/clients/{client_id}/resume", ANY_ROLE, **REASON, answer="Client", problems=(409,))
async def resume_client(request: web.Request, client_id: str, body: dict[str, Any]) -> web.Response:
    """Resume one client: the same as `/reinstate`."""
    return await _client_status(request, client_id, "active", body)


# ---------------------------------------------------------------- datasets


async def _status(request: web.Request, dataset: str, action: str) -> web.Response:
    result = await circulation.change_status(request.app[RUNTIME], principal(request), dataset, action)
    return web.json_response(result)


@route("POST", "/v1/datasets/{dataset}/suspend", MANAGERS, answer="DatasetStatusChange", problems=(409, 410))
async def suspend_dataset(request: web.Request, dataset: str) -> web.Response:
    """Suspend a dataset (the bureau, or its source department): queries answer 409."""
    return await _status(request, dataset, "suspend")


@route("POST", "/v1/datasets/{dataset}/resume", MANAGERS, answer="DatasetStatusChange", problems=(409, 410))
async def resume_dataset(request: web.Request, dataset: str) -> web.Response:
    """Resume a suspended dataset."""
    return await _status(request, dataset, "resume")


@route("POST", "/v1/datasets/{dataset}/withdraw", MANAGERS, answer="DatasetStatusChange", problems=(409, 410))
async def withdraw_dataset(request: web.Request, dataset: str) -> web.Response:
    """Withdraw a dataset for good: queries answer 410, products stop, grants on it end."""
    return await _status(request, dataset, "withdraw")


@route("GET", "/v1/datasets/{dataset}/policy", MANAGERS, answer="PolicyCurrent")
async def get_policy(request: web.Request, dataset: str) -> web.Response:
    """The policy in force and the versions kept for the record."""
    found = await circulation.current_policy(request.app[RUNTIME], principal(request), dataset)
    return web.json_response(found)


@route("PUT", "/v1/datasets/{dataset}/policy", BUREAU, body="PolicyText", body_types=POLICY_TYPES,
       answer="PolicyChange", params=(DRY_RUN,), problems=(413, 415, 422))
async def put_policy(request: web.Request, dataset: str, dry_run: bool) -> web.Response:
    """Publish a new policy version (YAML or JSON); `?dry_run=true` only shows the difference."""
    if request.content_type not in POLICY_TYPES:
        raise UnsupportedMediaType("send the policy as application/yaml or application/json")
    runtime = request.app[RUNTIME]
    raw = await read_body(request, max_bytes=runtime.settings.max_body_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8") from None
    result = await circulation.publish_policy(runtime, principal(request), dataset, text, dry_run)
    return web.json_response(result)


ROUTES: tuple[Route, ...] = (
    register_requester, list_requesters, get_requester, create_client, create_own_client, suspend_requester,
    reinstate_requester,
    rotate_client_secret, suspend_client, reinstate_client, resume_client,
    suspend_dataset, resume_dataset, withdraw_dataset, get_policy, put_policy,
)
