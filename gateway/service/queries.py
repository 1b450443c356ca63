"""The release path (DESIGN §4): check -> idempotency -> answer cache -> reserve -> mark as
touching data -> sandbox release -> one commit transaction -> padded response.

Before `mark_executing` commits, any failure returns the reservation and forgets the
idempotency claim; from then on a failure keeps the charge, bills nothing and answers one
generic error (R-DP-11), which an idempotent retry replays.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.budget import from_nano, nano_to_float, period_at, to_nano
from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.plan import Plan, canonical_json, render
from gateway.core.policy import DatasetPolicy
from gateway.dp.outcome import Release
from gateway.errors import Forbidden, GatewayError, ReleaseFailed, Unavailable
from gateway.ids import new_id
from gateway.metrics import REFUSAL_REASONS
from gateway.runtime import Runtime
from gateway.service.supply import current_snapshot_id
from gateway.store import audit, idempotency, ledger
from gateway.store import grants as store_grants
from gateway.store.db import Tx
from gateway.tokens import Principal

ALPHA = 0.05
REPLAYED = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True)
class ProductCall:
    """A product invocation: priced by the product, attributed to its merchant."""

    product_id: str
    version: int
    price_minor: int
    currency: str
    merchant_org: str


@dataclass(frozen=True)
class QueryReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)  # outcome, epsilon... for the access log


@dataclass(frozen=True)
class _Context:
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

    def usage(self, cached: bool) -> ledger.Usage:
        if self.product is not None:
            return ledger.Usage(new_id(), self.product.price_minor, self.product.currency,
                                f"product:{self.product.product_id}@{self.product.version}")
        pricing = self.policy.pricing
        price = pricing.cached_call_minor if cached else pricing.per_call_minor
        return ledger.Usage(new_id(), price, pricing.currency, f"policy:{self.policy.version}")


def request_fingerprint(path: str, body: Any) -> str:
    """SHA-256 of the canonical JSON of what was asked (R-ID-05)."""
    return hashlib.sha256(canonical_json({"path": path, "body": body}).encode()).hexdigest()


def _grant_limit(grants: list[store_grants.Grant], dataset: str, product: ProductCall | None) -> int:
    usable = [g for g in grants if g.dataset == dataset
              and (g.product_id is None or (product is not None and g.product_id == product.product_id))]
    if not usable:
        raise Forbidden(f"you hold no grant for {'this product' if product else 'dataset ' + repr(dataset)}")
    return max(g.epsilon_limit_nano for g in usable)


async def _grant_limit_of(runtime: Runtime, org_id: str, dataset: str, product: ProductCall | None) -> int:
    """The requester's limit from its active grants, read at most every poll interval: a revoked
    grant stops within `suspension_poll_seconds`; a new one is seen at once (a miss re-reads)."""
    cached = runtime.grant_cache.get(org_id)
    if cached is not None and time.monotonic() < cached[0]:
        try:
            return _grant_limit(cached[1], dataset, product)
        except Forbidden:
            pass
    grants = await runtime.store.read(store_grants.active_grants, org_id, utc_now_text())
    runtime.grant_cache[org_id] = (time.monotonic() + runtime.settings.suspension_poll_seconds, grants)
    return _grant_limit(grants, dataset, product)


def _pool_accounts(runtime: Runtime, policy: DatasetPolicy) -> tuple[ledger.Account, ...]:
    """Datasets about the same people share one pool: a cap per period, the smallest of their
    global caps, and — where any member sets one — a lifetime cap that never renews."""
    members = [p for p in runtime.registry.policies.values() if p.pool == policy.pool]
    accounts: tuple[ledger.Account, ...] = (
        ledger.Account(f"pool:{policy.pool}", min(_cap_nano(p.global_cap) for p in members)),)
    lifetime = [_cap_nano(p.lifetime_cap) for p in members if p.lifetime_cap is not None]
    if lifetime:
        accounts += (ledger.Account(f"pool-lifetime:{policy.pool}", min(lifetime), ledger.LIFETIME),)
    return accounts


_cap_nano = functools.lru_cache(maxsize=256)(to_nano)  # policy caps are few and fixed: convert each once


def _checked(runtime: Runtime, plan: Plan, policy: DatasetPolicy, limit: int) -> CheckedPlan:
    """check_plan is pure: its verdict holds for the same plan, policy version and limit.

    Keyed by the plan's repr, not the plan: dataclass equality takes `age = TRUE` for `age = 1`
    (True == 1), so a refusal would turn into an answer once someone else had asked the other.
    """
    key = (plan.identity(), policy.version, limit)
    found = runtime.checked_plans.get(key)
    if found is None:
        found = check_plan(plan, policy, from_nano(limit))
        runtime.checked_plans.put(key, found)
    return found


async def prepare(runtime: Runtime, who: Principal, plan: Plan, product: ProductCall | None,
                  idem_key: str | None) -> _Context:
    """Every check that needs no data and spends nothing (DESIGN §4 steps 1-3)."""
    policy = runtime.registry.usable(plan.dataset)
    ensure_sandbox(runtime)
    current_snapshot_id(runtime, plan.dataset)  # 503 before any reservation while none is loaded
    limit = await _grant_limit_of(runtime, who.org_id, plan.dataset, product)
    checked = _checked(runtime, plan, policy, limit)
    epsilon_nano = checked.epsilon_nano  # the sandbox proves the measurement spends no more (R-DP-02)
    accounts = (ledger.Account(f"grant:{who.org_id}:{policy.dataset}", limit), *_pool_accounts(runtime, policy))
    scope = who.org_id if policy.cache_scope == "requester" else "*"
    return _Context(who, checked, policy, product, period_at(time.time(), runtime.settings.zone), epsilon_nano,
                    accounts, scope, idem_key)


async def run_query(runtime: Runtime, who: Principal, plan: Plan, *, product: ProductCall | None = None,
                    idempotency_key: str | None = None,
                    request_fingerprint: Callable[[], str] = lambda: "") -> QueryReply:
    started = time.monotonic()
    ctx = await prepare(runtime, who, plan, product, idempotency_key)
    if idempotency_key:
        replay = await runtime.store.write(idempotency.claim, who.org_id, idempotency_key, request_fingerprint(),
                                           runtime.settings.idempotency_ttl_hours)
        if replay is not None:
            runtime.metrics.release(plan.dataset, "replayed")
            return QueryReply(replay.status, replay.body.encode(), dict(REPLAYED), ctx.log("replayed", 0))
    query_id = new_id()
    try:
        cache_key = ctx.cache_key(current_snapshot_id(runtime, plan.dataset))
        cached = await runtime.store.write(_answer_from_cache, ctx, cache_key, runtime.releases.get(cache_key))
        if cached is not None:
            body, usage, release = cached
            runtime.releases.put(cache_key, release)
            runtime.metrics.release(plan.dataset, "cached")
            runtime.metrics.billed(plan.dataset, usage.price_minor, usage.currency)
            return QueryReply(200, body.encode(), log=ctx.log("cached", 0))
        await runtime.store.write(_reserve, ctx, query_id)
    except BaseException:
        if idempotency_key:
            await runtime.store.write(idempotency.forget, who.org_id, idempotency_key)
        raise
    try:
        await runtime.store.write(ledger.mark_executing, query_id, who.org_id)
    except BaseException:
        await runtime.store.write(_give_back, ctx, query_id)
        raise
    async with _client_slot(runtime, who.client_id):
        return await _release(runtime, ctx, query_id, started)


def _client_slot(runtime: Runtime, client_id: str) -> asyncio.Semaphore:
    """At most max_in_flight_per_client releases at once per client; the rest wait their turn
    (R-RL-01), so one client cannot occupy every sandbox worker."""
    slot = runtime.client_slots.get(client_id)
    if slot is None:
        slot = runtime.client_slots[client_id] = asyncio.Semaphore(runtime.settings.max_in_flight_per_client)
    return slot


def _reserve(tx: Tx, ctx: _Context, query_id: str) -> None:
    ledger.reserve(tx, ledger.Reservation(query_id, ctx.who.org_id, ctx.who.client_id, ctx.plan.dataset,
                                          ctx.product.product_id if ctx.product else None, ctx.period,
                                          ctx.epsilon_nano, ctx.accounts))
    if ctx.idem_key:
        idempotency.attach_query(tx, ctx.who.org_id, ctx.idem_key, query_id)


def _give_back(tx: Tx, ctx: _Context, query_id: str) -> None:
    ledger.return_reservation(tx, query_id)
    if ctx.idem_key:
        idempotency.forget(tx, ctx.who.org_id, ctx.idem_key)


async def _release(runtime: Runtime, ctx: _Context, query_id: str, started: float) -> QueryReply:
    """From here on data is touched: whatever happens, the charge stays."""
    assert runtime.sandbox is not None
    dataset = ctx.plan.dataset
    try:
        sandbox_started = time.monotonic()
        release = await runtime.sandbox.release(ctx.checked)
        runtime.metrics.sandbox_run(dataset, time.monotonic() - sandbox_started)
        body, usage = await runtime.store.write(_commit, ctx, query_id, release)
    except BaseException as exc:
        failure = ReleaseFailed()
        await asyncio.shield(runtime.store.write(_fail, ctx, query_id, json.dumps(failure.problem())))
        runtime.metrics.release(dataset, "failed")
        await pad_response(runtime, started)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise failure from None
    runtime.metrics.release(dataset, "released")
    runtime.metrics.charged(dataset, nano_to_float(ctx.epsilon_nano))
    runtime.metrics.billed(dataset, usage.price_minor, usage.currency)
    await pad_response(runtime, started)
    return QueryReply(200, body.encode(), log=ctx.log("released", ctx.epsilon_nano))


def _fail(tx: Tx, ctx: _Context, query_id: str, failure_body: str) -> None:
    ledger.spend_without_release(tx, query_id, ctx.who.client_id)
    if ctx.idem_key:
        idempotency.complete(tx, ctx.who.org_id, ctx.idem_key, ReleaseFailed.status, failure_body)


async def pad_response(runtime: Runtime, started: float) -> None:
    """Send DP answers on a time quantum from the request start (R-DP-12)."""
    quantum = runtime.settings.response_quantum_ms / 1000
    floor = runtime.settings.response_floor_ms / 1000
    elapsed = time.monotonic() - started
    target = max(floor, elapsed)
    if quantum > 0:
        target = -(-target // quantum) * quantum
    if target > elapsed:
        await asyncio.sleep(target - elapsed)


def _commit(tx: Tx, ctx: _Context, query_id: str, release: Release) -> tuple[str, ledger.Usage]:
    result = {"columns": list(release.columns), "rows": [list(r) for r in release.rows]}
    accuracy = dict(release.accuracy)
    release_hash = hashlib.sha256(canonical_json(result).encode()).hexdigest()
    usage = _priced(tx, ctx, cached=False)
    commit = ledger.Commit(
        query_id=query_id, org_id=ctx.who.org_id, client_id=ctx.who.client_id, actor=ctx.who.client_id,
        dataset=ctx.plan.dataset, product_id=ctx.product.product_id if ctx.product else None,
        cache_key=ctx.cache_key(release.snapshot_id), plan_fingerprint=ctx.plan.fingerprint(),
        policy_version=ctx.policy.version, snapshot_id=release.snapshot_id, period=ctx.period,
        epsilon_nano=ctx.epsilon_nano, result=result, accuracy=accuracy, release_hash=release_hash, usage=usage)
    ledger.commit_release(tx, commit)
    body = _answer_body(tx, ctx, query_id, _result_view(ctx.plan, result, accuracy), cached=False, usage=usage,
                        snapshot_id=release.snapshot_id)
    if ctx.idem_key:
        idempotency.complete(tx, ctx.who.org_id, ctx.idem_key, 200, body)
    return body, usage


def _priced(tx: Tx, ctx: _Context, *, cached: bool) -> ledger.Usage:
    """The policy's free calls per period come first; then the price list."""
    usage = ctx.usage(cached)
    free = ctx.policy.pricing.free_calls_per_period if ctx.product is None else 0
    if free and ledger.billable_calls(tx, ctx.who.org_id, ctx.plan.dataset, ctx.period) < free:
        return ledger.Usage(usage.usage_id, 0, usage.currency, usage.price_version)
    return usage


def _answer_from_cache(tx: Tx, ctx: _Context, cache_key: str, known: ledger.StoredRelease | None
                       ) -> tuple[str, ledger.Usage, ledger.StoredRelease] | None:
    usage = _priced(tx, ctx, cached=True)
    found = ledger.serve_cached(tx, cache_key, ctx.who.org_id, ctx.who.client_id, usage,
                                ctx.period, ctx.product.product_id if ctx.product else None, known)
    if found is None:
        return None
    body = _answer_body(tx, ctx, found.query_id, _cached_view(ctx, found), cached=True, usage=usage,
                        snapshot_id=found.snapshot_id)
    if ctx.idem_key:
        idempotency.complete(tx, ctx.who.org_id, ctx.idem_key, 200, body)
    return body, usage, found


_MAX_VIEWS = 8  # distinct phrasings of one stored release kept rendered


def _cached_view(ctx: _Context, found: ledger.StoredRelease) -> str:
    """A stored release renders the same for the same checked plan: render and encode it once
    (measured: render + json of the rows were ~10% of a cached call, in the writer thread).
    Keyed by the CheckedPlan's identity, holding it, so the id cannot be reused meanwhile."""
    memo = found.views.get(id(ctx.checked))
    if memo is not None and memo[0] is ctx.checked:
        return memo[1]
    view = _result_view(ctx.plan, found.result, found.accuracy)
    if len(found.views) >= _MAX_VIEWS:
        found.views.clear()
    found.views[id(ctx.checked)] = (ctx.checked, view)
    return view


def _result_view(plan: Plan, result: dict[str, Any], accuracy: dict[str, Any]) -> str:
    """`"columns": ..., "rows": ..., "accuracy": ...` of an answer, as json.dumps writes them."""
    columns, rows = render(plan, result["columns"], result["rows"])
    by_label = {out.name: accuracy.get(out.source) for out in plan.select if out.aggregate is not None}
    part = {"columns": list(columns), "rows": [list(r) for r in rows],
            "accuracy": {"alpha": ALPHA, "columns": by_label}}
    return json.dumps(part, ensure_ascii=False)[1:-1]


def _answer_body(tx: Tx, ctx: _Context, query_id: str, view: str, *,
                 cached: bool, usage: ledger.Usage, snapshot_id: str) -> str:
    """The answer's JSON: its fixed middle (`view`) spliced between what changes per call,
    byte for byte what json.dumps of the whole object writes."""
    grant_account = ctx.accounts[0].name
    cap, spent, reserved = ledger.account_usage(tx, [grant_account], ctx.period).get(
        grant_account, (ctx.accounts[0].cap_nano, 0, 0))
    head = {"query_id": query_id, "dataset": ctx.plan.dataset}
    tail = {
        "epsilon_spent": 0.0 if cached else nano_to_float(ctx.epsilon_nano), "cached": cached,
        "budget": {"dataset": ctx.plan.dataset, "period": ctx.period, "epsilon_limit": nano_to_float(cap),
                   "epsilon_spent": nano_to_float(spent), "epsilon_remaining": nano_to_float(cap - spent - reserved)},
        "usage": {"usage_id": usage.usage_id, "price_minor": usage.price_minor, "currency": usage.currency},
        "policy_version": ctx.policy.version, "snapshot_id": snapshot_id,
    }
    return (json.dumps(head, ensure_ascii=False)[:-1] + ", " + view + ", "
            + json.dumps(tail, ensure_ascii=False)[1:])


async def preview(runtime: Runtime, who: Principal, plan: Plan, product: ProductCall | None = None) -> dict[str, Any]:
    """Cost, accuracy and price of a query without reading a row or spending anything."""
    ctx = await prepare(runtime, who, plan, product, None)
    assert runtime.sandbox is not None
    figures = await runtime.sandbox.preview(ctx.checked, ALPHA)
    grant_account = ctx.accounts[0].name
    usage = await runtime.store.read(ledger.account_usage, [grant_account], ctx.period)
    cap, spent, reserved = usage.get(grant_account, (ctx.accounts[0].cap_nano, 0, 0))
    price = ctx.usage(cached=False)
    return {
        "dataset": plan.dataset, "epsilon": nano_to_float(ctx.epsilon_nano), "delta": float(plan.delta),
        "accuracy": figures["accuracy"], "threshold": figures.get("threshold"),
        "price": {"price_minor": price.price_minor, "currency": price.currency},
        "budget": {"dataset": plan.dataset, "period": ctx.period, "epsilon_limit": nano_to_float(cap),
                   "epsilon_spent": nano_to_float(spent), "epsilon_remaining": nano_to_float(cap - spent - reserved)},
        "would_fit": ctx.epsilon_nano <= cap - spent - reserved,
    }


async def record_refusal(runtime: Runtime, who: Principal, dataset: str | None, error: GatewayError) -> None:
    """A refused query is metered and audited (its code only: never the SQL or a value)."""
    if error.code not in REFUSAL_REASONS:  # the metric's bounded reasons are the refusals we record
        return
    runtime.metrics.refusal(dataset, error.code)
    await runtime.store.write(_audit_refusal, who.client_id, dataset or "", error.code)


def _audit_refusal(tx: Tx, client_id: str, dataset: str, code: str) -> None:
    audit.append(tx, "query.refused", client_id, dataset, {"code": code})


def ensure_sandbox(runtime: Runtime) -> None:
    if runtime.sandbox is None:
        raise Unavailable("the sandbox is not running", retry_after=2)

