"""Upload and history over HTTP: who may, what is accepted, what a refusal looks like.

In-process servers (aiohttp's TestServer on loopback) over a real runtime: the upload path
does not depend on the sandbox. The last test runs the whole gateway process.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
import pytest

from gateway.runtime.parts import Runtime
from gateway.service.supply import activate_current_snapshots, current_snapshot_id
from tests.fixtures.supply.harness import Client, audit_entries, open_runtime_async, same_json, serving
from tests.support import Gateway, seed_demo_data

PARQUET = {"Content-Type": "application/vnd.apache.parquet"}
CSV = {"Content-Type": "text/csv"}
PATH = "/v1/datasets/residents/snapshots"


@pytest.fixture(scope="module")
def residents(demo_data: Path) -> pl.DataFrame:
    return pl.read_parquet(demo_data / "residents.parquet")


def parquet_of(frame: pl.DataFrame, compression: str = "zstd") -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf, compression=compression)  # type: ignore[arg-type]
    return buf.getvalue()


@pytest.fixture(scope="module")
async def runtime(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> AsyncIterator[Runtime]:
    """One runtime for the module (demo clients cost a few seconds of scrypt to create)."""
    rt = await open_runtime_async(tmp_path_factory.mktemp("upload"), demo_data,
                                  max_upload_bytes=400_000)
    await activate_current_snapshots(rt)
    yield rt
    await asyncio.to_thread(rt.close)


@pytest.fixture(scope="module")
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with serving(runtime) as c:
        yield c


async def test_the_owner_uploads_parquet_bigger_than_the_json_limit(
        client: Client, runtime: Runtime, residents: pl.DataFrame) -> None:
    body = parquet_of(residents.head(20_000))
    assert len(body) > runtime.settings.max_body_bytes  # aiohttp's client_max_size does not apply
    status, _, created = await client.call("PUT", PATH, "demo-source-psb", data=body, headers=PARQUET)
    assert status == 201, created
    assert created["rows"] == 20_000 and created["current"] and created["loaded_by"] == "demo-source-psb"
    assert current_snapshot_id(runtime, "residents") == created["id"]
    status, _, again = await client.call("PUT", PATH, "demo-source-psb", data=body, headers=PARQUET)
    assert status == 200 and again["id"] == created["id"]  # same content, same snapshot
    status, _, listed = await client.call("GET", PATH, "demo-source-psb")
    assert status == 200 and listed["current"] == created["id"]
    assert listed["snapshots"][0]["id"] == created["id"]
    assert {"upload", "parquet"} <= {s["origin"] for s in listed["snapshots"]}
    assert all("rows" in s and "loaded_at" in s for s in listed["snapshots"])


async def test_csv_uploads_are_parsed_against_the_policy(client: Client, runtime: Runtime,
                                                         residents: pl.DataFrame) -> None:
    buf = io.BytesIO()
    residents.head(3000).write_csv(buf)
    status, _, created = await client.call("PUT", PATH, "demo-bureau", data=buf.getvalue(), headers=CSV)
    assert status == 201 and created["rows"] == 3000 and created["loaded_by"] == "demo-bureau"


async def test_a_malformed_upload_is_refused_with_a_report_and_changes_nothing(
        client: Client, runtime: Runtime, residents: pl.DataFrame) -> None:
    _, _, before = await client.call("GET", PATH, "demo-source-psb")
    serving_before = current_snapshot_id(runtime, "residents")
    bad = residents.head(1000).drop("sex").with_columns(
        pl.when(pl.col("age") > 80).then(pl.lit("Atlantis")).otherwise(pl.col("township")).alias("township"))
    status, headers, problem = await client.call("PUT", PATH, "demo-source-psb", data=parquet_of(bad),
                                                 headers=PARQUET)
    assert status == 422 and headers["Content-Type"].startswith("application/problem+json")
    assert problem["code"] == "snapshot_refused"
    assert {(p["code"], p.get("column")) for p in problem["problems"]} == {
        ("missing_column", "sex"), ("category_undeclared", "township")}
    _, _, after = await client.call("GET", PATH, "demo-source-psb")
    assert same_json(before, after) and current_snapshot_id(runtime, "residents") == serving_before
    assert audit_entries(runtime, "snapshot.refused")[-1]["actor"] == "demo-source-psb"
    status, _, problem = await client.call("PUT", PATH, "demo-source-psb", data=b"a,b\n1,2\n", headers=CSV)
    assert status == 422 and len(problem["problems"]) == len(runtime.registry.get("residents").columns)


async def test_only_the_owner_and_the_bureau_may_supply_or_list(client: Client) -> None:
    """R-AU-07: a department manages only its own datasets; counts stay with them (invariant 1)."""
    body = b"a\n1\n"
    for who in ("demo-bank", "demo-merchant", "demo-ops", "demo-source-amr"):
        status, _, problem = await client.call("PUT", PATH, who, data=body, headers=CSV)
        assert status == 403 and problem["code"] == "forbidden", who
        status, _, problem = await client.call("GET", PATH, who)
        assert status == 403 and "rows" not in str(problem), who
    status, _, listed = await client.call("GET", "/v1/datasets/enterprises/snapshots", "demo-source-amr")
    assert status == 200 and listed["snapshots"][0]["rows"] > 0
    status, _, _ = await client.call("GET", "/v1/datasets/nonesuch/snapshots", "demo-bureau")
    assert status == 404


async def test_uploads_are_limited_in_size_and_type(client: Client, residents: pl.DataFrame) -> None:
    big = parquet_of(residents.head(50_000), "uncompressed")
    assert len(big) > 400_000
    status, _, problem = await client.call("PUT", PATH, "demo-source-psb", data=big, headers=PARQUET)
    assert status == 413 and problem["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while streaming
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    status, _, problem = await client.call("PUT", PATH, "demo-source-psb", data=chunks(), headers=PARQUET)
    assert status == 413
    status, _, problem = await client.call("PUT", PATH, "demo-source-psb", data=b"{}",
                                           headers={"Content-Type": "application/json"})
    assert status == 415 and problem["code"] == "unsupported_media_type"
    status, _, problem = await client.call("PUT", PATH, "demo-source-psb", data=b"", headers=CSV)
    assert status == 400


async def test_limit_is_checked(client: Client) -> None:
    for bad in ("0", "x", "1001"):
        status, _, _ = await client.call("GET", f"{PATH}?limit={bad}", "demo-bureau")
        assert status == 400
    status, _, listed = await client.call("GET", f"{PATH}?limit=1", "demo-bureau")
    assert status == 200 and len(listed["snapshots"]) == 1


def test_an_upload_while_queries_run_swaps_what_answers(tmp_path: Path, demo_data: Path,
                                                        residents: pl.DataFrame) -> None:
    """The issue's "done when", through `gateway serve --demo`: queries keep answering while the
    owner uploads; none fails; answers after the swap carry the new snapshot id."""
    seed_demo_data(tmp_path, demo_data)
    gw = Gateway(tmp_path).start()
    try:
        listed = gw.api("GET", PATH, "demo-source-psb")
        assert listed.status == 200 and len(listed.json["snapshots"]) == 1
        old = listed.json["current"]
        query = {"dataset": "residents", "epsilon": 0.05,
                 "sql": "SELECT COUNT(*) AS n, AVG(age) AS mean_age FROM residents"}
        answers: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def ask() -> None:
            while not stop.is_set():
                reply = gw.api("POST", "/v1/queries", "demo-bank", query)
                answers.append((reply.status, (reply.json or {}).get(
                    "snapshot_id" if reply.status == 200 else "code")))
                time.sleep(0.1)  # under the rate limit: cached answers come back at once

        asker = threading.Thread(target=ask)
        asker.start()
        try:
            time.sleep(1.0)
            reply = gw.api("PUT", PATH, "demo-source-psb", parquet_of(residents.head(5000)), PARQUET)
            time.sleep(1.0)
        finally:
            stop.set()
            asker.join(60)
        assert reply.status == 201, reply.body
        new = reply.json["id"]
        assert answers and all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
        assert {sid for _, sid in answers} == {old, new}
        after = gw.api("POST", "/v1/queries", "demo-bank", query)
        assert after.status == 200 and after.json["snapshot_id"] == new
        listed = gw.api("GET", PATH, "demo-bureau").json
        assert listed["current"] == new and listed["snapshots"][0]["rows"] == 5000
    finally:
        gw.stop()
