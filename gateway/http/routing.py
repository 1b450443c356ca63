"""Route declarations: every route names the roles it admits, and one wrapper enforces them."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.auth.tokens import Principal
from gateway.errors import Forbidden, Unauthorized
from gateway.http.keys import RUNTIME
from gateway.http.ratelimit import enforce_rate_limit

PUBLIC: frozenset[str] = frozenset()
ANY_ROLE = frozenset({"requester", "bureau", "source", "merchant", "ops"})
PRINCIPAL = web.RequestKey("principal", Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str]
    name: str = ""


def route(method: str, path: str, roles: frozenset[str] | set[str], name: str = "") -> Callable[[Handler], Route]:
    def wrap(handler: Handler) -> Route:
        return Route(method, path, handler, frozenset(roles), name or handler.__name__)
    return wrap


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def authenticate(request: web.Request) -> Principal:
    """Bearer token -> Principal, with the client's current status from the store (R-AU-05)."""
    runtime = request.app[RUNTIME]
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header.strip():
        raise Unauthorized("A bearer token is required: get one from /oauth/token.", error=None)
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send the access token as `Authorization: Bearer <token>`.", error=None)
    who = runtime.verifier.verify(token.strip())
    if not runtime.registry.clients.get(who.client_id, False):
        raise Unauthorized("The token's client is not active (suspended or removed).")
    return who


def role_refusal(have: frozenset[str], need: frozenset[str]) -> Forbidden:
    """"Not allowed", with the role that would be: a role is no secret (API.md lists them)."""
    needed = " or ".join(sorted(need))
    held = ", ".join(sorted(have)) or "none"
    return Forbidden(f"your role ({held}) does not allow this; it needs the {needed} role")


def guarded(spec: Route) -> Handler:
    """The handler behind its role check; public routes pass straight through."""
    if not spec.roles:
        return spec.handler

    @functools.wraps(spec.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        who = authenticate(request)
        if not who.roles & spec.roles:
            raise role_refusal(who.roles, spec.roles)
        await enforce_rate_limit(request, who)
        request[PRINCIPAL] = who
        return await spec.handler(request)

    return handler
