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


def workers_up(server_pid: int, count: int, *, timeout: float = 120) -> list[int]:
    """The sandbox's worker processes (release and preview lanes), once `count` of them run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sandbox_workers(server_pid)
        if len(found) == count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not {count} sandbox workers under pid {server_pid}: {sandbox_workers(server_pid)}")


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """Every given worker stopped for the block (SIGSTOP), continued after unless killed meanwhile."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
