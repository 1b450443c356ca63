"""Pulling a dataset from the source its policy declares, into a table ready to be checked.

`pull` answers with an `Incoming` table (lazy; its temporary file, if any, to delete after the
build) or None when the source says nothing changed since the last pull on this replica: the
same local file (mtime and size), a 304 from an upstream endpoint, or the same input
snapshots of a view. Blocking reads (PostgreSQL) run in a thread. Failures raise
SourceUnavailable; tables that do not fit their policy raise SnapshotRefused.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from gateway.core.policy import DatasetPolicy
from gateway.data.connectors import SourceUnavailable
from gateway.data.connectors import http as http_source
from gateway.data.connectors import postgres as pg_source
from gateway.data.connectors.files import locate
from gateway.data.connectors.views import Side, joined, view_inputs
from gateway.data.snapshots import Format, incoming_file, scan

PULLED_KINDS = frozenset({"http"})  # pulled on a schedule even without refresh_seconds
DEFAULT_REFRESH_SECONDS = 300
DEFAULT_TIMEOUT_SECONDS = 30.0
CurrentSide = Callable[[str], Side | None]


@dataclass
class SourceMemory:
    """What this replica last took from a source, so that unchanged data is not read again."""

    policy_version: str = ""
    validators: http_source.Validators = field(default_factory=http_source.Validators)
    fingerprint: Any = None

    def forget(self, policy_version: str) -> None:
        self.policy_version = policy_version
        self.validators = http_source.Validators()
        self.fingerprint = None


@dataclass(frozen=True)
class Incoming:
    frame: pl.LazyFrame
    text: bool
    origin: str
    temporary: Path | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    remember: Callable[[SourceMemory], None] = lambda memory: None

    def discard(self) -> None:
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)


# What names a source: where it is. Schedules, time-outs and size limits do not make another source.
_LOCATION = ("path", "url", "table", "dsn_env", "format", "base", "join", "on")
PULLED_ORIGINS = frozenset({"parquet", "csv", "postgres", "http"})


def source_identity(policy: DatasetPolicy) -> str:
    """A short hash of the source a policy names; kept with each snapshot pulled from it."""
    where = {k: policy.source.get(k) for k in _LOCATION if policy.source.get(k) is not None}
    text = json.dumps([policy.source.kind, where], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def names_source_of(policy: DatasetPolicy, origin: str, inputs: Mapping[str, str]) -> bool:
    """Whether a snapshot may serve under `policy` as far as its provenance goes: uploads and views
    always (their inputs are checked otherwise); a pulled snapshot only while the policy names the
    source it was pulled from, so that reverting a policy also reverts its data (issue 11.8).
    Snapshots kept from before sources were recorded are matched by their kind."""
    if origin not in PULLED_ORIGINS:
        return True
    if "source" in inputs:
        return inputs["source"] == source_identity(policy)
    return origin == policy.source.kind


def refresh_seconds(policy: DatasetPolicy) -> int | None:
    """How often the source is pulled in the background; None: only at start and on demand."""
    declared = policy.source.get("refresh_seconds")
    if declared is not None:
        return int(declared)
    return DEFAULT_REFRESH_SECONDS if policy.source.kind in PULLED_KINDS else None


def source_newer(policy: DatasetPolicy, data_root: Path, kept: Path) -> bool:
    """A local source file changed after `kept` was written (replaced while we were down)."""
    if policy.source.kind not in ("parquet", "csv"):
        return False
    try:
        seen = locate(str(policy.source.get("path")), data_root).fingerprint()
    except SourceUnavailable:
        return False
    return seen is not None and seen[0] > kept.stat().st_mtime_ns


async def pull(policy: DatasetPolicy, memory: SourceMemory, *, data_root: Path, work_root: Path,
               max_bytes: int, current: CurrentSide, force: bool = False) -> Incoming | None:
    """The source's table if it changed since `memory` (or always, with `force`)."""
    if force or memory.policy_version != policy.version:
        memory.forget(policy.version)  # a new policy may accept what the old one refused
    kind = policy.source.kind
    if kind in ("parquet", "csv"):
        return _file(policy, memory, data_root)
    if kind == "postgres":
        return await _postgres(policy, work_root)
    if kind == "http":
        return await _http(policy, memory, work_root, max_bytes)
    if kind == "view":
        return await _view(policy, memory, current)
    raise SourceUnavailable(f"unknown source kind {kind!r}")


def _file(policy: DatasetPolicy, memory: SourceMemory, data_root: Path) -> Incoming | None:
    kind: Format = "csv" if policy.source.kind == "csv" else "parquet"
    where = locate(str(policy.source.get("path")), data_root)
    seen = where.fingerprint()
    if seen is not None and seen == memory.fingerprint:
        return None
    if where.local is not None and not where.local.is_file():
        raise SourceUnavailable(f"{kind}: the declared file does not exist")

    def remember(m: SourceMemory) -> None:
        m.fingerprint = seen

    return Incoming(scan(where.target, kind), kind == "csv", kind, remember=remember,
                    inputs={"source": source_identity(policy)})


async def _postgres(policy: DatasetPolicy, work_root: Path) -> Incoming:
    dest = incoming_file(work_root, "parquet")
    timeout = float(policy.source.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
    try:
        await asyncio.to_thread(pg_source.read_table, policy, dest,
                                dsn_env=str(policy.source.get("dsn_env")),
                                table=str(policy.source.get("table")), timeout_seconds=timeout)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Incoming(scan(dest, "parquet"), False, "postgres", temporary=dest,
                    inputs={"source": source_identity(policy)})


async def _http(policy: DatasetPolicy, memory: SourceMemory, work_root: Path,
                max_bytes: int) -> Incoming | None:
    declared = policy.source.get("format")
    plan = http_source.Pull(
        url=str(policy.source.get("url")), format=declared,
        timeout_seconds=float(policy.source.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        max_bytes=int(policy.source.get("max_bytes", max_bytes)))
    got = await http_source.download(plan, incoming_file(work_root, "body"), memory.validators)
    if got is None:
        return None

    def remember(m: SourceMemory) -> None:
        m.validators = got.validators

    return Incoming(scan(got.path, got.format), got.format == "csv", "http", temporary=got.path,
                    remember=remember, inputs={"source": source_identity(policy)})


async def _view(policy: DatasetPolicy, memory: SourceMemory,
                current: CurrentSide) -> Incoming | None:
    base_name, join_name, _ = view_inputs(policy)
    base, external = current(base_name), current(join_name)
    missing = [name for name, side in ((base_name, base), (join_name, external)) if side is None]
    if base is None or external is None:
        raise SourceUnavailable(f"view: no snapshot yet of {', '.join(missing)}")
    inputs = {"base": base.snapshot_id, "join": external.snapshot_id}
    if memory.fingerprint == inputs:
        return None

    def remember(m: SourceMemory) -> None:
        m.fingerprint = inputs

    frame = await asyncio.to_thread(joined, policy, base, external)
    return Incoming(frame, False, "view", inputs=inputs, remember=remember)
