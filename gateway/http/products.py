"""Data products: the published catalogue, invocation, and the merchant's drafts (thin handlers)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.core.pages import PageRequest
from gateway.errors import NotFound
from gateway.http.keys import DATASET, RUNTIME
from gateway.http.paging import paged
from gateway.http.params import IDEMPOTENCY_KEY
from gateway.http.ratelimit import enforce_dataset_rate
from gateway.http.reasons import REASON, reason_of
from gateway.http.replies import QUERY_PROBLEMS, reply
from gateway.http.routing import ANY_ROLE, Route, principal, route
from gateway.service import products
from gateway.service.admission import request_fingerprint

AUTHORS = frozenset({"merchant", "bureau"})


def _version(raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 10**6:
        raise NotFound("no such product version")
    return int(raw)


@route("GET", "/v1/products", ANY_ROLE, answer="ProductList", paginated=True)
async def list_products(request: web.Request, page: PageRequest) -> web.Response:
    """Published data products: parameters (with an example each), epsilon per call, price."""
    return paged(request, await products.published_page(request.app[RUNTIME], page))


@route("GET", "/v1/products/{product_id}", ANY_ROLE, answer="Product", problems=(410,))
async def get_product(request: web.Request, product_id: str) -> web.Response:
    """One published product."""
    return web.json_response(await products.published_view(request.app[RUNTIME], product_id))


@route("POST", "/v1/products/{product_id}/invoke", {"requester"}, body="InvokeIn", answer="QueryAnswer",
       params=(IDEMPOTENCY_KEY,), problems=QUERY_PROBLEMS, headers=("Idempotent-Replayed",))
async def invoke_product(request: web.Request, product_id: str, body: dict[str, Any],
                         idempotency_key: str | None) -> web.Response:
    """Call a product with parameter values; the same ledger path and answer as a query."""
    runtime = request.app[RUNTIME]
    who = principal(request)
    product, version = await products.product_on_sale(runtime, product_id)
    request[DATASET] = product.dataset
    await enforce_dataset_rate(request, who, runtime.registry.get(product.dataset))
    answer = await products.invoke(runtime, who, product, version, body.get("params", {}),
                                   idempotency_key=idempotency_key, fingerprint=request_fingerprint(request.path, body))
    return reply(answer)


@route("POST", "/v1/products", {"merchant"}, body="ProductDraftIn", answer="ProductVersion", status=201,
       problems=(404, 409, 410, 422))
async def draft_product(request: web.Request, body: dict[str, Any]) -> web.Response:
    """Draft a new product (version 1): parameterized SQL over one dataset, epsilon and price."""
    made = await products.draft(request.app[RUNTIME], principal(request), body)
    return web.json_response(made, status=201)


@route("GET", "/v1/products/{product_id}/versions", AUTHORS, answer="ProductVersionList", paginated=True)
async def list_versions(request: web.Request, product_id: str, page: PageRequest) -> web.Response:
    """Every version of a product, SQL included (its merchant, or the bureau)."""
    return paged(request, await products.versions_page(request.app[RUNTIME], principal(request), product_id, page))


@route("POST", "/v1/products/{product_id}/versions", {"merchant"}, body="ProductVersionIn", answer="ProductVersion",
       status=201, problems=(409, 410, 422))
async def draft_version(request: web.Request, product_id: str, body: dict[str, Any]) -> web.Response:
    """Draft a new version; once published it supersedes the current one."""
    made = await products.new_version(request.app[RUNTIME], principal(request), product_id, body)
    return web.json_response(made, status=201)


@route("POST", "/v1/products/{product_id}/versions/{version}/try", AUTHORS, body="TryIn", body_optional=True,
       answer="TwinAnswer", problems=(422,))
async def try_version(request: web.Request, product_id: str, version: str, body: dict[str, Any]) -> web.Response:
    """Run a version on the dataset's synthetic twin (no real rows, exact results)."""
    answer = await products.try_on_twin(request.app[RUNTIME], principal(request), product_id, _version(version),
                                        body.get("params", {}))
    return web.json_response(answer)


@route("POST", "/v1/products/{product_id}/versions/{version}/submit", {"merchant"}, answer="ProductVersion",
       problems=(409,))
async def submit_version(request: web.Request, product_id: str, version: str) -> web.Response:
    """Submit a draft to the bureau; it cannot change after this."""
    made = await products.submit(request.app[RUNTIME], principal(request), product_id, _version(version))
    return web.json_response(made)


@route("POST", "/v1/products/{product_id}/versions/{version}/publish", {"bureau"}, body="PublishIn",
       body_optional=True, answer="ProductVersion", problems=(409, 410))
async def publish_version(request: web.Request, product_id: str, version: str, body: dict[str, Any]) -> web.Response:
    """The bureau publishes a submitted version, immutable from now on, under the authorisation agreement
    named (or else the one in force listing the product; 409 when there is none)."""
    made = await products.publish(request.app[RUNTIME], principal(request), product_id, _version(version),
                                  body.get("agreement_id"))
    return web.json_response(made)


@route("POST", "/v1/products/{product_id}/versions/{version}/reject", {"bureau"}, body="ReasonRequired",
       answer="ProductVersion", problems=(409,))
async def reject_version(request: web.Request, product_id: str, version: str, body: dict[str, Any]) -> web.Response:
    """The bureau rejects a draft or submission with a reason."""
    made = await products.reject(request.app[RUNTIME], principal(request), product_id, _version(version),
                                 body["reason"])
    return web.json_response(made)


async def _sale_status(request: web.Request, product_id: str, status: str, body: dict[str, Any]) -> web.Response:
    made = await products.set_sale_status(request.app[RUNTIME], principal(request), product_id, status,
                                          reason_of(body))
    return web.json_response(made)


@route("POST", "/v1/products/{product_id}/suspend", {"bureau"}, **REASON, answer="ProductVersion", problems=(409,))
async def suspend_product(request: web.Request, product_id: str, body: dict[str, Any]) -> web.Response:
    """The bureau stops a product selling (409 `product_suspended`) until it resumes it."""
    return await _sale_status(request, product_id, "suspended", body)


@route("POST", "/v1/products/{product_id}/resume", {"bureau"}, **REASON, answer="ProductVersion", problems=(409,))
async def resume_product(request: web.Request, product_id: str, body: dict[str, Any]) -> web.Response:
    """The bureau lets a suspended product sell again."""
    return await _sale_status(request, product_id, "active", body)


@route("POST", "/v1/products/{product_id}/retire", {"bureau"}, **REASON, answer="ProductVersion", problems=(409,))
async def retire_product(request: web.Request, product_id: str, body: dict[str, Any]) -> web.Response:
    """The bureau retires the published version: the product answers 410 `product_retired` until
    the bureau publishes another version."""
    return await _sale_status(request, product_id, "retired", body)


ROUTES: tuple[Route, ...] = (
    list_products, get_product, invoke_product, draft_product, list_versions, draft_version, try_version,
    submit_version, publish_version, reject_version, suspend_product, resume_product, retire_product,
)
