"""The aiohttp application: `create_app(settings)` wires the runtime, middlewares and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from gateway.console import setup_console
from gateway.dp.port import SandboxPort
from gateway.http import basics
from gateway.http.docs import setup_docs
from gateway.http.guard import guarded
from gateway.http.keys import RUNTIME
from gateway.http.methods import options_middleware
from gateway.http.observe import observe_middleware
from gateway.http.openapi import setup_openapi
from gateway.http.problems import SERVER, problem_middleware
from gateway.http.ratelimit import setup_rate_limits
from gateway.http.routes import all_routes
from gateway.http.routing import Route
from gateway.http.shared_limits import setup_shared_limits
from gateway.http.token_guard import setup_token_guard
from gateway.metrics import metrics_handler
from gateway.runtime.open import open_runtime
from gateway.runtime.parts import Runtime
from gateway.runtime.tasks import background
from gateway.service.lifecycle import sandbox_running
from gateway.settings import Settings

# Outermost first: the request id and access log see every response, including problems.
MIDDLEWARES = (observe_middleware, problem_middleware, options_middleware)


__all__ = ["add_routes", "all_routes", "create_app", "create_ops_app"]


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    for spec in routes:
        handler = guarded(spec)
        app.router.add_route(spec.method, spec.path, handler, name=spec.name)
        if spec.method == "GET":  # HEAD answers like GET, behind the same guard; aiohttp drops the body
            app.router.add_route("HEAD", spec.path, handler)


async def _plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No library or Python versions in the Server header."""
    response.headers["Server"] = SERVER


def create_app(settings: Settings, runtime: Runtime | None = None,
               sandbox: SandboxPort | None = None) -> web.Application:
    """An app over `runtime` (opened from settings when not given); closes what it opened.

    `sandbox` replaces the worker processes (tests pass `dp.fake.FakeSandbox`); `gateway serve` never does.
    """
    app = web.Application(middlewares=list(MIDDLEWARES), client_max_size=settings.max_body_bytes)
    routes = all_routes()
    add_routes(app, routes)
    setup_openapi(app, routes)
    setup_docs(app)
    setup_rate_limits(app, settings)
    setup_token_guard(app, settings)
    setup_shared_limits(app, settings)
    app.on_response_prepare.append(_plain_server_header)
    setup_console(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        rt: Runtime = runtime if runtime is not None else await asyncio.to_thread(open_runtime, settings)
        for spec in routes:
            rt.metrics.add_route(spec.method, spec.path)
        app[RUNTIME] = rt
        async with background(rt), sandbox_running(rt, sandbox):
            rt.ready = True
            rt.metrics.set_ready(True)
            yield
            rt.ready = False
            rt.metrics.set_ready(False)
        if runtime is None:
            await asyncio.to_thread(rt.close)

    app.cleanup_ctx.append(lifecycle)
    return app


def create_ops_app(runtime: Runtime) -> web.Application:
    """The separate ops listener on a private address: /metrics without auth, /healthz, /readyz.

    It outlives the main listener on SIGTERM, so a drain shows as a 503 from /readyz here.
    """
    app = web.Application(middlewares=[problem_middleware, options_middleware])
    app[RUNTIME] = runtime
    app.router.add_get("/metrics", metrics_handler(runtime.metrics))
    for spec in (basics.healthz, basics.readyz):
        app.router.add_get(spec.path, guarded(spec))
    app.on_response_prepare.append(_plain_server_header)
    return app
