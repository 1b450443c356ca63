"""Usage contracts: a grant exported as an ODRL 2.2 Agreement (core/odrl.py says the mapping)."""

from __future__ import annotations

from typing import Any

from gateway.auth.tokens import Principal
from gateway.clock import utc_now_text
from gateway.core import status as dataset_status
from gateway.core.budget import from_nano
from gateway.core.odrl import GrantTerms, agreement
from gateway.runtime.parts import Runtime
from gateway.service import registration
from gateway.service.applications import visible_grant
from gateway.store import products as store_products
from gateway.store.db import Tx


def _context_of(tx: Tx, grant_id: str, dataset: str,
                product_id: str | None) -> tuple[str, str, int | None, str | None]:
    """(purpose of the application the grant came from, the bureau's organisation, product price,
    the registration code of the grant's target)."""
    app = tx.one("SELECT purpose FROM applications WHERE grant_id = ?", (grant_id,))
    bureau = tx.one("SELECT org_id FROM organisations WHERE kind = 'bureau' ORDER BY created_at LIMIT 1")
    price = None
    if product_id is not None:
        product = store_products.get_product(tx, product_id)
        version = (store_products.get_version(tx, product_id, product.published_version)
                   if product is not None and product.published_version is not None else None)
        price = int(version.definition["price_minor"]) if version is not None else None
    code = registration.code_of(registration.current(tx), registration.product_subject(product_id) if product_id
                                else registration.dataset_subject(dataset))
    return (app[0] if app else "granted by the data bureau"), (bureau[0] if bureau else "bureau"), price, code


async def grant_agreement(runtime: Runtime, who: Principal, grant_id: str, base_url: str) -> dict[str, Any]:
    """The grant's ODRL Agreement, for its holder, the dataset's source department and the bureau."""
    view = await visible_grant(runtime, who, grant_id)
    g = view.grant
    policy = runtime.registry.get(g.dataset)
    purpose, bureau, product_price, code = await runtime.store.read(_context_of, g.grant_id, g.dataset, g.product_id)
    shown = view.as_dict(utc_now_text())["status"]
    state = "suspended" if shown == "active" and runtime.registry.status_of(g.dataset) == dataset_status.SUSPENDED \
        else shown
    terms = GrantTerms(
        base_url=base_url, grant_id=g.grant_id, assignee_org=g.org_id, source_org=policy.owner, bureau_org=bureau,
        dataset=g.dataset, product_id=g.product_id, registration_code=code, purpose=purpose, purpose_class=None,
        epsilon_per_period=str(from_nano(g.epsilon_limit_nano)), delta_per_period=None, period="P1M",
        valid_from=g.valid_from, valid_until=g.valid_until,
        price_minor=product_price if g.product_id else policy.pricing.per_call_minor,
        currency=policy.pricing.currency, state=state, agreement_id=g.agreement_id)
    return agreement(terms)
