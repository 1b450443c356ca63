"""Opening a runtime: policies seeded, the store migrated and recovered, keys loaded, metrics made."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from gateway.auth.tokens import Keyring, TokenIssuer, TokenVerifier
from gateway.clock import utc_now_text
from gateway.core.policy import DatasetPolicy
from gateway.metrics import Metrics
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.runtime.parts import Runtime
from gateway.runtime.registry import DatasetRegistry
from gateway.settings import Settings
from gateway.store import datasets as store_datasets
from gateway.store import identity
from gateway.store.db import Store, Tx
from gateway.store.schema import open_store

log = logging.getLogger("gateway")


def recover_interrupted(store: Store, lease_seconds: int) -> tuple[int, int]:
    """Return stale reservations, keep interrupted executions spent, settle their idempotency keys.

    SQLite has one process, so at start nothing else can be in flight: everything is stale.
    On PostgreSQL other replicas may be mid-query: only entries older than the lease are.
    """
    from gateway.store import idempotency

    cutoff = "9999-12-31T23:59:59.999999Z" if store.dialect == "sqlite" else lease_cutoff(lease_seconds)
    counts = store.run_sync(recover_stale, cutoff)
    # Keys past their retention (at least 24 h) go now, in batches, and then on a schedule.
    while store.run_sync(idempotency.purge_expired) == idempotency.PURGE_BATCH:
        pass
    return counts


def lease_cutoff(lease_seconds: float) -> str:
    """Entries not touched since this time belong to no request still running."""
    from datetime import timedelta

    from gateway.clock import utc_now, utc_text

    return utc_text(utc_now() - timedelta(seconds=lease_seconds))


def recover_stale(tx: Tx, cutoff: str) -> tuple[int, int]:
    """(returned, kept spent): queries and idempotency claims left unfinished before `cutoff`."""
    from gateway.errors import ReleaseFailed
    from gateway.store import idempotency, ledger

    counts = ledger.recover(tx, cutoff)
    idempotency.finish_interrupted(tx, json.dumps(ReleaseFailed().problem()), cutoff)
    return counts


def seed_policies(store: Store, policies: dict[str, DatasetPolicy]) -> None:
    """The files in `policies/` seed the store on first start; the store is the truth after."""
    for policy in policies.values():
        store.run_sync(store_datasets.seed_policy, policy.dataset, policy.owner, policy.version,
                       dict(policy.document), "system")


def open_runtime(settings: Settings) -> Runtime:
    """Open the store, seed policies, load keys: everything but the sandbox and HTTP."""
    policies_dir = settings.policies_dir or str(shipped_policies_dir())

    policies = load_policies(Path(policies_dir))  # refuses to start on an invalid policy
    started = time.perf_counter()
    store = open_store(settings.store_dsn, settings.state_path, pool_size=settings.store_pool_size)
    opened = time.perf_counter()
    seed_policies(store, policies)
    recovering = time.perf_counter()
    returned, spent = recover_interrupted(store, settings.reservation_lease_seconds)
    start_up = {"migrate": opened - started, "recover": time.perf_counter() - recovering}
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
    for operation, seconds in start_up.items():  # timed before there were metrics to hold them
        metrics.observe_store(operation, seconds)
    store.observe = metrics.observe_store
    runtime = Runtime(settings, store, registry, issuer, verifier, metrics, keyring=keyring)
    runtime._key_file = keyring.newest_name()
    runtime.registry.clients = store.run_sync(identity.client_statuses, write=False)
    return runtime

