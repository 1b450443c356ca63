"""Connections to PostgreSQL: made on demand, kept while they work, an outage noticed at once.

psycopg_pool reconnects in the background with a growing backoff (1 s, doubling), so a replica
whose database came back after a minute could wait another minute before it served again, and
every request meanwhile waited out the pool's timeout. Here a caller that finds no idle
connection opens one itself, within `connect_timeout`. When opening one fails the database is
marked down: callers are refused at once (503 with Retry-After), one caller per
`probe_seconds` tries to connect again, and the first that succeeds ends the outage. A replica
so serves again within one probe interval of the database's return.

TCP keepalives and `tcp_user_timeout` are set (unless the DSN sets them) so that a connection
whose network path silently died fails within seconds instead of hanging on the kernel's
defaults (hours).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus

from gateway.errors import Unavailable

log = logging.getLogger("gateway.store")

# Applied where the DSN does not say otherwise (libpq parameter names).
CONNECTION_DEFAULTS = {
    "connect_timeout": "3",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",  # ms: unacknowledged data this long means the path is gone
}
RETRY_AFTER_DOWN = 2  # seconds a client is told to wait while the database is down


class Connections:
    """At most `max_size` open connections; idle ones reused newest first."""

    def __init__(self, conninfo: str, max_size: int, *, probe_seconds: float = 0.5,
                 wait_seconds: float = 10.0) -> None:
        self.conninfo = conninfo
        given = conninfo_to_dict(conninfo)
        self._params: dict[str, Any] = {k: v for k, v in CONNECTION_DEFAULTS.items() if k not in given}
        self.max_size, self.probe_seconds, self.wait_seconds = max_size, probe_seconds, wait_seconds
        self._idle: list[psycopg.Connection[Any]] = []
        self._open = 0  # idle + lent out + being opened
        self._cond = threading.Condition()
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._closed = False

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self.acquire()
        try:
            yield conn
        finally:
            self.release(conn)

    def acquire(self) -> psycopg.Connection[Any]:
        """An idle connection or a new one; Unavailable while the database is down or the pool
        stays exhausted for `wait_seconds`."""
        deadline = time.monotonic() + self.wait_seconds
        with self._cond:
            while True:
                if self._closed:
                    raise Unavailable("The store is closed.")
                self._refuse_while_down()
                if self._idle:
                    return self._idle.pop()
                if self._open < self.max_size:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable("The store is busy.", retry_after=1)
                self._cond.wait(remaining)
        return self._connect()

    def _refuse_while_down(self) -> None:
        """While down, one caller per probe interval may try; the others hear 503 at once."""
        if self._down_since is None:
            return
        now = time.monotonic()
        if now < self._next_probe:
            raise Unavailable("The store is unavailable.", retry_after=RETRY_AFTER_DOWN)
        self._next_probe = now + self.probe_seconds

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.conninfo, autocommit=False, **self._params)
        except psycopg.Error as exc:
            with self._cond:
                self._open -= 1
                self._mark_down(exc)
                self._cond.notify()
            raise Unavailable("The store is unavailable.", retry_after=RETRY_AFTER_DOWN) from exc
        with self._cond:
            if self._down_since is not None:
                log.warning('{"msg": "store reachable again", "down_seconds": %.1f}',
                            time.monotonic() - self._down_since)
                self._down_since = None
        return conn

    def _mark_down(self, exc: BaseException) -> None:
        """Under the lock: refuse until the next probe; idle connections belong to the old server."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning('{"msg": "store unreachable", "error": "%s"}', type(exc).__name__)
        self._next_probe = time.monotonic() + self.probe_seconds
        self._drop_idle()

    def release(self, conn: psycopg.Connection[Any]) -> None:
        """Back to the idle list when it is usable and the database is up; closed otherwise."""
        usable = (not conn.closed and not conn.broken
                  and conn.info.transaction_status == TransactionStatus.IDLE)
        with self._cond:
            if usable and self._down_since is None and not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            self._open -= 1
            self._cond.notify()
        with contextlib.suppress(psycopg.Error):
            conn.close()

    def discard_idle(self) -> None:
        """A connection was found dead: its idle siblings of the same era probably are too."""
        with self._cond:
            self._drop_idle()

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        self._open -= len(idle)
        for conn in idle:
            with contextlib.suppress(psycopg.Error):
                conn.close()
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._drop_idle()
