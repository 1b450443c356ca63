"""Token endpoint, authorization-server metadata, JWKS, health, readiness, the catalog and metrics."""

from __future__ import annotations

from aiohttp import web

from gateway.core.catalog import catalog_entry
from gateway.errors import NotFound
from gateway.http import oauth
from gateway.http.keys import RUNTIME
from gateway.http.routing import ANY_ROLE, FORM, PUBLIC, Route, route
from gateway.service import registration
from gateway.service.identity import published_keys
from gateway.service.lifecycle import check_ready


@route("POST", oauth.TOKEN_PATH, PUBLIC, body="TokenForm", body_types=(FORM,), answer="Token", problems=(401,))
async def token(request: web.Request) -> web.Response:
    """An access token for the client-credentials grant (RFC 6749 §4.4; errors as §5.2).

    Send `grant_type=client_credentials` with `client_id` and `client_secret` as form fields or
    as HTTP Basic. The token is a JWT to send as `Authorization: Bearer …` on every `/v1` call.
    A refusal is problem+json that also carries §5.2's `error` and `error_description`.
    """
    return await oauth.token_response(request)


@route("GET", oauth.METADATA_PATH, PUBLIC, answer="AuthorizationServerMetadata")
async def authorization_server_metadata(request: web.Request) -> web.Response:
    """RFC 8414 metadata: the token endpoint, the JWKS and the grant this server supports."""
    return web.json_response(oauth.metadata(request), headers={"Cache-Control": "max-age=300"})


@route("GET", oauth.JWKS_PATH, PUBLIC, answer="JWKS")
async def jwks(request: web.Request) -> web.Response:
    """The public keys that verify the gateway's tokens (JWKS, RFC 7517).

    Retired keys verify no token, but still the receipts they signed: they are listed apart, flagged,
    under `retired_keys`, so that no token verifier picks one up from `keys`.
    """
    return web.json_response(await published_keys(request.app[RUNTIME]), headers={"Cache-Control": "max-age=60"})


@route("GET", "/healthz", PUBLIC, answer="Health")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process runs."""
    return web.json_response({"status": "ok"})


@route("GET", "/readyz", PUBLIC, answer="Health", problems=(503,))
async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the store and every dataset are ready, else 503 with Retry-After."""
    await check_ready(request.app[RUNTIME])
    return web.json_response({"status": "ready"})


@route("GET", "/v1/datasets", ANY_ROLE, answer="DatasetList")
async def list_datasets(request: web.Request) -> web.Response:
    """The catalog: every dataset with its columns, privacy unit, status, price and registration; never a row."""
    runtime = request.app[RUNTIME]
    registry, codes = runtime.registry, await registration.dataset_summaries(runtime)
    items = [{**catalog_entry(p, registry.status_of(d)), "registration": codes.of(d)}
             for d, p in sorted(registry.policies.items())]
    return web.json_response({"datasets": items})


@route("GET", "/v1/datasets/{dataset}", ANY_ROLE, answer="Dataset")
async def get_dataset(request: web.Request, dataset: str) -> web.Response:
    """One catalog entry."""
    runtime = request.app[RUNTIME]
    policy = runtime.registry.policies.get(dataset)
    if policy is None:
        raise NotFound(f"no dataset {dataset!r}")
    codes = await registration.dataset_summaries(runtime)
    entry = catalog_entry(policy, runtime.registry.status_of(dataset))
    return web.json_response({**entry, "registration": codes.of(dataset)})


@route("GET", "/metrics", {"ops"}, answer="Metrics", answer_types=("text/plain",))
async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics in the text exposition format (also on the separate ops listener)."""
    body, content_type = request.app[RUNTIME].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


ROUTES: tuple[Route, ...] = (
    token, authorization_server_metadata, jwks, healthz, readyz, list_datasets, get_dataset, metrics)
