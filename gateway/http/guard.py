"""The one wrapper around every handler: authenticate, check the role, rate-limit, then hand the
handler its checked arguments (path parameters, declared query and header parameters, the page asked
for, the validated JSON body). Nothing reaches a handler that its route did not declare."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web

from gateway.auth.tokens import Principal
from gateway.errors import Forbidden, Unauthorized
from gateway.http.body import json_object
from gateway.http.keys import DATASET, RUNTIME
from gateway.http.paging import page_request
from gateway.http.ratelimit import enforce_rate_limit
from gateway.http.routing import PRINCIPAL, Handler, Route, path_params
from gateway.http.validate import validate_body


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


async def admit_caller(request: web.Request, spec: Route) -> Principal | None:
    """The caller, if the route admits its role (None on a public route)."""
    if not spec.roles:
        return None
    who = authenticate(request)
    if not who.roles & spec.roles:
        raise role_refusal(who.roles, spec.roles)
    await enforce_rate_limit(request, who)
    request[PRINCIPAL] = who
    return who


async def arguments(request: web.Request, spec: Route) -> dict[str, Any]:
    """What the handler takes besides the request, each checked against its declaration."""
    args: dict[str, Any] = {name: request.match_info[name] for name in path_params(spec.path)}
    for param in spec.params:
        args[param.arg] = param.read(request)
    if spec.paginated:
        args["page"] = page_request(request)
    if spec.validates_body:
        args["body"] = await _json_body(request, spec)
    return args


async def _json_body(request: web.Request, spec: Route) -> dict[str, Any]:
    assert spec.body is not None
    if spec.body_optional and not request.can_read_body:
        body: dict[str, Any] = {}
    else:
        body = await json_object(request, max_bytes=request.app[RUNTIME].settings.max_body_bytes)
    if isinstance(body.get("dataset"), str):
        request[DATASET] = body["dataset"]  # the access log names what was asked about, even when refused
    validate_body(spec.body, body)
    return body


def guarded(spec: Route) -> Handler:
    """The handler behind its declaration."""
    @functools.wraps(spec.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        await admit_caller(request, spec)
        return await spec.handler(request, **await arguments(request, spec))

    return handler
