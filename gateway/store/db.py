"""The store's async boundary: plain sync SQL functions run on SQLite or PostgreSQL.

Every store operation is a sync function `fn(tx, *args)` written once, with `?` placeholders,
and run by `await store.write(fn, ...)` (one transaction; on SQLite one writer thread with
`BEGIN IMMEDIATE`) or `await store.read(fn, ...)`. The two backends differ only in how they
connect, begin and retry; the rules live in the functions (store/identity.py, ledger.py...).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gateway.errors import Conflict, Unavailable

T = TypeVar("T")
log = logging.getLogger("gateway.store")
_MAX_GROUP = 64  # writes sharing one SQLite commit
Row = tuple[Any, ...]


class Tx(Protocol):
    """One open transaction; `?` placeholders on both backends (R-IN-07: always parameters)."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class _SqliteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, tuple(params)).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self.conn.execute(sql, tuple(params)).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self.conn.execute(sql, tuple(params)).fetchall()]


_QMARK = re.compile(r"\?")


@functools.lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    return _QMARK.sub("%s", sql.replace("%", "%%"))


class _PgTx:
    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = self.conn.execute(_pg_sql(sql), tuple(params), prepare=False)
        return int(cur.rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = self.conn.execute(_pg_sql(sql), tuple(params)).fetchone()
        return tuple(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in self.conn.execute(_pg_sql(sql), tuple(params)).fetchall()]


class Store(abc.ABC):
    """Async front of a backend; subclasses provide `_run(fn, args, write)` in a thread."""

    dialect = ""

    def __init__(self, read_threads: int) -> None:
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="store-read")
        self.observe: Callable[[str, float], None] = lambda op, seconds: None

    async def write(self, fn: Callable[..., T], *args: Any, op: str = "") -> T:
        """`fn(tx, *args)` in one write transaction; `op` names it for the store metrics."""
        return await self._submit(fn, args, write=True, op=op)

    async def write_grouped(self, key: str, many: Callable[[Tx, list[tuple[Any, ...]]], list[Any]],
                            fn: Callable[..., T], *args: Any, op: str = "") -> T:
        """`write`; on PostgreSQL concurrent writes of one `key` share a `many` (store/pg_group.py)."""
        return await self._timed(asyncio.wrap_future(self._dispatch_grouped(key, many, fn, args)), op)

    def _dispatch_grouped(self, key: str, many: Any, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        return self._dispatch(fn, args, True)

    async def read(self, fn: Callable[..., T], *args: Any, op: str = "") -> T:
        return await self._submit(fn, args, write=False, op=op)

    async def _submit(self, fn: Callable[..., T], args: tuple[Any, ...], *, write: bool, op: str) -> T:
        return await self._timed(self._awaitable(fn, args, write), op)

    async def _timed(self, work: Awaitable[T], op: str) -> T:
        """Only operations named by their caller are timed (metrics.STORE_OPERATIONS)."""
        started = time.perf_counter()
        try:
            return await work
        finally:
            if op:
                self.observe(op, time.perf_counter() - started)

    def _awaitable(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> asyncio.Future[T]:
        return asyncio.wrap_future(self._dispatch(fn, args, write))

    def run_sync(self, fn: Callable[..., T], *args: Any, write: bool = True, group: tuple[str, Any] | None = None) -> T:
        """For the CLI and start-up, outside the event loop (`group`: `write_grouped`'s key, many)."""
        return (self._dispatch_grouped(*group, fn, args) if group else self._dispatch(fn, args, write)).result()

    def _dispatch(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> Future[T]:
        return self._readers.submit(self._run, fn, args, write)

    @abc.abstractmethod
    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        """Run `fn(tx, *args)` in one transaction, in the calling (executor) thread."""

    def close(self) -> None:
        self._readers.shutdown(wait=True)


@dataclass
class _WriteJob:
    """A write and who waits for it: a loop's future (answered on that loop) or, outside any
    loop, a thread future."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any] | asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop | None = None


def _settle(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On the waiting loop; a caller that gave up (cancelled) no longer wants its outcome."""
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _deliver(outcomes: list[tuple[_WriteJob, bool, Any]]) -> None:
    """Hand a group's outcomes back: one wake-up per waiting loop, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for job, ok, value in outcomes:
        if job.loop is not None:
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))  # type: ignore[arg-type]
            continue
        future: Future[Any] = job.future  # type: ignore[assignment]
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, settled)


# Result codes of a disk, lock or memory failure (not of the statement): the write may succeed
# once space is freed or the lock released, so the caller hears 503 rather than 500.
_STORAGE_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR,
                  sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL}


def _storage_failure(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _STORAGE_CODES


class SqliteStore(Store):
    """The embedded default: WAL, one writer thread, `BEGIN IMMEDIATE`, synchronous=FULL."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        super().__init__(read_threads=2)
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_WriteJob | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="store-write", daemon=True)
        self._writer.start()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _dispatch(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> Future[T]:
        if not write:
            return super()._dispatch(fn, args, write)
        future: Future[T] = Future()
        self._jobs.put(_WriteJob(fn, args, future))
        return future

    def _awaitable(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> asyncio.Future[T]:
        """A write answers its loop's own future straight from the writer thread: no thread
        future, no wrap_future chaining per call (measured: ~8% of the main thread)."""
        if not write:
            return super()._awaitable(fn, args, write)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_WriteJob(fn, args, future, loop))
        return future

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        """A read: one deferred transaction on this thread's connection."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            return fn(_SqliteTx(conn), *args)
        except sqlite3.Error as exc:
            if _storage_failure(exc):
                raise Unavailable("The store could not be read.", retry_after=1) from exc
            raise
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _write_loop(self) -> None:
        """The one writer. Jobs waiting together share a transaction and its fsync (group
        commit); each runs in its own savepoint, so a failing job leaves no trace of itself
        and the others still commit. Nobody hears back before the commit is durable."""
        conn = self._conn()
        stopping = False
        while not stopping:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < _MAX_GROUP:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._commit_group(conn, batch)

    def _commit_group(self, conn: sqlite3.Connection, batch: list[_WriteJob]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # SQLITE_BUSY after busy_timeout (R-BU-03), a failing disk
            _deliver([(job, False, Unavailable("The store is busy.", retry_after=1)) for job in batch])
            log.warning("store busy: %s", exc)
            return
        try:
            outcomes = [self._run_job(conn, job) for job in batch]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # A full or failing disk: SQLite may already have rolled the whole transaction back
            # (its savepoints with it), so no job of the group is kept and each caller hears 503.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            _deliver([(job, False, Unavailable("The store could not commit.", retry_after=1)) for job in batch])
            log.error("store commit failed: %s", exc)
            return
        _deliver(outcomes)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: _WriteJob) -> tuple[_WriteJob, bool, Any]:
        """One job in its savepoint: its own error is handed back to its caller, unless the disk
        failed under it (then the group fails: raised as sqlite3.Error)."""
        conn.execute("SAVEPOINT job")
        try:
            value = job.fn(_SqliteTx(conn), *job.args)
        except BaseException as exc:
            if isinstance(exc, sqlite3.Error) and _storage_failure(exc):
                raise
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return job, False, exc
        conn.execute("RELEASE job")
        return job, True, value

    def close(self) -> None:
        self._jobs.put(None)
        self._writer.join()
        super().close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()


_RETRYABLE_PG = {"40001", "40P01"}  # serialization failure, deadlock (R-BU-02)
# A server going away (admin or crash shutdown, starting up) and resources running out (disk
# full, too many connections): the request may succeed later, so 503 with Retry-After, not 500.
_UNAVAILABLE_PG_PREFIXES = ("08", "53", "57P", "58")


def _connection_lost(conn: Any, exc: BaseException) -> bool:
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    return bool(conn.closed or conn.broken or state.startswith(("08", "57P"))
                or (isinstance(exc, psycopg.OperationalError) and not state))


def _unavailable(exc: BaseException) -> bool:
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, psycopg.OperationalError) or state.startswith(_UNAVAILABLE_PG_PREFIXES)


class PostgresStore(Store):
    """Shared state for several replicas: our own small pool (store/pg_pool.py), READ COMMITTED,
    bounded retries, and every loss of the database answered as Unavailable (503)."""

    dialect = "postgres"

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        from gateway.store.pg_group import GroupWriter
        from gateway.store.pg_pool import Connections
        super().__init__(read_threads=pool_size)
        self.pool = Connections(dsn, max_size=pool_size)
        self._groups = GroupWriter(self.pool, max(1, pool_size // 4), self._run, self._readers, _deliver, _PgTx)

    def _run(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        import psycopg

        for attempt in range(5):
            conn = self.pool.acquire()
            committing = False
            try:
                try:
                    value = fn(_PgTx(conn), *args)
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                    raise
                committing = True
                conn.commit()
                return value
            except psycopg.Error as exc:
                state = getattr(exc, "sqlstate", None)
                if state in _RETRYABLE_PG and attempt < 4:  # rolled back whole: safe to run again
                    time.sleep(0.005 * 2**attempt)
                    continue
                if _connection_lost(conn, exc):
                    self.pool.discard_idle()
                    if not committing and attempt == 0:
                        continue  # never committed: once more, on a fresh connection
                    raise Unavailable("The store is unavailable.", retry_after=2) from exc
                if _unavailable(exc):
                    raise Unavailable("The store is unavailable.", retry_after=2) from exc
                if state == "23505":  # unique_violation: a check-then-insert lost to a concurrent request
                    raise Conflict("A concurrent request took this name or code first; nothing was written.") from exc
                raise
            finally:
                self.pool.release(conn)
        raise Unavailable()  # pragma: no cover - the loop returns or raises

    def _dispatch_grouped(self, key: str, many: Any, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        self._groups.submit(key, job := _WriteJob(fn, args, Future()), many)
        return job.future  # type: ignore[return-value]

    def close(self) -> None:
        self._groups.close()
        super().close()
        self.pool.close()
