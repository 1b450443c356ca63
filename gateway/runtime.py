"""The parts of a running gateway, opened in order and closed in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gateway.clock import utc_now, utc_now_text
from gateway.core.checks import CheckedPlan
from gateway.core.policy import DatasetPolicy
from gateway.metrics import STORE_OPERATIONS, Metrics
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.registry import DatasetRegistry
from gateway.settings import Settings
from gateway.store import datasets as store_datasets
from gateway.store import identity
from gateway.store.db import Store, Tx, open_store
from gateway.store.grants import Grant
from gateway.store.ledger import StoredRelease
from gateway.tokens import Keyring, TokenIssuer, TokenVerifier

if TYPE_CHECKING:
    from gateway.dp.sandbox import Sandbox
    from gateway.service.supply import Supply

log = logging.getLogger("gateway")


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """A small in-memory map that forgets everything when full: for immutable values only."""

    def __init__(self, size: int) -> None:
        self.size, self._items = size, dict[K, V]()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        if len(self._items) >= self.size:
            self._items.clear()
        self._items[key] = value


@dataclass
class Runtime:
    settings: Settings
    store: Store
    registry: DatasetRegistry
    issuer: TokenIssuer
    verifier: TokenVerifier
    metrics: Metrics
    keyring: Keyring | None = None
    sandbox: Sandbox | None = None
    supply: Supply | None = None
    active_clients: dict[str, bool] = field(default_factory=dict)
    snapshots: dict[str, str] = field(default_factory=dict)  # dataset -> current snapshot id
    client_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)  # releases in flight
    grant_cache: dict[str, tuple[float, list[Grant]]] = field(default_factory=dict)  # org -> (until, grants)
    releases: Bounded[str, StoredRelease] = field(default_factory=lambda: Bounded(4096))  # by cache key
    checked_plans: Bounded[tuple[str, str, int], CheckedPlan] = field(default_factory=lambda: Bounded(1024))
    ready: bool = False
    draining: bool = False
    _key_file: str = ""
    _audit_seq: int = 0

    @property
    def replica(self) -> str:
        return self.settings.replica_id or f"{self.settings.host}:{self.settings.port}"

    def close(self) -> None:
        self.store.close()

    async def refresh(self) -> None:
        """Poll the store for dataset, policy and client status changes (R-AU-05, invariant 7)."""
        await self.store.read(self.registry.refresh)
        self.active_clients = await self.store.read(identity.client_statuses)
        # Retired keys stop verifying here too, not only on an unknown kid (a leaked key's rotation).
        self.verifier.load_keys(await self.store.read(identity.public_keys, utc_now_text()))
        await self._follow_key_rotation()
        await self._export_ledger_gauges()

    async def _export_ledger_gauges(self) -> None:
        """Audit appends (of every replica) and each dataset's share of its pool's cap spent."""
        from gateway.core.budget import period_of
        from gateway.store import audit, ledger

        seq, _head = await self.store.read(audit.head)
        if self._audit_seq and seq > self._audit_seq:
            self.metrics.audit_appended(seq - self._audit_seq)
        self._audit_seq = seq
        pools = {p.pool for p in self.registry.policies.values()}
        used = await self.store.read(ledger.account_usage, sorted(f"pool:{p}" for p in pools),
                                     period_of(utc_now(), self.settings.zone))
        for dataset, policy in self.registry.policies.items():
            cap, spent, _reserved = used.get(f"pool:{policy.pool}", (0, 0, 0))
            self.metrics.set_global_budget_used(dataset, spent / cap if cap else 0.0)

    async def _follow_key_rotation(self) -> None:
        """After `gateway keys rotate`, sign with the newest key without a restart."""
        if self.keyring is None or self.keyring.newest_name() == self._key_file:
            return
        key = await asyncio.to_thread(self.keyring.current)
        await self.store.write(identity.add_public_key, key.kid, key.jwk)
        self.issuer = self.issuer.with_key(key)
        self._key_file = self.keyring.newest_name()


def recover_interrupted(store: Store, lease_seconds: int) -> tuple[int, int]:
    """Return stale reservations, keep interrupted executions spent, settle their idempotency keys.

    SQLite has one process, so at start nothing else can be in flight: everything is stale.
    On PostgreSQL other replicas may be mid-query: only entries older than the lease are.
    """
    from datetime import timedelta

    from gateway.clock import utc_now, utc_text
    from gateway.errors import ReleaseFailed
    from gateway.store import idempotency, ledger

    if store.dialect == "sqlite":
        cutoff = "9999-12-31T23:59:59.999999Z"
    else:
        cutoff = utc_text(utc_now() - timedelta(seconds=lease_seconds))
    failure = json.dumps(ReleaseFailed().problem())

    def recover(tx: Tx) -> tuple[int, int]:
        counts = ledger.recover(tx, cutoff)
        idempotency.finish_interrupted(tx, failure, cutoff)
        idempotency.purge_expired(tx)  # keys past their retention (at least 24 h) go at each start
        return counts

    return store.run_sync(recover)


def seed_policies(store: Store, policies: dict[str, DatasetPolicy]) -> None:
    """The files in `policies/` seed the store on first start; the store is the truth after."""
    for policy in policies.values():
        store.run_sync(store_datasets.seed_policy, policy.dataset, policy.owner, policy.version,
                       dict(policy.document), "system")


def open_runtime(settings: Settings) -> Runtime:
    """Open the store, seed policies, load keys: everything but the sandbox and HTTP."""
    policies_dir = settings.policies_dir or str(shipped_policies_dir())
    from pathlib import Path

    policies = load_policies(Path(policies_dir))  # refuses to start on an invalid policy
    store = open_store(settings.store_dsn, settings.state_path, pool_size=settings.store_pool_size)
    seed_policies(store, policies)
    returned, spent = recover_interrupted(store, settings.reservation_lease_seconds)
    if returned or spent:
        log.warning(json.dumps({"msg": "recovered interrupted queries", "returned": returned, "kept_spent": spent}))
    registry = DatasetRegistry()
    store.run_sync(registry.refresh, write=False)
    keyring = Keyring(settings.state_path / "keys")
    key = keyring.current()
    store.run_sync(identity.add_public_key, key.kid, key.jwk)
    issuer = TokenIssuer(key, issuer=settings.issuer, audience=settings.audience,
                         ttl_seconds=settings.token_ttl_seconds)

    def public_keys() -> dict[str, dict[str, str]]:
        return store.run_sync(identity.public_keys, utc_now_text(), write=False)

    verifier = TokenVerifier(issuer=settings.issuer, audience=settings.audience,
                             algorithms=settings.algorithms, leeway=settings.jwt_leeway_seconds,
                             refresh_keys=public_keys)
    verifier.load_keys(public_keys())
    metrics = Metrics(datasets=sorted(registry.policies), routes=(), currency=settings.currency,
                      timing_quantum_seconds=settings.response_quantum_ms / 1000)
    store.observe = _store_observer(metrics)
    runtime = Runtime(settings, store, registry, issuer, verifier, metrics, keyring=keyring)
    runtime._key_file = keyring.newest_name()
    runtime.active_clients = store.run_sync(identity.client_statuses, write=False)
    return runtime


def _store_observer(metrics: Metrics) -> Callable[[str, float], None]:
    """Store functions named after a metrics operation are timed; helpers are not."""

    def observe(operation: str, seconds: float) -> None:
        if operation in STORE_OPERATIONS:
            metrics.observe_store(operation, seconds)

    return observe


async def poll_store(runtime: Runtime) -> None:
    """Background: keep this replica's view of statuses and policies fresh."""
    while True:
        await asyncio.sleep(runtime.settings.suspension_poll_seconds)
        try:
            await runtime.refresh()
        except Exception:  # a failed poll is retried; readiness reports a store that stays down
            log.warning("store poll failed", exc_info=True)


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


def background(runtime: Runtime) -> contextlib.AbstractAsyncContextManager[None]:
    return task_running(poll_store(runtime))


@contextlib.asynccontextmanager
async def sandbox_running(runtime: Runtime) -> AsyncIterator[None]:
    """Start the sandbox workers and load every dataset's current snapshot; stop them at the end."""
    from gateway.dp.sandbox import Sandbox
    from gateway.service.supply import activate_current_snapshots, supply_running

    s = runtime.settings
    sandbox = Sandbox(s.sandbox_workers, s.query_timeout_seconds, s.worker_memory_mb,
                      cache_dir=s.state_path / "sandbox-cache")
    sandbox.on_worker_retired = runtime.metrics.worker_restarted
    await sandbox.start()
    runtime.sandbox = sandbox
    try:
        await activate_current_snapshots(runtime)
        async with supply_running(runtime):
            yield
    finally:
        runtime.sandbox = None
        await sandbox.close()
