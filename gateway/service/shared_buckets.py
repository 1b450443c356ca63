"""Where the replicas' shared rate-limit buckets live: the gateway's store, or Redis.

Both take up to `want` tokens from one bucket atomically and answer (granted, tokens left);
`http/shared_limits.py` spends them. Either raises Unavailable when it cannot be reached.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.errors import Unavailable
from gateway.store import rate_buckets
from gateway.store.db import Store


class Buckets(Protocol):
    """Where the shared buckets live: take up to `want` tokens, (granted, tokens left)."""

    async def take(self, bucket: str, rate: float, burst: int, want: int) -> tuple[int, float]: ...


class StoreBuckets:
    """Buckets in the gateway's own store (the one PostgreSQL every replica shares)."""

    def __init__(self, store: Callable[[], Store], clock: Callable[[], float] = time.time) -> None:
        self.store, self.clock = store, clock

    async def take(self, bucket: str, rate: float, burst: int, want: int) -> tuple[int, float]:
        return await self.store().write(rate_buckets.take, bucket, rate, burst, want, self.clock())


class RedisBuckets:
    """Buckets in Redis (one hash per bucket, a Lua script taking tokens by Redis's own clock)."""

    SCRIPT = """
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(b[1]), tonumber(b[2])
if tokens == nil then tokens, updated = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(math.max(now, updated)))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {granted, tostring(tokens)}
"""
    PREFIX = "gateway:rate:"

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None
        self._script: Callable[..., Awaitable[Any]] | None = None

    async def take(self, bucket: str, rate: float, burst: int, want: int) -> tuple[int, float]:
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        if self._script is None:
            # Short timeouts: a Redis that went away must cost a call milliseconds, not seconds.
            self._client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5)
            self._script = self._client.register_script(self.SCRIPT)
        try:
            granted, left = await self._script(keys=[self.PREFIX + bucket], args=[rate, burst, want])
        except (RedisError, OSError) as exc:
            raise Unavailable("The rate-limit store is unavailable.", retry_after=2) from exc
        return int(granted), float(left)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
