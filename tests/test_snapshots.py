"""Snapshots: the check against the policy, content-addressed files, the store's pointer and
audit trail, start-up activation, following other replicas, and a swap under load."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from gateway.core.policy import DatasetPolicy
from gateway.data import snapshots as files
from gateway.data.validate import SnapshotRefused, inspect
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.runtime.parts import Runtime
from gateway.service.supply import (
    activate_current_snapshots,
    current_snapshot_id,
    datasets_not_loaded,
    supply_of,
)
from gateway.service.supply_follow import Follower
from gateway.store import snapshots as store
from tests.fixtures.supply.harness import audit_entries, open_runtime_async

POLICIES = load_policies(shipped_policies_dir())
RESIDENTS = POLICIES["residents"]
SOCIAL = POLICIES["social_insurance"]


@pytest.fixture(scope="module")
def residents(demo_data: Path) -> pl.DataFrame:
    return pl.read_parquet(demo_data / "residents.parquet")


def codes(problems: object) -> set[tuple[str, str | None]]:
    return {(p.code, p.column) for p in problems}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the check


def test_every_problem_is_listed_at_once(residents: pl.DataFrame) -> None:
    bad = (residents.head(500)
           .drop("sex")
           .with_columns(pl.col("age").cast(pl.String),
                         pl.when(pl.col("age") == 30).then(pl.lit("Atlantis"))
                         .otherwise(pl.col("township")).alias("township"),
                         pl.when(pl.col("age") == 40).then(float("nan"))
                         .otherwise(pl.col("income")).alias("income")))
    verdict = inspect(bad.lazy(), RESIDENTS, text=False)
    assert codes(verdict.problems) == {("missing_column", "sex"), ("type_changed", "age"),
                                       ("category_undeclared", "township"),
                                       ("not_a_number", "income")}
    assert verdict.canonical is None
    assert any("'Atlantis'" in p.message for p in verdict.problems)


def test_nulls_in_the_id_column_are_refused_and_named() -> None:
    frame = pl.DataFrame({"person_id": ["P1", None], "month": ["2025-01", "2025-02"],
                          "contribution_base": [5000.0, 6000.0], "employer_industry": ["C", "C"]})
    verdict = inspect(frame.lazy(), SOCIAL, text=False)
    assert codes(verdict.problems) == {("nulls", "person_id")}
    assert "privacy-id column" in verdict.problems[0].message


def test_too_many_rows_and_no_rows_are_refused(residents: pl.DataFrame) -> None:
    small = dataclasses.replace(RESIDENTS, max_rows=10)
    assert codes(inspect(residents.head(11).lazy(), small, text=False).problems) == {
        ("too_many_rows", None)}
    assert codes(inspect(residents.head(0).lazy(), RESIDENTS, text=False).problems) == {
        ("empty", None)}


def test_numbers_outside_bounds_pass_with_a_warning(residents: pl.DataFrame) -> None:
    """The engine clips to the declared bounds (R-DP-08): nothing to refuse, worth saying."""
    frame = residents.head(100).with_columns(pl.col("age") + 500)
    verdict = inspect(frame.lazy(), RESIDENTS, text=False)
    assert verdict.problems == () and verdict.canonical is not None
    assert codes(verdict.warnings) == {("out_of_bounds", "age")}


def test_csv_values_that_do_not_parse_are_reported(tmp_path: Path, residents: pl.DataFrame) -> None:
    frame = residents.head(50).with_columns(pl.col("age").cast(pl.String))
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(pl.lit("forty"))
                               .otherwise(pl.col("age")).alias("age"))
    frame.write_csv(tmp_path / "r.csv")
    verdict = inspect(files.scan(tmp_path / "r.csv", "csv"), RESIDENTS, text=True)
    assert codes(verdict.problems) == {("type_changed", "age")}
    assert "'forty'" in verdict.problems[0].message


def test_a_file_that_is_not_parquet_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"this is not parquet")
    verdict = inspect(files.scan(tmp_path / "x.parquet", "parquet"), RESIDENTS, text=False)
    assert codes(verdict.problems) == {("unreadable", None)}
    assert str(tmp_path) not in verdict.problems[0].message  # no internal paths


# ---------------------------------------------------------------- canonical files


def test_canonical_files_are_named_by_content(tmp_path: Path, residents: pl.DataFrame) -> None:
    head = residents.head(1000)
    shuffled_columns = head.select(list(reversed(head.columns))).with_columns(
        pl.col("age").cast(pl.Int32), pl.lit("x").alias("extra"))
    first = files.build(head.lazy(), RESIDENTS, tmp_path, text=False)
    again = files.build(shuffled_columns.lazy(), RESIDENTS, tmp_path, text=False)
    other = files.build(residents.head(999).lazy(), RESIDENTS, tmp_path, text=False)
    assert first.snapshot_id == again.snapshot_id != other.snapshot_id
    assert first.path == tmp_path / "residents" / f"{first.snapshot_id}.parquet"
    assert files.file_sha256(first.path) == first.snapshot_id and first.rows == 1000
    kept = pl.read_parquet(first.path)
    assert kept.columns == [c.name for c in RESIDENTS.columns]  # policy order, extras dropped
    assert kept.schema["age"] == pl.Int64
    assert sorted(p.name for p in (tmp_path / "residents").iterdir()) == sorted(
        [f"{first.snapshot_id}.parquet", f"{other.snapshot_id}.parquet"])  # no temporary left


def test_a_refused_build_writes_nothing(tmp_path: Path, residents: pl.DataFrame) -> None:
    with pytest.raises(SnapshotRefused) as caught:
        files.build(residents.drop("sex").lazy(), RESIDENTS, tmp_path, text=False)
    assert caught.value.status == 422 and caught.value.problem()["problems"][0]["column"] == "sex"
    assert not any((tmp_path / "residents").glob("*")) if (tmp_path / "residents").exists() else True


def test_prune_keeps_what_it_is_told(tmp_path: Path) -> None:
    folder = tmp_path / "residents"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.parquet").write_bytes(b"x")
    assert files.prune(tmp_path, "residents", {"b"}) == ["a", "c"]
    assert [p.name for p in folder.iterdir()] == ["b.parquet"]


# ---------------------------------------------------------------- the service over a real store


@pytest.fixture
async def runtime(tmp_path: Path, demo_data: Path) -> AsyncIterator[Runtime]:
    rt = await open_runtime_async(tmp_path, demo_data)
    yield rt
    await asyncio.to_thread(rt.close)


async def test_start_up_builds_a_first_snapshot_of_every_dataset(runtime: Runtime) -> None:
    assert datasets_not_loaded(runtime) == sorted(POLICIES)
    await activate_current_snapshots(runtime)
    assert datasets_not_loaded(runtime) == []
    for dataset in POLICIES:
        record = await runtime.store.read(store.current, dataset)
        assert record is not None and record.origin == "parquet" and record.loaded_by == "system"
        assert current_snapshot_id(runtime, dataset) == record.snapshot_id
    loaded = audit_entries(runtime, "snapshot.loaded")
    assert sorted(e["subject"] for e in loaded) == sorted(POLICIES)


async def test_a_bad_upload_is_refused_and_the_previous_snapshot_keeps_serving(
        runtime: Runtime, residents: pl.DataFrame) -> None:
    await activate_current_snapshots(runtime)
    before = current_snapshot_id(runtime, "residents")
    body = runtime.settings.state_path / "bad.parquet"
    residents.head(100).drop("income").write_parquet(body)
    supply = supply_of(runtime)
    with pytest.raises(SnapshotRefused):
        await supply.load_upload("residents", body, "parquet", "demo-source-psb")
    assert current_snapshot_id(runtime, "residents") == before
    assert (await runtime.store.read(store.current, "residents")).snapshot_id == before  # type: ignore[union-attr]
    assert not body.exists()  # the body is not left lying around
    refused = audit_entries(runtime, "snapshot.refused")
    assert refused == [{"actor": "demo-source-psb", "subject": "residents", "payload": {
        "origin": "upload", "problems": [{"code": "missing_column", "column": "income"}]}}]


async def test_a_good_upload_swaps_and_reuploading_it_changes_nothing(
        runtime: Runtime, residents: pl.DataFrame) -> None:
    await activate_current_snapshots(runtime)
    first = current_snapshot_id(runtime, "residents")
    supply = supply_of(runtime)
    for attempt in range(2):
        body = runtime.settings.state_path / f"new-{attempt}.parquet"
        residents.head(2000).write_parquet(body)
        loaded = await supply.load_upload("residents", body, "parquet", "demo-source-psb")
        assert loaded.created == (attempt == 0) and loaded.record.rows == 2000
    assert current_snapshot_id(runtime, "residents") == loaded.record.snapshot_id != first
    moves = [e for e in audit_entries(runtime, "snapshot.loaded") if e["subject"] == "residents"]
    assert [m["payload"]["previous"] for m in moves] == [None, first]


async def test_a_restart_serves_the_kept_snapshot_without_reading_the_source(
        tmp_path: Path, demo_data: Path, residents: pl.DataFrame) -> None:
    rt = await open_runtime_async(tmp_path, demo_data)
    await activate_current_snapshots(rt)
    body = tmp_path / "upload.parquet"
    residents.head(3000).write_parquet(body)
    uploaded = (await supply_of(rt).load_upload("residents", body, "parquet", "demo-source-psb")).record
    await asyncio.to_thread(rt.close)
    os.utime(tmp_path / "data" / "residents.parquet", ns=(1, 1))  # older than the snapshot
    again = await open_runtime_async(tmp_path, demo_data)
    try:
        await activate_current_snapshots(again)
        assert current_snapshot_id(again, "residents") == uploaded.snapshot_id
    finally:
        await asyncio.to_thread(again.close)


async def test_a_source_file_replaced_while_down_is_taken_at_start(
        tmp_path: Path, demo_data: Path, residents: pl.DataFrame) -> None:
    rt = await open_runtime_async(tmp_path, demo_data)
    await activate_current_snapshots(rt)
    old = current_snapshot_id(rt, "residents")
    await asyncio.to_thread(rt.close)
    residents.head(5000).write_parquet(tmp_path / "data" / "residents.parquet")
    again = await open_runtime_async(tmp_path, demo_data)
    try:
        await activate_current_snapshots(again)
        record = await again.store.read(store.current, "residents")
        assert record is not None and record.rows == 5000 and record.snapshot_id != old
    finally:
        await asyncio.to_thread(again.close)


async def test_a_replica_follows_a_snapshot_made_current_elsewhere(
        tmp_path: Path, demo_data: Path, residents: pl.DataFrame) -> None:
    """Two runtimes on one store and one data folder: what one loads, the other adopts."""
    one = await open_runtime_async(tmp_path, demo_data)
    two = await open_runtime_async(tmp_path, demo_data)
    try:
        await activate_current_snapshots(one)
        await activate_current_snapshots(two)
        body = tmp_path / "upload.parquet"
        residents.head(1234).write_parquet(body)
        loaded = await supply_of(one).load_upload("residents", body, "parquet", "demo-bureau")
        assert current_snapshot_id(two, "residents") != loaded.record.snapshot_id
        await Follower(supply_of(two)).follow()
        assert current_snapshot_id(two, "residents") == loaded.record.snapshot_id
    finally:
        await asyncio.to_thread(one.close)
        await asyncio.to_thread(two.close)


async def test_a_dataset_that_never_loaded_is_reported_and_retried(
        runtime: Runtime, demo_data: Path) -> None:
    (runtime.settings.data_path / "vehicles.parquet").rename(runtime.settings.state_path / "v.parquet")
    await activate_current_snapshots(runtime)
    assert datasets_not_loaded(runtime) == ["vehicles"]
    with pytest.raises(Exception) as caught:
        current_snapshot_id(runtime, "vehicles")
    assert getattr(caught.value, "status", None) == 503
    failures = runtime.metrics.registry.get_sample_value(
        "gateway_source_failures_total", {"dataset": "vehicles"})
    assert failures == 1
    (runtime.settings.state_path / "v.parquet").rename(runtime.settings.data_path / "vehicles.parquet")
    supply_of(runtime).tried["vehicles"] = -1e9  # as if the retry interval had passed
    await Follower(supply_of(runtime)).follow()
    assert datasets_not_loaded(runtime) == []


# ---------------------------------------------------------------- swap under load (sandbox)


async def test_queries_keep_answering_across_swaps_and_never_see_a_mixed_state(
        runtime: Runtime, residents: pl.DataFrame) -> None:
    """Snapshots whose mean age is 20 or 90: an answer is tied to the snapshot id it reports,
    so a query that saw half of one and half of the other would show (R-DP-04: the cache keys
    on that id). Releases run continuously on two workers while uploads swap the data."""
    from gateway.core.checks import check_plan
    from gateway.core.sql import parse_sql
    from gateway.dp.sandbox import Sandbox

    sandbox = Sandbox(workers=2, timeout_seconds=60, memory_mb=4096)
    await sandbox.start()
    runtime.sandbox = sandbox
    try:
        await activate_current_snapshots(runtime)
        supply = supply_of(runtime)
        ages = {}
        for age in (20, 90):
            body = runtime.settings.state_path / f"age{age}.parquet"
            residents.head(20_000).with_columns(pl.lit(age).alias("age")).write_parquet(body)
            ages[age] = (await supply.load_upload("residents", body, "parquet", "demo-source-psb")
                         ).record.snapshot_id
        checked = check_plan(parse_sql("SELECT AVG(age) AS mean_age FROM residents",
                                       epsilon=Decimal("2"), dataset="residents"), RESIDENTS)
        label = next(a.label for a in checked.plan.aggregates if a.func == "mean")
        seen: list[tuple[str, float]] = []
        stop = asyncio.Event()

        async def ask() -> None:
            while not stop.is_set():
                release = await sandbox.release(checked)
                mean = release.rows[0][release.columns.index(label)]
                seen.append((release.snapshot_id, float(mean)))

        async def swap() -> None:
            for n in range(6):
                age = 20 if n % 2 else 90
                body = runtime.settings.state_path / f"swap{n}.parquet"
                residents.head(20_000).with_columns(pl.lit(age).alias("age")).write_parquet(body)
                await supply.load_upload("residents", body, "parquet", "demo-source-psb")
                await asyncio.sleep(0.2)
            stop.set()

        await asyncio.wait_for(asyncio.gather(ask(), ask(), swap()), timeout=240)
    finally:
        runtime.sandbox = None
        await sandbox.close()
    expected = {ages[20]: 20.0, ages[90]: 90.0}
    assert len(seen) >= 12, "queries ran during the swaps"
    assert {sid for sid, _ in seen} == set(expected), "answers from both snapshots"
    for snapshot_id, mean in seen:
        assert abs(mean - expected[snapshot_id]) < 5, (snapshot_id, mean)


# ---------------------------------------------------------------- a new policy version


def narrowed(version: str) -> DatasetPolicy:
    """Residents' policy without the Chengguan township (which the data is full of)."""
    cols = tuple(dataclasses.replace(c, categories=tuple(x for x in c.categories if x != "Chengguan"))
                 if c.name == "township" and c.categories else c for c in RESIDENTS.columns)
    return dataclasses.replace(RESIDENTS, columns=cols, version=version)


async def test_a_new_policy_version_rechecks_the_current_snapshot(runtime: Runtime) -> None:
    await activate_current_snapshots(runtime)
    supply = supply_of(runtime)
    follower = Follower(supply)
    serving = current_snapshot_id(runtime, "residents")
    runtime.registry.policies["residents"] = dataclasses.replace(RESIDENTS, version="v2-compatible")
    await follower.follow()
    assert supply.served["residents"].policy_version == "v2-compatible"
    assert current_snapshot_id(runtime, "residents") == serving
    runtime.registry.policies["residents"] = narrowed("v3-narrower")
    for _ in range(3):  # retried once per policy version, not once per round
        await follower.follow()
    assert current_snapshot_id(runtime, "residents") == serving  # the last good one serves on
    refused = audit_entries(runtime, "snapshot.refused")
    assert refused == [{"actor": "system", "subject": "residents", "payload": {
        "origin": "parquet", "problems": [{"code": "category_undeclared", "column": "township"}]}}]


# ---------------------------------------------------------------- a reverted source (issue 11.8)


@pytest.fixture
async def upstream_residents(residents: pl.DataFrame) -> AsyncIterator[str]:
    """A source department's endpoint serving 3,000 residents (not the file's 52,000)."""
    import io

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    buf = io.BytesIO()
    residents.head(3000).write_parquet(buf)

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=buf.getvalue(), content_type="application/vnd.apache.parquet")

    app = web.Application()
    app.router.add_get("/residents", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/residents"))


def pulled_from(url: str, version: str) -> DatasetPolicy:
    from gateway.core.policy import Source

    return dataclasses.replace(RESIDENTS, source=Source("http", (("format", "parquet"), ("url", url))),
                               version=version)


async def test_a_snapshot_pulled_upstream_stops_being_current_when_the_policy_naming_it_is_reverted(
        runtime: Runtime, upstream_residents: str) -> None:
    await activate_current_snapshots(runtime)
    follower = Follower(supply_of(runtime))
    from_file = current_snapshot_id(runtime, "residents")
    runtime.registry.policies["residents"] = pulled_from(upstream_residents, "v2-upstream")
    await follower.follow()  # the new policy names another source: its data replaces the file's
    pulled = await runtime.store.read(store.current, "residents")
    assert pulled is not None and pulled.origin == "http" and pulled.rows == 3000
    assert current_snapshot_id(runtime, "residents") == pulled.snapshot_id
    runtime.registry.policies["residents"] = RESIDENTS  # the bureau reverts
    await follower.follow()
    assert current_snapshot_id(runtime, "residents") == from_file
    record = await runtime.store.read(store.current, "residents")
    assert record is not None and record.snapshot_id == from_file and record.origin == "parquet"


async def test_when_the_reverted_source_cannot_be_read_the_pulled_snapshot_is_retired(
        runtime: Runtime, upstream_residents: str) -> None:
    await activate_current_snapshots(runtime)
    follower = Follower(supply_of(runtime))
    runtime.registry.policies["residents"] = pulled_from(upstream_residents, "v2-upstream")
    await follower.follow()
    pulled = current_snapshot_id(runtime, "residents")
    (runtime.settings.data_path / "residents.parquet").rename(runtime.settings.state_path / "r.parquet")
    runtime.registry.policies["residents"] = RESIDENTS
    await follower.follow()
    assert "residents" in datasets_not_loaded(runtime)  # 503 before any reservation, /readyz says so
    assert await runtime.store.read(store.current, "residents") is None
    retired = audit_entries(runtime, "snapshot.retired")
    assert retired == [{"actor": "system", "subject": "residents",
                        "payload": {"snapshot_id": pulled, "reason": "source_changed"}}]
