"""What people look at: the bureau's dashboard, the audit log in pages, products by state.

Read-only. The bureau sees everything here; a merchant its own products. Numbers shown are
counts of releases and sums of epsilon and money, never anything derived from data values.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from gateway.auth.tokens import Principal
from gateway.clock import utc_now, utc_text
from gateway.core.budget import nano_to_float, period_of, to_nano
from gateway.errors import Forbidden
from gateway.runtime.parts import Runtime
from gateway.service import billing
from gateway.service.supply import datasets_not_loaded
from gateway.store import ledger
from gateway.store import overview as store_overview

NEARLY_SPENT = 0.9  # the alert rule GatewayDatasetGlobalCapNearlySpent fires above this share


def _bureau(who: Principal) -> None:
    if not who.has("bureau"):
        raise Forbidden("only the bureau sees this")


def start_of_today(runtime: Runtime) -> str:
    """Midnight in the county's zone, as the store's UTC text."""
    zone = runtime.settings.zone
    return utc_text(datetime.combine(utc_now().astimezone(zone).date(), time(0), tzinfo=zone))


async def pool_spend(runtime: Runtime) -> list[dict[str, Any]]:
    """Each budget pool this month: its datasets, cap (the smallest member's) and spend."""
    period = period_of(utc_now(), runtime.settings.zone)
    pools: dict[str, list[str]] = {}
    for dataset, policy in sorted(runtime.registry.policies.items()):
        pools.setdefault(policy.pool, []).append(dataset)
    used = await runtime.store.read(ledger.account_usage, sorted(f"pool:{p}" for p in pools), period)
    out = []
    for pool, members in sorted(pools.items()):
        cap = min(to_nano(runtime.registry.policies[d].global_cap) for d in members)
        _stored_cap, spent, reserved = used.get(f"pool:{pool}", (cap, 0, 0))
        out.append({"pool": pool, "datasets": members, "cap": nano_to_float(cap), "spent": nano_to_float(spent),
                    "reserved": nano_to_float(reserved), "share": spent / cap if cap else 0.0})
    return out


async def dashboard(runtime: Runtime, who: Principal) -> dict[str, Any]:
    _bureau(who)
    since = start_of_today(runtime)
    period = period_of(utc_now(), runtime.settings.zone)
    releases = await runtime.store.read(store_overview.releases_since, since)
    refusals = await runtime.store.read(store_overview.audit_since, "query.refused", since)
    pools = await pool_spend(runtime)
    revenue = await billing.statements(runtime, who, period)
    by_code: dict[str, int] = {}
    for r in refusals:
        code = str(r["payload"].get("code", ""))
        by_code[code] = by_code.get(code, 0) + 1
    return {"period": period, "since": since,
            "releases": [{"dataset": d, "count": n, "epsilon": nano_to_float(e)} for d, n, e in releases],
            "refusals": sorted(by_code.items()), "pools": pools, "revenue": revenue,
            "alerts": alerts(runtime, pools)}


def alerts(runtime: Runtime, pools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The alert rules this replica can judge by itself (deploy/prometheus/gateway-rules.yml)."""
    firing = []
    if not runtime.ready or runtime.draining:
        firing.append({"name": "GatewayNotReady", "subject": runtime.replica})
    for dataset in datasets_not_loaded(runtime):
        firing.append({"name": "GatewayDatasetUnavailable", "subject": dataset})
    for pool in pools:
        if pool["share"] > NEARLY_SPENT:
            firing.append({"name": "GatewayDatasetGlobalCapNearlySpent", "subject": pool["pool"]})
    return firing


async def audit_page(runtime: Runtime, who: Principal, before: int | None, kind: str | None,
                     limit: int = 50) -> list[dict[str, Any]]:
    _bureau(who)
    return await runtime.store.read(store_overview.audit_page, before, limit, kind or None)


async def review_queue(runtime: Runtime, who: Principal) -> list[dict[str, Any]]:
    """Product versions submitted for review, oldest first (the bureau's queue)."""
    from gateway.service.products import version_view

    _bureau(who)
    found = await runtime.store.read(store_overview.versions_in_state, "submitted")
    return [version_view(p, v) for p, v in found]


async def my_products(runtime: Runtime, who: Principal) -> list[dict[str, Any]]:
    """A merchant's products with every version (the bureau: all products)."""
    from gateway.service.products import versions

    owner = None if who.has("bureau") else who.org_id
    products = await runtime.store.read(store_overview.products_of, owner)
    return [{"id": p.product_id, "dataset": p.dataset, "published_version": p.published_version,
             "versions": await versions(runtime, who, p.product_id)} for p in products]


async def snapshot_refusals(runtime: Runtime, dataset: str, since: str) -> list[dict[str, Any]]:
    """Refused loads of a dataset (their validation reports), newest first."""
    return await runtime.store.read(store_overview.audit_since, "snapshot.refused", since, dataset, 20)
