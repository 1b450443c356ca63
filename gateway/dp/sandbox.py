"""The sandbox: worker processes that hold the snapshots and run releases, behind asyncio.

The server never imports OpenDP nor reads a row: it sends our checked plan (a picklable
dataclass, never a serialized polars plan) to an idle worker and awaits the released frame.
Each call has a wall-time limit and a memory limit (anonymous memory, watched while the
call runs); a worker that passes either is killed and replaced, and the caller gets the one
generic `ReleaseFailed` (R-DP-11, R-RL-04). A snapshot is prepared once, in a short-lived
process (so no worker keeps the memory of reading it); each
worker swaps to it before its next query on that dataset, and a replacement worker starts
empty and loads what it needs the same way.

Two lanes of workers (issue 19 point 1, issue 11 point 5): releases run on the workers that
hold the data; previews, which read no data, on workers of their own, so a flood of free
previews never holds a worker a release needs. In each lane a free worker goes to the waiting
organisation that has used it least lately (`FairQueue`), not to whoever queued most; and a worker reuses compiled
plans only for the organisation that compiled them (the `scope` of each message).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from gateway.core.checks import CheckedPlan
from gateway.core.policy import DatasetPolicy
from gateway.data.diskfull import disk_full
from gateway.dp import childproc
from gateway.dp import worker as worker_main
from gateway.dp.fairqueue import FairQueue
from gateway.dp.outcome import Release, SnapshotInvalid
from gateway.dp.snapshot import prepare_main, storage_fingerprint
from gateway.errors import ReleaseFailed, Unavailable

__all__ = ["Release", "Sandbox", "SnapshotInvalid"]

_START_TIMEOUT = 180.0
_WATCH_SECONDS = 0.02
_REPLACE_ATTEMPTS = 5
_PAGE = os.sysconf("SC_PAGE_SIZE")
RELEASES, PREVIEWS = "release", "preview"


class _WorkerGone(Exception):
    """The worker died, timed out or passed its memory limit; it has been killed."""

    def __init__(self, reason: str = "", *, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


@dataclass(frozen=True)
class _Loaded:
    policy: DatasetPolicy
    source: str
    snapshot_id: str


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, process: Any, conn: Connection, lane: str = RELEASES) -> None:
        self.process, self.conn, self.lane = process, conn, lane
        self.held: dict[str, _Loaded] = {}  # what the worker holds, per dataset

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def anon_memory_mb(self) -> float:
        """Private (anonymous) resident memory; the mapped snapshot files are not counted."""
        try:
            with open(f"/proc/{self.pid}/statm") as fh:
                _size, resident, shared, *_ = (int(x) for x in fh.read().split())
        except (OSError, ValueError):
            return 0.0
        return (resident - shared) * _PAGE / 2**20

    async def call(self, message: tuple[Any, ...] | None, timeout: float, memory_mb: int) -> tuple[str, Any]:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[tuple[str, Any]] = loop.create_future()

        def readable() -> None:
            loop.remove_reader(self.conn.fileno())
            try:
                reply.set_result(self.conn.recv())
            except (EOFError, OSError) as exc:
                reply.set_exception(_WorkerGone(str(exc)))

        try:
            if message is not None:  # None: the process answers unasked, once
                self.conn.send(message)
        except (OSError, ValueError) as exc:
            raise _WorkerGone(str(exc)) from None
        loop.add_reader(self.conn.fileno(), readable)
        watch: asyncio.Future[Any] = asyncio.ensure_future(self._watch_memory(memory_mb))
        try:
            either: set[asyncio.Future[Any]] = {reply, watch}
            done, _ = await asyncio.wait(either, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if reply in done:
                return reply.result()
            raise _WorkerGone("time or memory limit", timed_out=not done)
        finally:
            watch.cancel()
            if not reply.done():
                loop.remove_reader(self.conn.fileno())
                reply.cancel()

    async def _watch_memory(self, limit_mb: int) -> None:
        while self.anon_memory_mb() <= limit_mb:
            await asyncio.sleep(_WATCH_SECONDS)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.join(5)
        self.conn.close()


class Sandbox:
    """Worker processes that keep each dataset's snapshot ready and draw every DP answer."""

    def __init__(self, workers: int, timeout_seconds: float, memory_mb: int,
                 cache_dir: Path | None = None, preview_workers: int = 0, streaming: bool = True) -> None:
        """`workers` hold the data and run releases; `preview_workers` (0: none, previews then
        share the release workers) compile previews only. `streaming`: releases run on polars'
        streaming engine (worker.use_engine)."""
        if workers < 1 or preview_workers < 0:
            raise ValueError("a sandbox needs at least one worker")
        self.size, self.preview_size = workers, preview_workers
        self.timeout, self.memory_mb, self.streaming = timeout_seconds, memory_mb, streaming
        self._own_cache = cache_dir is None
        self.cache_dir = Path(cache_dir or tempfile.mkdtemp(prefix="gateway-snapshots-"))
        self._context = multiprocessing.get_context("spawn")
        self._lanes: dict[str, FairQueue[_Worker]] = {RELEASES: FairQueue(), PREVIEWS: FairQueue()}
        self._workers: set[_Worker] = set()
        self._loaded: dict[str, _Loaded] = {}
        self._load_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # Told when a worker is killed for passing a limit, and when a release ran out of
        # time (metrics); no detail crosses.
        self.on_worker_retired: Callable[[], None] = lambda: None
        self.on_release_timeout: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Start the workers; each refuses to start with unsafe OpenDP features (R-DP-01)."""
        lanes = [RELEASES] * self.size + [PREVIEWS] * self.preview_size
        started = await asyncio.gather(*(self._spawn(lane) for lane in lanes))
        for w in started:
            self._lanes[w.lane].put(w)

    async def close(self) -> None:
        for w in list(self._workers):
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(("stop",))
            await asyncio.get_running_loop().run_in_executor(None, w.process.join, 5)
            w.kill()
        self._workers.clear()
        if self._own_cache:
            for path in self.cache_dir.glob("*"):
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.cache_dir.rmdir()

    def snapshot_of(self, dataset: str) -> str | None:
        loaded = self._loaded.get(dataset)
        return loaded.snapshot_id if loaded else None

    def idle_workers(self, lane: str = RELEASES) -> int:
        return self._lanes[lane].idle()

    def worker_memory_mb(self) -> list[float]:
        """Anonymous memory of each worker, for the benchmark and ops."""
        return [w.anon_memory_mb() for w in self._workers]

    async def load(self, dataset: str, policy: DatasetPolicy, path: Path, snapshot_id: str) -> None:
        """Validate and prepare a snapshot (in a process of its own); every worker swaps to it
        before its next query on the dataset, so a swap always falls between two queries.

        Raises SnapshotInvalid (for the operator, never for a requester) if it does not fit.
        """
        if dataset != policy.dataset:
            raise ValueError("the policy is not this dataset's")
        loaded = _Loaded(policy, str(path), snapshot_id)
        async with self._load_lock:
            await self._prepare(loaded)
            self._loaded[dataset] = loaded

    async def release(self, checked: CheckedPlan, alpha: float = 0.05, org: str = "") -> Release:
        """Draw one DP answer for organisation `org` (its turn among those waiting). After the
        call starts, any failure is the generic ReleaseFailed."""
        self._require_loaded(checked)
        try:
            outcome, value = await self._run(("release", checked, alpha, org), org, RELEASES)
        except _WorkerGone as gone:
            if gone.timed_out:
                self.on_release_timeout()
            raise ReleaseFailed() from None
        if outcome != childproc.OK:
            raise ReleaseFailed()
        return cast(Release, value)

    async def preview(self, checked: CheckedPlan, alpha: float = 0.05, org: str = "") -> dict[str, Any]:
        """Cost and accuracy of a checked plan (compile.preview_figures), computed in a worker
        so that the server needs no OpenDP; no data is read. On the preview workers if any."""
        lane = PREVIEWS if self.preview_size else RELEASES
        try:
            outcome, value = await self._run(("preview", checked, alpha, org), org, lane)
        except _WorkerGone:
            outcome, value = childproc.FAILED, None
        if outcome != childproc.OK:
            raise Unavailable("The preview could not be computed.")
        return cast(dict[str, Any], value)

    def _require_loaded(self, checked: CheckedPlan) -> None:
        loaded = self._loaded.get(checked.policy.dataset)
        if loaded is None or storage_fingerprint(loaded.policy) != storage_fingerprint(checked.policy):
            raise Unavailable("The dataset is not ready; try again shortly.")

    async def _run(self, message: tuple[Any, ...], owner: str, lane: str) -> tuple[str, Any]:
        w = await self._lanes[lane].get(owner)
        try:
            loaded = self._loaded.get(message[1].policy.dataset)
            if lane == RELEASES and loaded is not None and w.held.get(loaded.policy.dataset) != loaded:
                await self._load_into(w, loaded)
            result = await w.call(message, self.timeout, self.memory_mb)
        except (_WorkerGone, SnapshotInvalid) as exc:
            if w in self._workers:
                self._retire(w)
            raise _WorkerGone(timed_out=isinstance(exc, _WorkerGone) and exc.timed_out) from None
        except BaseException:  # cancelled mid-call: the pipe may still carry its answer
            if w in self._workers:
                self._retire(w)
            raise
        self._lanes[w.lane].put(w)
        return result

    async def _load_into(self, w: _Worker, loaded: _Loaded) -> None:
        message = ("load", loaded.policy, loaded.source, loaded.snapshot_id)
        try:
            outcome, reason = await w.call(message, max(self.timeout, _START_TIMEOUT), self.memory_mb)
        except _WorkerGone:
            self._retire(w)
            raise SnapshotInvalid("the snapshot could not be prepared within the limits") from None
        if outcome == childproc.INVALID:
            raise SnapshotInvalid(reason)
        if outcome != childproc.OK:
            raise SnapshotInvalid("the snapshot could not be prepared")
        w.held[loaded.policy.dataset] = loaded

    def _retire(self, w: _Worker) -> None:
        """Kill a worker that failed a limit and start its replacement in the background."""
        self._workers.discard(w)
        w.kill()
        self.on_worker_retired()
        task = asyncio.ensure_future(self._replace(w.lane))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prepare(self, loaded: _Loaded) -> None:
        """Validate and convert a snapshot in a process of its own, under the same limits."""
        parent, child = self._context.Pipe()
        args = (child, loaded.policy, loaded.source, loaded.snapshot_id, str(self.cache_dir), self.memory_mb)
        process = self._context.Process(target=prepare_main, args=args, daemon=True, name="gateway-prepare")
        process.start()
        child.close()
        helper = _Worker(process, parent)
        try:
            outcome, reason = await helper.call(None, max(self.timeout, _START_TIMEOUT), self.memory_mb)
        except _WorkerGone:
            raise SnapshotInvalid("the snapshot could not be prepared within the limits") from None
        finally:
            helper.kill()
        if outcome == childproc.INVALID:
            raise SnapshotInvalid(reason)
        if outcome == childproc.NO_SPACE:
            raise disk_full()
        if outcome != childproc.OK:
            raise SnapshotInvalid("the snapshot could not be prepared")

    async def _spawn(self, lane: str = RELEASES) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=worker_main.main,
                                        args=(child, str(self.cache_dir), self.memory_mb, self.streaming),
                                        daemon=True, name="gateway-sandbox")
        process.start()
        child.close()
        w = _Worker(process, parent, lane)
        ready = await asyncio.get_running_loop().run_in_executor(None, parent.poll, _START_TIMEOUT)
        try:
            outcome = parent.recv() if ready else (childproc.FAILED, "no answer")
        except (EOFError, OSError):
            outcome = (childproc.FAILED, "it exited")
        if outcome[0] != childproc.READY:
            w.kill()
            raise RuntimeError("a sandbox worker did not start: " + str(outcome[1]))
        self._workers.add(w)
        return w

    async def _replace(self, lane: str) -> None:
        """A new worker (it loads snapshots on first use); retried, so the pool keeps its size."""
        for attempt in range(_REPLACE_ATTEMPTS):
            try:
                w = await self._spawn(lane)
            except (RuntimeError, OSError):
                await asyncio.sleep(2**attempt)
                continue
            self._lanes[lane].put(w)
            return
