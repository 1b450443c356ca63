"""Leftovers of interrupted loads removed: at start, and every few minutes while serving.

What the store keeps (each dataset's current snapshot and its recent history) is what stays;
see data/leftovers.py for what a kill -9 can leave. At start on SQLite (one process) every
leftover goes at once; where replicas share the folders (PostgreSQL) and while serving, only
files older than a load could take, so no load still running loses its files.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from gateway.data.leftovers import leftovers, remove
from gateway.data.snapshots import KEEP_FILES
from gateway.dp.snapshot import prepared_path
from gateway.runtime.parts import Runtime
from gateway.service.supply import supply_of
from gateway.settings import Settings
from gateway.store import snapshots as store_snapshots

log = logging.getLogger("gateway.supply")
SHARED_MIN_AGE = 3600.0  # seconds: longer than any upload, check and preparation takes
TIDY_SECONDS = 600.0


def sandbox_cache_dir(settings: Settings) -> Path:
    """Where the sandbox keeps prepared snapshots (one folder per state folder)."""
    return settings.state_path / "sandbox-cache"


async def remove_leftovers(runtime: Runtime, min_age: float) -> list[str]:
    """Remove what no kept snapshot names; the paths removed, relative to their folders."""
    supply = supply_of(runtime)
    cache = sandbox_cache_dir(runtime.settings)
    kept: dict[str, set[str]] = {}
    prepared: list[str] = []
    for dataset, policy in runtime.registry.policies.items():
        records = await runtime.store.read(store_snapshots.history, dataset, KEEP_FILES)
        ids = {r.snapshot_id for r in records}
        if dataset in supply.served:
            ids.add(supply.served[dataset].snapshot_id)
        kept[dataset] = ids
        prepared += [prepared_path(policy, snapshot_id, cache).name for snapshot_id in ids]
    found = await asyncio.to_thread(leftovers, supply.root, cache, kept, prepared, min_age)
    removed = await asyncio.to_thread(remove, found)
    names = [p.name for p in removed]
    if names:
        log.warning(json.dumps({"msg": "removed files of interrupted loads", "files": len(names)}))
    return names


async def tidy_at_start(runtime: Runtime) -> None:
    """Before any load can begin: on SQLite everything left over, shared folders by age."""
    await _tidy(runtime, _start_age(runtime))


async def tidy_leftovers(runtime: Runtime) -> None:
    """Background: temporaries nobody is writing any more, prepared files no longer kept."""
    while True:
        await asyncio.sleep(TIDY_SECONDS)
        await _tidy(runtime, max(_start_age(runtime), TIDY_SECONDS))


def _start_age(runtime: Runtime) -> float:
    return 0.0 if runtime.store.dialect == "sqlite" else SHARED_MIN_AGE


async def _tidy(runtime: Runtime, min_age: float) -> None:
    try:
        await remove_leftovers(runtime, min_age)
    except Exception:  # the store is down or a file is busy: next time
        log.warning(json.dumps({"msg": "tidying leftover snapshot files failed"}))
