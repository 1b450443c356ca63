"""Data products: the published catalogue, invocation, and the merchant's drafts (thin handlers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import InvalidRequest, NotFound
from gateway.http.admin import body_of, reason_of
from gateway.http.keys import DATASET, RUNTIME
from gateway.http.openapi import api
from gateway.http.queries import idempotency_key, reply
from gateway.http.ratelimit import enforce_dataset_rate
from gateway.http.routing import ANY_ROLE, Route, principal, route
from gateway.service import products
from gateway.service.admission import request_fingerprint
from gateway.service.products import DRAFT_FIELDS

AUTHORS = frozenset({"merchant", "bureau"})


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or not 0 < int(raw) < 10**6:
        raise NotFound("no such product version")
    return int(raw)


@route("GET", "/v1/products", ANY_ROLE)
@api(response="ProductList")
async def list_products(request: web.Request) -> web.Response:
    """Published data products: parameters (with an example each), epsilon per call, price."""
    return web.json_response({"items": await products.published(request.app[RUNTIME])})


@route("GET", "/v1/products/{product_id}", ANY_ROLE)
@api(response="Product")
async def get_product(request: web.Request) -> web.Response:
    """One published product."""
    runtime = request.app[RUNTIME]
    product, version, status = await products.published_product(runtime, request.match_info["product_id"])
    return web.json_response(products.public_view(runtime, product, version, status))


@route("POST", "/v1/products/{product_id}/invoke", {"requester"})
@api(request="InvokeIn", response="QueryAnswer", headers=("Idempotency-Key",))
async def invoke_product(request: web.Request) -> web.Response:
    """Call a product with parameter values; the same ledger path and answer as a query."""
    runtime = request.app[RUNTIME]
    who = principal(request)
    key = idempotency_key(request)
    body = await body_of(request, ("params",))
    params: Any = body.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object of parameter values")
    product, version = await products.product_on_sale(runtime, request.match_info["product_id"])
    request[DATASET] = product.dataset
    await enforce_dataset_rate(request, who, runtime.registry.get(product.dataset))
    answer = await products.invoke(runtime, who, product, version, params, idempotency_key=key,
                                   fingerprint=request_fingerprint(request.path, body))
    return reply(answer)


@route("POST", "/v1/products", {"merchant"})
@api(request="ProductDraftIn", response="ProductVersion", status=201)
async def draft_product(request: web.Request) -> web.Response:
    """Draft a new product (version 1): parameterized SQL over one dataset, epsilon and price."""
    body = await body_of(request, ("id", "dataset", *DRAFT_FIELDS), ("id", "dataset", "title", "sql", "epsilon",
                                                                     "price_minor"))
    made = await products.draft(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


@route("GET", "/v1/products/{product_id}/versions", AUTHORS)
@api(response="ProductVersionList")
async def list_versions(request: web.Request) -> web.Response:
    """Every version of a product, SQL included (its merchant, or the bureau)."""
    items = await products.versions(request.app[RUNTIME], principal(request), request.match_info["product_id"])
    return web.json_response({"items": items})


@route("POST", "/v1/products/{product_id}/versions", {"merchant"})
@api(request="ProductVersionIn", response="ProductVersion", status=201)
async def draft_version(request: web.Request) -> web.Response:
    """Draft a new version; once published it supersedes the current one."""
    body = await body_of(request, DRAFT_FIELDS, ("title", "sql", "epsilon", "price_minor"))
    made = await products.new_version(request.app[RUNTIME], principal(request), request.match_info["product_id"],
                                      body)
    return web.json_response(made, status=201)


@route("POST", "/v1/products/{product_id}/versions/{version}/try", AUTHORS)
@api(request="TryIn", response="TwinAnswer")
async def try_version(request: web.Request) -> web.Response:
    """Run a version on the dataset's synthetic twin (no real rows, exact results)."""
    body = await body_of(request, ("params",)) if request.can_read_body else {}
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest("params must be an object of parameter values")
    answer = await products.try_on_twin(request.app[RUNTIME], principal(request), request.match_info["product_id"],
                                        _version(request), params)
    return web.json_response(answer)


@route("POST", "/v1/products/{product_id}/versions/{version}/submit", {"merchant"})
@api(response="ProductVersion")
async def submit_version(request: web.Request) -> web.Response:
    """Submit a draft to the bureau; it cannot change after this."""
    made = await products.submit(request.app[RUNTIME], principal(request), request.match_info["product_id"],
                                 _version(request))
    return web.json_response(made)


@route("POST", "/v1/products/{product_id}/versions/{version}/publish", {"bureau"})
@api(response="ProductVersion")
async def publish_version(request: web.Request) -> web.Response:
    """The bureau publishes a submitted version, immutable from now on."""
    made = await products.publish(request.app[RUNTIME], principal(request), request.match_info["product_id"],
                                  _version(request))
    return web.json_response(made)


@route("POST", "/v1/products/{product_id}/versions/{version}/reject", {"bureau"})
@api(request="ReasonRequired", response="ProductVersion")
async def reject_version(request: web.Request) -> web.Response:
    """The bureau rejects a draft or submission with a reason."""
    body = await body_of(request, ("reason",), ("reason",))
    made = await products.reject(request.app[RUNTIME], principal(request), request.match_info["product_id"],
                                 _version(request), body["reason"])
    return web.json_response(made)


async def _sale_status(request: web.Request, status: str) -> web.Response:
    made = await products.set_sale_status(request.app[RUNTIME], principal(request), request.match_info["product_id"],
                                          status, await reason_of(request))
    return web.json_response(made)


@route("POST", "/v1/products/{product_id}/suspend", {"bureau"})
@api(request="Reason", response="ProductVersion")
async def suspend_product(request: web.Request) -> web.Response:
    """The bureau stops a product selling (409 `product_suspended`) until it resumes it."""
    return await _sale_status(request, "suspended")


@route("POST", "/v1/products/{product_id}/resume", {"bureau"})
@api(request="Reason", response="ProductVersion")
async def resume_product(request: web.Request) -> web.Response:
    """The bureau lets a suspended product sell again."""
    return await _sale_status(request, "active")


@route("POST", "/v1/products/{product_id}/retire", {"bureau"})
@api(request="Reason", response="ProductVersion")
async def retire_product(request: web.Request) -> web.Response:
    """The bureau retires the published version: the product answers 410 `product_retired` until
    the bureau publishes another version."""
    return await _sale_status(request, "retired")


ROUTES: tuple[Route, ...] = (
    list_products, get_product, invoke_product, draft_product, list_versions, draft_version, try_version,
    submit_version, publish_version, reject_version, suspend_product, resume_product, retire_product,
)
