"""The store under faults (issue 17): a full disk under SQLite, a killed or cut-off PostgreSQL.

Every failure of the storage reaches the caller as `Unavailable` (503 with Retry-After), never
as a raw database error (500), and the store serves again by itself once the fault is gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from gateway.errors import Conflict, Unavailable
from gateway.store.db import PostgresStore, SqliteStore, Tx
from tests.fault_support import CuttableProxy, OwnPostgres, fill, small_disk

T = TypeVar("T")


def _create(tx: Tx) -> None:
    tx.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")


def _put(tx: Tx, key: int, rows: int) -> int:
    for n in range(rows):
        tx.execute("INSERT INTO t (k, v) VALUES (?, ?)", (key * 1000 + n, "x" * 4000))
    return key


def _keys(tx: Tx) -> set[int]:
    return {int(r[0]) // 1000 for r in tx.all("SELECT k FROM t")}


def test_a_full_disk_fails_sqlite_writes_with_503_and_the_writer_lives_on() -> None:
    with small_disk(4) as disk:
        store = SqliteStore(disk / "gateway.db")
        try:
            store.run_sync(_create)
            assert store.run_sync(_put, 0, 5) == 0
            filler = fill(disk)

            async def writes(keys: range, rows: int) -> list[object]:
                return await asyncio.gather(*(store.write(_put, k, rows) for k in keys), return_exceptions=True)

            # Small writes fail at COMMIT; large ones spill into the WAL half-way through a job,
            # where SQLite may roll the whole group back (it killed the writer thread before).
            failed = asyncio.run(writes(range(1, 9), 1)) + asyncio.run(writes(range(9, 13), 300))
            assert failed and all(isinstance(r, Unavailable) for r in failed), failed
            assert all(r.headers.get("Retry-After") for r in failed if isinstance(r, Unavailable))
            assert store.run_sync(_keys, write=False) == {0}  # nothing half-written

            filler.unlink()
            assert asyncio.run(writes(range(20, 24), 3)) == [20, 21, 22, 23]  # the writer still runs
            assert store.run_sync(_keys, write=False) == {0, 20, 21, 22, 23}
        finally:
            store.close()
        with sqlite3.connect(disk / "gateway.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres().init().start()
    try:
        yield server
    finally:
        server.close()


def _one(tx: Tx) -> int:
    row = tx.one("SELECT 1")
    assert row is not None
    return int(row[0])


def test_a_killed_postgres_is_503_while_down_and_served_again_without_a_restart(own_postgres: OwnPostgres) -> None:
    store = PostgresStore(own_postgres.dsn, pool_size=4)
    try:
        store.run_sync(_create)
        assert store.run_sync(_put, 1, 2) == 1
        own_postgres.kill()
        for _ in range(3):  # the first call meets the dead connection, the next ones fail fast
            with pytest.raises(Unavailable) as refused:
                store.run_sync(_put, 2, 1)
            assert refused.value.headers["Retry-After"]
        assert store.pool.down
        own_postgres.start()
        assert _eventually(lambda: store.run_sync(_put, 3, 1)) == 3
        assert store.run_sync(_keys, write=False) == {1, 3}
        # Restarted while idle: the stale pooled connections are replaced without an error.
        own_postgres.kill()
        own_postgres.start()
        assert store.run_sync(_one, write=False) == 1
    finally:
        store.close()


def test_a_network_cut_is_503_and_heals_by_itself(own_postgres: OwnPostgres) -> None:
    proxy = CuttableProxy(own_postgres.port)
    store = PostgresStore(proxy.dsn(), pool_size=4)
    try:
        store.run_sync(_create)
        assert store.run_sync(_one, write=False) == 1
        proxy.cut()
        with pytest.raises(Unavailable):
            store.run_sync(_put, 4, 1)
        with pytest.raises(Unavailable):
            store.run_sync(_one, write=False)
        proxy.heal()
        assert _eventually(lambda: store.run_sync(_put, 5, 1)) == 5
        assert 4 not in store.run_sync(_keys, write=False)
    finally:
        store.close()
        proxy.close()


def _eventually(call: Callable[[], T], attempts: int = 300) -> T:
    """The first success of `call` while the store probes its way back (every 0.5 s)."""
    for _ in range(attempts):
        try:
            return call()
        except Unavailable:
            time.sleep(0.1)
    return call()


def test_postgres_errors_that_are_not_outages_still_raise_as_themselves(own_postgres: OwnPostgres) -> None:
    """Never an Unavailable; a unique violation (a race a check-then-insert loses on PostgreSQL, two
    bureau requests giving one registration code, say) is a 409 Conflict, not a 500."""
    import psycopg

    store = PostgresStore(own_postgres.dsn, pool_size=2)
    try:
        store.run_sync(_create)
        store.run_sync(_put, 7, 1)
        with pytest.raises(Conflict) as taken:
            store.run_sync(_put, 7, 1)
        assert isinstance(taken.value.__cause__, psycopg.errors.UniqueViolation)
        with pytest.raises(psycopg.errors.UndefinedTable):
            store.run_sync(lambda tx: tx.one("SELECT 1 FROM no_such_table"), write=False)
        rows = store.run_sync(lambda tx: tx.all("SELECT k FROM t WHERE k = 7000"), write=False)
        assert len(rows) == 1  # the first insert only
        assert store.run_sync(_one, write=False) == 1
    finally:
        store.close()
