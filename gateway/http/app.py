"""The aiohttp application: `create_app(settings)` wires the runtime, middlewares and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from gateway.http import basics
from gateway.http.keys import RUNTIME
from gateway.http.observe import observe_middleware
from gateway.http.problems import problem_middleware
from gateway.http.routing import Route, guarded
from gateway.runtime import Runtime, background, open_runtime
from gateway.settings import Settings

# Outermost first: the request id and access log see every response, including problems.
MIDDLEWARES = (observe_middleware, problem_middleware)


def all_routes() -> tuple[Route, ...]:
    return basics.ROUTES


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    for spec in routes:
        app.router.add_route(spec.method, spec.path, guarded(spec), name=spec.name)


def create_app(settings: Settings, runtime: Runtime | None = None) -> web.Application:
    """An app over `runtime` (opened from settings when not given); closes what it opened."""
    app = web.Application(middlewares=list(MIDDLEWARES), client_max_size=settings.max_body_bytes)
    routes = all_routes()
    add_routes(app, routes)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        rt = runtime or await asyncio.to_thread(open_runtime, settings)
        for spec in routes:
            rt.metrics.add_route(spec.method, spec.path)
        app[RUNTIME] = rt
        async with background(rt):
            rt.ready = True
            rt.metrics.set_ready(True)
            yield
            rt.ready = False
            rt.metrics.set_ready(False)
        if runtime is None:
            await asyncio.to_thread(rt.close)

    app.cleanup_ctx.append(lifecycle)
    return app
