"""The public price board, fee caps, allowed revenue, data vouchers and the yearly disclosure
(thin handlers)."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from gateway.core.pricing import BOARD_COLUMNS
from gateway.errors import InvalidRequest
from gateway.http.admin import body_of
from gateway.http.billing import wants_csv
from gateway.http.keys import RUNTIME
from gateway.http.openapi import api
from gateway.http.routing import PUBLIC, Route, principal, route
from gateway.service import pricing, report, revenue, vouchers

BUREAU = frozenset({"bureau"})
VOUCHER_READERS = frozenset({"bureau", "requester"})
VOUCHER_FIELDS = ("org_id", "amount_minor", "valid_from", "valid_until", "scope", "fund", "note")
CAP_FIELDS = ("dataset", "product_id", "model", "cap_minor", "currency", "registration_code", "scenario", "reason")


def _board_csv(items: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BOARD_COLUMNS)
    for item in items:
        writer.writerow(["" if item.get(c) is None else item.get(c) for c in BOARD_COLUMNS])
    return out.getvalue().encode()


@route("GET", "/v1/public/prices", PUBLIC)
@api(response="PriceBoard", query=("format",), alternatives=("text/csv",))
async def get_price_board(request: web.Request) -> web.Response:
    """The public price board: every price in force, its model, fee cap, trial end and registration."""
    board = await pricing.price_board(request.app[RUNTIME])
    headers = {"Cache-Control": "public, max-age=60"}
    if request.query.get("format") == "csv" or wants_csv(request):
        return web.Response(body=_board_csv(board["items"]), content_type="text/csv", charset="utf-8", headers=headers)
    return web.json_response(board, headers=headers)


@route("POST", "/v1/price-caps", BUREAU)
@api(request="PriceCapIn", response="PriceCap", status=201)
async def post_price_cap(request: web.Request) -> web.Response:
    """Set the fee cap of a dataset's ad-hoc price or a product's price (refused below the price in force)."""
    body = await body_of(request, CAP_FIELDS, ("model", "cap_minor", "reason"))
    made = await pricing.set_cap(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


@route("GET", "/v1/price-caps", BUREAU)
@api(response="PriceCapList")
async def list_price_caps(request: web.Request) -> web.Response:
    """Every fee cap the bureau set, oldest first; the latest per dataset or product is in force."""
    return web.json_response({"items": await pricing.list_caps(request.app[RUNTIME])})


@route("GET", "/v1/revenue/allowed/{year}", BUREAU)
@api(response="AllowedRevenue")
async def get_allowed_revenue(request: web.Request) -> web.Response:
    """A year's revenue net of vouchers against its allowed revenue, the excess and what was carried."""
    found = await revenue.allowed_position(request.app[RUNTIME], revenue.check_year(request.match_info["year"]))
    return web.json_response(found)


@route("PUT", "/v1/revenue/allowed/{year}", BUREAU)
@api(request="AllowedRevenueIn", response="AllowedRevenue")
async def put_allowed_revenue(request: web.Request) -> web.Response:
    """Set a year's maximum allowed revenue (audited)."""
    body = await body_of(request, ("allowed_minor", "reason"), ("allowed_minor", "reason"))
    found = await revenue.set_allowed(request.app[RUNTIME], principal(request), request.match_info["year"], body)
    return web.json_response(found)


@route("POST", "/v1/vouchers", BUREAU)
@api(request="VoucherIn", response="Voucher", status=201)
async def post_voucher(request: web.Request) -> web.Response:
    """Issue a data voucher to a requester organisation; its invoices redeem it automatically."""
    body = await body_of(request, VOUCHER_FIELDS, ("org_id", "amount_minor", "valid_from", "valid_until"))
    made = await vouchers.issue(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 0 < int(raw) <= vouchers.MAX_LIST:
        raise InvalidRequest(f"limit must be a whole number from 1 to {vouchers.MAX_LIST}")
    return int(raw)


@route("GET", "/v1/vouchers", VOUCHER_READERS)
@api(response="VoucherList", query=("limit", "cursor", "org_id"))
async def list_vouchers(request: web.Request) -> web.Response:
    """Vouchers and their balances: the caller's organisation's; the bureau's view is every one."""
    limit = _limit(request)
    items, cursor = await vouchers.listing(request.app[RUNTIME], principal(request), request.query.get("org_id"),
                                           request.query.get("cursor"), limit)
    headers, next_url = {}, None
    if cursor is not None:
        next_url = str(request.url.update_query({"limit": str(limit), "cursor": cursor}))
        headers["Link"] = f'<{next_url}>; rel="next"'
    return web.json_response({"items": items, "next": next_url}, headers=headers)


@route("GET", "/v1/vouchers/{voucher_id}", VOUCHER_READERS)
@api(response="Voucher")
async def get_voucher(request: web.Request) -> web.Response:
    """One voucher with its redemptions; another organisation's answers 404 like a missing one."""
    found = await vouchers.one(request.app[RUNTIME], principal(request), request.match_info["voucher_id"])
    return web.json_response(found)


def _report_format(request: web.Request) -> str:
    chosen = request.query.get("format")
    if chosen:
        return chosen
    if wants_csv(request):
        return "csv"
    kinds = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")]
    return "html" if "text/html" in kinds else "json"


@route("GET", "/v1/reports/annual/{year}", BUREAU)
@api(response="AnnualReport", query=("format",), alternatives=("text/csv", "text/html"))
async def get_annual_report(request: web.Request) -> web.Response:
    """The yearly disclosure as JSON, CSV (`Accept: text/csv`) or printable HTML (`Accept: text/html`)."""
    content_type, body = await report.annual(request.app[RUNTIME], request.match_info["year"],
                                             _report_format(request))
    return web.Response(body=body, content_type=content_type, charset="utf-8")


ROUTES: tuple[Route, ...] = (get_price_board, post_price_cap, list_price_caps, get_allowed_revenue,
                             put_allowed_revenue, post_voucher, list_vouchers, get_voucher, get_annual_report)
