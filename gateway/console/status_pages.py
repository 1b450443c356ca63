"""Pages (filled in below)."""
from __future__ import annotations

from aiohttp import web

from gateway.console.web import Page, page, render


@page("GET", "/status", frozenset({"ops"}))
async def status(request: web.Request) -> web.Response:
    return render(request, "catalog.html", datasets=[])


PAGES: tuple[Page, ...] = (status,)
