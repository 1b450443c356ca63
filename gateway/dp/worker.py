"""The sandbox worker process: holds prepared snapshots, compiles plans, draws the noise.

It starts in a fresh interpreter (spawn), imports OpenDP there and nowhere in the server,
refuses to run with unsafe OpenDP features (R-DP-01), and then answers one message at a
time over its pipe, so a snapshot swap always falls between two queries. Replies carry
only DP output, previews or a bare failure kind: an exception's text never leaves, since
OpenDP's messages print the whole plan (R-DP-11).
"""

from __future__ import annotations

import ctypes
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gateway.dp.childproc import FAILED, INVALID, OK, READY, limit_memory


def main(conn: Connection, cache_dir: str, memory_mb: int, streaming: bool = True) -> None:
    """Entry point of a worker process."""
    use_engine(streaming)
    # The server stops its workers itself after draining; a signal to the whole process group
    # (systemd, Ctrl-C) must not kill releases still in flight.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_memory(memory_mb)
    try:
        from gateway.dp import compile as compiler

        compiler.assert_features_safe()
    except Exception:
        conn.send((FAILED, "unsafe or missing OpenDP"))
        return
    conn.send((READY, None))
    _Worker(Path(cache_dir)).serve(conn)


def use_engine(streaming: bool) -> None:
    """The polars engine OpenDP's collect runs on in this process, before any query.

    OpenDP collects inside its own library, so the engine cannot be passed per query: its polars
    reads POLARS_AUTO_NEW_STREAMING at each collect. Streaming runs a release in morsels and falls
    back to the in-memory engine for a step it cannot stream (a quantile's scores). Measured at
    10M rows (issue 18): the benchmark query's private memory +70 MB instead of +374 MB (the Arrow
    file is 200 MB) and 0.3 s instead of 0.47 s; the noise is drawn once per cell either way
    (tests/test_dp_streaming.py checks its distribution with tiny morsels)."""
    if streaming:
        os.environ["POLARS_AUTO_NEW_STREAMING"] = "1"
    else:
        os.environ.pop("POLARS_AUTO_NEW_STREAMING", None)


def _trimmer() -> Any:
    """glibc's malloc_trim: a release's intermediate frames (the filtered columns, the groups)
    are freed to the allocator, which kept them as the worker's private memory, one copy per
    worker (measured: ~0.85x the columns a query touches at 100M rows). Trimmed after each
    release, a worker's private memory falls back near idle and the workers share the one
    mapped snapshot (issue 18 point 4). A no-op where there is no glibc."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda _pad: 0


_TRIM = _trimmer()


class _Worker:
    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.held: dict[str, tuple[Path, str]] = {}  # dataset -> (prepared file, snapshot id)

    def serve(self, conn: Connection) -> None:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] == "stop":
                return
            conn.send(self.handle(message))
            if message[0] in ("release", "load"):
                _TRIM(0)  # after the reply: the caller does not wait for it

    def handle(self, message: tuple[Any, ...]) -> tuple[str, Any]:
        from gateway.dp.outcome import SnapshotInvalid

        try:
            if message[0] == "load":
                self.load(*message[1:])
                return OK, None
            if message[0] in ("release", "preview"):
                from gateway.dp.compile import CACHE_SCOPE, preview_figures

                kind, checked, alpha, scope = message
                token = CACHE_SCOPE.set(scope)  # compiled plans are reused within one organisation only
                try:
                    return OK, self.release(checked, alpha) if kind == "release" else preview_figures(checked, alpha)
                finally:
                    CACHE_SCOPE.reset(token)
        except SnapshotInvalid as exc:
            return INVALID, str(exc)
        except Exception:  # whatever it was, the reply does not depend on it (R-DP-11)
            return FAILED, None
        return FAILED, None

    def load(self, policy: Any, source: str, snapshot_id: str) -> None:
        from gateway.dp.snapshot import prepare

        prepared = prepare(policy, Path(source), snapshot_id, self.cache_dir)
        self.held[policy.dataset] = (prepared, snapshot_id)

    def release(self, checked: Any, alpha: float) -> Any:
        import polars as pl

        from gateway.dp.compile import compile_plan
        from gateway.dp.release import run

        path, snapshot_id = self.held[checked.policy.dataset]
        compiled = compile_plan(checked)  # before the data: the cost is proven first (R-DP-02)
        return run(checked, compiled, pl.scan_ipc(path, memory_map=True), snapshot_id, alpha)
