"""Registering requester (and merchant) organisations and their clients; suspending them.

A secret is shown once, when a client is created or its secret rotated; the store keeps only
its scrypt hash. A suspension is in the store at once and in this replica's view of active
clients before the call returns; other replicas pick it up at their next poll (R-AU-05).

Every client of every kind (requester, merchant, source department, bureau, ops) can be
suspended, resumed and rotated (issue 19 point 4): by the bureau for any client, by an
organisation for its own. No client suspends itself, so the bureau's own clients are stopped by
a second bureau client or from the command line (`gateway client suspend`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from gateway.auth.secrets import hash_secret, new_secret
from gateway.auth.tokens import Principal
from gateway.core.pages import Page, PageRequest
from gateway.errors import Conflict, InvalidRequest, NotFound
from gateway.runtime.parts import Runtime
from gateway.service.visibility import visible
from gateway.store import identity, requesters
from gateway.store.db import Tx

ORG_ID = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
REGISTRABLE_KINDS = ("requester", "merchant")


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ORG_ID.match(value):
        raise InvalidRequest(f"{what} must match {ORG_ID.pattern}")
    return value


def _org_view(org: requesters.Org, clients: list[requesters.ClientRow]) -> dict[str, Any]:
    return {"org_id": org.org_id, "name": org.name, "kind": org.kind, "status": org.status,
            "created_at": org.created_at, "clients": [c.as_dict() for c in clients]}


def _org_with_clients(tx: Tx, org_id: str) -> dict[str, Any] | None:
    org = requesters.get_org(tx, org_id)
    if org is None or org.kind not in REGISTRABLE_KINDS:
        return None
    return _org_view(org, requesters.clients_of(tx, org_id))


async def register(runtime: Runtime, who: Principal, org_id: Any, name: Any, kind: Any) -> dict[str, Any]:
    _check_id(org_id, "org_id")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise InvalidRequest("name must be text of 1 to 200 characters")
    if kind not in REGISTRABLE_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(REGISTRABLE_KINDS)}")
    org = await runtime.store.write(requesters.register_org, org_id, name, kind, who.client_id)
    return _org_view(org, [])


async def list_orgs(runtime: Runtime) -> list[dict[str, Any]]:
    def read(tx: Tx) -> list[dict[str, Any]]:
        return [_org_view(o, requesters.clients_of(tx, o.org_id))
                for o in requesters.list_orgs(tx, REGISTRABLE_KINDS)]
    return await runtime.store.read(read)


async def orgs_page(runtime: Runtime, page: PageRequest) -> Page[dict[str, Any]]:
    """One page of `list_orgs`, by id."""
    def read(tx: Tx) -> Page[dict[str, Any]]:
        return requesters.orgs_page(tx, REGISTRABLE_KINDS, page).map(
            lambda o: _org_view(o, requesters.clients_of(tx, o.org_id)))
    return await runtime.store.read(read)


async def get_org(runtime: Runtime, org_id: str) -> dict[str, Any]:
    found = await runtime.store.read(_org_with_clients, org_id)
    if found is None:
        raise NotFound("no such organisation")
    return found


async def own_org(runtime: Runtime, who: Principal) -> dict[str, Any]:
    """The caller's own organisation with its clients, whatever its kind (each manages its own)."""
    def read(tx: Tx) -> dict[str, Any] | None:
        org = requesters.get_org(tx, who.org_id)
        return _org_view(org, requesters.clients_of(tx, org.org_id)) if org else None
    found = await runtime.store.read(read)
    if found is None:
        raise NotFound("no such organisation")
    return found


async def create_client(runtime: Runtime, who: Principal, org_id: str, client_id: Any) -> dict[str, Any]:
    """A new client of a registered organisation, with the organisation's kind as its one role:
    the bureau for any, an organisation for itself (another's answers like a missing one)."""
    org = await runtime.store.read(requesters.get_org, org_id)
    if org is None or org.kind not in REGISTRABLE_KINDS or not (who.has("bureau") or who.org_id == org_id):
        raise NotFound("no such organisation")
    _check_id(client_id, "client_id")
    secret = new_secret()
    digest = await asyncio.to_thread(hash_secret, secret)
    row = await runtime.store.write(requesters.add_client, client_id, org, digest, who.client_id)
    await _refresh_clients(runtime)
    return {**row.as_dict(), "client_secret": secret}


async def rotate_secret(runtime: Runtime, who: Principal, client_id: str) -> dict[str, Any]:
    """The bureau rotates any client's secret; an organisation its own clients'."""
    row = await _visible_client(runtime, who, client_id)
    secret = new_secret()
    digest = await asyncio.to_thread(hash_secret, secret)
    await runtime.store.write(requesters.rotate_secret, row.client_id, digest, who.client_id)
    return {**row.as_dict(), "client_secret": secret}


async def _visible_client(runtime: Runtime, who: Principal, client_id: str) -> requesters.ClientRow:
    """Any client for the bureau; an organisation's own clients for it; else 404."""
    row = await runtime.store.read(requesters.get_client_row, client_id)
    return visible(row, lambda r: who.has("bureau") or r.org_id == who.org_id, "client")


async def set_org_status(runtime: Runtime, who: Principal, org_id: str, status: str, reason: str) -> dict[str, Any]:
    if await runtime.store.read(_org_with_clients, org_id) is None:
        raise NotFound("no such organisation")
    await runtime.store.write(requesters.set_org_status, org_id, status, who.client_id, reason)
    await _refresh_clients(runtime)
    return await get_org(runtime, org_id)


async def set_client_status(runtime: Runtime, who: Principal, client_id: str, status: str,
                            reason: str) -> dict[str, Any]:
    row = await _visible_client(runtime, who, client_id)
    if status == "suspended" and row.client_id == who.client_id:
        raise Conflict("a client cannot suspend itself; use another client of the organisation "
                       "or `gateway client suspend` on the store")
    await runtime.store.write(requesters.set_client_status, row.client_id, status, who.client_id, reason)
    await _refresh_clients(runtime)
    fresh = await runtime.store.read(requesters.get_client_row, client_id)
    assert fresh is not None
    return fresh.as_dict()


async def _refresh_clients(runtime: Runtime) -> None:
    """This replica sees the change before the call returns; others at their next poll."""
    runtime.registry.clients = await runtime.store.read(identity.client_statuses)
