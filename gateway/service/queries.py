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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.accuracy import stored_accuracy
from gateway.core.budget import nano_to_float
from gateway.core.canonical import canonical_hash
from gateway.core.plan import Plan
from gateway.core.policy import DatasetPolicy
from gateway.dp.outcome import Release
from gateway.errors import ReleaseFailed
from gateway.ids import new_id
from gateway.runtime.cache import Cache
from gateway.runtime.parts import Runtime
from gateway.service.admission import Admitted, ProductCall, admit
from gateway.service.answers import (
    ALPHA,
    MAX_VIEWS,
    REPLAYED,
    QueryReply,
    answer_body,
    cached_view,
    grant_figures,
    grant_line,
    result_view,
)
from gateway.service.commit_retry import commit_drawn
from gateway.service.pricing import price_call, quote
from gateway.service.readiness import held_ready
from gateway.service.supply import current_snapshot_id
from gateway.settings import Settings
from gateway.store import idempotency, ledger, ledger_many
from gateway.store.db import Tx


class ReleaseState:
    """What the release path remembers per replica: stored releases by cache key (immutable, so
    served without a read), and one semaphore per client bounding its releases in flight."""

    def __init__(self, runtime: Runtime) -> None:
        self.releases = release_cache(runtime.settings)
        self.client_slots: dict[str, asyncio.Semaphore] = {}


def release_cache(settings: Settings) -> Cache[str, ledger.StoredRelease]:
    """Stored releases by cache key, bounded by count and by `release_cache_mb` of memory."""
    return Cache(4096, weigh=release_bytes, max_weight=settings.release_cache_mb * 2**20)


def release_bytes(release: ledger.StoredRelease) -> int:
    """A bound on what a kept release holds: its rows and accuracy, and the renderings of it
    (`answers.cached_view`) kept beside it. Weighed once, when it enters the cache."""
    result = len(json.dumps(release.result, ensure_ascii=False))
    return 512 + len(json.dumps(release.accuracy)) + result * (1 + MAX_VIEWS)


async def run_query(runtime: Runtime, who: Principal, plan: Plan, *, product: ProductCall | None = None,
                    idempotency_key: str | None = None,
                    request_fingerprint: Callable[[], str] = lambda: "") -> QueryReply:
    started = time.monotonic()
    ctx = await admit(runtime, who, plan, product, idempotency_key)
    state = runtime.owned(ReleaseState)
    cache_key = ctx.cache_key(current_snapshot_id(runtime, plan.dataset))
    fingerprint = request_fingerprint() if idempotency_key else ""
    # One transaction for a replay or a cache hit: the key's claim and the stored answer together.
    known = state.releases.get(cache_key)
    found = await runtime.store.write(_claim_or_serve, ctx, fingerprint, runtime.settings, cache_key, known,
                                      runtime.registry.policies, op="lookup_release")
    if isinstance(found, idempotency.Replay):
        runtime.metrics.release(plan.dataset, "replayed")
        return QueryReply(found.status, found.body.encode(), dict(REPLAYED), ctx.log("replayed", 0))
    if found is not None:
        body, usage, release = found
        if known is None:  # already kept otherwise (the get moved it to the front)
            state.releases.put(cache_key, release)
        runtime.metrics.release(plan.dataset, "cached")
        runtime.metrics.billed(plan.dataset, usage.price_minor, usage.currency)
        return QueryReply(200, body.encode(), log=ctx.log("cached", 0))
    # A miss. Every wait but the release's own comes before the reservation (R-DP-20): the
    # client's turn, then readiness checked again and held until the sandbox has the plan.
    slot = _client_slot(runtime, who.client_id)
    try:
        await slot.acquire()
    except BaseException:
        await _forget_claim(runtime, ctx)
        raise
    reserved = False
    try:
        with held_ready(runtime, ctx.policy):
            query_id = new_id()
            reservation = _reservation(ctx, query_id)
            await runtime.store.write_grouped(ledger_many.charge_key(reservation), _reserve_many, _reserve, ctx,
                                              reservation, op="reserve")
            reserved = True
            try:
                await runtime.store.write(ledger.mark_executing, query_id, who.org_id, ctx.inputs,
                                          op="mark_executing")
            except BaseException:
                await runtime.store.write(_give_back, ctx, query_id, op="return_reservation")
                raise
            return await _release(runtime, ctx, query_id, started)
    except BaseException:
        if not reserved:  # once reserved, the ledger's steps settle the key
            await _forget_claim(runtime, ctx)
        raise
    finally:
        slot.release()


def _claim_or_serve(tx: Tx, ctx: Admitted, fingerprint: str, settings: Settings, cache_key: str,
                    known: ledger.StoredRelease | None, policies: Mapping[str, DatasetPolicy]
                    ) -> idempotency.Replay | tuple[str, ledger.Usage, ledger.StoredRelease] | None:
    """The Idempotency-Key claimed (or its stored answer to replay), then a stored release for
    the cache key served and billed; None when the query has to be released."""
    if ctx.idem_key:
        replay = idempotency.claim(tx, ctx.who.org_id, ctx.idem_key, fingerprint, settings.idempotency_ttl_hours,
                                   settings.idempotency_max_keys)
        if replay is not None:
            return replay
    return _answer_from_cache(tx, ctx, cache_key, known, policies)


async def _forget_claim(runtime: Runtime, ctx: Admitted) -> None:
    """A refusal or a cancellation before any reservation: the key may be used again (R-ID-04)."""
    if ctx.idem_key:
        await asyncio.shield(runtime.store.write(idempotency.forget, ctx.who.org_id, ctx.idem_key))


def client_release_limit(settings: Settings) -> int:
    """Releases one client may have reserved or running at once (R-RL-01): the setting, but
    never every release worker while there are two or more, so one client cannot hold them all."""
    return max(1, min(settings.max_in_flight_per_client, settings.sandbox_workers - 1))


def _client_slot(runtime: Runtime, client_id: str) -> asyncio.Semaphore:
    slots = runtime.owned(ReleaseState).client_slots
    slot = slots.get(client_id)
    if slot is None:
        slot = slots[client_id] = asyncio.Semaphore(client_release_limit(runtime.settings))
    return slot


def _reservation(ctx: Admitted, query_id: str) -> ledger.Reservation:
    return ledger.Reservation(query_id, ctx.who.org_id, ctx.who.client_id, ctx.plan.dataset,
                              ctx.product.product_id if ctx.product else None, ctx.period,
                              ctx.epsilon_nano, ctx.accounts, ctx.delta_atto, ctx.inputs)


def _reserve(tx: Tx, ctx: Admitted, reservation: ledger.Reservation) -> None:
    ledger.reserve(tx, reservation)
    if ctx.idem_key:
        idempotency.attach_query(tx, ctx.who.org_id, ctx.idem_key, reservation.query_id)


def _reserve_many(tx: Tx, calls: list[tuple[Admitted, ledger.Reservation]]) -> list[None]:
    """Concurrent reservations of one charge key, all or none (Store.write_grouped)."""
    ledger_many.reserve_many(tx, [reservation for _, reservation in calls])
    for ctx, reservation in calls:
        if ctx.idem_key:
            idempotency.attach_query(tx, ctx.who.org_id, ctx.idem_key, reservation.query_id)
    return [None] * len(calls)


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
        release = await runtime.sandbox.release(ctx.checked, org=ctx.who.org_id)
        runtime.metrics.sandbox_run(dataset, time.monotonic() - sandbox_started)
        body, usage = await commit_drawn(runtime, _commit, ctx, query_id, release, runtime.registry.policies)
    except BaseException as exc:
        failure = ReleaseFailed()
        await asyncio.shield(runtime.store.write(_fail, ctx, query_id, json.dumps(failure.problem()),
                                                 op="fail_release"))
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
    spent = ledger.spend_without_release(tx, query_id, ctx.who.client_id)
    if ctx.idem_key and spent:  # not over the answer of a commit whose acknowledgement was lost
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


def _commit(tx: Tx, ctx: Admitted, query_id: str, release: Release,
            known: Mapping[str, DatasetPolicy]) -> tuple[str, ledger.Usage]:
    result = {"columns": list(release.columns), "rows": [list(r) for r in release.rows]}
    accuracy = stored_accuracy(release.accuracy, release.row_accuracy)
    release_hash = canonical_hash(result)
    view = result_view(ctx.plan, result, accuracy)
    usage = price_call(tx, ctx, known, cached=False)
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


def _answer_from_cache(tx: Tx, ctx: Admitted, cache_key: str, known: ledger.StoredRelease | None,
                       policies: Mapping[str, DatasetPolicy]
                       ) -> tuple[str, ledger.Usage, ledger.StoredRelease] | None:
    known = known or ledger.find_release(tx, cache_key)
    if known is None:  # priced only once there is an answer: pricing may open a subscription month
        return None
    usage = price_call(tx, ctx, policies, cached=True)
    found = ledger.serve_cached(tx, cache_key, ctx.who.org_id, ctx.who.client_id, usage,
                                ctx.period, ctx.product.product_id if ctx.product else None, known, ctx.inputs)
    if found is None:
        return None
    body = answer_body(tx, ctx, found.query_id, cached_view(ctx, found), cached=True, usage=usage,
                        snapshot_id=found.snapshot_id)
    if ctx.idem_key:
        idempotency.complete(tx, ctx.who.org_id, ctx.idem_key, 200, body)
    return body, usage, found


async def preview(runtime: Runtime, who: Principal, plan: Plan, product: ProductCall | None = None, *,
                  throttle: Callable[[], Awaitable[None]] | None = None) -> dict[str, Any]:
    """Cost, accuracy and price of a query without reading a row or spending anything.

    Free, but not a free side channel (R-DP-19): `throttle` (the caller's preview rate limit)
    runs once the question is admitted, the preview waits its organisation's turn on the
    preview workers, and the answer leaves on the same time quantum as a release.
    """
    started = time.monotonic()
    ctx = await admit(runtime, who, plan, product, None)
    if throttle is not None:  # a rate limit that may be shared by the replicas: asked, not looked up
        await throttle()
    assert runtime.sandbox is not None
    try:
        figures = await runtime.sandbox.preview(ctx.checked, ALPHA, org=who.org_id)
        grant = await runtime.store.read(grant_figures, ctx)
    finally:
        await pad_response(runtime, started)
    runtime.metrics.preview(plan.dataset)
    price = await runtime.store.read(quote, ctx)
    return {
        "dataset": plan.dataset, "epsilon": nano_to_float(ctx.epsilon_nano), "delta": float(plan.delta),
        "accuracy": figures["accuracy"], "threshold": figures.get("threshold"),
        "price": price,
        "budget": grant_line(ctx, grant),
        "would_fit": ctx.epsilon_nano <= grant.cap_nano - grant.spent_nano - grant.reserved_nano
        and ctx.delta_atto <= grant.delta_cap_atto - grant.delta_spent_atto - grant.delta_reserved_atto,
    }


