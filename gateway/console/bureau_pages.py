"""The data bureau's pages (filled in below)."""
from __future__ import annotations

from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.web import Page, page, render

BUREAU = frozenset({"bureau"})


@page("GET", "/bureau", BUREAU, nav=N_("Dashboard"))
async def dashboard(request: web.Request) -> web.Response:
    return render(request, "catalog.html", datasets=[])


PAGES: tuple[Page, ...] = (dashboard,)
