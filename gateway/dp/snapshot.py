"""Snapshots as a worker keeps them: validated against the policy, typed, in an Arrow IPC file.

A snapshot is read once, checked against the domain the engine asserts to OpenDP (columns
and types, complete numeric columns, at most `max_rows` rows), reduced to the columns a
query may touch, typed (public categories as Enums) and written uncompressed to the cache
folder under a name bound to the snapshot and the storage layout. Queries then scan that
file memory-mapped from the page cache: no parse and no copy per query, and the workers
share one copy in memory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import polars as pl

from gateway.core.policy import Column, DatasetPolicy
from gateway.dp import frames
from gateway.dp.outcome import SnapshotInvalid

_SCANNERS: dict[str, Callable[..., pl.LazyFrame]] = {
    ".parquet": pl.scan_parquet, ".arrow": pl.scan_ipc, ".ipc": pl.scan_ipc, ".feather": pl.scan_ipc,
    ".csv": pl.scan_csv,
}


def prepare_main(conn: Connection, policy: DatasetPolicy, source: str, snapshot_id: str, cache_dir: str,
                 memory_mb: int) -> None:
    """Entry point of the short-lived process that prepares a snapshot, so that the memory of
    reading and converting it is given back to the system when it exits, not kept by a worker."""
    from gateway.data.diskfull import no_space
    from gateway.dp.childproc import FAILED, INVALID, NO_SPACE, OK, limit_memory

    limit_memory(memory_mb)
    try:
        conn.send((OK, str(prepare(policy, Path(source), snapshot_id, Path(cache_dir)))))
    except SnapshotInvalid as exc:
        conn.send((INVALID, str(exc)))
    except Exception as exc:
        conn.send((NO_SPACE if no_space(exc) else FAILED, None))


def storage_fingerprint(policy: DatasetPolicy) -> str:
    """Changes exactly when a prepared file no longer fits the policy's domain. Remembered per
    policy object (policies are frozen): the server asks it on every query, and building the
    polars schema (an Enum per category column) cost ~1.4 ms of a cached call (issue 18)."""
    known = _FINGERPRINTS.get(id(policy))
    if known is not None and known[0] is policy:
        return known[1]
    layout = repr((list(frames.storage_schema(policy).items()), policy.max_rows))
    fingerprint = hashlib.sha256(layout.encode()).hexdigest()[:16]
    if len(_FINGERPRINTS) >= 1024:
        _FINGERPRINTS.clear()
    _FINGERPRINTS[id(policy)] = (policy, fingerprint)  # the policy kept alive: its id stays its own
    return fingerprint


_FINGERPRINTS: dict[int, tuple[DatasetPolicy, str]] = {}


def prepared_path(policy: DatasetPolicy, snapshot_id: str, cache_dir: Path) -> Path:
    safe_id = "".join(ch for ch in snapshot_id if ch.isalnum() or ch in "-_")[:64]
    return cache_dir / f"{policy.dataset}-{safe_id}-{storage_fingerprint(policy)}.arrow"


def prepare(policy: DatasetPolicy, source: Path, snapshot_id: str, cache_dir: Path) -> Path:
    """The prepared file of a snapshot, written once (atomically) and reused after that.

    Streamed: the checks are one streaming pass of aggregates, and the typed columns are sunk to
    the file in morsels, so preparing holds a few morsels, not the table (issue 18: reading the
    whole table took 2.6x its Arrow size, 8 GB for the 139M rows of social insurance at demo
    `--scale 100`, the default `worker_memory_mb`)."""
    target = prepared_path(policy, snapshot_id, cache_dir)
    if _prepared(target, policy):
        return target
    scanner = _SCANNERS.get(source.suffix.lower())
    if scanner is None:
        raise SnapshotInvalid(f"cannot read snapshots of type {source.suffix!r}")
    typed = conformed(scanner(source), policy)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".prepare-", suffix=".arrow")
    os.close(fd)
    try:
        typed.sink_ipc(tmp, compression="uncompressed")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _prepared(target: Path, policy: DatasetPolicy) -> bool:
    """A usable prepared file is there (a damaged one is prepared again)."""
    try:
        return target.exists() and pl.read_ipc_schema(target) == dict(frames.storage_schema(policy))
    except (OSError, pl.exceptions.PolarsError):
        return False


def conformed(source: pl.LazyFrame, policy: DatasetPolicy) -> pl.LazyFrame:
    """The source's stored columns in storage types, after one streaming pass of checks; or
    SnapshotInvalid (messages never quote values or counts)."""
    try:
        schema = source.collect_schema()
    except (pl.exceptions.PolarsError, OSError):
        raise SnapshotInvalid("the snapshot could not be read") from None
    stored = frames.stored_columns(policy)
    for column in stored:
        if column.name not in schema:
            raise SnapshotInvalid(f"the snapshot lacks column {column.name!r}")
    typed = {c.name: _typed(c) for c in stored}
    checks = [pl.len().alias("rows")]
    for column in stored:
        name, value = column.name, typed[column.name]
        if column.type == "integer" and schema[name].is_float():
            checks.append((pl.col(name) != pl.col(name).round()).any().alias(f"fractions:{name}"))
        if column.numeric:
            bad = value.is_null() | value.is_nan() if column.type == "float" else value.is_null()
            checks.append(bad.any().alias(f"missing:{name}"))
    try:
        found = source.select(checks).collect(engine="streaming").row(0, named=True)
    except pl.exceptions.PolarsError:  # a strict cast failed: find the column to name it
        raise SnapshotInvalid(_first_uncastable(source, stored, typed)) from None
    if found["rows"] > policy.max_rows:
        raise SnapshotInvalid("the snapshot has more rows than the policy's max_rows")
    for column in stored:
        if found.get(f"fractions:{column.name}"):
            raise SnapshotInvalid(f"column {column.name!r} holds fractions but is declared integer")
        if found.get(f"missing:{column.name}"):
            raise SnapshotInvalid(f"column {column.name!r} has missing or NaN values")
    return source.select([typed[c.name].alias(c.name) for c in stored])


def _typed(column: Column) -> pl.Expr:
    dtype = frames.dtype_of(column)
    # Enums: a value outside the public categories becomes null (R-DP-06); other casts are strict.
    return pl.col(column.name).cast(dtype, strict=not isinstance(dtype, pl.Enum))


def _first_uncastable(source: pl.LazyFrame, stored: Sequence[Column], typed: dict[str, pl.Expr]) -> str:
    for column in stored:
        try:
            source.select(typed[column.name].is_null().any()).collect(engine="streaming")
        except pl.exceptions.PolarsError:
            return f"column {column.name!r} is not of type {column.type}"
    return "the snapshot could not be read"
