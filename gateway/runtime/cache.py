"""The one in-memory cache type: least recently used out first, bounded by count and by size,
with an optional time to live. Every per-replica cache of the gateway is one of these."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    """`max_items` entries and, when `weigh` is given, `max_weight` units of it (bytes, say) at most.

    `ttl` seconds after it was put, an entry is gone (None: never). Values should be immutable:
    the cache hands out the same object to every caller.
    """

    def __init__(self, max_items: int, *, ttl: float | None = None,
                 weigh: Callable[[V], int] | None = None, max_weight: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_items < 1 or (weigh is not None and max_weight < 1):
            raise ValueError("a cache holds at least one item")
        self.max_items, self.ttl, self._weigh, self.max_weight = max_items, ttl, weigh, max_weight
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, int, V]] = OrderedDict()  # key -> (expires, weight, value)
        self.weight = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        expires, _weight, value = found
        if expires < self._clock():
            self.pop(key)
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self._weigh is not None else 0
        if self._weigh is not None and weight > self.max_weight:
            self.pop(key)  # too large to keep at all: keep nothing stale under its key either
            return
        self.pop(key)
        expires = self._clock() + self.ttl if self.ttl is not None else float("inf")
        self._items[key] = (expires, weight, value)
        self.weight += weight
        while len(self._items) > self.max_items or (self._weigh is not None and self.weight > self.max_weight):
            _key, (_e, w, _v) = self._items.popitem(last=False)
            self.weight -= w

    def pop(self, key: K) -> V | None:
        found = self._items.pop(key, None)
        if found is None:
            return None
        self.weight -= found[1]
        return found[2]

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0
