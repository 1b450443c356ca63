"""`gateway store migrate --to DSN`: copy a county's SQLite store into an empty PostgreSQL one.

The copy is all or nothing: the PostgreSQL migrations are applied, then every table is copied
in foreign-key order inside one PostgreSQL transaction, which commits only after the target's
audit chain verifies with the source's head and every table's content digest (budget accounts
included) equals the source's. The SQLite file is only read, under its write lock, so nothing
changes it while the copy runs; it stays in place as the fallback.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from gateway.errors import GatewayError
from gateway.store import audit
from gateway.store.db import Store, Tx
from gateway.store.schema import open_store

# Bookkeeping of the migrations themselves: each store keeps its own dialect's names.
NOT_COPIED = frozenset({"schema_migrations"})
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_BATCH = 5000


class StoreMigrationError(RuntimeError):
    """The copy was refused or did not verify; nothing was committed to the target."""


@dataclass(frozen=True)
class MigrationReport:
    rows: dict[str, int]  # rows copied per table, in copy order
    audit_entries: int
    audit_head: str
    budget_periods: dict[str, tuple[int, int, int]]  # period -> (cap, spent, reserved) nano-epsilon


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]

    @property
    def column_list(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)


def migrate_store(state_dir: Path, target_dsn: str) -> MigrationReport:
    """Copy STATE_DIR/gateway.db into the PostgreSQL store at `target_dsn` and verify it."""
    if not (state_dir / "gateway.db").is_file():
        raise StoreMigrationError(f"no SQLite store at {state_dir / 'gateway.db'}")
    seeded = _rows_seeded_by_migrations()
    source = open_store("", state_dir)  # brings an older store up to the current schema first
    try:
        target = _open_target(target_dsn, state_dir)
        try:
            # The source's write transaction (BEGIN IMMEDIATE) is held for the whole copy; the
            # target's transaction runs in the target's thread while the source's thread waits.
            return source.run_sync(_copy_under_lock, target, seeded)
        except (GatewayError, psycopg.Error) as exc:
            raise StoreMigrationError(f"the copy failed ({type(exc).__name__}: {exc}); "
                                      "nothing was committed") from exc
        finally:
            target.close()
    finally:
        source.close()


def _open_target(dsn: str, state_dir: Path) -> Store:
    """Connect and apply the PostgreSQL migrations (the DSN holds a password: never echo it)."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise StoreMigrationError("--to takes a postgresql:// DSN")
    try:
        with psycopg.connect(dsn, connect_timeout=10):  # fails at once, where a pool would wait
            pass
        return open_store(dsn, state_dir, pool_size=1)
    except (GatewayError, psycopg.Error, PoolTimeout) as exc:
        raise StoreMigrationError(f"cannot reach or migrate the target store: {_reason(exc, dsn)}") from exc


def _reason(exc: BaseException, dsn: str) -> str:
    """The database's own message, with the DSN's password masked (psycopg
    does not echo it, but a message is no place to find out)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines) if lines else type(exc).__name__
    password = urllib.parse.urlsplit(dsn).password
    return text.replace(password, "***") if password else text


def _rows_seeded_by_migrations() -> dict[str, frozenset[tuple[Any, ...]]]:
    """The rows an empty, freshly migrated store holds (e.g. the audit chain's genesis head)."""
    with tempfile.TemporaryDirectory(prefix="gateway-migrate-") as scratch:
        store = open_store("", Path(scratch))
        try:
            return store.run_sync(_all_rows, write=False)
        finally:
            store.close()


def _all_rows(tx: Tx) -> dict[str, frozenset[tuple[Any, ...]]]:
    return {t.name: frozenset(_rows(tx, t)) for t in _source_tables(tx)}


def _copy_under_lock(src: Tx, target: Store,
                     seeded: dict[str, frozenset[tuple[Any, ...]]]) -> MigrationReport:
    _refuse_unfinished_queries(src)
    tables = _copy_order(src)
    source_verdict = audit.verify(src)
    if not source_verdict.ok:
        raise StoreMigrationError(f"the source's audit chain is broken at entry "
                                  f"{source_verdict.first_bad_seq}: {source_verdict.reason}")
    digests = {t.name: _digest(_rows(src, t)) for t in tables}
    counts = {t.name: _count(src, t) for t in tables}
    return target.run_sync(_copy_into_target, src, tables, seeded, digests, counts, source_verdict)


def _copy_into_target(dst: Tx, src: Tx, tables: list[_Table], seeded: dict[str, frozenset[tuple[Any, ...]]],
                      digests: dict[str, str], counts: dict[str, int], expected: audit.Verdict) -> MigrationReport:
    _refuse_non_empty(dst, tables, seeded)
    for table in tables:
        _check_columns(dst, table)
        if seeded.get(table.name):
            dst.execute(f'DELETE FROM "{table.name}"')  # the genesis rows make way for the copied ones
        _copy_table(src, dst, table)
    verdict = audit.verify(dst)
    if not verdict.ok or (verdict.entries, verdict.head) != (expected.entries, expected.head):
        raise StoreMigrationError(f"the copied audit chain does not verify ({verdict.reason or 'other head'}); "
                                  "nothing was committed")
    for table in tables:
        if _digest(_rows(dst, table)) != digests[table.name]:
            raise StoreMigrationError(f"table {table.name} differs after the copy; nothing was committed")
    return MigrationReport(counts, verdict.entries, verdict.head, _budget_periods(dst))


def _refuse_unfinished_queries(src: Tx) -> None:
    row = src.one("SELECT COUNT(*) FROM queries WHERE state IN ('reserved', 'executing')")
    if row and int(row[0]):
        raise StoreMigrationError(
            f"{row[0]} queries are unfinished: stop the gateway with SIGTERM (or start it once on "
            "SQLite and stop it, so it recovers them) before migrating")


def _refuse_non_empty(dst: Tx, tables: list[_Table], seeded: dict[str, frozenset[tuple[Any, ...]]]) -> None:
    for table in tables:
        if not _exists(dst, table.name):
            raise StoreMigrationError(f"the target has no table {table.name}: its schema is older")
        if frozenset(_rows(dst, table)) != seeded.get(table.name, frozenset()):
            raise StoreMigrationError(f"the target already holds data (table {table.name}); "
                                      "migrate only into an empty database")


def _source_tables(tx: Tx) -> list[_Table]:
    names = [r[0] for r in tx.all("SELECT name FROM sqlite_master WHERE type = 'table' "
                                  "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    tables = []
    for name in names:
        if name in NOT_COPIED:
            continue
        columns = tuple(r[0] for r in tx.all("SELECT name FROM pragma_table_info(?) ORDER BY cid", (name,)))
        for identifier in (name, *columns):
            if not _IDENTIFIER.match(identifier):
                raise StoreMigrationError(f"unexpected name in the source schema: {identifier!r}")
        tables.append(_Table(name, columns))
    return tables


def _copy_order(src: Tx) -> list[_Table]:
    """Parents before children, so the target's foreign keys hold row by row."""
    tables = {t.name: t for t in _source_tables(src)}
    graph = {name: {r[0] for r in src.all("SELECT \"table\" FROM pragma_foreign_key_list(?)", (name,))}
             & tables.keys() - {name} for name in sorted(tables)}
    return [tables[name] for name in TopologicalSorter(graph).static_order()]


def _exists(dst: Tx, name: str) -> bool:
    return dst.one("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                   "AND table_name = ?", (name,)) is not None


def _check_columns(dst: Tx, table: _Table) -> None:
    found = {r[0] for r in dst.all("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_schema = current_schema() AND table_name = ?", (table.name,))}
    if found != set(table.columns):
        raise StoreMigrationError(f"table {table.name} has other columns on the target: "
                                  f"{sorted(found ^ set(table.columns))}")


def _rows(tx: Tx, table: _Table) -> Iterator[tuple[Any, ...]]:
    """Every row, streamed: a plain cursor on SQLite, a server-side cursor on PostgreSQL."""
    sql = f'SELECT {table.column_list} FROM "{table.name}"'
    conn = getattr(tx, "conn", None)
    if conn is None:
        yield from tx.all(sql)
        return
    if tx.dialect == "postgres":
        with conn.cursor(name=f"migrate_{table.name}") as cur:
            cur.itersize = _BATCH
            cur.execute(sql)
            yield from cur
        return
    cur = conn.execute(sql)
    while batch := cur.fetchmany(_BATCH):
        yield from (tuple(r) for r in batch)


def _count(tx: Tx, table: _Table) -> int:
    row = tx.one(f'SELECT COUNT(*) FROM "{table.name}"')
    return int(row[0]) if row else 0


def _digest(rows: Iterator[tuple[Any, ...]]) -> str:
    """Order-free: the sum of row hashes, since text sorts differently on the two backends."""
    total = 0
    for row in rows:
        total += int.from_bytes(hashlib.sha256(json.dumps(list(row)).encode()).digest(), "big")
    return f"{total % (1 << 256):064x}"


def _copy_table(src: Tx, dst: Tx, table: _Table) -> None:
    conn = getattr(dst, "conn", None)
    if conn is None:
        raise StoreMigrationError("the target must be PostgreSQL")
    with conn.cursor() as cur, cur.copy(f'COPY "{table.name}" ({table.column_list}) FROM STDIN') as copy:
        for row in _rows(src, table):
            copy.write_row(row)


def _budget_periods(tx: Tx) -> dict[str, tuple[int, int, int]]:
    rows = tx.all("SELECT period, SUM(cap_nano), SUM(spent_nano), SUM(reserved_nano) FROM budget_accounts "
                  "GROUP BY period ORDER BY period")
    return {str(p): (int(c), int(s), int(r)) for p, c, s, r in rows}
