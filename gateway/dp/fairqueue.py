"""Free workers handed to waiting callers one organisation at a time (least recently served first).

A first-come queue lets whoever sends most hold the workers: ten previews in a row from one
organisation made another's release wait for all ten (issue 19, point 1). Here each owner (an
organisation) has its own line of waiters, and a freed worker goes to the waiting owner served
least recently (one never served before anyone), first come within an owner. So while any
number of owners flood the queue, a newcomer waits, per worker, only for the work running when
it arrived: the owners ahead of it have all been served more recently than it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Items (workers) lent to the waiting owner served least recently, first come within an owner."""

    def __init__(self) -> None:
        self._free: deque[T] = deque()
        self._waiting: OrderedDict[str, deque[asyncio.Future[T]]] = OrderedDict()
        self._served: dict[str, int] = {}  # owner -> tick of its last service (owners are organisations: few)
        self._tick = 0

    def idle(self) -> int:
        return len(self._free)

    def waiting(self) -> int:
        return sum(len(line) for line in self._waiting.values())

    def _mark_served(self, owner: str) -> None:
        self._tick += 1
        self._served[owner] = self._tick

    def put(self, item: T) -> None:
        """An item is free: to the waiting owner served least recently, else kept idle."""
        while self._waiting:
            # Ties (never served) go to the owner waiting longest: the dict keeps arrival order.
            owner = min(self._waiting, key=lambda o: self._served.get(o, 0))
            line = self._waiting[owner]
            waiter = line.popleft()
            if not line:
                del self._waiting[owner]
            if waiter.done():  # a caller that gave up (cancelled): not a turn, try again
                continue
            waiter.set_result(item)
            self._mark_served(owner)
            return
        self._free.append(item)

    async def get(self, owner: str) -> T:
        """The next free item for `owner`, waiting its turn among the owners waiting."""
        if self._free and not self._waiting:
            self._mark_served(owner)
            return self._free.popleft()
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
