"""The public price board as a page: no sign-in, the same list as `GET /v1/public/prices`."""

from __future__ import annotations

from aiohttp import web

from gateway.console.i18n import N_
from gateway.console.web import Page, page, render, runtime_of
from gateway.service.pricing import price_board

MODELS = {"per_call": N_("per call"), "per_month": N_("per month"), "per_cell": N_("per cell")}


@page("GET", "/prices", public=True)
async def prices(request: web.Request) -> web.Response:
    board = await price_board(runtime_of(request))
    return render(request, "prices.html", board=board, models=MODELS)


PAGES: tuple[Page, ...] = (prices,)
