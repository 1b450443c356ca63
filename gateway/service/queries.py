"""The release path (DESIGN §4): check -> idempotency -> answer cache -> reserve -> mark as
touching data -> sandbox release -> one commit transaction -> padded response.

Before `mark_executing` commits, any failure returns the reservation and forgets the
idempotency claim; from then on a failure keeps the charge, bills nothing and answers one
generic error (R-DP-11), which an idempotent retry replays.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.budget import nano_to_float
from gateway.core.canonical import canonical_hash
from gateway.core.plan import Plan
from gateway.dp.outcome import Release
from gateway.errors import ReleaseFailed
from gateway.ids import new_id
from gateway.runtime.cache import Cache
from gateway.runtime.parts import Runtime
from gateway.service.admission import Admitted, ProductCall, admit
from gateway.service.answers import (
    ALPHA,
    REPLAYED,
    QueryReply,
    answer_body,
    cached_view,
    grant_figures,
    grant_line,
    result_view,
)
from gateway.service.readiness import held_ready
from gateway.service.supply import current_snapshot_id
from gateway.store import idempotency, ledger
from gateway.store.db import Tx


class ReleaseState:
    """What the release path remembers per replica: stored releases by cache key (immutable, so
    served without a read), and one semaphore per client bounding its releases in flight."""

    def __init__(self, runtime: Runtime) -> None:
        self.releases: Cache[str, ledger.StoredRelease] = Cache(4096)
        self.client_slots: dict[str, asyncio.Semaphore] = {}






















async def run_query(runtime: Runtime, who: Principal, plan: Plan, *, product: ProductCall | None = None,
                    idempotency_key: str | None = None,
                    request_fingerprint: Callable[[], str] = lambda: "") -> QueryReply:
    started = time.monotonic()
    ctx = await admit(runtime, who, plan, product, idempotency_key)
    if idempotency_key:
        replay = await runtime.store.write(idempotency.claim, who.org_id, idempotency_key, request_fingerprint(),
                                           runtime.settings.idempotency_ttl_hours)
        if replay is not None:
            runtime.metrics.release(plan.dataset, "replayed")
            return QueryReply(replay.status, replay.body.encode(), dict(REPLAYED), ctx.log("replayed", 0))
    query_id = new_id()
    reserved = False
    try:
        cache_key = ctx.cache_key(current_snapshot_id(runtime, plan.dataset))
        known = runtime.owned(ReleaseState).releases.get(cache_key)
        cached = await runtime.store.write(_answer_from_cache, ctx, cache_key, known)
        if cached is not None:
            body, usage, release = cached
            runtime.owned(ReleaseState).releases.put(cache_key, release)
            runtime.metrics.release(plan.dataset, "cached")
            runtime.metrics.billed(plan.dataset, usage.price_minor, usage.currency)
            return QueryReply(200, body.encode(), log=ctx.log("cached", 0))
        # Every wait but the release's own comes before the reservation (R-DP-20): the client's
        # turn, then readiness checked again and held until the sandbox has the plan.
        async with _client_slot(runtime, who.client_id):
            with held_ready(runtime, ctx.policy):
                await runtime.store.write(_reserve, ctx, query_id)
                reserved = True
                try:
                    await runtime.store.write(ledger.mark_executing, query_id, who.org_id, ctx.inputs)
                except BaseException:
                    await runtime.store.write(_give_back, ctx, query_id)
                    raise
                return await _release(runtime, ctx, query_id, started)
    except BaseException:
        if idempotency_key and not reserved:  # once reserved, the ledger's steps settle the key
            await runtime.store.write(idempotency.forget, who.org_id, idempotency_key)
        raise


def _client_slot(runtime: Runtime, client_id: str) -> asyncio.Semaphore:
    """At most max_in_flight_per_client releases at once per client; the rest wait their turn
    (R-RL-01), so one client cannot occupy every sandbox worker."""
    slots = runtime.owned(ReleaseState).client_slots
    slot = slots.get(client_id)
    if slot is None:
        slot = slots[client_id] = asyncio.Semaphore(runtime.settings.max_in_flight_per_client)
    return slot


def _reserve(tx: Tx, ctx: Admitted, query_id: str) -> None:
    ledger.reserve(tx, ledger.Reservation(query_id, ctx.who.org_id, ctx.who.client_id, ctx.plan.dataset,
                                          ctx.product.product_id if ctx.product else None, ctx.period,
                                          ctx.epsilon_nano, ctx.accounts, ctx.delta_atto, ctx.inputs))
    if ctx.idem_key:
        idempotency.attach_query(tx, ctx.who.org_id, ctx.idem_key, query_id)


def _give_back(tx: Tx, ctx: Admitted, query_id: str) -> None:
    ledger.return_reservation(tx, query_id)
    if ctx.idem_key:
        idempotency.forget(tx, ctx.who.org_id, ctx.idem_key)


async def _release(runtime: Runtime, ctx: Admitted, query_id: str, started: float) -> QueryReply:
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


def _fail(tx: Tx, ctx: Admitted, query_id: str, failure_body: str) -> None:
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


def _commit(tx: Tx, ctx: Admitted, query_id: str, release: Release) -> tuple[str, ledger.Usage]:
    result = {"columns": list(release.columns), "rows": [list(r) for r in release.rows]}
    accuracy = dict(release.accuracy)
    release_hash = canonical_hash(result)
    view = result_view(ctx.plan, result, accuracy)
    usage = _priced(tx, ctx, cached=False)
    commit = ledger.Commit(
        query_id=query_id, org_id=ctx.who.org_id, client_id=ctx.who.client_id, actor=ctx.who.client_id,
        dataset=ctx.plan.dataset, product_id=ctx.product.product_id if ctx.product else None,
        cache_key=ctx.cache_key(release.snapshot_id), plan_fingerprint=ctx.plan.fingerprint(),
        policy_version=ctx.policy.version, snapshot_id=release.snapshot_id, period=ctx.period,
        epsilon_nano=ctx.epsilon_nano, result=result, accuracy=accuracy, release_hash=release_hash, usage=usage,
        answer="{" + view + "}", delta_atto=ctx.delta_atto, inputs=ctx.inputs)
    ledger.commit_release(tx, commit)
    body = answer_body(tx, ctx, query_id, view, cached=False, usage=usage, snapshot_id=release.snapshot_id)
    if ctx.idem_key:
        idempotency.complete(tx, ctx.who.org_id, ctx.idem_key, 200, body)
    return body, usage


def _priced(tx: Tx, ctx: Admitted, *, cached: bool) -> ledger.Usage:
    """The policy's free calls per period come first; then the price list."""
    usage = ctx.usage(cached)
    free = ctx.policy.pricing.free_calls_per_period if ctx.product is None else 0
    if free and ledger.billable_calls(tx, ctx.who.org_id, ctx.plan.dataset, ctx.period) < free:
        return ledger.Usage(usage.usage_id, 0, usage.currency, usage.price_version)
    return usage


def _answer_from_cache(tx: Tx, ctx: Admitted, cache_key: str, known: ledger.StoredRelease | None
                       ) -> tuple[str, ledger.Usage, ledger.StoredRelease] | None:
    usage = _priced(tx, ctx, cached=True)
    found = ledger.serve_cached(tx, cache_key, ctx.who.org_id, ctx.who.client_id, usage,
                                ctx.period, ctx.product.product_id if ctx.product else None, known, ctx.inputs)
    if found is None:
        return None
    body = answer_body(tx, ctx, found.query_id, cached_view(ctx, found), cached=True, usage=usage,
                        snapshot_id=found.snapshot_id)
    if ctx.idem_key:
        idempotency.complete(tx, ctx.who.org_id, ctx.idem_key, 200, body)
    return body, usage, found










async def preview(runtime: Runtime, who: Principal, plan: Plan, product: ProductCall | None = None) -> dict[str, Any]:
    """Cost, accuracy and price of a query without reading a row or spending anything."""
    ctx = await admit(runtime, who, plan, product, None)
    assert runtime.sandbox is not None
    figures = await runtime.sandbox.preview(ctx.checked, ALPHA)
    grant = await runtime.store.read(grant_figures, ctx)
    price = ctx.usage(cached=False)
    return {
        "dataset": plan.dataset, "epsilon": nano_to_float(ctx.epsilon_nano), "delta": float(plan.delta),
        "accuracy": figures["accuracy"], "threshold": figures.get("threshold"),
        "price": {"price_minor": price.price_minor, "currency": price.currency},
        "budget": grant_line(ctx, grant),
        "would_fit": ctx.epsilon_nano <= grant.cap_nano - grant.spent_nano - grant.reserved_nano
        and ctx.delta_atto <= grant.delta_cap_atto - grant.delta_spent_atto - grant.delta_reserved_atto,
    }





