"""Prices in use: the price of each call, the preview's quote, the bureau's fee caps and the
public price board.

A call is priced inside the transaction that stores its usage record: a per_month call asks
the store whether it opens the organisation's month (and so bears the fee); a per_call call
whether it still falls within the dataset's free calls. Public-class calls are priced 0 and
open no subscription.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.policy import DatasetPolicy
from gateway.core.pricing import (
    MODELS,
    PUBLIC_CLASSES,
    Cap,
    PricePlan,
    billable_cells,
    board_item,
    call_price,
    money,
    plan_of_policy,
    plan_of_product,
    subject_key,
)
from gateway.core.registration import Registration, shown_code, status_of
from gateway.errors import InvalidRequest, NotFound
from gateway.ids import new_id
from gateway.runtime.parts import Runtime
from gateway.service import registration
from gateway.service.admission import Admitted
from gateway.service.prices import admitted_plan, plan_at_commit
from gateway.store import ledger, product_status
from gateway.store import pricing as store_pricing
from gateway.store import products as store_products
from gateway.store.db import Tx

MAX_TEXT = 200


def today(runtime: Runtime) -> str:
    """The county's calendar day: trials end and vouchers expire on it."""
    return datetime.now(runtime.settings.zone).date().isoformat()


def _cells(ctx: Admitted) -> int:
    return billable_cells(ctx.checked.cells, ctx.policy.max_cells, ctx.plan.limit, len(ctx.plan.aggregates))


def _subject(ctx: Admitted) -> str:
    return subject_key(ctx.plan.dataset, ctx.product.product_id if ctx.product else None)


def _free(tx: Tx, ctx: Admitted, plan: PricePlan) -> bool:
    if plan.model != "per_call" or ctx.product is not None or not plan.free_calls:
        return False
    return ledger.billable_calls(tx, ctx.who.org_id, ctx.plan.dataset, ctx.period) < plan.free_calls


def price_call(tx: Tx, ctx: Admitted, known: Mapping[str, DatasetPolicy], *, cached: bool) -> ledger.Usage:
    """The usage record's price by the price list in force at commit, fixed in the transaction
    that stores it (R-BI-05); `known` is this replica's policies, to spare a read."""
    (plan, price_version), usage_id = plan_at_commit(tx, ctx, known), new_id()
    public = ctx.purpose_class in PUBLIC_CLASSES
    opens = (plan.model == "per_month" and not public
             and store_pricing.opens_month(tx, ctx.who.org_id, _subject(ctx), ctx.period, usage_id))
    price = call_price(plan, purpose_class=ctx.purpose_class, day=ctx.day, cached=cached, cells=_cells(ctx),
                       opens_month=opens, free=not public and _free(tx, ctx, plan))
    return ledger.Usage(usage_id, price, plan.currency, price_version, ctx.purpose_class)


def quote(tx: Tx, ctx: Admitted) -> dict[str, Any]:
    """What a fresh answer would cost now: the same rule, nothing written."""
    plan, _version = admitted_plan(ctx)
    opens = plan.model == "per_month" and not store_pricing.month_is_open(tx, ctx.who.org_id, _subject(ctx),
                                                                          ctx.period)
    price = call_price(plan, purpose_class=ctx.purpose_class, day=ctx.day, cached=False, cells=_cells(ctx),
                       opens_month=opens, free=_free(tx, ctx, plan))
    return {"price_minor": price, "currency": plan.currency, "model": plan.model,
            "purpose_class": ctx.purpose_class, "cells": _cells(ctx) if plan.model == "per_cell" else None,
            "trial_until": plan.trial_until if plan.in_trial(ctx.day) else None}


# ---------------------------------------------------------------- fee caps


def _subject_of(runtime: Runtime, body: dict[str, Any]) -> str:
    dataset, product_id = body.get("dataset"), body.get("product_id")
    if (dataset is None) == (product_id is None):
        raise InvalidRequest("name exactly one of dataset and product_id")
    if dataset is not None:
        if not isinstance(dataset, str) or dataset not in runtime.registry.policies:
            raise NotFound("no such dataset")
        return f"dataset:{dataset}"
    if not isinstance(product_id, str):
        raise InvalidRequest("product_id must be a string")
    return f"product:{product_id}"


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise InvalidRequest(f"{name} must be text of 1 to {MAX_TEXT} characters")
    return value.strip()


async def set_cap(runtime: Runtime, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """The bureau's fee cap on a dataset's ad-hoc price or a product's price (audited)."""
    subject = _subject_of(runtime, body)
    model = body.get("model")
    if model not in MODELS:
        raise InvalidRequest(f"model must be one of {', '.join(MODELS)}")
    reason = _optional_text(body, "reason")
    if reason is None:
        raise InvalidRequest("reason must say why the cap is set")
    cap = Cap(str(model), money(body.get("cap_minor"), "cap_minor"), _currency(runtime, body),
              _optional_text(body, "registration_code"), _optional_text(body, "scenario"))
    return await runtime.store.write(store_pricing.set_cap, subject, cap, reason, who.client_id)


def _currency(runtime: Runtime, body: dict[str, Any]) -> str:
    currency = body.get("currency", runtime.settings.currency)
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise InvalidRequest("currency must be an ISO 4217 code")
    return currency


async def list_caps(runtime: Runtime) -> list[dict[str, Any]]:
    """Every cap act, oldest first (the latest per dataset or product is in force)."""
    return await runtime.store.read(store_pricing.cap_history)


# ---------------------------------------------------------------- the public price board


def _board(tx: Tx, policies: list[tuple[str, str, dict[str, Any]]], day: str) -> list[dict[str, Any]]:
    caps, regs = store_pricing.current_caps(tx), registration.current(tx)
    items = [_registered(board_item(("dataset", ds), title, plan_of_policy(pricing), caps.get(f"dataset:{ds}"),
                                    day), regs.get(f"dataset:{ds}"), status_of(regs.get(f"dataset:{ds}")))
             for ds, title, pricing in policies]
    usable = {ds for ds, _t, _p in policies}
    on_sale = {pid for pid, state in product_status.sale_states(tx).items() if state.status == "published"}
    for product, version in store_products.published(tx):
        if product.dataset in usable and product.product_id in on_sale:  # as GET /v1/products lists them
            found = regs.get(f"product:{product.product_id}")
            items.append(_registered(board_item(("product", product.product_id), version.definition["title"],
                                                plan_of_product(version.definition),
                                                caps.get(f"product:{product.product_id}"), day),
                                     found, registration.product_state(found, version)))
    return items


def _registered(item: dict[str, Any], found: Registration | None, status: str) -> dict[str, Any]:
    """The board shows the subject's own registration code while it is valid (core.registration)."""
    return {**item, "registration_code": shown_code(found, status, item["registration_code"])}


async def price_board(runtime: Runtime) -> dict[str, Any]:
    """Every dataset open to ad-hoc queries and every product on sale: the price in force today,
    its model, the cap and the registration code. The same list the console shows publicly."""
    policies = [(p.dataset, p.title, dict(p.document["pricing"])) for p in sorted(
        runtime.registry.policies.values(), key=lambda p: p.dataset)
        if p.queryable and not runtime.registry.withdrawn(p.dataset)]
    items = await runtime.store.read(_board, policies, today(runtime))
    return {"currency": runtime.settings.currency, "items": items}
