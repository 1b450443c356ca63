"""Keeping a replica's data supply current in the background: snapshots that other replicas made
current, new policy versions, datasets not loaded yet, and one refresher per pulled source."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gateway.data.sources import refresh_seconds
from gateway.dp.outcome import SnapshotInvalid
from gateway.runtime.parts import Runtime
from gateway.runtime.tasks import task_running
from gateway.service.supply import Supply, supply_of
from gateway.store import snapshots as store

log = logging.getLogger("gateway.supply")
FOLLOW_SECONDS = 2.0
RETRY_UNLOADED_SECONDS = 30.0


class Follower:
    """Follows the store for one Supply; runs for the app's lifetime (`supply_running`)."""

    def __init__(self, supply: Supply) -> None:
        self.supply, self.runtime = supply, supply.runtime
        self.adopting: dict[str, tuple[str, str]] = {}
        self.refreshers: dict[str, asyncio.Task[None]] = {}

    async def follow(self) -> None:
        """One round: adopt snapshots other replicas made current; load what is not loaded."""
        pointers = await self.runtime.store.read(store.current_ids)
        now = time.monotonic()
        for dataset in self.supply.wanted():
            served = self.supply.served.get(dataset)
            policy = self.runtime.registry.policies[dataset]
            if served is None:
                if now - self.supply.tried.get(dataset, 0.0) >= RETRY_UNLOADED_SECONDS:
                    self.supply.tried[dataset] = now
                    await self.supply.activate(dataset)
                continue
            wanted = (pointers.get(dataset, served.snapshot_id), policy.version)
            if wanted != (served.snapshot_id, served.policy_version) and self.adopting.get(dataset) != wanted:
                self.adopting[dataset] = wanted  # one attempt per pointer and policy version
                await self._adopt(dataset)
        self._sync_refreshers()
    async def _adopt(self, dataset: str) -> None:
        """Serve the store's current snapshot under the policy in force, or rebuild it."""
        policy = self.runtime.registry.get(dataset)
        async with self.supply.locks[dataset]:
            kept = await self.runtime.store.read(store.current, dataset)
            served = self.supply.served.get(dataset)
            if kept is None or (served and (served.snapshot_id, served.policy_version)
                                == (kept.snapshot_id, policy.version)):
                return
            if await self.supply.still_good(policy, kept):
                try:
                    await self.supply.serve(policy, kept.snapshot_id, self.supply.path_of(kept))
                    return
                except SnapshotInvalid as exc:
                    self.supply.failed(dataset, "refused", [f"engine_refused: {exc}"])
                    return
            if not self.supply.path_of(kept).is_file():  # the data root is not shared with that replica
                self.supply.failed(dataset, "unavailable", ["the current snapshot's file is missing"])
                return
        if not await self.supply.pulled(dataset):  # the snapshot no longer fits the policy or its source
            await self.supply.retire_foreign(dataset, kept)
    def _sync_refreshers(self) -> None:
        for dataset in self.supply.wanted():
            task = self.refreshers.get(dataset)
            if (task is None or task.done()) and refresh_seconds(self.runtime.registry.policies[dataset]):
                self.refreshers[dataset] = asyncio.create_task(self._refresh_loop(dataset))
    async def _refresh_loop(self, dataset: str) -> None:
        while True:
            policy = self.runtime.registry.policies.get(dataset)
            interval = refresh_seconds(policy) if policy else None
            if interval is None or self.runtime.registry.withdrawn(dataset):
                return
            await asyncio.sleep(interval)
            await self.supply.refresh(dataset)
    async def run(self) -> None:
        """The background: follow the store and keep one refresher per pulled source."""
        try:
            while True:
                try:
                    await self.follow()
                except Exception:  # the store may be briefly down; readiness reports that
                    log.warning("following snapshots failed", exc_info=True)
                await asyncio.sleep(FOLLOW_SECONDS)
        finally:
            for task in self.refreshers.values():
                task.cancel()
            await asyncio.gather(*self.refreshers.values(), return_exceptions=True)
            self.refreshers.clear()


def supply_running(runtime: Runtime) -> contextlib.AbstractAsyncContextManager[None]:
    """Refreshers and the store follower, for the app's lifetime."""
    return task_running(Follower(supply_of(runtime)).run())
