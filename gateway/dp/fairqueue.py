"""Free workers handed to waiting callers one organisation at a time: the one that has used the
workers least lately first.

A first-come queue lets whoever sends most hold the workers: ten previews in a row from one
organisation made another's release wait for all ten (issue 19, point 1). Here each owner (an
organisation) has its own line of waiters, and a freed worker goes to the waiting owner with the
least attained service: the worker-seconds it has held lately while others waited (decaying with
a half-life, so history from minutes ago does not count), first come within an owner. Owners whose
use differs by less than a quantum take turns, least recently served first.

Only contended time counts: a worker held while nobody else was waiting was taken from nobody.
Counting it made an organisation that had asked alone for a while wait, once others began to
flood, behind their releases until they had used as much (issue 18's fairness bench: one release
waited 3.2 s, seven of the flooders' releases).

So an organisation that asks one modest question after another goes before organisations that
flood with costly releases, however many of them there are: per worker it waits only for the work
running when it arrived (issue 18 found that "least recently served" alone made it wait for one
release of every flooder). Among equally heavy owners the workers are shared in turn.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


HALF_LIFE_SECONDS = 30.0  # how fast an owner's past use is forgiven
QUANTUM_SECONDS = 0.05  # uses closer than this are equal: then the least recently served goes first


class FairQueue(Generic[T]):
    """Items (workers) lent to the waiting owner with the least recent use, first come within an owner."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._free: deque[T] = deque()
        self._waiting: OrderedDict[str, deque[asyncio.Future[T]]] = OrderedDict()
        self._served: dict[str, int] = {}  # owner -> tick of its last service (owners are organisations: few)
        self._tick = 0
        self._clock = clock
        self._use: dict[str, tuple[float, float]] = {}  # owner -> (worker-seconds, as of when)
        self._lent: dict[int, tuple[str, float]] = {}  # id(item) -> (owner, since when)

    def _use_of(self, owner: str, now: float) -> float:
        used, when = self._use.get(owner, (0.0, now))
        return used * math.pow(0.5, (now - when) / HALF_LIFE_SECONDS)

    def _next_owner(self) -> str:
        """The waiting owner with the least recent use (in quanta), then the least recently served;
        ties (never served) go to the owner waiting longest: the dict keeps arrival order."""
        now = self._clock()
        return min(self._waiting, key=lambda o: (math.floor(self._use_of(o, now) / QUANTUM_SECONDS),
                                                  self._served.get(o, 0)))

    def idle(self) -> int:
        return len(self._free)

    def waiting(self) -> int:
        return sum(len(line) for line in self._waiting.values())

    def _mark_served(self, owner: str, item: T) -> None:
        self._tick += 1
        self._served[owner] = self._tick
        self._lent[id(item)] = (owner, self._clock())

    def _returned(self, item: T) -> None:
        """Charge the time the item was held to the owner it was lent to, if others wait for it."""
        lent = self._lent.pop(id(item), None)
        if lent is None or not self._waiting:
            return
        owner, since = lent
        now = self._clock()
        self._use[owner] = (self._use_of(owner, now) + max(now - since, 0.0), now)

    def put(self, item: T) -> None:
        """An item is free: to the waiting owner with the least recent use, else kept idle."""
        self._returned(item)
        while self._waiting:
            owner = self._next_owner()
            line = self._waiting[owner]
            waiter = line.popleft()
            if not line:
                del self._waiting[owner]
            if waiter.done():  # a caller that gave up (cancelled): not a turn, try again
                continue
            waiter.set_result(item)
            self._mark_served(owner, item)
            return
        self._free.append(item)

    async def get(self, owner: str) -> T:
        """The next free item for `owner`, waiting its turn among the owners waiting."""
        if self._free and not self._waiting:
            item = self._free.popleft()
            self._mark_served(owner, item)
            return item
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.put(waiter.result())  # handed over as the caller left: pass it on
            else:
                self._forget(owner, waiter)
            raise

    def _forget(self, owner: str, waiter: asyncio.Future[T]) -> None:
        line = self._waiting.get(owner)
        if line is None:
            return
        try:
            line.remove(waiter)
        except ValueError:
            return
        if not line:
            del self._waiting[owner]
