"""Data products: the merchant drafts on the synthetic twin and submits; the bureau publishes or
rejects; requesters read the published ones and invoke them (the API's product paths)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.auth.secrets import new_secret
from gateway.console.i18n import N_
from gateway.console.web import Page, api_roles, form, page, render, runtime_of, see_other, visit
from gateway.errors import GatewayError, InvalidRequest
from gateway.http import products as api
from gateway.http.ratelimit import enforce_dataset_rate
from gateway.service import overview, products, registration
from gateway.service.admission import request_fingerprint

MERCHANT = api_roles(api.draft_product)
AUTHORS = api_roles(api.list_versions)


@page("GET", "/products", MERCHANT, nav=N_("My products"))
async def my_products(request: web.Request) -> web.Response:
    items = await overview.my_products(runtime_of(request), visit(request).who)
    return render(request, "products.html", items=items)


def _draft_body(fields: Any) -> dict[str, Any]:
    """The form as the API's draft body: parameters are JSON, money is yuan with two decimals."""
    try:
        parameters = json.loads(str(fields.get("parameters") or "[]"))
    except ValueError:
        raise InvalidRequest("parameters must be a JSON list") from None
    from decimal import Decimal, InvalidOperation

    try:
        price_minor = int((Decimal(str(fields.get("price") or "0")) * 100).to_integral_exact())
    except (InvalidOperation, ArithmeticError):
        raise InvalidRequest("the price must be an amount in yuan with at most two decimals") from None
    return {"title": fields.get("title"), "description": fields.get("description") or "", "sql": fields.get("sql"),
            "parameters": parameters, "epsilon": fields.get("epsilon"), "price_minor": price_minor}


@page("GET", "/products/new", MERCHANT)
async def new_product(request: web.Request) -> web.Response:
    return render(request, "product_new.html", datasets=sorted(runtime_of(request).registry.policies),
                  fields={}, problem=None)


@page("POST", "/products", MERCHANT)
async def draft(request: web.Request) -> web.Response:
    fields = form(request)
    body = {"id": fields.get("id"), "dataset": fields.get("dataset")}
    try:
        body.update(_draft_body(fields))
        made = await products.draft(runtime_of(request), visit(request).who, body)
    except GatewayError as exc:
        return render(request, "product_new.html", status=exc.status, fields=fields, problem=exc,
                      datasets=sorted(runtime_of(request).registry.policies))
    return see_other(f"/console/products/{made['id']}?done=drafted")


@page("GET", "/products/{product_id}", AUTHORS)
async def product(request: web.Request) -> web.Response:
    return await _product_page(request, None)


async def _product_page(request: web.Request, tried: dict[str, Any] | None, status: int = 200,
                        problem: GatewayError | None = None) -> web.Response:
    runtime, who, product_id = runtime_of(request), visit(request).who, request.match_info["product_id"]
    versions = await products.versions(runtime, who, product_id)
    reg = await registration.product_registration(runtime, who, product_id)
    return render(request, "product.html", status=status, product_id=product_id, versions=versions, tried=tried,
                  problem=problem, dumps=json.dumps, reg=reg)


def _version(request: web.Request) -> int:
    raw = request.match_info["version"]
    if not raw.isdigit() or not 0 < int(raw) < 10**6:
        raise InvalidRequest("no such version")
    return int(raw)


def _params(fields: Any) -> dict[str, Any]:
    raw = str(fields.get("params") or "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidRequest("parameter values must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidRequest("parameter values must be a JSON object")
    return value


@page("POST", "/products/{product_id}/versions/{version}/try", api_roles(api.try_version))
async def try_version(request: web.Request) -> web.Response:
    try:
        answer = await products.try_on_twin(runtime_of(request), visit(request).who, request.match_info["product_id"],
                                            _version(request), _params(form(request)))
    except GatewayError as exc:
        return await _product_page(request, None, exc.status, exc)
    return await _product_page(request, answer)


@page("POST", "/products/{product_id}/versions/{version}/submit", api_roles(api.submit_version))
async def submit(request: web.Request) -> web.Response:
    await products.submit(runtime_of(request), visit(request).who, request.match_info["product_id"],
                          _version(request))
    return see_other(f"/console/products/{request.match_info['product_id']}?done=submitted")


@page("GET", "/products/review", api_roles(api.publish_version), nav=N_("Products to review"))
async def review(request: web.Request) -> web.Response:
    items = await overview.review_queue(runtime_of(request), visit(request).who)
    return render(request, "products_review.html", items=items, dumps=json.dumps)


@page("POST", "/products/{product_id}/versions/{version}/publish", api_roles(api.publish_version))
async def publish(request: web.Request) -> web.Response:
    await products.publish(runtime_of(request), visit(request).who, request.match_info["product_id"],
                           _version(request))
    return see_other("/console/products/review?done=published")


@page("POST", "/products/{product_id}/versions/{version}/reject", api_roles(api.reject_version))
async def reject(request: web.Request) -> web.Response:
    await products.reject(runtime_of(request), visit(request).who, request.match_info["product_id"],
                          _version(request), form(request).get("reason"))
    return see_other("/console/products/review?done=rejected")


# ---------------------------------------------------------------- published products


@page("GET", "/market", api_roles(api.list_products), nav=N_("Data products"))
async def market(request: web.Request) -> web.Response:
    items = await products.published(runtime_of(request))
    return render(request, "market.html", items=items, run_key=new_secret(), answer=None, problem=None,
                  chosen=None, params="", charts=[])


@page("POST", "/market/{product_id}/invoke", api_roles(api.invoke_product))
async def invoke(request: web.Request) -> web.Response:
    """The API's invoke path: same rate limit, service call and refusal record."""
    from gateway.console.requester_pages import _problem, _run_key, answer_charts

    runtime, who, product_id = runtime_of(request), visit(request).who, request.match_info["product_id"]
    fields = form(request)
    items = await products.published(runtime)
    context: dict[str, Any] = {"items": items, "run_key": new_secret(), "chosen": product_id,
                               "params": str(fields.get("params") or ""), "answer": None, "problem": None, "charts": []}
    dataset = None
    try:
        params, key = _params(fields), _run_key(fields.get("run_key"))
        found, version = await products.product_on_sale(runtime, product_id)
        dataset = found.dataset
        params = params or products.template_of(found, version).example_values()
        await enforce_dataset_rate(request, who, runtime.registry.get(found.dataset))
        body = {"params": params}
        reply = await products.invoke(runtime, who, found, version, params, idempotency_key=key,
                                      fingerprint=request_fingerprint(f"/console/market/{product_id}", body))
    except GatewayError as exc:  # refusals are metered and audited inside products.invoke
        context["problem"] = await _problem(request, exc, dataset or "")
        return render(request, "market.html", status=exc.status, **context)
    answer = json.loads(reply.body)
    if reply.status != 200:
        context["problem"] = await _problem(request, GatewayError(str(answer.get("detail", ""))), found.dataset)
        return render(request, "market.html", status=reply.status, **context)
    context.update(answer=answer, charts=answer_charts(answer))
    return render(request, "market.html", **context)


PAGES: tuple[Page, ...] = (my_products, new_product, draft, review, product, try_version, submit, publish, reject,
                           market, invoke)
