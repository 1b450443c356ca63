"""Background tasks of a running gateway: one helper for their span, and the store poll."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from gateway.runtime.open import lease_cutoff, recover_stale
from gateway.runtime.parts import Runtime

log = logging.getLogger("gateway")


@contextlib.asynccontextmanager
async def task_running(job: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """A background task for the span of a `with` block; cancelled and awaited at its end."""
    task = asyncio.create_task(job)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def poll_store(runtime: Runtime) -> None:
    """Background: keep this replica's view of statuses and policies fresh."""
    while True:
        await asyncio.sleep(runtime.settings.suspension_poll_seconds)
        try:
            await runtime.refresh()
        except Exception:  # a failed poll is retried; readiness reports a store that stays down
            log.warning("store poll failed", exc_info=True)


async def purge_idempotency_keys(runtime: Runtime) -> None:
    """Background: expired Idempotency-Keys and the answers they keep go on a schedule, in
    batches, not only at a start (their storage is bounded by rate x retention)."""
    from gateway.store import idempotency

    while True:
        await asyncio.sleep(runtime.settings.idempotency_purge_seconds)
        try:
            while await runtime.store.write(idempotency.purge_expired, op="purge_idempotency") == \
                    idempotency.PURGE_BATCH:
                pass
        except Exception:  # retried at the next round
            log.warning("idempotency purge failed", exc_info=True)


async def sweep_interrupted(runtime: Runtime) -> None:
    """Background: settle what a failure left half-done once it is older than the lease, as a
    start does, without waiting for one: a reservation whose return could not be written while
    the store was down goes back, an execution whose commit was lost stays spent (R-BU-05), and
    their idempotency keys are settled. Every replica sweeps; the row locks make them agree."""
    lease = runtime.settings.reservation_lease_seconds
    while True:
        await asyncio.sleep(max(1.0, min(30.0, lease / 4)))
        try:
            returned, spent = await runtime.store.write(recover_stale, lease_cutoff(lease))
        except Exception:  # the store is down: the next sweep tries again
            log.warning(json.dumps({"msg": "sweep of interrupted queries failed"}))
            continue
        if returned or spent:
            log.warning(json.dumps({"msg": "recovered interrupted queries", "returned": returned,
                                    "kept_spent": spent}))


async def end_lapsed_agreements(runtime: Runtime) -> None:
    """Background: an authorisation agreement whose last day has passed ends, and with it what
    stands on it (its grants and products already stop at that moment: they read its term)."""
    from gateway.store import agreements

    while True:
        await asyncio.sleep(runtime.settings.agreement_sweep_seconds)
        try:
            ended = await runtime.store.write(agreements.end_lapsed)
        except Exception:  # retried at the next round
            log.warning("sweep of lapsed agreements failed", exc_info=True)
            continue
        if ended:
            log.warning(json.dumps({"msg": "agreements ended by their term", "agreements": ended}))


@contextlib.asynccontextmanager
async def background(runtime: Runtime) -> AsyncIterator[None]:
    async with task_running(poll_store(runtime)), task_running(purge_idempotency_keys(runtime)), \
            task_running(sweep_interrupted(runtime)), task_running(end_lapsed_agreements(runtime)):
        yield
