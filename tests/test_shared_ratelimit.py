"""Rate limits shared by replicas (issue 17, point 4; R-RL-03): token buckets in the store or in
Redis, spent a batch at a time from each replica's memory.

Three `SharedLimiter`s stand for three replicas on one real store (SQLite and PostgreSQL) or one
real Redis. The tolerance stated in http/shared_limits.py: over T seconds a client is admitted at
most `burst + rate × (T + HOLD_SECONDS)` calls in all, and at least that less `replicas × batch`
per hold period. Three replicas over HTTP: tests/test_faults_postgres.py.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import Unavailable
from gateway.http.ratelimit import RateLimiter
from gateway.http.shared_limits import HOLD_SECONDS, SharedLimiter
from gateway.service.shared_buckets import RedisBuckets, StoreBuckets
from gateway.store.db import PostgresStore, Store
from tests.store_support import open_test_store
from tests.support import free_port


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
    with open_test_store(request.param, tmp_path, dsn) as s:
        yield s


def replicas(store: Store, clock: Clock, n: int = 3, *, fail_open: bool = True) -> list[SharedLimiter]:
    """`n` limiters, as `n` replicas would have, on one store and one clock."""
    return [SharedLimiter(StoreBuckets(lambda: store, clock), RateLimiter(1.0, 1, clock=clock),
                          fail_open=fail_open, clock=clock) for _ in range(n)]


async def admitted(limiters: list[SharedLimiter], calls: int, key: tuple[str, ...], rate: float,
                   burst: int) -> int:
    """Calls spread round robin over the replicas; how many were admitted."""
    decisions = [await limiters[i % len(limiters)].take(key, rate, burst) for i in range(calls)]
    return sum(d.allowed for d in decisions)


def test_three_replicas_admit_the_burst_once_not_three_times(store: Store) -> None:
    clock = Clock()
    limiters = replicas(store, clock)
    assert SharedLimiter.batch(0.5, 12) == 1  # small limits: one token per fetch, exact
    assert asyncio.run(admitted(limiters, 40, ("c",), 0.5, 12)) == 12
    clock.now += 4  # two tokens back at 0.5 per second, shared by all three
    assert asyncio.run(admitted(limiters, 10, ("c",), 0.5, 12)) == 2
    assert asyncio.run(admitted(limiters, 5, ("other",), 0.5, 12)) == 5  # buckets are per key


def test_batches_keep_the_limit_within_the_stated_tolerance(store: Store) -> None:
    """A larger limit is fetched a batch at a time; over a minute of calls at three times the
    rate, spread over three replicas, the admitted count stays within the tolerance."""
    clock = Clock()
    limiters = replicas(store, clock)
    rate, burst, seconds = 20.0, 40, 60
    batch = SharedLimiter.batch(rate, burst)
    assert batch == 4

    async def minute() -> int:
        total = 0
        for _ in range(seconds * 10):  # every 0.1 s, six calls: three times the rate
            total += await admitted(limiters, 6, ("c",), rate, burst)
            clock.now += 0.1
        return total

    total = asyncio.run(minute())
    most = burst + rate * (seconds + HOLD_SECONDS)
    least = burst + rate * seconds - len(limiters) * batch * math.ceil(seconds / HOLD_SECONDS)
    assert least <= total <= most, (least, total, most)


def test_a_refused_replica_answers_from_memory_until_the_bucket_refills(store: Store) -> None:
    clock = Clock()
    (one,) = replicas(store, clock, 1)
    calls = 0
    real_take = one.buckets.take

    async def counting(*args: object) -> tuple[int, float]:
        nonlocal calls
        calls += 1
        return await real_take(*args)  # type: ignore[arg-type]

    one.buckets.take = counting  # type: ignore[method-assign]

    async def run() -> list[bool]:
        first = [(await one.take(("c",), 0.1, 2)).allowed for _ in range(6)]
        refused = await one.take(("c",), 0.1, 2)
        assert not refused.allowed and refused.reset_seconds == 10 and refused.headers()["Retry-After"] == "10"
        return first

    assert asyncio.run(run()) == [True, True, False, False, False, False]
    assert calls == 3  # two fetches of one token, one refusal; the rest answered locally


def _unreachable_store() -> PostgresStore:
    return PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/none", pool_size=1)


def test_an_unreachable_store_fails_open_on_local_buckets_or_closed_with_503() -> None:
    clock = Clock()
    store = _unreachable_store()
    try:
        opened = replicas(store, clock, 1, fail_open=True)[0]
        unreachable = []
        opened.on_unreachable = lambda: unreachable.append(1)
        decisions = asyncio.run(admitted([opened], 3, ("c",), 1.0, 2))
        assert decisions == 2 and unreachable  # the local bucket of burst 2 decided
        closed = replicas(store, clock, 1, fail_open=False)[0]
        with pytest.raises(Unavailable) as refused:
            asyncio.run(closed.take(("c",), 1.0, 2))
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "2"
    finally:
        store.close()


# ---------------------------------------------------------------- Redis

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_url() -> str:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", 6379)) != 0:
            pytest.skip("no Redis at 127.0.0.1:6379")
    return REDIS_URL


def test_redis_buckets_are_shared_by_three_replicas(redis_url: str) -> None:
    import uuid

    clock = Clock()

    async def run() -> tuple[int, int]:
        buckets = [RedisBuckets(redis_url) for _ in range(3)]
        limiters = [SharedLimiter(b, RateLimiter(1.0, 1), fail_open=True, clock=clock) for b in buckets]
        key = ("test-" + uuid.uuid4().hex,)
        try:
            first = await admitted(limiters, 30, key, 0.001, 9)
            again = await admitted(limiters, 30, key, 0.001, 9)
        finally:
            for b in buckets:
                await b.close()
        return first, again

    assert asyncio.run(run()) == (9, 0)


def test_an_unreachable_redis_fails_open_or_closed() -> None:
    async def run(fail_open: bool) -> bool:
        buckets = RedisBuckets(f"redis://127.0.0.1:{free_port()}/0")
        limiter = SharedLimiter(buckets, RateLimiter(1.0, 5), fail_open=fail_open)
        try:
            return (await limiter.take(("c",))).allowed
        finally:
            await buckets.close()

    assert asyncio.run(run(True)) is True
    with pytest.raises(Unavailable):
        asyncio.run(run(False))
