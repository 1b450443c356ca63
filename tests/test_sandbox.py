"""The sandbox: releases in worker processes, limits that kill and replace, generic failures."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.sql import parse_sql
from gateway.dp.sandbox import Sandbox, SnapshotInvalid
from gateway.errors import ReleaseFailed, Unavailable
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
QUERY = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= 18 GROUP BY township"


def checked(sql: str = QUERY, epsilon: str = "1") -> CheckedPlan:
    plan = parse_sql(sql, epsilon=Decimal(epsilon))
    return check_plan(plan, POLICIES[plan.dataset])


@pytest.fixture(scope="module")
async def sandbox(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    box = Sandbox(workers=1, timeout_seconds=30, memory_mb=2048, cache_dir=tmp_path_factory.mktemp("cache"))
    await box.start()
    await box.load("residents", POLICIES["residents"], demo_data / "residents.parquet", "snap-1")
    yield box
    await box.close()


async def wait_for_workers(box: Sandbox, count: int = 1) -> None:
    for _ in range(600):
        if box.idle_workers() >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no replacement worker")


async def test_a_release_holds_the_public_keys_in_declared_order(sandbox: Sandbox) -> None:
    release = await sandbox.release(checked())
    towns = POLICIES["residents"].column("township").categories  # type: ignore[union-attr]
    assert release.columns == ("township", "count(*)", "mean(income)")
    assert [r[0] for r in release.rows] == list(towns)  # type: ignore[arg-type]
    assert all(isinstance(r[1], int) for r in release.rows)
    assert release.snapshot_id == "snap-1" and release.alpha == 0.05
    assert set(release.accuracy) == {"count(*)", "mean(income)"} and release.accuracy["mean(income)"] is not None


async def test_fresh_noise_every_release(sandbox: Sandbox) -> None:
    """R-DP-05: no seeding; two releases of one plan differ."""
    plan = checked("SELECT SUM(income) FROM residents")
    first, second = await sandbox.release(plan), await sandbox.release(plan)
    assert first.rows != second.rows


async def test_preview_in_a_worker_matches_the_engine_and_reads_no_data(sandbox: Sandbox) -> None:
    figures = await sandbox.preview(checked())
    assert figures["epsilon"] == 1.0 and figures["threshold"] is None
    assert figures["accuracy"]["columns"]["mean_income"] is None and figures["accuracy"]["columns"]["n"] > 0


async def test_the_server_process_never_imports_opendp() -> None:
    code = "import sys, gateway.dp.sandbox; sys.exit('opendp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


async def test_the_event_loop_keeps_running_during_releases(sandbox: Sandbox) -> None:
    lags: list[float] = []

    async def tick() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    ticker = asyncio.ensure_future(tick())
    for _ in range(3):
        await sandbox.release(checked("SELECT township, sex, COUNT(*), AVG(income) FROM residents GROUP BY 1, 2"))
    ticker.cancel()
    assert lags and max(lags) < 0.25


async def test_a_release_past_its_time_limit_kills_the_worker_and_fails_generically(sandbox: Sandbox) -> None:
    """R-RL-04, R-DP-11: killed, replaced, and one error whatever happened."""
    before = {w.pid for w in sandbox._workers}
    sandbox.timeout = 0.0001
    try:
        with pytest.raises(ReleaseFailed) as failed:
            await sandbox.release(checked())
    finally:
        sandbox.timeout = 30
    assert failed.value.problem()["detail"] == ReleaseFailed().detail
    await wait_for_workers(sandbox)
    assert not before & {w.pid for w in sandbox._workers}
    assert (await sandbox.release(checked())).snapshot_id == "snap-1"  # the new worker loads on first use


async def test_a_release_past_its_memory_limit_kills_the_worker(sandbox: Sandbox) -> None:
    before = {w.pid for w in sandbox._workers}
    sandbox.memory_mb = 1
    try:
        with pytest.raises(ReleaseFailed):
            await sandbox.release(checked())
    finally:
        sandbox.memory_mb = 2048
    await wait_for_workers(sandbox)
    assert not before & {w.pid for w in sandbox._workers}
    await sandbox.release(checked())


async def test_a_failure_inside_opendp_is_generic_and_keeps_the_worker(sandbox: Sandbox, demo_data: Path,
                                                                       tmp_path: Path) -> None:
    broken = tmp_path / "residents.parquet"
    pl.read_parquet(demo_data / "residents.parquet").write_parquet(broken)
    await sandbox.load("residents", POLICIES["residents"], broken, "snap-broken")
    await sandbox.release(checked())  # the worker now holds the new snapshot
    prepared = next(sandbox.cache_dir.glob("residents-snap-broken-*.arrow"))
    prepared.write_bytes(b"not an arrow file")
    pids = {w.pid for w in sandbox._workers}
    try:
        with pytest.raises(ReleaseFailed) as failed:
            await sandbox.release(checked())
        assert "polars" not in failed.value.detail.lower() and "opendp" not in failed.value.detail.lower()
        assert {w.pid for w in sandbox._workers} == pids
    finally:
        await sandbox.load("residents", POLICIES["residents"], demo_data / "residents.parquet", "snap-1")


async def test_snapshots_swap_between_queries(sandbox: Sandbox, demo_data: Path, tmp_path: Path) -> None:
    smaller = tmp_path / "residents-v2.parquet"
    pl.read_parquet(demo_data / "residents.parquet").head(5000).write_parquet(smaller)
    try:
        await sandbox.load("residents", POLICIES["residents"], smaller, "snap-2")
        assert sandbox.snapshot_of("residents") == "snap-2"
        assert (await sandbox.release(checked())).snapshot_id == "snap-2"
    finally:
        await sandbox.load("residents", POLICIES["residents"], demo_data / "residents.parquet", "snap-1")
    assert (await sandbox.release(checked())).snapshot_id == "snap-1"


async def test_snapshots_outside_the_policy_domain_are_refused(sandbox: Sandbox, demo_data: Path,
                                                               tmp_path: Path) -> None:
    frame = pl.read_parquet(demo_data / "residents.parquet")
    cases = {
        "missing": (frame.drop("income"), POLICIES["residents"], "lacks"),
        "nan": (frame.with_columns(pl.when(pl.col("age") == 40).then(float("nan")).otherwise(pl.col("income"))
                                   .alias("income")), POLICIES["residents"], "NaN"),
        "type": (frame.with_columns(pl.col("age").cast(pl.String) + "y"), POLICIES["residents"], "not of type"),
        "fractions": (frame.with_columns(pl.col("age").cast(pl.Float64) + 0.5), POLICIES["residents"], "fractions"),
        "nulls": (frame.with_columns(pl.when(pl.col("age") == 40).then(None).otherwise(pl.col("age")).alias("age")),
                  POLICIES["residents"], "missing"),
        "rows": (frame, replace(POLICIES["residents"], max_rows=100), "max_rows"),
    }
    for name, (bad, policy, message) in cases.items():
        path = tmp_path / f"{name}.parquet"
        bad.write_parquet(path)
        with pytest.raises(SnapshotInvalid, match=message):
            await sandbox.load("residents", policy, path, f"bad-{name}")
    assert sandbox.snapshot_of("residents") == "snap-1"


async def test_a_dataset_that_is_not_loaded_is_unavailable(sandbox: Sandbox) -> None:
    with pytest.raises(Unavailable):
        await sandbox.release(checked("SELECT COUNT(*) FROM vehicles"))
    changed = replace(POLICIES["residents"], max_rows=3_000_000)
    plan = check_plan(parse_sql("SELECT COUNT(*) FROM residents", epsilon=Decimal(1)), changed)
    with pytest.raises(Unavailable):  # the prepared snapshot was checked against other bounds
        await sandbox.release(plan)
