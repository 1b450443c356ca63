"""Background tasks of a running gateway: one helper for their span, and the store poll."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

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


@contextlib.asynccontextmanager
async def background(runtime: Runtime) -> AsyncIterator[None]:
    async with task_running(poll_store(runtime)), task_running(purge_idempotency_keys(runtime)):
        yield
