"""The state folder: one server at a time on a SQLite one, and commands that never invent one.

A server holds an exclusive `flock` on STATE_DIR/gateway.lock for its life (R-OP-08): a second
`gateway serve` on the folder stops at once, naming the folder and the holder's pid, before it
reads or recovers anything. The lock goes with the process, however it ends. Replicas on
PostgreSQL may share a state folder (keys, demo data), so they take the lock only for the
short steps that write shared files (`wait=True`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

SERVER_LOCK = "gateway.lock"


class StateFolderBusy(Exception):
    """Another process holds the state folder's lock."""


class StateMissing(Exception):
    """A command that works on existing state found none where it was told to look."""


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii").strip()
    except OSError:
        return "another process"
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def state_lock(folder: Path, name: str = SERVER_LOCK, *, wait: bool = False) -> Iterator[None]:
    """Hold `folder/name` exclusively for the block: at once or StateFolderBusy, or (`wait`)
    after whoever holds it lets go. The holder's pid is written into the file for the message."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateFolderBusy(
                f"the state folder {folder.resolve()} is in use by another gateway ({_holder(path)}); "
                "stop it, or give this one another --state-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def require_folder(folder: Path) -> None:
    """A maintenance command's state folder must exist: a typo must not start a new county."""
    if not folder.is_dir():
        raise StateMissing(f"no state folder at {folder.resolve()}; check --state-dir (or --config), "
                           "or start `gateway serve` there first")
