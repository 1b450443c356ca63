"""The public price board, fee caps, allowed revenue, data vouchers and the yearly disclosure
(thin handlers)."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.core.pricing import BOARD_COLUMNS
from gateway.http.keys import RUNTIME
from gateway.http.paging import paged
from gateway.http.params import Param
from gateway.http.replies import wants_csv
from gateway.http.routing import JSON, PUBLIC, Route, principal, route
from gateway.service import pricing, report, revenue, vouchers

BUREAU = frozenset({"bureau"})
VOUCHER_READERS = frozenset({"bureau", "requester"})
FORMAT = Param("format", "query", {"type": "string", "enum": ["json", "csv", "html"]},
               "The answer's form, instead of an Accept header.", "csv")
VOUCHER_ORG = Param("org_id", "query", {"type": "string", "minLength": 1, "maxLength": 200},
                    "The bureau only: one organisation's vouchers.", "lingxi-rural-bank")


def _board_csv(items: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BOARD_COLUMNS)
    for item in items:
        writer.writerow(["" if item.get(c) is None else item.get(c) for c in BOARD_COLUMNS])
    return out.getvalue().encode()


@route("GET", "/v1/public/prices", PUBLIC, answer="PriceBoard", answer_types=(JSON, "text/csv"), params=(FORMAT,))
async def get_price_board(request: web.Request, format: str | None) -> web.Response:
    """The public price board: every price in force, its model, fee cap, trial end and registration."""
    board = await pricing.price_board(request.app[RUNTIME])
    headers = {"Cache-Control": "public, max-age=60"}
    if format == "csv" or wants_csv(request):
        return web.Response(body=_board_csv(board["items"]), content_type="text/csv", charset="utf-8", headers=headers)
    return web.json_response(board, headers=headers)


@route("POST", "/v1/price-caps", BUREAU, body="PriceCapIn", answer="PriceCap", status=201, problems=(404, 409, 422))
async def post_price_cap(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Set the fee cap of a dataset's ad-hoc price or a product's price (refused below the price in force)."""
    made = await pricing.set_cap(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


@route("GET", "/v1/price-caps", BUREAU, answer="PriceCapList")
async def list_price_caps(request: web.Request) -> web.Response:
    """Every fee cap the bureau set, oldest first; the latest per dataset or product is in force."""
    return web.json_response({"items": await pricing.list_caps(request.app[RUNTIME]), "next": None})


@route("GET", "/v1/revenue/allowed/{year}", BUREAU, answer="AllowedRevenue")
async def get_allowed_revenue(request: web.Request, year: str) -> web.Response:
    """A year's revenue net of vouchers against its allowed revenue, the excess and what was carried."""
    found = await revenue.allowed_position(request.app[RUNTIME], revenue.check_year(year))
    return web.json_response(found)


@route("PUT", "/v1/revenue/allowed/{year}", BUREAU, body="AllowedRevenueIn", answer="AllowedRevenue")
async def put_allowed_revenue(request: web.Request, year: str, body: dict[str, Any]) -> web.Response:
    """Set a year's maximum allowed revenue (audited)."""
    found = await revenue.set_allowed(request.app[RUNTIME], principal(request), year, body)
    return web.json_response(found)


@route("POST", "/v1/vouchers", BUREAU, body="VoucherIn", answer="Voucher", status=201, problems=(404, 409, 422))
async def post_voucher(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Issue a data voucher to a requester organisation; its invoices redeem it automatically."""
    made = await vouchers.issue(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


@route("GET", "/v1/vouchers", VOUCHER_READERS, answer="VoucherList", paginated=True, params=(VOUCHER_ORG,))
async def list_vouchers(request: web.Request, page: PageRequest, org_id: str | None) -> web.Response:
    """Vouchers and their balances, by id: the caller's organisation's; the bureau's view is every one."""
    return paged(request, await vouchers.listing(request.app[RUNTIME], principal(request), org_id, page))


@route("GET", "/v1/vouchers/{voucher_id}", VOUCHER_READERS, answer="Voucher")
async def get_voucher(request: web.Request, voucher_id: str) -> web.Response:
    """One voucher with its redemptions; another organisation's answers 404 like a missing one."""
    found = await vouchers.one(request.app[RUNTIME], principal(request), voucher_id)
    return web.json_response(found)


def _report_format(request: web.Request, chosen: str | None) -> str:
    if chosen:
        return chosen
    if wants_csv(request):
        return "csv"
    kinds = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    return "html" if "text/html" in kinds else "json"


@route("GET", "/v1/reports/annual/{year}", BUREAU, answer="AnnualReport", answer_types=(JSON, "text/csv", "text/html"),
       params=(FORMAT,))
async def get_annual_report(request: web.Request, year: str, format: str | None) -> web.Response:
    """The yearly disclosure as JSON, CSV (`Accept: text/csv`) or printable HTML (`Accept: text/html`)."""
    content_type, body = await report.annual(request.app[RUNTIME], year, _report_format(request, format))
    return web.Response(body=body, content_type=content_type, charset="utf-8")


ROUTES: tuple[Route, ...] = (get_price_board, post_price_cap, list_price_caps, get_allowed_revenue,
                             put_allowed_revenue, post_voucher, list_vouchers, get_voucher, get_annual_report)
