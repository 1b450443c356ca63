"""Token endpoint, JWKS, health, readiness, the catalog and metrics."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from gateway.clock import utc_now_text
from gateway.core.catalog import catalog_entry
from gateway.errors import InvalidRequest, NotFound, Unauthorized, Unavailable, UnsupportedMediaType
from gateway.http.keys import RUNTIME
from gateway.http.routing import ANY_ROLE, PUBLIC, Route, route
from gateway.service.identity import issue_token
from gateway.service.readiness import datasets_not_ready
from gateway.service.supply import datasets_not_loaded
from gateway.store import identity
from gateway.store.schema import pending_migrations


@route("POST", "/oauth/token", PUBLIC)
async def token(request: web.Request) -> web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        raise UnsupportedMediaType("send the token request form-encoded")
    form = await request.post()
    if form.get("grant_type") != "client_credentials":
        raise InvalidRequest("grant_type must be client_credentials")
    client_id, secret = _credentials(request, form)
    access, ttl = await issue_token(request.app[RUNTIME], client_id, secret)
    return web.json_response({"access_token": access, "token_type": "Bearer", "expires_in": ttl},
                             headers={"Cache-Control": "no-store"})


def _credentials(request: web.Request, form: object) -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("The client credentials are not valid.") from None
        client_id, sep, secret = decoded.partition(":")
        if sep:
            return client_id, secret
        raise Unauthorized("The client credentials are not valid.")
    client_id, secret = form.get("client_id"), form.get("client_secret")  # type: ignore[attr-defined]
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise InvalidRequest("client_id and client_secret are required")
    return client_id, secret


@route("GET", "/.well-known/jwks.json", PUBLIC)
async def jwks(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    now = utc_now_text()
    keys = await runtime.store.read(identity.public_keys, now)
    # Token verifiers read `keys` only; retired keys sit apart so that none of them accepts a token
    # signed by one, while receipts they signed still verify (gateway receipt verify reads both).
    retired = await runtime.store.read(identity.retired_keys, now)
    return web.json_response({"keys": list(keys.values()), "retired_keys": retired},
                             headers={"Cache-Control": "max-age=60"})


@route("GET", "/healthz", PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@route("GET", "/readyz", PUBLIC)
async def readyz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if runtime.draining:
        raise Unavailable("draining", retry_after=5)
    if not runtime.ready:
        raise Unavailable("starting", retry_after=2)
    try:
        pending = await runtime.store.read(pending_migrations)
    except Exception:
        raise Unavailable("the store is unreachable", retry_after=2) from None
    if pending:
        raise Unavailable("the store's migrations are not current", retry_after=5)
    missing = datasets_not_loaded(runtime)
    if missing:
        raise Unavailable(f"datasets not loaded: {', '.join(sorted(missing))}", retry_after=5)
    waiting = datasets_not_ready(runtime)  # loaded, but not for the policy in force (R-DP-20)
    if waiting:
        refused = Unavailable("datasets not ready: " + "; ".join(f"{d} ({why})" for d, why in waiting.items()),
                              retry_after=2)
        refused.extra["datasets"] = sorted(waiting)
        raise refused
    return web.json_response({"status": "ready"})


@route("GET", "/v1/datasets", ANY_ROLE)
async def list_datasets(request: web.Request) -> web.Response:
    registry = request.app[RUNTIME].registry
    items = [catalog_entry(p, registry.status_of(d)) for d, p in sorted(registry.policies.items())]
    return web.json_response({"datasets": items})


@route("GET", "/v1/datasets/{dataset}", ANY_ROLE)
async def get_dataset(request: web.Request) -> web.Response:
    registry = request.app[RUNTIME].registry
    dataset = request.match_info["dataset"]
    policy = registry.policies.get(dataset)
    if policy is None:
        raise NotFound(f"no dataset {dataset!r}")
    return web.json_response(catalog_entry(policy, registry.status_of(dataset)))


@route("GET", "/metrics", {"ops"})
async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[RUNTIME].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


ROUTES: tuple[Route, ...] = (token, jwks, healthz, readyz, list_datasets, get_dataset, metrics)
