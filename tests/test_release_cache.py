"""The in-memory release cache is bounded by bytes, not only by count (issue 19, also seen).

Four thousand releases of private-key group-bys can hold gigabytes; the cache keeps at most
`release_cache_mb` of them, weighed with the renderings kept beside each.
"""

from __future__ import annotations

from gateway.service.queries import release_bytes, release_cache
from gateway.settings import Settings
from gateway.store.ledger import StoredRelease


def big_release(n: int, rows: int = 2000) -> StoredRelease:
    result = {"columns": ["key", "count(*)"], "rows": [[f"k{n}-{i:05d}", i] for i in range(rows)]}
    return StoredRelease(f"q{n}", "vehicles", "fp", "v1", "s1", 10**9, result, {"count(*)": 3.1}, "t")


def test_large_releases_are_kept_up_to_the_byte_limit() -> None:
    cache = release_cache(Settings(release_cache_mb=1))
    each = release_bytes(big_release(0))
    assert each > 2000 * 10  # rows and their renderings count
    for n in range(100):
        cache.put(f"key-{n}", big_release(n))
    assert cache.weight <= 2**20 and 0 < len(cache) == 2**20 // each
    assert cache.get("key-99") is not None and cache.get("key-0") is None  # the least recently used went


def test_small_releases_are_bounded_by_count() -> None:
    cache = release_cache(Settings(release_cache_mb=64))
    for n in range(5000):
        cache.put(f"key-{n}", big_release(n, rows=1))
    assert len(cache) == 4096
