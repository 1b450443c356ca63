"""Rate limits shared by every replica: token buckets in the store (or Redis), spent locally.

Each client's bucket lives in the shared store (`store/rate_buckets.py`) or in Redis when
`rate_limit_backend = "redis"`. A replica takes tokens from it a few at a time (a batch: at most
a tenth of the burst and a quarter second of the rate) and spends them from memory, so the hot
path asks the store once per batch, not once per call. Unspent tokens are dropped after
`HOLD_SECONDS` (never handed back), and a replica refused by the shared bucket refuses locally
until the bucket holds a token again.

The limit therefore holds across replicas within a stated tolerance: over any interval of T
seconds a client is admitted at most `burst + rate × (T + HOLD_SECONDS)` calls in all, and is
refused early by at most `replicas × batch` calls a hold period (tokens held by a replica the
client is not talking to). When the shared bucket cannot be reached, `rate_limit_fail_open`
decides: admit by this replica's own buckets (open), or refuse with 503 (closed).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from gateway.errors import Unavailable
from gateway.http.keys import RUNTIME
from gateway.http.ratelimit import RATE_LIMITER, SHARED_LIMITS, Decision, RateLimiter
from gateway.service.shared_buckets import Buckets, RedisBuckets, StoreBuckets
from gateway.settings import Settings

HOLD_SECONDS = 1.0
MAX_KEYS = 100_000  # bounded memory: allowances past their hold are dropped beyond this many


@dataclass
class _Allowance:
    tokens: int = 0
    expires: float = 0.0
    refused_until: float = 0.0
    left: float = 0.0  # the shared bucket's tokens at the last take, for RateLimit-Remaining


class SharedLimiter:
    """Decisions for one replica against the shared buckets; `fallback` when they are out of reach."""

    def __init__(self, buckets: Buckets, fallback: RateLimiter, *, fail_open: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.buckets, self.fallback, self.fail_open, self.clock = buckets, fallback, fail_open, clock
        self.allowances: dict[tuple[str, ...], _Allowance] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self.on_unreachable: Callable[[], None] = lambda: None

    @staticmethod
    def batch(rate: float, burst: int) -> int:
        return max(1, min(burst // 10, math.ceil(rate / 4)))

    async def take(self, key: tuple[str, ...], per_second: float | None = None,
                   burst: int | None = None) -> Decision:
        rate, size = per_second or self.fallback.per_second, burst or self.fallback.burst
        local = self._local(key, size)
        if local is not None:
            return local
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one fetch per key at a time; the others spend what it brought
            local = self._local(key, size)
            if local is not None:
                return local
            return await self._fetch(key, rate, size)

    def _local(self, key: tuple[str, ...], size: int) -> Decision | None:
        allowance = self.allowances.get(key)
        if allowance is None:
            return None
        now = self.clock()
        if allowance.tokens > 0 and now < allowance.expires:
            allowance.tokens -= 1
            return Decision(True, size, int(allowance.left) + allowance.tokens, 0)
        if now < allowance.refused_until:
            return Decision(False, size, 0, math.ceil(allowance.refused_until - now))
        return None

    async def _fetch(self, key: tuple[str, ...], rate: float, size: int) -> Decision:
        try:
            granted, left = await self.buckets.take("\x1f".join(key), rate, size, self.batch(rate, size))
        except Unavailable:
            return self._unreachable(key, rate, size)
        now = self.clock()
        self._make_room(now)
        allowance = self.allowances.setdefault(key, _Allowance())
        allowance.left = left
        if granted == 0:
            allowance.tokens, allowance.refused_until = 0, now + (1.0 - left) / rate
            return Decision(False, size, 0, max(1, math.ceil((1.0 - left) / rate)))
        allowance.tokens, allowance.expires = granted - 1, now + HOLD_SECONDS
        return Decision(True, size, int(left) + allowance.tokens, 0)

    def _unreachable(self, key: tuple[str, ...], rate: float, size: int) -> Decision:
        self.on_unreachable()
        if self.fail_open:
            return self.fallback.take(key, rate, size)
        raise Unavailable("Rate limits cannot be checked right now.", retry_after=2)

    def _make_room(self, now: float) -> None:
        if len(self.allowances) < MAX_KEYS:
            return
        for key in [k for k, a in self.allowances.items() if now >= max(a.expires, a.refused_until)]:
            del self.allowances[key]
            self._locks.pop(key, None)


def setup_shared_limits(app: web.Application, settings: Settings) -> None:
    """Share the buckets when the settings say so; the local ones stay as the fallback."""
    kind = settings.shared_rate_limits
    if not kind:
        return
    if kind == "redis":
        try:
            import redis  # noqa: F401
        except ImportError:
            raise RuntimeError("rate_limit_backend = redis needs the redis package: "
                               "pip install 'county-gateway[redis]'") from None
    buckets: Buckets = (RedisBuckets(settings.rate_limit_redis_url) if kind == "redis"
                        else StoreBuckets(lambda: app[RUNTIME].store))
    limiter = SharedLimiter(buckets, app[RATE_LIMITER], fail_open=settings.rate_limit_fail_open)
    app[SHARED_LIMITS] = limiter

    async def close_redis(app: web.Application) -> None:
        if isinstance(buckets, RedisBuckets):
            await buckets.close()

    app.on_cleanup.append(close_redis)
