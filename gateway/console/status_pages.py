"""Operations: health, readiness per dataset, the sandbox workers, and where the metrics are."""

from __future__ import annotations

from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.source_pages import served_snapshot
from gateway.console.web import Page, api_roles, page, render, runtime_of
from gateway.http import basics
from gateway.service.supply import datasets_not_loaded

OPS = api_roles(basics.metrics)


@page("GET", "/status", OPS, nav=N_("Health"))
async def status(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    missing = set(datasets_not_loaded(runtime))
    datasets = [{"dataset": d, "status": runtime.registry.status.get(d, "active"),
                 "snapshot": served_snapshot(runtime, d), "ready": d not in missing}
                for d in sorted(runtime.registry.policies)]
    sandbox = runtime.sandbox
    workers = [round(mb, 1) for mb in sandbox.worker_memory_mb()] if sandbox is not None else []
    s = runtime.settings
    metrics_url = f"http://{s.metrics_host}:{s.metrics_port}/metrics" if s.metrics_port else ""
    return render(request, "health.html", ready=runtime.ready and not runtime.draining and not missing,
                  draining=runtime.draining, replica=runtime.replica, datasets=datasets,
                  sandbox_size=s.sandbox_workers, workers=workers, metrics_url=metrics_url)


PAGES: tuple[Page, ...] = (status,)
