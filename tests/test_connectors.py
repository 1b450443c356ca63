"""Connectors: files confined to the data root, object-store URLs, an upstream HTTP endpoint that
is slow, fails, answers 304 or changes its schema, the real PostgreSQL, and views."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.core.policy import DatasetPolicy, Source
from gateway.data import snapshots as files
from gateway.data.connectors import SourceUnavailable
from gateway.data.connectors import http as http_source
from gateway.data.connectors import postgres as pg_source
from gateway.data.connectors.files import locate
from gateway.data.validate import SnapshotRefused
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.runtime.parts import Runtime
from gateway.service.supply import activate_current_snapshots, current_snapshot_id, supply_of
from gateway.service.supply_follow import Follower
from gateway.store import snapshots as store
from tests.fixtures.supply.harness import audit_entries, open_runtime_async

POLICIES = load_policies(shipped_policies_dir())
RESIDENTS = POLICIES["residents"]


def with_source(policy: DatasetPolicy, kind: str, **options: Any) -> DatasetPolicy:
    return dataclasses.replace(policy, source=Source(kind, tuple(sorted(options.items()))))


@pytest.fixture(scope="module")
def residents(demo_data: Path) -> pl.DataFrame:
    return pl.read_parquet(demo_data / "residents.parquet").head(3000)


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- files and object storage


def test_paths_stay_inside_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.parquet").write_bytes(b"x")
    (root / "link.parquet").symlink_to(tmp_path / "secret.parquet")
    assert locate("sub/x.parquet", root).local == (root / "sub" / "x.parquet").resolve()
    assert locate(f"file://{root}/sub/x.csv", root).local == (root / "sub" / "x.csv").resolve()
    assert locate("s3://county-bucket/residents.parquet", root).url == "s3://county-bucket/residents.parquet"
    for escape in ("../secret.parquet", "link.parquet", f"file://{tmp_path}/secret.parquet",
                   "/etc/passwd", "ftp://host/x.parquet"):
        with pytest.raises(SourceUnavailable):
            locate(escape, root)


async def test_a_file_url_source_is_read_like_a_path(tmp_path: Path, demo_data: Path,
                                                     residents: pl.DataFrame) -> None:
    """Object-store URLs go to polars as they are; `file://` stands in for them here."""
    rt = await open_runtime_async(tmp_path, demo_data)
    try:
        residents.write_csv(tmp_path / "data" / "fresh.csv")
        url = f"file://{tmp_path / 'data' / 'fresh.csv'}"
        rt.registry.policies["residents"] = with_source(RESIDENTS, "csv", path=url)
        record = await supply_of(rt).load_from_source("residents")
        assert record is not None and record.origin == "csv" and record.rows == len(residents)
        assert await supply_of(rt).load_from_source("residents") is None  # unchanged file: skipped
    finally:
        await asyncio.to_thread(rt.close)


# ---------------------------------------------------------------- an upstream HTTP endpoint


class Upstream:
    """A source department's endpoint on loopback whose behaviour each test scripts."""

    def __init__(self) -> None:
        self.body = b""
        self.etag = '"v1"'
        self.last_modified: str | None = None
        self.content_type = "application/vnd.apache.parquet"
        self.failures_before_success = 0
        self.status = 200
        self.delay = 0.0
        self.chunked = False
        self.requests: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.headers))
        await asyncio.sleep(self.delay)
        if self.failures_before_success:
            self.failures_before_success -= 1
            return web.Response(status=503)
        if self.status != 200:
            return web.Response(status=self.status)
        if self.etag and request.headers.get("If-None-Match") == self.etag:
            return web.Response(status=304)
        if self.last_modified and request.headers.get("If-Modified-Since") == self.last_modified:
            return web.Response(status=304)
        headers = {"Content-Type": self.content_type}
        if self.etag:
            headers["ETag"] = self.etag
        if self.last_modified:
            headers["Last-Modified"] = self.last_modified
        if not self.chunked:
            return web.Response(body=self.body, headers=headers)
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(0, len(self.body), 4096):
            await resp.write(self.body[i:i + 4096])
        await resp.write_eof()
        return resp


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    script = Upstream()
    app = web.Application()
    app.router.add_get("/residents", script.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield script, str(server.make_url("/residents"))


def pull_plan(url: str, **changes: Any) -> http_source.Pull:
    base = http_source.Pull(url=url, format=None, timeout_seconds=2.0, max_bytes=10_000_000,
                            attempts=3, backoff_seconds=0.01)
    return dataclasses.replace(base, **changes)


async def test_http_sends_validators_and_takes_a_304_as_unchanged(
        upstream: tuple[Upstream, str], tmp_path: Path, residents: pl.DataFrame) -> None:
    script, url = upstream
    script.body = parquet_bytes(residents)
    got = await http_source.download(pull_plan(url), tmp_path / "a", http_source.Validators())
    assert got is not None and got.format == "parquet" and got.validators.etag == '"v1"'
    assert pl.read_parquet(got.path).height == len(residents)
    assert await http_source.download(pull_plan(url), tmp_path / "b", got.validators) is None
    assert script.requests[-1]["If-None-Match"] == '"v1"'
    script.etag, script.last_modified = "", "Wed, 21 Oct 2026 07:28:00 GMT"
    got = await http_source.download(pull_plan(url), tmp_path / "c", http_source.Validators())
    assert got is not None and got.validators.last_modified == script.last_modified
    assert await http_source.download(pull_plan(url), tmp_path / "d", got.validators) is None
    assert script.requests[-1]["If-Modified-Since"] == script.last_modified


async def test_http_retries_failures_with_backoff(upstream: tuple[Upstream, str], tmp_path: Path,
                                                  residents: pl.DataFrame) -> None:
    script, url = upstream
    script.body = parquet_bytes(residents)
    script.failures_before_success = 2
    started = time.monotonic()
    got = await http_source.download(pull_plan(url, backoff_seconds=0.2), tmp_path / "a",
                                     http_source.Validators())
    assert got is not None and len(script.requests) == 3
    assert time.monotonic() - started >= 0.2 + 0.4  # 0.2 s, then twice that
    script.failures_before_success = 5
    with pytest.raises(SourceUnavailable, match="503 after 3 attempt"):
        await http_source.download(pull_plan(url), tmp_path / "b", http_source.Validators())


async def test_http_does_not_retry_a_client_error(upstream: tuple[Upstream, str], tmp_path: Path) -> None:
    script, url = upstream
    script.status = 404
    with pytest.raises(SourceUnavailable, match="status 404"):
        await http_source.download(pull_plan(url), tmp_path / "a", http_source.Validators())
    assert len(script.requests) == 1


async def test_http_gives_up_on_a_slow_endpoint_in_bounded_time(
        upstream: tuple[Upstream, str], tmp_path: Path) -> None:
    script, url = upstream
    script.delay = 5.0
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"TimeoutError|ServerTimeoutError"):
        await http_source.download(pull_plan(url, timeout_seconds=0.3, attempts=2), tmp_path / "a",
                                   http_source.Validators())
    assert time.monotonic() - started < 2.5
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("chunked", [False, True])
async def test_http_cuts_off_a_body_over_max_bytes(upstream: tuple[Upstream, str], tmp_path: Path,
                                                   chunked: bool) -> None:
    script, url = upstream
    script.body, script.chunked = b"x" * 100_000, chunked
    with pytest.raises(SourceUnavailable, match="max_bytes"):
        await http_source.download(pull_plan(url, max_bytes=50_000), tmp_path / "a",
                                   http_source.Validators())
    assert not (tmp_path / "a").exists() and len(script.requests) == 1  # not retried


async def test_http_needs_a_known_format(upstream: tuple[Upstream, str], tmp_path: Path) -> None:
    script, url = upstream
    script.body, script.content_type = b"{}", "application/json"
    with pytest.raises(SourceUnavailable, match="Content-Type"):
        await http_source.download(pull_plan(url), tmp_path / "a", http_source.Validators())
    script.body = b"a,b\n1,2\n"
    got = await http_source.download(pull_plan(url, format="csv"), tmp_path / "b",
                                     http_source.Validators())
    assert got is not None and got.format == "csv"


@pytest.fixture
async def pulled(tmp_path: Path, demo_data: Path,
                 upstream: tuple[Upstream, str]) -> AsyncIterator[tuple[Runtime, Upstream]]:
    """A gateway whose residents come from the upstream endpoint."""
    script, url = upstream
    rt = await open_runtime_async(tmp_path, demo_data)
    rt.registry.policies["residents"] = with_source(RESIDENTS, "http", url=url, timeout_seconds=0.5,
                                                    refresh_seconds=10)
    yield rt, script
    await asyncio.to_thread(rt.close)


async def test_a_failing_or_changed_upstream_leaves_the_last_good_snapshot(
        pulled: tuple[Runtime, Upstream], residents: pl.DataFrame) -> None:
    rt, script = pulled
    script.body = parquet_bytes(residents)
    await activate_current_snapshots(rt)
    good = current_snapshot_id(rt, "residents")
    supply = supply_of(rt)
    assert await supply.refresh("residents")  # a 304: nothing new, still served
    assert current_snapshot_id(rt, "residents") == good and script.requests[-1]["If-None-Match"]

    def failures() -> float:
        return rt.metrics.registry.get_sample_value("gateway_source_failures_total",
                                                    {"dataset": "residents"}) or 0.0

    script.status = 500
    assert await supply.refresh("residents") and failures() == 1
    script.status, script.etag = 200, '"v2"'
    script.body = parquet_bytes(residents.drop("township"))
    assert await supply.refresh("residents") and failures() == 2
    assert current_snapshot_id(rt, "residents") == good
    assert audit_entries(rt, "snapshot.refused")[-1]["payload"] == {
        "origin": "http", "problems": [{"code": "missing_column", "column": "township"}]}
    script.etag = '"v3"'
    script.body = parquet_bytes(residents.head(100))
    assert await supply.refresh("residents")
    record = await rt.store.read(store.current, "residents")
    assert record is not None and record.rows == 100 and record.origin == "http"
    assert current_snapshot_id(rt, "residents") == record.snapshot_id != good


async def test_the_refresher_pulls_on_its_schedule(pulled: tuple[Runtime, Upstream],
                                                   residents: pl.DataFrame) -> None:
    rt, script = pulled
    script.body = parquet_bytes(residents)
    await activate_current_snapshots(rt)
    follower = Follower(supply_of(rt))
    follower._sync_refreshers()
    task = follower.refreshers["residents"]
    try:
        await asyncio.sleep(0.05)
        assert not task.done() and len(script.requests) == 1  # the activation's pull only
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(follower.refreshers) == {"residents"}  # only pulled sources get a refresher


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_table(postgres_dsn: str, residents: pl.DataFrame) -> Iterator[str]:
    """A residents table in a schema of its own, dropped afterwards."""
    schema = f"supply_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"""CREATE TABLE {schema}.residents (
            person_id text, household_id text, township text, age integer, sex varchar(1),
            education text, industry text, employment_status text, income numeric(12, 2),
            extra_column date)""")
        with conn.cursor().copy(f"COPY {schema}.residents (person_id, household_id, township, age, "
                                "sex, education, industry, employment_status, income) FROM STDIN") as copy:
            for row in residents.iter_rows():
                copy.write_row(row)
        try:
            yield f"{schema}.residents"
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_env(postgres_dsn: str) -> Iterator[str]:
    name = "GATEWAY_TEST_SOURCE_DSN"
    os.environ[name] = postgres_dsn
    try:
        yield name
    finally:
        del os.environ[name]


def test_postgres_reads_the_policy_columns_typed(pg_table: str, pg_env: str, tmp_path: Path,
                                                 residents: pl.DataFrame) -> None:
    policy = with_source(RESIDENTS, "postgres", dsn_env=pg_env, table=pg_table)
    pg_source.read_table(policy, tmp_path / "t.parquet", dsn_env=pg_env, table=pg_table)
    built = files.build(files.scan(tmp_path / "t.parquet", "parquet"), policy, tmp_path, text=False)
    kept = pl.read_parquet(built.path)
    assert built.rows == len(residents) and kept.columns == [c.name for c in RESIDENTS.columns]
    assert kept.schema["age"] == pl.Int64 and kept.schema["income"] == pl.Float64
    assert kept.sort("person_id").equals(residents.sort("person_id"))


def test_postgres_sessions_are_read_only(postgres_dsn: str, pg_env: str) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    with (adbc.connect(pg_source.conninfo(pg_env, 5)) as conn, conn.cursor() as cur,
          pytest.raises(adbc.Error, match="read-only")):
        cur.execute("CREATE TABLE should_not_exist (a int)")


def test_postgres_schema_drift_is_refused_with_every_problem(postgres_dsn: str, pg_table: str,
                                                             pg_env: str, tmp_path: Path) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {pg_table} DROP COLUMN sex")
        conn.execute(f"ALTER TABLE {pg_table} ALTER COLUMN age TYPE text")
    policy = with_source(RESIDENTS, "postgres", dsn_env=pg_env, table=pg_table)
    with pytest.raises(SnapshotRefused) as caught:
        pg_source.read_table(policy, tmp_path / "t.parquet", dsn_env=pg_env, table=pg_table)
    assert {(p.code, p.column) for p in caught.value.problems} == {
        ("missing_column", "sex"), ("type_changed", "age")}
    with pytest.raises(SnapshotRefused, match="1 problem"):
        pg_source.read_table(policy, tmp_path / "t.parquet", dsn_env=pg_env, table=pg_table + "_gone")


def test_postgres_reads_at_most_one_row_past_max_rows(pg_table: str, pg_env: str, tmp_path: Path) -> None:
    policy = dataclasses.replace(with_source(RESIDENTS, "postgres", dsn_env=pg_env, table=pg_table),
                                 max_rows=10)
    pg_source.read_table(policy, tmp_path / "t.parquet", dsn_env=pg_env, table=pg_table)
    assert pl.read_parquet(tmp_path / "t.parquet").height == 11
    with pytest.raises(SnapshotRefused, match="1 problem"):
        files.build(files.scan(tmp_path / "t.parquet", "parquet"), policy, tmp_path, text=False)


def test_postgres_unreachable_or_unset_is_a_source_failure(tmp_path: Path) -> None:
    policy = with_source(RESIDENTS, "postgres", dsn_env="GATEWAY_TEST_UNSET_DSN", table="t")
    with pytest.raises(SourceUnavailable, match="not set"):
        pg_source.read_table(policy, tmp_path / "t.parquet", dsn_env="GATEWAY_TEST_UNSET_DSN", table="t")
    os.environ["GATEWAY_TEST_DOWN_DSN"] = "postgresql://nobody@127.0.0.1:1/none"
    try:
        with pytest.raises(SourceUnavailable, match="postgres"):
            pg_source.read_table(policy, tmp_path / "t.parquet", dsn_env="GATEWAY_TEST_DOWN_DSN",
                                 table="t", timeout_seconds=2)
    finally:
        del os.environ["GATEWAY_TEST_DOWN_DSN"]


async def test_postgres_source_through_the_supply(tmp_path: Path, demo_data: Path, pg_table: str,
                                                  pg_env: str, residents: pl.DataFrame) -> None:
    rt = await open_runtime_async(tmp_path, demo_data)
    try:
        rt.registry.policies["residents"] = with_source(RESIDENTS, "postgres", dsn_env=pg_env,
                                                        table=pg_table)
        await activate_current_snapshots(rt)
        record = await rt.store.read(store.current, "residents")
        assert record is not None and record.origin == "postgres" and record.rows == len(residents)
        assert not any(files.incoming_dir(supply_of(rt).root).iterdir())  # temporary file gone
    finally:
        await asyncio.to_thread(rt.close)


# ---------------------------------------------------------------- views over external data


@pytest.fixture
async def with_view(tmp_path: Path, demo_data: Path) -> AsyncIterator[Runtime]:
    rt = await open_runtime_async(tmp_path, demo_data, with_view=True)
    yield rt
    await asyncio.to_thread(rt.close)


async def test_a_view_joins_the_external_table_onto_the_base(with_view: Runtime,
                                                            demo_data: Path) -> None:
    rt = with_view
    await activate_current_snapshots(rt)
    view = await rt.store.read(store.current, "residents_geo")
    assert view is not None and view.origin == "view"
    assert view.inputs == {"base": current_snapshot_id(rt, "residents"),
                           "join": current_snapshot_id(rt, "township_geo")}
    kept = pl.read_parquet(supply_of(rt).served["residents_geo"].path)
    base = pl.read_parquet(demo_data / "residents.parquet")
    assert kept.height == base.height  # every township is priced: no person dropped, none copied
    assert kept.columns == [c.name for c in rt.registry.policies["residents_geo"].columns]
    chengguan = kept.filter(pl.col("township") == "Chengguan")
    assert chengguan["land_price_index"].unique().to_list() == [240.0]


async def test_a_new_snapshot_of_either_side_rebuilds_the_view(with_view: Runtime, tmp_path: Path,
                                                               demo_data: Path) -> None:
    rt = with_view
    await activate_current_snapshots(rt)
    supply = supply_of(rt)
    first = current_snapshot_id(rt, "residents_geo")
    prices = pl.read_csv(tmp_path / "data" / "township_geo.csv")
    body = tmp_path / "geo.csv"
    prices.with_columns(pl.col("land_price_index") + 1).write_csv(body)
    await supply.load_upload("township_geo", body, "csv", "demo-bureau")
    second = current_snapshot_id(rt, "residents_geo")
    assert second != first
    body = tmp_path / "base.parquet"
    pl.read_parquet(demo_data / "residents.parquet").head(500).write_parquet(body)
    await supply.load_upload("residents", body, "parquet", "demo-source-psb")
    third = await rt.store.read(store.current, "residents_geo")
    assert third is not None and third.snapshot_id not in (first, second) and third.rows == 500


async def test_a_view_refuses_a_join_key_that_repeats(with_view: Runtime, tmp_path: Path) -> None:
    rt = with_view
    await activate_current_snapshots(rt)
    before = current_snapshot_id(rt, "residents_geo")
    prices = pl.read_csv(tmp_path / "data" / "township_geo.csv")
    body = tmp_path / "geo.csv"
    pl.concat([prices, prices.head(1)]).write_csv(body)  # Chengguan twice
    await supply_of(rt).load_upload("township_geo", body, "csv", "demo-bureau")
    assert current_snapshot_id(rt, "residents_geo") == before
    assert audit_entries(rt, "snapshot.refused")[-1] == {"actor": "system", "subject": "residents_geo",
        "payload": {"origin": "view", "problems": [{"code": "join_key_not_unique", "column": "township"}]}}


async def test_a_view_cannot_be_uploaded_to(with_view: Runtime, tmp_path: Path) -> None:
    body = tmp_path / "x.csv"
    body.write_text("a\n1\n")
    with pytest.raises(Exception) as caught:
        await supply_of(with_view).load_upload("residents_geo", body, "csv", "demo-bureau")
    assert getattr(caught.value, "status", None) == 409
