"""Registration codes (登记结果查询码) of datasets and products: the bureau records, owners read."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.http.keys import RUNTIME
from gateway.http.routing import Route, principal, route
from gateway.service import registration

BUREAU = frozenset({"bureau"})


@route("PUT", "/v1/datasets/{dataset}/registration", BUREAU, body="RegistrationIn", answer="Registration",
       problems=(404, 409))
async def put_dataset_registration(request: web.Request, dataset: str, body: dict[str, Any]) -> web.Response:
    """The bureau records (or renews, or revokes) a dataset's registration code.

    A code is 8 to 64 upper-case letters, digits and single hyphens; one code names one dataset or
    product (409 if another has it). Every act is in the audit log."""
    found = await registration.record_dataset(request.app[RUNTIME], principal(request), dataset, body)
    return web.json_response(found)


@route("GET", "/v1/datasets/{dataset}/registration", {"bureau", "source"}, answer="Registration")
async def get_dataset_registration(request: web.Request, dataset: str) -> web.Response:
    """A dataset's registration (the bureau, or the source department that owns it)."""
    found = await registration.dataset_registration(request.app[RUNTIME], principal(request), dataset)
    return web.json_response(found)


@route("PUT", "/v1/products/{product_id}/registration", BUREAU, body="ProductRegistrationIn", answer="Registration",
       problems=(404, 409))
async def put_product_registration(request: web.Request, product_id: str, body: dict[str, Any]) -> web.Response:
    """The bureau records a product's registration code for one of its versions.

    The registration covers the version named (default: the published one, else the latest submitted),
    its SQL, parameters and price; once another version is published the product reads
    `reregistration_required`. With `GATEWAY_REGISTRATION_REQUIRED` a product publishes and sells only
    while its registration covers the version on sale: register a submitted version, then publish it."""
    found = await registration.record_product(request.app[RUNTIME], principal(request), product_id, body)
    return web.json_response(found)


@route("GET", "/v1/products/{product_id}/registration", {"bureau", "merchant"}, answer="Registration")
async def get_product_registration(request: web.Request, product_id: str) -> web.Response:
    """A product's registration (the bureau, or the product's merchant)."""
    found = await registration.product_registration(request.app[RUNTIME], principal(request), product_id)
    return web.json_response(found)


ROUTES: tuple[Route, ...] = (put_dataset_registration, get_dataset_registration, put_product_registration,
                             get_product_registration)
