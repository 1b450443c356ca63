"""Admission: everything decided about a query or product call before the store is asked to spend.

One path for ad-hoc queries and product calls alike: the dataset's status, the sandbox, the
current snapshot, the requester's grants, the policy checks, the budget accounts it would
charge. A refusal on this path is metered and audited by `record_refusal`, whoever called.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.auth.tokens import Principal
from gateway.clock import utc_now_text
from gateway.core.agreements import ended_refusal
from gateway.core.budget import (
    NO_EPSILON_CAP,
    from_nano,
    grant_account,
    nano_to_float,
    period_at,
    pool_account,
    pool_lifetime_account,
    to_atto,
    to_nano,
)
from gateway.core.canonical import canonical_hash
from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.cost import CostLimits, check_cost
from gateway.core.derived import base_of, inputs_of
from gateway.core.plan import Plan
from gateway.core.policy import DatasetPolicy
from gateway.core.pricing import INDUSTRY, PricePlan, call_class
from gateway.errors import Forbidden, GatewayError, Unavailable
from gateway.metrics import REFUSAL_REASONS
from gateway.runtime.cache import Cache
from gateway.runtime.parts import Runtime
from gateway.service.readiness import ensure_ready
from gateway.store import agreements as store_agreements
from gateway.store import audit, ledger
from gateway.store import grants as store_grants
from gateway.store.db import Tx


class AdmissionState:
    """What admission remembers per replica: grants (for one poll interval) and checked plans."""

    def __init__(self, runtime: Runtime) -> None:
        # A revoked grant stops within one poll interval; a new one is seen at once (a miss re-reads).
        self.grants: Cache[str, list[store_grants.Grant]] = Cache(
            4096, ttl=runtime.settings.suspension_poll_seconds)
        self.checked_plans: Cache[tuple[str, str, int], CheckedPlan] = Cache(1024)


@dataclass(frozen=True)
class ProductCall:
    """A product invocation: priced by the product, attributed to its merchant."""

    product_id: str
    version: int
    price_minor: int
    currency: str
    merchant_org: str
    price: PricePlan | None = None  # the version's price model, trial and cached price


@dataclass(frozen=True)
class Admitted:
    """Everything decided before the store is asked anything."""

    who: Principal
    checked: CheckedPlan
    policy: DatasetPolicy
    product: ProductCall | None
    period: str
    epsilon_nano: int
    accounts: tuple[ledger.Account, ...]
    cache_scope: str
    idem_key: str | None
    purpose_class: str = INDUSTRY  # of the grants that allow the call (core.pricing.call_class)
    day: str = ""  # the county's calendar day of the call (trial prices end on one)
    delta_atto: int = 0

    @property
    def inputs(self) -> tuple[str, ...]:
        """A view's inputs, whose status the ledger checks with its own (R-DP-18)."""
        return inputs_of(self.policy)

    @property
    def plan(self) -> Plan:
        return self.checked.plan

    def cache_key(self, snapshot_id: str) -> str:
        parts = [self.cache_scope, self.plan.fingerprint(), self.policy.version, snapshot_id, self.period,
                 self.product.product_id if self.product else ""]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def log(self, outcome: str, epsilon_nano: int) -> dict[str, Any]:
        return {"dataset": self.plan.dataset, "policy_version": self.policy.version, "outcome": outcome,
                "epsilon": nano_to_float(epsilon_nano)}

    @property
    def price_version(self) -> str:
        if self.product is not None:
            return f"product:{self.product.product_id}@{self.product.version}"
        return f"policy:{self.policy.version}"


def request_fingerprint(path: str, body: Any) -> str:
    """SHA-256 of the canonical JSON of what was asked (R-ID-05)."""
    return canonical_hash({"path": path, "body": body})


def usable_grants(grants: list[store_grants.Grant], dataset: str,
                  product_id: str | None) -> list[store_grants.Grant]:
    """Which grants count for a call: those on the dataset for any use, and, for a product call,
    those for that product. The one rule for admission and for `/v1/budget`."""
    return [g for g in grants if g.dataset == dataset
            and (g.product_id is None or (product_id is not None and g.product_id == product_id))]


def _grant_limit(grants: list[store_grants.Grant], dataset: str, product_id: str | None) -> tuple[int, str]:
    """The limit of the call's grants, and the purpose class they give it."""
    usable = usable_grants(grants, dataset, product_id)
    if not usable:
        raise Forbidden(f"you hold no grant for {'this product' if product_id else 'dataset ' + repr(dataset)}")
    return max(g.epsilon_limit_nano for g in usable), call_class(g.purpose_class for g in usable)


def _grant_limit_with_bases(runtime: Runtime, grants: list[store_grants.Grant], dataset: str,
                            product_id: str | None) -> tuple[int, str]:
    """The limit on `dataset` (and its purpose class); on a view, only while a grant on its base
    holds too: a base grant that ends or is revoked ends what is derived from it (R-DP-18)."""
    found = _grant_limit(grants, dataset, product_id)
    policy = runtime.registry.policies.get(dataset)
    base = base_of(policy) if policy is not None else None
    if base is not None and not any(g.dataset == base for g in grants):
        raise Forbidden(f"you hold no grant for dataset {base!r}, on which {dataset!r} is built")
    return found


async def _grant_limit_of(runtime: Runtime, org_id: str, dataset: str, product_id: str | None) -> tuple[int, str]:
    """The requester's limit from its active grants, read at most every poll interval: a revoked
    grant stops within `suspension_poll_seconds`; a new one is seen at once (a miss re-reads)."""
    state = runtime.owned(AdmissionState)
    cached = state.grants.get(org_id)
    if cached is not None:
        try:
            return _grant_limit_with_bases(runtime, cached, dataset, product_id)
        except Forbidden:
            pass
    grants = await runtime.store.read(store_grants.active_grants, org_id, utc_now_text())
    state.grants.put(org_id, grants)
    try:
        return _grant_limit_with_bases(runtime, grants, dataset, product_id)
    except Forbidden:  # say so when an agreement's end is why there is no grant (410 agreement_ended)
        ended = await runtime.store.read(store_agreements.ended_under, org_id, dataset, product_id)
        if ended is not None:
            raise ended_refusal(*ended) from None
        raise


async def may_ask_again(runtime: Runtime, who: Principal, dataset: str, product_id: str | None) -> None:
    """A stored release is served only while asking for it again would be allowed (R-AU-10): the
    dataset answers queries and a grant holds; else the error that question would get."""
    runtime.registry.usable(dataset)
    await _grant_limit_of(runtime, who.org_id, dataset, product_id)


def _pool_accounts(runtime: Runtime, policy: DatasetPolicy) -> tuple[ledger.Account, ...]:
    """Datasets about the same people share one pool: a cap per period, the smallest of their
    global caps, and — where any member sets one — a lifetime cap that never renews. Delta the
    same way (R-DP-17), from the members that cap it: a pool none of whose members caps delta
    spends none."""
    members = [p for p in runtime.registry.policies.values() if p.pool == policy.pool]
    deltas = [_cap_atto(p.delta_global_cap) for p in members if p.delta_global_cap is not None]
    accounts: tuple[ledger.Account, ...] = (
        ledger.Account(pool_account(policy.pool), min(_cap_nano(p.global_cap) for p in members),
                       delta_cap_atto=min(deltas, default=0)),)
    lifetime = [_cap_nano(p.lifetime_cap) for p in members if p.lifetime_cap is not None]
    lifetime_deltas = [_cap_atto(p.delta_lifetime_cap) for p in members if p.delta_lifetime_cap is not None]
    if lifetime or lifetime_deltas:
        accounts += (ledger.Account(pool_lifetime_account(policy.pool), min(lifetime, default=NO_EPSILON_CAP),
                                    ledger.LIFETIME, delta_cap_atto=min(lifetime_deltas, default=0)),)
    return accounts


_cap_nano = functools.lru_cache(maxsize=256)(to_nano)  # policy caps are few and fixed: convert each once
_cap_atto = functools.lru_cache(maxsize=256)(to_atto)


def _checked(runtime: Runtime, plan: Plan, policy: DatasetPolicy, limit: int) -> CheckedPlan:
    """check_plan is pure: its verdict holds for the same plan, policy version and limit.

    Keyed by the plan's repr, not the plan: dataclass equality takes `age = TRUE` for `age = 1`
    (True == 1), so a refusal would turn into an answer once someone else had asked the other.
    """
    key = (plan.identity(), policy.version, limit)
    found = runtime.owned(AdmissionState).checked_plans.get(key)
    if found is None:
        found = check_plan(plan, policy, from_nano(limit))
        runtime.owned(AdmissionState).checked_plans.put(key, found)
    return found


async def admit(runtime: Runtime, who: Principal, plan: Plan, product: ProductCall | None,
                  idem_key: str | None) -> Admitted:
    """Every check that needs no data and spends nothing (DESIGN §4 steps 1-3)."""
    policy = runtime.registry.usable(plan.dataset)
    ensure_sandbox(runtime)
    ensure_ready(runtime, policy)  # 503 before any reservation while its data is not ready (R-DP-20)
    limit, purpose_class = await _grant_limit_of(runtime, who.org_id, plan.dataset,
                                                 product.product_id if product else None)
    checked = _checked(runtime, plan, policy, limit)
    check_cost(checked, cost_limits(runtime))  # what cannot finish in a worker is refused here (issue 19)
    epsilon_nano = checked.epsilon_nano  # the sandbox proves the measurement spends no more (R-DP-02)
    grant = ledger.Account(grant_account(who.org_id, policy.dataset), limit,
                           delta_cap_atto=_cap_atto(policy.delta_per_grant))
    accounts = (grant, *_pool_accounts(runtime, policy))
    scope = who.org_id if policy.cache_scope == "requester" else "*"
    zone = runtime.settings.zone
    delta_atto = _cap_atto(checked.delta) if checked.keys == "private" else 0  # only private keys spend delta
    return Admitted(who, checked, policy, product, period_at(time.time(), zone), epsilon_nano,
                    accounts, scope, idem_key, purpose_class=purpose_class,
                    day=datetime.now(zone).date().isoformat(), delta_atto=delta_atto)


@contextlib.asynccontextmanager
async def refusals_recorded(runtime: Runtime, who: Principal, dataset: str | None) -> AsyncIterator[None]:
    """Around everything that may refuse a query or a product call, from parsing to admission:
    a refusal is metered and audited the same way on both paths, then passed on."""
    try:
        yield
    except GatewayError as exc:
        await record_refusal(runtime, who, dataset if dataset in runtime.registry.policies else None, exc)
        raise


async def record_refusal(runtime: Runtime, who: Principal, dataset: str | None, error: GatewayError) -> None:
    """A refused query is metered and audited (its code only: never the SQL or a value)."""
    if error.code not in REFUSAL_REASONS:  # the metric's bounded reasons are the refusals we record
        return
    runtime.metrics.refusal(dataset, error.code)
    await runtime.store.write(_audit_refusal, who.client_id, dataset or "", error.code, op="append_audit")


def _audit_refusal(tx: Tx, client_id: str, dataset: str, code: str) -> None:
    audit.append(tx, "query.refused", client_id, dataset, {"code": code})


def cost_limits(runtime: Runtime) -> CostLimits:
    s = runtime.settings
    return CostLimits(s.max_query_terms, s.max_query_cells, s.max_quantile_candidates)


def ensure_sandbox(runtime: Runtime) -> None:
    if runtime.sandbox is None:
        raise Unavailable("the sandbox is not running", retry_after=2)
