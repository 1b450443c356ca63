"""Response times do not depend on the data (R-DP-12, DESIGN §4): answers leave on a time quantum.

Two gateways serve residents data that differ in one person. The same fresh releases, asked of
both in turn, must land in the same quantum every time, at or above the floor; the sandbox time
is exported on its own, rounded up to the quantum (R-DP-10).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.support import Gateway, Reply, seed_demo_data

FLOOR_MS, QUANTUM_MS = 1000, 500  # wide enough that a busy CI machine still lands on the floor
TIMING = {"GATEWAY_RESPONSE_FLOOR_MS": str(FLOOR_MS), "GATEWAY_RESPONSE_QUANTUM_MS": str(QUANTUM_MS)}
SQL = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= 18 GROUP BY township"
RUNS = 5


def without_one_person(source: Path, target: Path) -> None:
    """The demo data with one resident removed: a neighbouring dataset."""
    seed_demo_data(target, source)
    path = target / "data" / "residents.parquet"
    frame = pl.read_parquet(path)
    neighbour = frame.filter(pl.col("person_id") != frame["person_id"][len(frame) // 2])
    assert len(neighbour) == len(frame) - 1
    path.unlink()
    neighbour.write_parquet(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[tuple[Gateway, Gateway]]:
    full, neighbour = tmp_path_factory.mktemp("timing-d"), tmp_path_factory.mktemp("timing-d-minus-one")
    seed_demo_data(full, demo_data)
    without_one_person(demo_data, neighbour)
    gateways = [Gateway(full, env=TIMING).start(), Gateway(neighbour, env=TIMING).start()]
    yield gateways[0], gateways[1]
    for g in gateways:
        g.stop()


def timed_query(gw: Gateway, eps: float) -> tuple[Reply, float]:
    gw.token("demo-bank")  # not timed: the token is fetched before
    started = time.monotonic()
    reply = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "sql": SQL, "epsilon": eps})
    return reply, time.monotonic() - started


def test_neighbouring_datasets_answer_in_the_same_quantum(pair: tuple[Gateway, Gateway]) -> None:
    quantum = QUANTUM_MS / 1000
    slots: dict[int, list[int]] = {0: [], 1: []}
    headers: dict[int, set[str]] = {0: set(), 1: set()}
    for gw in pair:  # the first release of a worker also warms it up; that is not about the data
        assert timed_query(gw, 0.04)[0].status == 200
    for run in range(RUNS):
        eps = round(0.05 + 0.01 * run, 2)  # a new epsilon makes a fresh release, not the cached one
        for side, gw in enumerate(pair):
            reply, elapsed = timed_query(gw, eps)
            assert reply.status == 200 and reply.json["cached"] is False, reply.body[:200]
            assert elapsed >= FLOOR_MS / 1000, f"answered in {elapsed:.3f}s, under the floor"
            slots[side].append(math.floor(elapsed / quantum))
            headers[side] |= {name.lower() for name in reply.headers}
    assert slots[0] == slots[1] == [FLOOR_MS // QUANTUM_MS] * RUNS, slots
    assert headers[0] == headers[1]
    assert not {h for h in headers[0] if "timing" in h or "elapsed" in h or "duration" in h}


def test_sandbox_time_is_exported_rounded_up_to_the_quantum(pair: tuple[Gateway, Gateway]) -> None:
    full = pair[0]
    reply, _ = timed_query(full, 0.2)
    assert reply.status == 200
    text = full.api("GET", "/metrics", "demo-ops").body.decode()
    count = _sample(text, 'gateway_sandbox_seconds_count{dataset="residents"}')
    total = _sample(text, 'gateway_sandbox_seconds_sum{dataset="residents"}')
    assert count >= 1
    slots = total / (QUANTUM_MS / 1000)
    assert abs(slots - round(slots)) < 1e-6 and slots >= count, (total, count)


def _sample(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, series
    return float(match.group(1))
