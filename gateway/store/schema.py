"""The store's schema: numbered migrations applied in order, and opening a store at the current schema."""

from __future__ import annotations

import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from gateway.store.db import PostgresStore, SqliteStore, Store, Tx


def _migration_files(dialect: str) -> Iterator[tuple[int, str, str]]:
    """(number, name, sql): the portable file, then the dialect's own file, per number."""
    folder = resources.files("gateway.store") / "migrations"
    # The portable file of a number runs before its dialect file ("0001_init" < "0001_init.sqlite").
    names = sorted((p.name for p in folder.iterdir() if p.name.endswith(".sql")),
                   key=lambda n: (n.split("_", 1)[0], n.count("."), n))
    for name in names:
        stem = name[:-4]
        number, _, rest = stem.partition("_")
        if "." in rest and not rest.endswith("." + dialect):
            continue
        yield int(number), stem, (folder / name).read_text(encoding="utf-8")


def _split_statements(sql: str) -> list[str]:
    """Statements end with a line holding only ';' or with ';' at a line end outside $$ blocks."""
    parts: list[str] = []
    buf: list[str] = []
    in_dollar = False
    for line in sql.splitlines():
        if line.strip().startswith("--") and not buf:
            continue
        buf.append(line)
        if line.count("$$") % 2 == 1:
            in_dollar = not in_dollar
        if not in_dollar and line.rstrip().endswith(";"):
            parts.append("\n".join(buf).strip())
            buf = []
    if "".join(buf).strip():
        parts.append("\n".join(buf).strip())
    return parts


def migrate(tx: Tx) -> list[str]:
    """Apply every migration not yet applied; return their names."""
    tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {r[0] for r in tx.all("SELECT name FROM schema_migrations")}
    applied = []
    for _number, name, sql in _migration_files(tx.dialect):
        if name in done:
            continue
        for statement in _split_statements(sql):
            tx.execute(statement)
        tx.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                   (name, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        applied.append(name)
    return applied


def pending_migrations(tx: Tx) -> list[str]:
    done = {r[0] for r in tx.all("SELECT name FROM schema_migrations")}
    return [name for _n, name, _s in _migration_files(tx.dialect) if name not in done]


class StoreMissing(Exception):
    """`open_store(..., create=False)` found no gateway store where it was told to look."""


def open_store(dsn: str, state_dir: Path, *, pool_size: int = 8, create: bool = True) -> Store:
    """PostgreSQL when a DSN is given, else SQLite in the state folder; migrated. With
    `create=False` (maintenance commands) a store must already be there: none is made."""
    store: Store
    if dsn:
        store = PostgresStore(dsn, pool_size=pool_size)
        if not create and not store.run_sync(_has_schema, write=False):
            store.close()
            raise StoreMissing("the PostgreSQL store has no gateway schema; check GATEWAY_STORE_DSN")
        store.run_sync(_migrate_locked)
    else:
        path = state_dir / SQLITE_FILE
        if not create and not path.is_file():
            raise StoreMissing(f"no gateway store at {path.resolve()}; check --state-dir (or --config)")
        state_dir.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(path)
        store.run_sync(migrate)
    return store


SQLITE_FILE = "gateway.db"


def _has_schema(tx: Tx) -> bool:
    row = tx.one("SELECT to_regclass('schema_migrations') IS NOT NULL")
    return bool(row and row[0])


def _migrate_locked(tx: Tx) -> list[str]:
    # Replicas starting together take turns: a transaction-scoped advisory lock.
    tx.one("SELECT pg_advisory_xact_lock(?)", (7_160_341,))
    return migrate(tx)
