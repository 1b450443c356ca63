"""A dataset's upload slot is taken before the body is read (issue 19, also seen).

Uploads of up to 2 GiB were streamed to disk before the per-dataset lock, so concurrent uploads
of one dataset could fill the disk before queueing. Now a second upload of a dataset being
received is refused at once, before any of its bytes are written.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import polars as pl
import pytest

from gateway.runtime.parts import Runtime
from gateway.service.supply import activate_current_snapshots
from gateway.service.uploads import upload_slots
from tests.fixtures.supply.harness import Client, open_runtime_async, serving

PATH = "/v1/datasets/residents/snapshots"
PARQUET = {"Content-Type": "application/vnd.apache.parquet"}


@pytest.fixture(scope="module")
async def runtime(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> AsyncIterator[Runtime]:
    rt = await open_runtime_async(tmp_path_factory.mktemp("upload-slots"), demo_data)
    await activate_current_snapshots(rt)
    yield rt
    await asyncio.to_thread(rt.close)


@pytest.fixture(scope="module")
async def client(runtime: Runtime) -> AsyncIterator[Client]:
    async with serving(runtime) as c:
        yield c


def parquet(demo_data: Path) -> bytes:
    buf = io.BytesIO()
    pl.read_parquet(demo_data / "residents.parquet").head(5000).write_parquet(buf)
    return buf.getvalue()


async def test_a_second_upload_of_a_dataset_being_received_is_refused_at_once(
        client: Client, runtime: Runtime, demo_data: Path) -> None:
    body = parquet(demo_data)
    release = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:1024]
        await release.wait()  # the rest only when the second upload has been answered
        yield body[1024:]

    first = asyncio.ensure_future(client.call("PUT", PATH, "demo-source-psb", data=slowly(), headers=PARQUET))
    for _ in range(500):  # until the first upload's handler holds its slot
        if "residents" in upload_slots(runtime).receiving:
            break
        await asyncio.sleep(0.01)
    assert "residents" in upload_slots(runtime).receiving
    status, _, problem = await client.call("PUT", PATH, "demo-bureau", data=body, headers=PARQUET)
    assert status == 409 and problem["code"] == "conflict", problem
    release.set()
    status, _, created = await first
    assert status in (200, 201), created
    assert "residents" not in upload_slots(runtime).receiving
    status, _, again = await client.call("PUT", PATH, "demo-bureau", data=body, headers=PARQUET)
    assert status == 200 and again["id"] == created["id"]  # the slot is free again
