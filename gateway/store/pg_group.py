"""Group commit on PostgreSQL for writes that contend on the same rows (issue 18 point 3).

A budget charge holds its accounts' rows locked from its conditional update to its commit, so
charges to one hot account (one grant, one dataset pool) are serialised by that lock, and each
pays its statements and a commit (a WAL flush) while holding it: under a thousand per second,
whatever the number of replicas. Here writes that name the same `key` and wait at the same time
are done by one call of their `many` function in one transaction, all or none: for budget
charges (ledger.reserve_many) one conditional update per account charges the group's sum, so
the group passes the cap only if every charge of it would have passed one after another.

When `many` refuses (the group does not fit whole, a status refuses, a database error), the
transaction rolls back whole and every write of the group runs again on its own, the usual way
(own transaction, the store's retries, in parallel on the store's threads): a refused charge is
refused exactly as it would have been alone. A failed COMMIT is never run again (it may have
committed): every caller of the group hears Unavailable (503), as a single write's would.
Nobody hears back before their commit is durable.

Writes are spread over a few threads by key (the same key always to the same thread), so
unrelated accounts do not wait for one another.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from gateway.errors import Unavailable

log = logging.getLogger("gateway.store")
MAX_GROUP = 64
Many = Callable[[Any, list[tuple[Any, ...]]], list[Any]]


class _Job:
    __slots__ = ("job", "key", "many")

    def __init__(self, key: str, job: Any, many: Many) -> None:
        self.key, self.job, self.many = key, job, many  # job: db._WriteJob (fn, args, future, loop)


class GroupWriter:
    """`threads` writer threads, each with its queue. `run(fn, args, write)` runs one write the
    usual way; `alone` is the executor it runs on; `deliver(outcomes)` answers the waiters;
    `tx(conn)` wraps a connection as the store's Tx."""

    def __init__(self, pool: Any, threads: int, run: Callable[..., Any], alone: Executor,
                 deliver: Callable[[list[tuple[Any, bool, Any]]], None], tx: Callable[[Any], Any]) -> None:
        self.pool, self._run, self._alone, self._deliver, self._tx = pool, run, alone, deliver, tx
        self._queues: list[queue.SimpleQueue[_Job | None]] = [queue.SimpleQueue() for _ in range(threads)]
        self._threads = [threading.Thread(target=self._loop, args=(q,), name=f"store-group-{i}", daemon=True)
                         for i, q in enumerate(self._queues)]
        for t in self._threads:
            t.start()

    def submit(self, key: str, job: Any, many: Many) -> None:
        self._queues[zlib.crc32(key.encode()) % len(self._queues)].put(_Job(key, job, many))

    def close(self) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()

    def _loop(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        pending: list[_Job] = []
        stopping = False
        while pending or not stopping:
            if not pending:
                first = jobs.get()
                if first is None:
                    return
                pending.append(first)
            while not stopping:  # everything waiting now, so that writes of one key share a group
                try:
                    more = jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                pending.append(more)
            key = pending[0].key
            group = [j for j in pending if j.key == key][:MAX_GROUP]
            taken = {id(j) for j in group}
            pending = [j for j in pending if id(j) not in taken]
            try:
                together = len(group) > 1 and self._together(group)
            except Exception:  # never leave a waiter unanswered, nor run a write twice
                log.exception("store group failed")
                self._deliver([(j.job, False, Unavailable("The store is unavailable.", retry_after=2))
                               for j in group])
                continue
            if not together:
                for j in group:
                    self._alone.submit(self._one, j.job)

    def _one(self, job: Any) -> None:
        try:
            outcome = (job, True, self._run(job.fn, job.args, True))
        except Exception as exc:
            outcome = (job, False, exc)
        self._deliver([outcome])

    def _together(self, group: list[_Job]) -> bool:
        """The group in one transaction by its `many`; False (nothing kept) if that refused."""
        import psycopg

        try:
            conn = self.pool.acquire()
        except Exception:
            return False
        committing = False
        try:
            try:
                values = group[0].many(self._tx(conn), [j.job.args for j in group])
                committing = True
                conn.commit()
            except Exception:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                if conn.broken or conn.closed:
                    self.pool.discard_idle()
                if committing:  # the commit's outcome is unknown: never run the writes again
                    self._deliver([(j.job, False, Unavailable("The store is unavailable.", retry_after=2))
                                   for j in group])
                    return True
                return False
        finally:
            self.pool.release(conn)
        self._deliver([(j.job, True, v) for j, v in zip(group, values, strict=True)])
        return True
