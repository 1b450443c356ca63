"""The sandbox worker processes of a `gateway serve` child, found through /proc, and a way to
freeze one (SIGSTOP): a worker that stops answering is what a runaway release looks like to the
sandbox's time limit, without a query written to be slow."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def sandbox_workers(server_pid: int) -> list[int]:
    """Children started by multiprocessing's spawn (the workers; not its resource tracker)."""
    workers = []
    for child in _children(server_pid):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
    return sorted(workers)


def one_worker(server_pid: int, *, not_pid: int | None = None, timeout: float = 120) -> int:
    """The one sandbox worker (other than `not_pid`, a retired one), once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [w for w in sandbox_workers(server_pid) if w != not_pid]
        if len(workers) == 1:
            return workers[0]
        time.sleep(0.2)
    raise AssertionError(f"no single sandbox worker under pid {server_pid}: {sandbox_workers(server_pid)}")


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # the sandbox may have killed it meanwhile
            os.kill(pid, signal.SIGCONT)
