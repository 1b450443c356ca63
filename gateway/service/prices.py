"""The price of a call is the one in force when its release commits (R-BI-05), not at its start.

A release can take seconds; a policy or product version published meanwhile sets its price. In
the commit transaction the dataset's policy version and the product's published version are
read again, and the call is priced by them, with their price version on the usage record. The
policy is taken from this replica's registry when it already knows that version, and read from
the store otherwise (another replica published it since the last poll).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from gateway.core.policy import DatasetPolicy
from gateway.core.pricing import PricePlan, plan_of_policy, plan_of_product
from gateway.runtime.registry import stored_policy
from gateway.service.admission import Admitted
from gateway.store.db import Tx


def admitted_plan(ctx: Admitted) -> tuple[PricePlan, str]:
    """The price list of the versions the call was admitted under, and its price version."""
    if ctx.product is not None:
        plan = ctx.product.price or PricePlan("per_call", ctx.product.price_minor, ctx.product.price_minor,
                                              ctx.product.currency)
        return plan, f"product:{ctx.product.product_id}@{ctx.product.version}"
    return plan_of_policy(ctx.policy.document["pricing"]), f"policy:{ctx.policy.version}"


def plan_at_commit(tx: Tx, ctx: Admitted, known: Mapping[str, DatasetPolicy]) -> tuple[PricePlan, str]:
    """The price list in force now, and its price version."""
    if ctx.product is not None:
        row = tx.one("SELECT p.published_version, v.definition FROM products p JOIN product_versions v "
                     "ON v.product_id = p.product_id AND v.version = p.published_version WHERE p.product_id = ?",
                     (ctx.product.product_id,))
        if row is None or int(row[0]) == ctx.product.version:
            return admitted_plan(ctx)
        return plan_of_product(json.loads(row[1])), f"product:{ctx.product.product_id}@{int(row[0])}"
    row = tx.one("SELECT policy_version FROM datasets WHERE dataset = ?", (ctx.plan.dataset,))
    if row is None or row[0] == ctx.policy.version:
        return admitted_plan(ctx)
    policy = known.get(ctx.plan.dataset)
    if policy is None or policy.version != row[0]:
        document = tx.one("SELECT document FROM policy_versions WHERE version = ?", (row[0],))
        assert document is not None, "a dataset points at a stored policy version"
        policy = stored_policy(json.loads(document[0]))
    return plan_of_policy(policy.document["pricing"]), f"policy:{row[0]}"
