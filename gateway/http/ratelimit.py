"""Per-client token buckets: 429 `rate_limited` with Retry-After and RateLimit-* headers.

Every authenticated call takes a token from its client's bucket (settings `rate_limit_per_second`
and `rate_limit_burst`); a query or product call on a dataset whose policy sets `rate_limit`
also takes one from the client's bucket for that dataset, and a preview that passed its checks
one from the client's preview bucket (`preview_rate_per_second`, `preview_burst`). A refused
call is refused before it reaches the sandbox, so it reserves, spends and bills nothing (R-RL-02).

With several replicas the buckets are shared (R-RL-03): `rate_limit_backend` "store" (the
default with a PostgreSQL `store_dsn`) or "redis" keeps them in one place, and each replica
spends tokens it took a few at a time (`http/shared_limits.py`). "local" keeps them in each
replica's memory (the default on SQLite, where there is one replica): there, N replicas would
allow N times the rate. The buckets below are also what a replica falls back on when the shared
ones are out of reach and `rate_limit_fail_open` is set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from gateway.auth.tokens import Principal
from gateway.core.policy import DatasetPolicy
from gateway.errors import RateLimited
from gateway.http.keys import RUNTIME
from gateway.settings import Settings

MAX_BUCKETS = 100_000  # bounded memory: idle full buckets are dropped past this many


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": str(self.reset_seconds)}
        if not self.allowed:
            out["Retry-After"] = str(max(1, self.reset_seconds))
        return out


class RateLimiter:
    """Token buckets keyed by client (or client and dataset), refilled continuously."""

    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self.buckets: dict[tuple[str, ...], Bucket] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.rate_limit_per_second, settings.rate_limit_burst)

    def take(self, key: tuple[str, ...], per_second: float | None = None, burst: int | None = None) -> Decision:
        rate, size = per_second or self.per_second, burst or self.burst
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self.buckets[key] = Bucket(float(size), now)
        bucket.tokens = min(float(size), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        wait = 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / rate
        return Decision(allowed, size, int(bucket.tokens), math.ceil(wait))

    def give_back(self, key: tuple[str, ...], burst: int | None = None) -> None:
        """Return the token a call took (the token endpoint takes one per attempt and gives it
        back when the attempt succeeds, so only failures are counted)."""
        bucket = self.buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(float(burst or self.burst), bucket.tokens + 1.0)

    def _make_room(self, now: float) -> None:
        if len(self.buckets) < MAX_BUCKETS:
            return
        # A bucket that has refilled is indistinguishable from a new one: forget those.
        full = [k for k, b in self.buckets.items() if b.tokens + (now - b.updated) * self.per_second >= self.burst]
        for key in full:
            del self.buckets[key]


class Limits(Protocol):
    """Buckets shared by the replicas (http/shared_limits.py)."""

    async def take(self, key: tuple[str, ...], per_second: float | None = None,
                   burst: int | None = None) -> Decision: ...


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
SHARED_LIMITS = web.AppKey("shared_limits", Limits)


def setup_rate_limits(app: web.Application, settings: Settings) -> None:
    app[RATE_LIMITER] = RateLimiter.from_settings(settings)


def _refuse(request: web.Request, decision: Decision) -> None:
    request.app[RUNTIME].metrics.rate_limited()
    raise RateLimited("Too many requests from this client; retry after the time given.",
                      headers=decision.headers())


async def _take(request: web.Request, key: tuple[str, ...], per_second: float | None = None,
                burst: int | None = None) -> Decision | None:
    shared = request.app.get(SHARED_LIMITS)
    if shared is not None:
        return await shared.take(key, per_second, burst)
    limiter = request.app.get(RATE_LIMITER)
    return limiter.take(key, per_second, burst) if limiter is not None else None


async def enforce_rate_limit(request: web.Request, who: Principal) -> None:
    """The client's bucket for every authenticated call (called by the route wrapper)."""
    decision = await _take(request, (who.client_id,))
    if decision is not None and not decision.allowed:
        _refuse(request, decision)


async def enforce_preview_rate(request: web.Request, who: Principal) -> None:
    """The client's bucket for previews (`preview_rate_per_second`, `preview_burst`): free, so
    bounded apart from the calls that are billed (R-DP-19)."""
    settings = request.app[RUNTIME].settings
    decision = await _take(request, (who.client_id, "/preview"), settings.preview_rate_per_second,
                           settings.preview_burst)
    if decision is not None and not decision.allowed:
        _refuse(request, decision)


async def enforce_dataset_rate(request: web.Request, who: Principal, policy: DatasetPolicy) -> None:
    """The client's bucket for one dataset, where its policy sets `rate_limit`."""
    if policy.rate_per_second is None:
        return
    decision = await _take(request, (who.client_id, policy.dataset), policy.rate_per_second,
                           policy.rate_burst or max(1, math.ceil(policy.rate_per_second)))
    if decision is not None and not decision.allowed:
        _refuse(request, decision)
