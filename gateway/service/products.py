"""Data products: a merchant drafts, tries on the synthetic twin, submits; the bureau publishes.

A product version is parsed once when drafted (and held against the policy then); the parsed
template is kept per definition hash, so an invocation only checks and binds values. An
invocation is an ordinary query on the ledger path (budget, cache, idempotency, usage, audit),
priced by the product and attributed to its merchant.
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.budget import nano_to_float, to_nano
from gateway.core.checks import check_plan
from gateway.core.pages import Page, PageRequest, page_of
from gateway.core.plan import Plan
from gateway.core.policy import DatasetPolicy
from gateway.core.pricing import plan_of_product, product_pricing
from gateway.core.products import Template, bind, bind_values, draft_template, parse_parameters, parse_template
from gateway.core.twin import TWIN_ROWS, Answer, evaluate, twin_rows
from gateway.errors import AgreementEnded, DatasetWithdrawn, InvalidRequest, NotFound, ProductRetired, ProductSuspended
from gateway.runtime.cache import Cache
from gateway.runtime.parts import Runtime
from gateway.service import agreements
from gateway.service.admission import ProductCall, refusals_recorded
from gateway.service.answers import QueryReply
from gateway.service.applications import parse_epsilon
from gateway.service.queries import run_query
from gateway.service.registration import check_on_sale, product_summary, publish_registered
from gateway.service.registration import current as current_registrations
from gateway.service.visibility import visible
from gateway.store import agreements as store_agreements
from gateway.store import pricing as store_pricing
from gateway.store import product_status
from gateway.store import products as store_products
from gateway.store.db import Tx

PRODUCT_ID = re.compile(r"^[a-z][a-z0-9-]{2,62}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
PRICE_FIELDS = ("price_model", "cached_price_minor", "trial_price_minor", "trial_until")
DRAFT_FIELDS = ("title", "description", "sql", "parameters", "epsilon", "delta", "price_minor", "currency",
                *PRICE_FIELDS)


def _text(body: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str:
    value = body.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > limit:
        raise InvalidRequest(f"{name} must be text of at most {limit} characters")
    return value.strip()


def build_definition(policy: DatasetPolicy, body: dict[str, Any], max_sql_chars: int) -> dict[str, Any]:
    """A checked product definition from a draft body: parsed once here, held against the policy."""
    price = body.get("price_minor")
    if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= 10**12:
        raise InvalidRequest("price_minor must be a whole number of minor units, 0 or more")
    currency = body.get("currency", policy.pricing.currency)
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise InvalidRequest("currency must be an ISO 4217 code")
    epsilon = parse_epsilon(body.get("epsilon"), "epsilon")
    delta = Decimal(0) if body.get("delta") is None else parse_epsilon(body.get("delta"), "delta")
    sql = _text(body, "sql", max_sql_chars)
    template = draft_template(sql, parse_parameters(body.get("parameters", [])), epsilon=epsilon, delta=delta,
                              policy=policy)
    return {
        "title": _text(body, "title", 200), "description": _text(body, "description", 4000, required=False),
        "sql": sql, "parameters": [p.as_dict() for p in template.parameters],
        "epsilon": str(epsilon), "delta": str(delta), "price_minor": price, "currency": currency,
        **product_pricing(body, price),
    }


async def _definition(runtime: Runtime, dataset: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    policy = runtime.registry.usable(dataset)
    # Parsing a draft's SQL (up to max_sql_chars) is tens of milliseconds: off the event loop.
    definition = await asyncio.to_thread(build_definition, policy, body, runtime.settings.max_sql_chars)
    return definition, policy.version


def seed_published(tx: Tx, product_id: str, merchant_org: str, dataset: str, definition: dict[str, Any],
                   policy_version: str, actor: str, agreement_id: str | None = None) -> bool:
    """Draft, submit and publish in one go (the demo county's own products), under an agreement
    when one is named; False if present."""
    if store_products.get_product(tx, product_id) is not None:
        return False
    store_products.create_product(tx, product_id, merchant_org, dataset, definition, policy_version, actor)
    store_products.submit(tx, product_id, 1, actor)
    store_products.publish(tx, product_id, 1, actor)
    if agreement_id is not None:
        store_agreements.set_product_agreement(tx, product_id, agreement_id, actor)
    return True


_TEMPLATES: Cache[tuple[str, str], Template] = Cache(256)  # (definition hash, dataset) -> parsed


def template_of(product: store_products.Product, version: store_products.ProductVersion) -> Template:
    """Parsed once per definition (keyed by its hash): invocations only bind values."""
    key = (version.definition_hash, product.dataset)
    template = _TEMPLATES.get(key)
    if template is None:
        d = version.definition
        template = parse_template(d["sql"], parse_parameters(d["parameters"]), epsilon=Decimal(d["epsilon"]),
                                  delta=Decimal(d["delta"]), dataset=product.dataset)
        _TEMPLATES.put(key, template)
    return template


def public_view(runtime: Runtime, product: store_products.Product, version: store_products.ProductVersion,
                status: str, registration: dict[str, Any]) -> dict[str, Any]:
    """What any caller may know of a published product, with its registration `{code, status}`:
    never its SQL."""
    d = version.definition
    template = template_of(product, version)
    return {
        "id": product.product_id, "version": version.version, "title": d["title"],
        "description": d["description"], "dataset": product.dataset, "merchant": product.merchant_org,
        "parameters": d["parameters"], "columns": [o.name for o in template.plan.select],
        "epsilon_per_call": nano_to_float(to_nano(d["epsilon"])),
        "price": {"per_call_minor": d["price_minor"], "currency": d["currency"], **plan_of_product(d).as_dict()},
        "status": status,
        "dataset_status": runtime.registry.status_of(product.dataset),
        "published_at": version.decided_at,
        "registration": registration,
    }


def version_view(product: store_products.Product, v: store_products.ProductVersion) -> dict[str, Any]:
    """The merchant's and the bureau's view of one version, SQL included."""
    return {"id": product.product_id, "version": v.version, "status": v.status, "dataset": product.dataset,
            "merchant": product.merchant_org, "definition": v.definition, "definition_hash": v.definition_hash,
            "policy_version": v.policy_version, "created_at": v.created_at, "submitted_at": v.submitted_at,
            "decided_by": v.decided_by, "decided_at": v.decided_at, "reason": v.reason}


async def draft(runtime: Runtime, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    product_id, dataset = body.get("id"), body.get("dataset")
    if not isinstance(product_id, str) or not PRODUCT_ID.match(product_id):
        raise InvalidRequest(f"id must match {PRODUCT_ID.pattern}")
    if not isinstance(dataset, str):
        raise InvalidRequest("dataset must be a string")
    definition, policy_version = await _definition(runtime, dataset, body)
    await runtime.store.read(store_pricing.check_price, f"product:{product_id}", plan_of_product(definition))
    v = await runtime.store.write(store_products.create_product, product_id, who.org_id, dataset, definition,
                                  policy_version, who.client_id)
    product = await runtime.store.read(store_products.get_product, product_id)
    assert product is not None
    return version_view(product, v)


async def owned_product(runtime: Runtime, who: Principal, product_id: str) -> store_products.Product:
    """The caller's own product (a merchant), or any product (the bureau); else 404."""
    product = await runtime.store.read(store_products.get_product, product_id)
    return visible(product, lambda p: who.has("bureau") or p.merchant_org == who.org_id, "product")


async def new_version(runtime: Runtime, who: Principal, product_id: str, body: dict[str, Any]) -> dict[str, Any]:
    product = await owned_product(runtime, who, product_id)
    definition, policy_version = await _definition(runtime, product.dataset, body)
    await runtime.store.read(store_pricing.check_price, f"product:{product_id}", plan_of_product(definition))
    v = await runtime.store.write(store_products.add_version, product, definition, policy_version, who.client_id)
    return version_view(product, v)


async def _owned_version(runtime: Runtime, who: Principal, product_id: str,
                         version: int) -> tuple[store_products.Product, store_products.ProductVersion]:
    product = await owned_product(runtime, who, product_id)
    v = await runtime.store.read(store_products.get_version, product_id, version)
    if v is None:
        raise NotFound("no such product version")
    return product, v


async def versions(runtime: Runtime, who: Principal, product_id: str) -> list[dict[str, Any]]:
    product = await owned_product(runtime, who, product_id)
    found = await runtime.store.read(store_products.versions, product_id)
    return [version_view(product, v) for v in found]


async def versions_page(runtime: Runtime, who: Principal, product_id: str,
                        page: PageRequest) -> Page[dict[str, Any]]:
    """One page of `versions`, oldest first."""
    product = await owned_product(runtime, who, product_id)
    found = await runtime.store.read(store_products.versions_page, product_id, page)
    return found.map(lambda v: version_view(product, v))


async def try_on_twin(runtime: Runtime, who: Principal, product_id: str, version: int,
                      params: dict[str, Any]) -> dict[str, Any]:
    """Run a version on the synthetic twin: same schema and categories, generated rows, exact."""
    product, v = await _owned_version(runtime, who, product_id, version)
    policy = runtime.registry.get(product.dataset)
    template = template_of(product, v)
    values = bind_values(template, params or template.example_values())
    checked = check_plan(bind(template, values), policy)
    columns, rows = await asyncio.to_thread(_twin_answer, checked.plan, policy)
    return {"id": product_id, "version": version, "params": values, "columns": list(columns),
            "rows": [list(r) for r in rows], "twin": {"synthetic": True, "rows": TWIN_ROWS, "exact": True},
            "epsilon_per_call": nano_to_float(checked.epsilon_nano)}


def _twin_answer(plan: Plan, policy: DatasetPolicy) -> Answer:
    # Generating the twin costs a few tens of milliseconds; drafts are tried rarely.
    return evaluate(plan, policy, twin_rows(policy))


async def submit(runtime: Runtime, who: Principal, product_id: str, version: int) -> dict[str, Any]:
    product, _v = await _owned_version(runtime, who, product_id, version)
    await runtime.store.write(store_products.submit, product_id, version, who.client_id)
    return version_view(product, await _version(runtime, product_id, version))


async def publish(runtime: Runtime, who: Principal, product_id: str, version: int,
                  agreement_id: Any = None) -> dict[str, Any]:
    """Publish under the authorisation agreement named, or else the one in force listing the
    product (409 when none does, or the product or its dataset is outside the one named)."""
    product, _v = await _owned_version(runtime, who, product_id, version)
    agreement = await agreements.standing(runtime, agreement_id, product.dataset, product_id, None)
    await runtime.store.write(_publish_under, product, version, who.client_id, agreement.agreement_id,
                              runtime.settings.registration_required)
    return version_view(product, await _version(runtime, product_id, version))


def _publish_under(tx: Tx, product: store_products.Product, version: int, actor: str, agreement_id: str,
                   registration_required: bool) -> None:
    """In one transaction: the agreement still in force, the registration (where required) and the
    fee cap admit this version, then it is published on that agreement."""
    store_agreements.hold_to(tx, agreement_id, product.dataset, product.product_id, None)
    publish_registered(tx, product.product_id, version, actor, registration_required)
    store_agreements.set_product_agreement(tx, product.product_id, agreement_id, actor)


async def reject(runtime: Runtime, who: Principal, product_id: str, version: int, reason: Any) -> dict[str, Any]:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise InvalidRequest("reason must be text of 1 to 2000 characters")
    product, _v = await _owned_version(runtime, who, product_id, version)
    await runtime.store.write(store_products.reject, product_id, version, who.client_id, reason.strip())
    return version_view(product, await _version(runtime, product_id, version))


async def _version(runtime: Runtime, product_id: str, version: int) -> store_products.ProductVersion:
    v = await runtime.store.read(store_products.get_version, product_id, version)
    assert v is not None
    return v


# ---------------------------------------------------------------- the published catalogue


def _published_one(tx: Tx, product_id: str) -> tuple[store_products.Product, store_products.ProductVersion,
                                                    product_status.SaleState] | None:
    product = store_products.get_product(tx, product_id)
    if product is None or product.published_version is None:
        return None
    v = store_products.get_version(tx, product_id, product.published_version)
    state = product_status.sale_state(tx, product_id)
    return (product, v, state) if v is not None and state is not None else None


def _published_all(tx: Tx) -> list[tuple[store_products.Product, store_products.ProductVersion, str,
                                          dict[str, Any]]]:
    states, regs = product_status.sale_states(tx), current_registrations(tx)
    return [(p, v, states[p.product_id].status, product_summary(regs, p.product_id, v))
            for p, v in store_products.published(tx) if p.product_id in states]


async def published(runtime: Runtime) -> list[dict[str, Any]]:
    """Products on sale: published, neither suspended nor retired by the bureau, their merchant
    active, their dataset not withdrawn (a withdrawal stops them)."""
    found = await runtime.store.read(_published_all)
    return [public_view(runtime, p, v, status, registration) for p, v, status, registration in found
            if status == "published" and not runtime.registry.withdrawn(p.dataset)]


async def published_page(runtime: Runtime, page: PageRequest) -> Page[dict[str, Any]]:
    """One page of `published`, by id: keyset over the products on sale (few, and filtered by rules
    that live here, not in SQL)."""
    on_sale = await published(runtime)
    after = page.key_of_width(1)
    rest = [p for p in on_sale if after is None or (p["id"],) > after]
    return page_of(rest[: page.limit + 1], page, key=lambda p: (p["id"],))


async def published_product(runtime: Runtime, product_id: str) -> tuple[store_products.Product,
                                                                       store_products.ProductVersion, str]:
    """A published product with its status; 410 once retired or its dataset withdrawn."""
    found = await runtime.store.read(_published_one, product_id)
    if found is None:
        raise NotFound("no such product")
    product, version, state = found
    if runtime.registry.withdrawn(product.dataset):
        raise DatasetWithdrawn("the product's dataset has been withdrawn; the product has stopped")
    if state.agreement_ended and state.bureau_status != "retired":
        raise AgreementEnded("the authorisation agreement this product stood on has ended; the product has stopped")
    if state.status == "retired":
        raise ProductRetired("the bureau has retired this product")
    return product, version, state.status


async def product_on_sale(runtime: Runtime, product_id: str) -> tuple[store_products.Product,
                                                                     store_products.ProductVersion]:
    """A product that may be invoked now (read per call: a suspension holds from the next request)."""
    product, version, status = await published_product(runtime, product_id)
    if status == "suspended":
        raise ProductSuspended("the product is suspended; it does not sell until the bureau resumes it")
    await check_on_sale(runtime, product_id, version)
    return product, version


async def published_view(runtime: Runtime, product_id: str) -> dict[str, Any]:
    """GET /v1/products/{id}: one published product, with its registration."""
    product, version, status = await published_product(runtime, product_id)
    regs = await runtime.store.read(current_registrations)
    return public_view(runtime, product, version, status, product_summary(regs, product_id, version))


async def set_sale_status(runtime: Runtime, who: Principal, product_id: str, status: str,
                          reason: str) -> dict[str, Any]:
    """The bureau suspends, resumes or retires a product's published version (issue 19 point 5)."""
    await owned_product(runtime, who, product_id)
    await runtime.store.write(product_status.set_bureau_status, product_id, status, who.client_id, reason)
    found = await runtime.store.read(_published_one, product_id)
    assert found is not None
    product, version, state = found
    return {**version_view(product, version), "sale_status": state.status}


async def invoke(runtime: Runtime, who: Principal, product: store_products.Product, v: store_products.ProductVersion,
                 params: dict[str, Any], *, idempotency_key: str | None, fingerprint: str) -> QueryReply:
    """Bind the values, then the same ledger path as an ad-hoc query (grant checked there)."""
    async with refusals_recorded(runtime, who, product.dataset):
        runtime.registry.usable(product.dataset)  # 409 suspended / 410 withdrawn before anything else
        plan = bind(template_of(product, v), params)
        call = ProductCall(product.product_id, v.version, int(v.definition["price_minor"]),
                           v.definition["currency"], product.merchant_org, plan_of_product(v.definition))
        return await run_query(runtime, who, plan, product=call, idempotency_key=idempotency_key,
                               request_fingerprint=lambda: fingerprint)
