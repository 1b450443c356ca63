"""Token endpoint, JWKS, health, readiness, the catalog and metrics."""

from __future__ import annotations

from aiohttp import web

from gateway.clock import utc_now_text
from gateway.core.catalog import catalog_entry
from gateway.errors import NotFound, Unavailable
from gateway.http import oauth
from gateway.http.keys import RUNTIME
from gateway.http.openapi import api
from gateway.http.routing import ANY_ROLE, PUBLIC, Route, route
from gateway.service.readiness import datasets_not_ready
from gateway.service.supply import datasets_not_loaded
from gateway.store import identity
from gateway.store.schema import pending_migrations


@route("POST", oauth.TOKEN_PATH, PUBLIC)
async def token(request: web.Request) -> web.Response:
    """An access token for the client-credentials grant (RFC 6749 §4.4; errors as §5.2)."""
    return await oauth.token_response(request)


@route("GET", oauth.METADATA_PATH, PUBLIC)
@api(response="AuthorizationServerMetadata")
async def authorization_server_metadata(request: web.Request) -> web.Response:
    """RFC 8414 metadata: the token endpoint, the JWKS and the grant this server supports."""
    return web.json_response(oauth.metadata(request), headers={"Cache-Control": "max-age=300"})


@route("GET", oauth.JWKS_PATH, PUBLIC)
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


ROUTES: tuple[Route, ...] = (
    token, authorization_server_metadata, jwks, healthz, readyz, list_datasets, get_dataset, metrics)
