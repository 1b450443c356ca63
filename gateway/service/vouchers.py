"""Data vouchers (数据券): the bureau issues them to a requester organisation; invoices redeem them.

A voucher is money from a special fund: `amount_minor`, valid from one day to another (both
included, county calendar), optionally only for some datasets, products or a scenario the
bureau registered prices under. Redemption is automatic (see core/settlement.py): no call here
spends a voucher. A requester sees its organisation's vouchers and balances, the bureau all.
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.pages import Page, PageRequest, page_of
from gateway.core.pricing import MAX_PRICE, is_day
from gateway.core.settlement import VoucherScope
from gateway.errors import InvalidRequest, NotFound
from gateway.runtime.parts import Runtime
from gateway.service.pricing import today
from gateway.store import requesters as store_requesters
from gateway.store import vouchers as store_vouchers
from gateway.store.db import Tx


def _names(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > 100 or not all(isinstance(v, str) and v for v in value):
        raise InvalidRequest(f"scope.{what} must be a list of {what} ids")
    return tuple(sorted(set(value)))


def _scope(runtime: Runtime, value: Any) -> VoucherScope:
    if value is None:
        return VoucherScope()
    if not isinstance(value, dict) or set(value) - {"datasets", "products", "scenario"}:
        raise InvalidRequest("scope is an object of datasets, products and scenario")
    datasets = _names(value.get("datasets"), "datasets")
    unknown = [d for d in datasets if d not in runtime.registry.policies]
    if unknown:
        raise InvalidRequest(f"scope names unknown datasets: {', '.join(unknown)}")
    scenario = value.get("scenario")
    if scenario is not None and (not isinstance(scenario, str) or not 0 < len(scenario) <= 100):
        raise InvalidRequest("scope.scenario must be a tag of 1 to 100 characters")
    return VoucherScope(datasets, _names(value.get("products"), "products"), scenario)


def _text(body: dict[str, Any], name: str, default: str) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > 500:
        raise InvalidRequest(f"{name} must be text of at most 500 characters")
    return value.strip()


async def issue(runtime: Runtime, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    org_id, amount = body.get("org_id"), body.get("amount_minor")
    if not isinstance(org_id, str) or not org_id:
        raise InvalidRequest("org_id must name a requester organisation")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_PRICE:
        raise InvalidRequest("amount_minor must be a positive whole number of minor units")
    valid_from, valid_until = body.get("valid_from"), body.get("valid_until")
    if not is_day(valid_from) or not is_day(valid_until):
        raise InvalidRequest("valid_from and valid_until are days, YYYY-MM-DD")
    assert isinstance(valid_from, str) and isinstance(valid_until, str)
    if valid_until < valid_from:
        raise InvalidRequest("valid_until cannot come before valid_from")
    if valid_until < today(runtime):
        raise InvalidRequest("the voucher would have expired already")
    scope = _scope(runtime, body.get("scope"))
    fund, note = _text(body, "fund", "special fund"), _text(body, "note", "")
    voucher_id = "vch-" + uuid.uuid4().hex[:16]
    return await runtime.store.write(_issue, voucher_id, org_id, amount, runtime.settings.currency, valid_from,
                                     valid_until, scope, fund, note, who.client_id)


def _issue(tx: Tx, voucher_id: str, org_id: str, amount: int, currency: str, valid_from: str, valid_until: str,
           scope: VoucherScope, fund: str, note: str, actor: str) -> dict[str, Any]:
    org = store_requesters.get_org(tx, org_id)
    if org is None or org.kind != "requester":
        raise InvalidRequest(f"{org_id!r} is not a registered requester organisation")
    return store_vouchers.issue(tx, voucher_id, org_id, amount, currency, valid_from, valid_until, scope, fund,
                                note, actor)


async def listing(runtime: Runtime, who: Principal, org_filter: str | None,
                  page: PageRequest) -> Page[dict[str, Any]]:
    """One page of vouchers by id: the caller's organisation's, or all (or one's) for the bureau."""
    org = org_filter if who.has("bureau") else who.org_id
    after = page.key_of_width(1)
    found = await runtime.store.read(store_vouchers.listing, org, str(after[0]) if after else None, page.limit + 1)
    return page_of(found, page, lambda v: (v["voucher_id"],))


async def one(runtime: Runtime, who: Principal, voucher_id: str) -> dict[str, Any]:
    found = await runtime.store.read(store_vouchers.get, voucher_id)
    if found is None or not (who.has("bureau") or found["org_id"] == who.org_id):
        raise NotFound("no such voucher")
    return found
