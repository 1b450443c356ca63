"""What a gateway runs for its life: the sandbox workers, every dataset's snapshot, the data supply."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.dp.port import SandboxPort
from gateway.dp.sandbox import Sandbox
from gateway.errors import Unavailable
from gateway.runtime.parts import Runtime
from gateway.runtime.tasks import task_running
from gateway.service.readiness import datasets_not_ready
from gateway.service.supply import activate_current_snapshots, datasets_not_loaded
from gateway.service.supply_cleanup import sandbox_cache_dir, tidy_at_start, tidy_leftovers
from gateway.service.supply_follow import supply_running
from gateway.store.schema import pending_migrations


@contextlib.asynccontextmanager
async def sandbox_running(runtime: Runtime, sandbox: SandboxPort | None = None) -> AsyncIterator[None]:
    """Start the sandbox workers (or the given stand-in) and load every dataset's current snapshot;
    stop them at the end."""
    s = runtime.settings
    if sandbox is None:
        sandbox = Sandbox(s.sandbox_workers, s.query_timeout_seconds, s.worker_memory_mb,
                          cache_dir=sandbox_cache_dir(s), preview_workers=s.preview_workers,
                          streaming=s.streaming_engine)
    sandbox.on_worker_retired = runtime.metrics.worker_restarted
    sandbox.on_release_timeout = runtime.metrics.sandbox_timeout
    await sandbox.start()
    runtime.sandbox = sandbox
    try:
        await activate_current_snapshots(runtime)
        await tidy_at_start(runtime)  # what a kill -9 in the middle of a load left behind
        async with task_running(tidy_leftovers(runtime)), supply_running(runtime):
            yield
    finally:
        runtime.sandbox = None
        await sandbox.close()


async def check_ready(runtime: Runtime) -> None:
    """503 with a Retry-After unless this replica can answer: started, not draining, the store
    reachable with its migrations current, every dataset loaded."""
    if runtime.draining:
        raise Unavailable("draining", retry_after=5)
    if not runtime.ready:
        raise Unavailable("starting", retry_after=2)
    try:
        pending = await runtime.store.read(pending_migrations)
    except Exception:
        raise Unavailable("the store is unreachable", retry_after=2) from None
    if pending:
        raise Unavailable("the store's migrations are not current", retry_after=5)
    missing = datasets_not_loaded(runtime)
    if missing:
        raise Unavailable(f"datasets not loaded: {', '.join(sorted(missing))}", retry_after=5)
    waiting = datasets_not_ready(runtime)  # loaded, but not for the policy in force (R-DP-20)
    if waiting:
        refused = Unavailable("datasets not ready: " + "; ".join(f"{d} ({why})" for d, why in waiting.items()),
                              retry_after=2)
        refused.extra["datasets"] = sorted(waiting)
        raise refused
