"""Faults the tests inject: a PostgreSQL of their own to kill, a TCP proxy to cut, a small disk.

Each helper skips the test with its reason where the machine does not allow the fault (no
PostgreSQL binaries, no permission to mount).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

# ---------------------------------------------------------------- a small filesystem

@contextlib.contextmanager
def small_disk(size_mb: int) -> Iterator[Path]:
    """A size-limited tmpfs mounted on a new folder; skipped where mounting is not permitted."""
    where = Path(tempfile.mkdtemp(prefix="faults-disk-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {(done.stderr or done.stdout).strip()[:200]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(folder: Path, leave_bytes: int = 0) -> Path:
    """Write a filler file until the filesystem is full (or only `leave_bytes` remain)."""
    filler = folder / "filler"
    block = b"\0" * (1 << 16)
    with open(filler, "ab") as fh:
        while True:
            free = shutil.disk_usage(folder).free
            if free <= leave_bytes:
                break
            try:
                fh.write(block[: max(1, min(len(block), free - leave_bytes))])
                fh.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    return filler


# ---------------------------------------------------------------- a PostgreSQL of the test's own

def postgres_binaries() -> Path:
    """Debian's newest PostgreSQL server binaries; skips with the reason when there are none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian's postgresql package)")
    return Path(found[-1]).parent


class OwnPostgres:
    """A PostgreSQL cluster in a temporary folder on a free port, which the test may SIGKILL.

    The server runs in a process group of its own, so `kill()` takes the postmaster and every
    backend down at once, as a crashed machine would. Run as the `postgres` user when the
    tests run as root (initdb refuses root).
    """

    def __init__(self) -> None:
        self.bin = postgres_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = self._unprivileged_user()
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    @staticmethod
    def _unprivileged_user() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")

    def _as_user(self) -> dict[str, object]:
        return {"user": self.user.pw_uid, "group": self.user.pw_gid} if self.user else {}

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> OwnPostgres:
        subprocess.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, **self._as_user())  # type: ignore[call-overload]
        return self

    def start(self, timeout: float = 120) -> OwnPostgres:
        """Start (after a kill: crash recovery first) and wait until it takes connections."""
        import psycopg

        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - closed with the process
        # fsync off: a killed process loses nothing the kernel already holds, and the machine
        # does not crash in these tests; max_connections covers three replicas' pools and more.
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=120"],
            stdout=log, stderr=log, start_new_session=True, **self._as_user())  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + (self.root / "server.log").read_text()[-2000:])
            with contextlib.suppress(psycopg.Error), psycopg.connect(self.dsn, connect_timeout=2):
                return self
            time.sleep(0.1)
        raise RuntimeError("postgres did not start: " + (self.root / "server.log").read_text()[-2000:])

    def kill(self) -> None:
        """SIGKILL to the postmaster and all its backends."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Backends notice their postmaster's death by themselves; wait until the group is gone.
        deadline = time.monotonic() + 30
        while self.proc is not None and time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- a network that can be cut

class CuttableProxy:
    """A TCP proxy on a free loopback port to `target_port`. `cut()` drops every connection and
    refuses new ones (each is accepted and closed at once) until `heal()`."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connected = True
        self.cuts = 0
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stopping = False
        self._thread = threading.Thread(target=self._accept, name="cuttable-proxy", daemon=True)
        self._thread.start()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def cut(self) -> None:
        with self._lock:
            self.connected = False
            self.cuts += 1
            pairs, self._pairs = self._pairs, set()
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        with self._lock:
            self.connected = True

    def close(self) -> None:
        self._stopping = True
        self.cut()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                connected = self.connected
            if not connected:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair: tuple[socket.socket, socket.socket]) -> None:
        a, b = pair
        try:
            while True:
                readable, _, _ = select.select([a, b], [], [], 1.0)
                for s in readable:
                    data = s.recv(1 << 16)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for s in pair:
                with contextlib.suppress(OSError):
                    s.close()
