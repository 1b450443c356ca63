"""Data supply: snapshots built from sources and uploads, swapped into the sandbox, kept fresh.

Every load runs the same way, one at a time per dataset: pull (or receive) a table, check it
and write its canonical file, load that file into the sandbox, then record it in the store as
the dataset's current snapshot (with its audit entry) and serve it (`Supply.served`). The
sandbox goes first so that the store never points other replicas at a snapshot that cannot be
served. A table that fails its check is refused with the list of its problems (and audited);
anything that fails leaves the previous snapshot serving.

In the background (`supply_running`, `supply_follow.Follower`), each pulled source is refreshed
on its schedule, and every few seconds this replica follows the store: snapshots made current by
other replicas, new policy versions, and datasets that have not loaded yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from gateway.auth.tokens import Principal
from gateway.core.pages import Page, PageRequest
from gateway.core.policy import DatasetPolicy
from gateway.data import snapshots as files
from gateway.data.connectors import SourceUnavailable
from gateway.data.connectors.views import Side, view_inputs
from gateway.data.sources import Incoming, SourceMemory, names_source_of, pull, source_newer
from gateway.data.validate import Problem, SnapshotRefused
from gateway.dp.outcome import SnapshotInvalid
from gateway.errors import Conflict, DatasetWithdrawn, Forbidden, Unavailable
from gateway.runtime.parts import Runtime
from gateway.service.readiness import gate_of, swapping
from gateway.store import snapshots as store
from gateway.store.snapshots import SnapshotRecord

log = logging.getLogger("gateway.supply")
SYSTEM = "system"


@dataclass(frozen=True)
class Loaded:
    """The outcome of a load that passed: the stored record, whether its content is new, and
    what the check noticed without refusing (values outside bounds, clipped by queries)."""

    record: SnapshotRecord
    created: bool
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Served:
    snapshot_id: str
    path: Path
    policy_version: str


class Supply:
    """This replica's data supply; one per runtime (see `supply_of`)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.root = files.snapshots_root(runtime.settings.data_path)
        self.served: dict[str, Served] = {}
        self.memory: dict[str, SourceMemory] = defaultdict(SourceMemory)
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.tried: dict[str, float] = {}  # dataset -> when a load from its source was last tried

    # ------------------------------------------------------------ loads

    async def load_upload(self, dataset: str, body: Path, fmt: files.Format, actor: str) -> Loaded:
        """An uploaded body (deleted afterwards) as the new snapshot."""
        try:
            policy = self.suppliable(dataset)
        except BaseException:
            body.unlink(missing_ok=True)
            raise
        incoming = Incoming(files.scan(body, fmt), fmt == "csv", "upload", temporary=body)
        async with self.locks[dataset]:
            try:
                result = await self._ingest(policy, incoming, actor)
            except SnapshotRefused as exc:
                await self._audit_refusal(dataset, actor, "upload", exc)
                raise
        await self._rebuild_dependents(dataset)
        return result

    async def load_from_source(self, dataset: str, *, force: bool = False) -> SnapshotRecord | None:
        """Pull the declared source; None when it had not changed."""
        policy = self.runtime.registry.get(dataset)
        async with self.locks[dataset]:
            memory = self.memory[dataset]
            try:
                incoming = await pull(policy, memory, data_root=self.runtime.settings.data_path,
                                      work_root=self.root, current=self.side, force=force,
                                      max_bytes=self.runtime.settings.max_upload_bytes)
                if incoming is None:
                    return None
                try:
                    loaded = await self._ingest(policy, incoming, SYSTEM)
                except SnapshotRefused:
                    incoming.remember(memory)  # not refused again (nor audited) until it changes
                    raise
                incoming.remember(memory)
            except SnapshotRefused as exc:
                await self._audit_refusal(dataset, SYSTEM, policy.source.kind, exc)
                raise
        await self._rebuild_dependents(dataset)
        return loaded.record

    async def refresh(self, dataset: str, *, force: bool = False) -> bool:
        """`load_from_source` that never raises: failures are logged and counted. True if served."""
        await self.pulled(dataset, force=force)
        return dataset in self.served

    async def pulled(self, dataset: str, *, force: bool = False) -> bool:
        """True when the source was read (changed or not); failures are logged and counted."""
        self.tried[dataset] = time.monotonic()
        try:
            await self.load_from_source(dataset, force=force)
            return True
        except SnapshotRefused as exc:
            self.failed(dataset, "refused", [f"{p.code}:{p.column or ''}" for p in exc.problems])
        except SourceUnavailable as exc:
            self.failed(dataset, "unavailable", [str(exc)])
        except Exception as exc:  # a bug or a library error: keep serving, say so (the class
            # only: library messages may quote values, which logs never hold, R-OP-05)
            self.failed(dataset, "error", [type(exc).__name__])
        return False

    def suppliable(self, dataset: str) -> DatasetPolicy:
        """The policy of a dataset that takes uploads, or why it does not (404, 409, 410)."""
        policy = self.runtime.registry.get(dataset)
        if self.runtime.registry.withdrawn(dataset):
            raise DatasetWithdrawn(f"dataset {dataset!r} has been withdrawn")
        if policy.source.kind == "view":
            raise Conflict(f"{dataset!r} is a view: it is rebuilt from its inputs' snapshots")
        return policy

    async def _ingest(self, policy: DatasetPolicy, incoming: Incoming, actor: str) -> Loaded:
        dataset = policy.dataset
        try:
            built = await asyncio.to_thread(files.build, incoming.frame, policy, self.root,
                                            text=incoming.text)
        finally:
            incoming.discard()
        record = SnapshotRecord(dataset, built.snapshot_id, incoming.origin, built.rows, built.size,
                                policy.version, actor, inputs=incoming.inputs)
        previous = self.served.get(dataset)
        unchanged = previous == Served(built.snapshot_id, built.path, policy.version)
        if not unchanged:
            try:
                await self._load_sandbox(policy, built.snapshot_id, built.path)
            except BaseException as exc:
                if built.created:  # no snapshot will name this file: it does not stay on the disk
                    built.path.unlink(missing_ok=True)
                if isinstance(exc, SnapshotInvalid):  # the engine's own check: names columns, never values
                    raise SnapshotRefused(dataset, [Problem("engine_refused", str(exc))]) from None
                raise
        try:
            stored, created = await self.runtime.store.write(
                store.record_loaded, record, [w.message for w in built.warnings])
        except BaseException:
            if previous is not None and not unchanged:  # back to what the store still says
                await self._load_sandbox(policy, previous.snapshot_id, previous.path)
            raise
        self._publish(policy, stored.snapshot_id, built.path)
        await self._prune(dataset)
        return Loaded(stored, created, built.warnings)

    async def _audit_refusal(self, dataset: str, actor: str, origin: str,
                             exc: SnapshotRefused) -> None:
        await self.runtime.store.write(store.record_refused, dataset, actor, origin,
                                       [p.as_dict() for p in exc.problems])

    async def _rebuild_dependents(self, dataset: str) -> None:
        """Views over `dataset` whose inputs are both served (at start-up, the later one)."""
        for name, policy in sorted(self.runtime.registry.policies.items()):
            inputs = view_inputs(policy)[:2] if policy.source.kind == "view" else ()
            if dataset in inputs and name != dataset and all(i in self.served for i in inputs):
                await self.refresh(name)

    # ------------------------------------------------------------ serving

    def side(self, dataset: str) -> Side | None:
        """The snapshot a view would be built from: what this replica serves now."""
        served = self.served.get(dataset)
        policy = self.runtime.registry.policies.get(dataset)
        if served is None or policy is None:
            return None
        return Side(policy, served.snapshot_id, served.path)

    async def _load_sandbox(self, policy: DatasetPolicy, snapshot_id: str, path: Path) -> None:
        sandbox = self.runtime.sandbox
        if sandbox is not None:
            async with swapping(self.runtime, policy):  # a new layout: once no release holds the old
                await sandbox.load(policy.dataset, policy, path, snapshot_id)

    def _publish(self, policy: DatasetPolicy, snapshot_id: str, path: Path) -> None:
        self.served[policy.dataset] = Served(snapshot_id, path, policy.version)
        gate_of(self.runtime).serving(policy)
        self.runtime.metrics.set_dataset_available(policy.dataset, True)

    async def serve(self, policy: DatasetPolicy, snapshot_id: str, path: Path) -> None:
        await self._load_sandbox(policy, snapshot_id, path)
        self._publish(policy, snapshot_id, path)

    async def _prune(self, dataset: str) -> None:
        keep = {r.snapshot_id for r in await self.runtime.store.read(store.history, dataset,
                                                                     files.KEEP_FILES)}
        keep.add(self.served[dataset].snapshot_id)
        await asyncio.to_thread(files.prune, self.root, dataset, keep)

    def failed(self, dataset: str, why: str, details: list[str]) -> None:
        self.runtime.metrics.source_failure(dataset)
        if dataset not in self.served:
            self.runtime.metrics.set_dataset_available(dataset, False)
        policy = self.runtime.registry.policies.get(dataset)
        log.warning(json.dumps({"msg": "dataset load failed", "dataset": dataset, "outcome": why,
                                "source": policy.source.kind if policy else "", "details": details,
                                "serving": self.served[dataset].snapshot_id if dataset in self.served else None}))

    # ------------------------------------------------------------ start-up

    def wanted(self) -> list[str]:
        """Datasets that should be served: all but the withdrawn, plain sources before views."""
        registry = self.runtime.registry
        names = [d for d in registry.policies if not registry.withdrawn(d)]
        return sorted(names, key=lambda d: (registry.policies[d].source.kind == "view", d))

    async def activate_all(self) -> None:
        for dataset in self.wanted():
            await self.activate(dataset)

    async def activate(self, dataset: str) -> bool:
        """Serve the current snapshot, or build the first one from the source. True if served."""
        policy = self.runtime.registry.get(dataset)
        async with self.locks[dataset]:
            kept = await self.runtime.store.read(store.current, dataset)
            if kept is not None and await self.still_good(policy, kept):
                try:
                    await self.serve(policy, kept.snapshot_id, self.path_of(kept))
                    return True
                except Exception as exc:  # rebuilt from the source below
                    self.failed(dataset, "error", [f"kept snapshot: {type(exc).__name__}"])
        if not await self.pulled(dataset, force=True):
            await self.retire_foreign(dataset, kept)
        return dataset in self.served

    def path_of(self, record: SnapshotRecord) -> Path:
        return files.snapshot_path(self.root, record.dataset, record.snapshot_id)

    async def still_good(self, policy: DatasetPolicy, kept: SnapshotRecord) -> bool:
        """The kept file exists, came from the source the policy names, fits it, and is not older
        than its local source."""
        if not names_source_of(policy, kept.origin, kept.inputs):
            return False
        path = self.path_of(kept)
        if not path.is_file() or source_newer(policy, self.runtime.settings.data_path, path):
            return False
        if kept.policy_version == policy.version:
            return True
        return not await asyncio.to_thread(files.recheck, path, policy)

    async def retire_foreign(self, dataset: str, kept: SnapshotRecord | None) -> None:
        """A snapshot pulled from a source the policy no longer names (a reverted policy) stops
        being current when that source cannot replace it; the dataset waits, unready, for it."""
        policy = self.runtime.registry.policies.get(dataset)
        if kept is None or policy is None or names_source_of(policy, kept.origin, kept.inputs):
            return
        if (served := self.served.get(dataset)) is not None and served.snapshot_id == kept.snapshot_id:
            del self.served[dataset]
            gate_of(self.runtime).stopped(dataset)
            self.runtime.metrics.set_dataset_available(dataset, False)
        await self.runtime.store.write(store.retire_current, dataset, kept.snapshot_id, SYSTEM, "source_changed")


# ---------------------------------------------------------------- what the rest of the app calls


def supply_of(runtime: Runtime) -> Supply:
    """The runtime's Supply, created on first use."""
    return runtime.owned(Supply)


async def activate_current_snapshots(runtime: Runtime) -> None:
    """At start-up: every dataset gets a current snapshot (built from its source if it has
    none) loaded into `runtime.sandbox` when one is set. Failures leave a dataset unloaded
    (the gateway not ready) and are retried in the background by `supply_running`."""
    await supply_of(runtime).activate_all()


def check_supplier(who: Principal, policy: DatasetPolicy) -> None:
    """Only the bureau and the department that owns a dataset supply it or see its snapshots
    (R-AU-07); their row counts are for them alone (invariant 1)."""
    if "bureau" in who.roles or ("source" in who.roles and who.org_id == policy.owner):
        return
    raise Forbidden(f"only the bureau and the owner of {policy.dataset!r} manage its snapshots")


def current_snapshot_id(runtime: Runtime, dataset: str) -> str:
    """The snapshot this replica serves for `dataset`; 503 while it has none."""
    served = supply_of(runtime).served.get(dataset)
    snapshot_id = served.snapshot_id if served is not None else ""
    if not snapshot_id:
        raise Unavailable(f"dataset {dataset!r} has no data loaded yet", retry_after=5)
    return snapshot_id


def datasets_not_loaded(runtime: Runtime) -> list[str]:
    """Datasets (not withdrawn) with no snapshot served: the gateway is not ready while any is."""
    supply = supply_of(runtime)
    return [d for d in supply.wanted() if d not in supply.served]


async def snapshot_history(runtime: Runtime, dataset: str, limit: int) -> tuple[str | None, list[SnapshotRecord]]:
    """(current id, newest snapshots first) for the owner or the bureau."""
    found = await snapshot_page(runtime, dataset, PageRequest(limit))
    return found[0], found[1].items


async def snapshot_page(runtime: Runtime, dataset: str,
                        page: PageRequest) -> tuple[str | None, Page[SnapshotRecord]]:
    """(current id, a page of snapshots, newest first) for the owner or the bureau."""
    records = await runtime.store.read(store.history_page, dataset, page)
    pointers = await runtime.store.read(store.current_ids)
    return pointers.get(dataset), records
