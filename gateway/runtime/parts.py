"""The parts of a running gateway, opened in order and closed in reverse."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from gateway.auth.tokens import Keyring, TokenIssuer, TokenVerifier
from gateway.clock import utc_now, utc_now_text
from gateway.core.budget import pool_account
from gateway.metrics import Metrics
from gateway.runtime.registry import DatasetRegistry
from gateway.settings import Settings
from gateway.store import identity
from gateway.store.db import Store

if TYPE_CHECKING:
    from gateway.dp.port import SandboxPort

log = logging.getLogger("gateway")


T = TypeVar("T")


@dataclass
class Runtime:
    """The parts a replica runs on, and state each service keeps per replica (`owned`).

    It knows no use case: a service that needs memory between requests (caches, slots, the data
    supply) declares its own type and gets the one instance of it with `runtime.owned(Type)`.
    """

    settings: Settings
    store: Store
    registry: DatasetRegistry
    issuer: TokenIssuer
    verifier: TokenVerifier
    metrics: Metrics
    keyring: Keyring | None = None
    sandbox: SandboxPort | None = None
    ready: bool = False
    draining: bool = False
    _owned: dict[object, object] = field(default_factory=dict)
    _key_file: str = ""
    _audit_seq: int = 0

    def owned(self, make: Callable[[Runtime], T]) -> T:
        """The one instance of a service's per-replica state, made from this runtime at first use."""
        found = self._owned.get(make)
        if found is None:
            found = self._owned[make] = make(self)
        return found  # type: ignore[return-value]

    @property
    def replica(self) -> str:
        return self.settings.replica_id or f"{self.settings.host}:{self.settings.port}"

    def close(self) -> None:
        for part in self._owned.values():  # per-service state that holds threads or files
            close = getattr(part, "close", None)
            if callable(close) and not inspect.iscoroutinefunction(close):
                close()
        self.store.close()

    async def refresh(self) -> None:
        """Poll the store for dataset, policy and client status changes (R-AU-05, invariant 7)."""
        await self.store.read(self.registry.refresh, op="read_status")
        self.registry.clients = await self.store.read(identity.client_statuses, op="read_status")
        # Retired keys stop verifying here too, not only on an unknown kid (a leaked key's rotation).
        self.verifier.load_keys(await self.store.read(identity.public_keys, utc_now_text(), op="read_status"))
        await self._follow_key_rotation()
        await self._export_ledger_gauges()

    async def _export_ledger_gauges(self) -> None:
        """Audit appends (of every replica) and each dataset's share of its pool's cap spent."""
        from gateway.core.budget import period_of
        from gateway.store import audit, ledger

        seq, _head = await self.store.read(audit.head, op="read_status")
        if self._audit_seq and seq > self._audit_seq:
            self.metrics.audit_appended(seq - self._audit_seq)
        self._audit_seq = seq
        pools = {p.pool for p in self.registry.policies.values()}
        used = await self.store.read(ledger.account_usage, sorted(pool_account(p) for p in pools),
                                     period_of(utc_now(), self.settings.zone))
        for dataset, policy in self.registry.policies.items():
            cap, spent, _reserved = used.get(pool_account(policy.pool), (0, 0, 0))
            self.metrics.set_global_budget_used(dataset, spent / cap if cap else 0.0)

    async def _follow_key_rotation(self) -> None:
        """After `gateway keys rotate`, sign with the newest key without a restart."""
        if self.keyring is None or self.keyring.newest_name() == self._key_file:
            return
        key = await asyncio.to_thread(self.keyring.current)
        await self.store.write(identity.add_public_key, key.kid, key.jwk)
        self.issuer = self.issuer.with_key(key)
        self._key_file = self.keyring.newest_name()


