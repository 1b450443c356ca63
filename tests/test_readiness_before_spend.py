"""A policy change must not burn budget (issue 11.6, R-DP-20).

After a policy version that changes how a dataset is stored, the sandbox needs a moment to
prepare the snapshot again. A query in that moment must be refused before anything is reserved
(503 with Retry-After), /readyz must name the dataset, and nothing after the point of no refund
may wait on anything but the release itself (here: the client's own slot).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.core.sql import parse_sql
from gateway.runtime.parts import Runtime
from gateway.service.queries import ReleaseState, run_query
from gateway.service.supply import supply_of
from gateway.service.supply_follow import Follower
from tests.fixtures.supply.harness import Client, open_runtime_async, serving

Q = {"dataset": "residents", "sql": "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex", "epsilon": 0.1}


@pytest.fixture
async def served(tmp_path: Path, demo_data: Path) -> AsyncIterator[tuple[Runtime, Client]]:
    rt = await open_runtime_async(tmp_path, demo_data, max_in_flight_per_client=1)
    try:
        async with serving(rt) as client:
            yield rt, client
    finally:
        await asyncio.to_thread(rt.close)


async def residents_line(client: Client) -> dict[str, Any]:
    status, _h, body = await client.call("GET", "/v1/budget", "demo-bank")
    assert status == 200
    return next(line for line in body["datasets"] if line["dataset"] == "residents")


async def reserved_anywhere(rt: Runtime) -> int:
    rows = await rt.store.read(lambda tx: tx.all("SELECT reserved_nano, spent_nano FROM budget_accounts"))
    return sum(int(r) + int(s) for r, s in rows)


async def test_a_storage_change_refuses_before_reserving_and_readyz_names_the_dataset(
        served: tuple[Runtime, Client]) -> None:
    rt, client = served
    before = await residents_line(client)
    shipped = (Path(rt.settings.policies_dir) / "residents.yaml").read_text()
    assert "max_rows: 2000000" in shipped
    wider = shipped.replace("max_rows: 2000000", "max_rows: 3000000")  # a new storage layout
    supply = supply_of(rt)
    async with supply.locks["residents"]:  # the snapshot is prepared again only once we let go
        status, _h, body = await client.call("PUT", "/v1/datasets/residents/policy", "demo-bureau",
                                             data=wider.encode(), headers={"Content-Type": "application/yaml"})
        assert status == 200 and body["published"], body
        status, headers, body = await client.call("POST", "/v1/queries", "demo-bank", data=_json(Q),
                                                  headers={"Content-Type": "application/json"})
        assert status == 503 and body["code"] == "unavailable", body
        assert int(headers["Retry-After"]) >= 1 and "residents" in body["detail"]
        assert await residents_line(client) == before, "a refused query spent budget"
        ready = await client.http.get("/readyz")
        assert ready.status == 503 and "residents" in (await ready.json())["detail"]
    await Follower(supply).follow()
    status, _h, body = await client.call("POST", "/v1/queries", "demo-bank", data=_json(Q),
                                         headers={"Content-Type": "application/json"})
    assert status == 200, body
    assert (await residents_line(client))["epsilon_spent"] == pytest.approx(before["epsilon_spent"] + 0.1)
    assert (await client.http.get("/readyz")).status == 200


async def test_nothing_after_the_point_of_no_refund_waits_on_the_clients_other_releases(
        served: tuple[Runtime, Client]) -> None:
    """With the client's only slot taken, a query waits before reserving; cancelled there (the
    client gone), it leaves no charge behind, reserved or spent."""
    rt, client = served
    who = rt.verifier.verify(await client.token("demo-bank"))
    plan = parse_sql(Q["sql"], epsilon=Decimal("0.1"), dataset="residents")
    slots = rt.owned(ReleaseState).client_slots
    slot = slots.setdefault(who.client_id, asyncio.Semaphore(1))
    charged_before = await reserved_anywhere(rt)
    await slot.acquire()
    try:
        task = asyncio.ensure_future(run_query(rt, who, plan))
        for _ in range(200):  # until the query waits on the slot, or has got past it
            await asyncio.sleep(0.01)
            if task.done() or slot._waiters:  # the semaphore's queue: someone waits on it
                break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        slot.release()
    assert await reserved_anywhere(rt) == charged_before
    states = await rt.store.read(lambda tx: tx.all("SELECT state FROM queries"))
    assert all(s in ("released", "committed") for (s,) in states), states


def _json(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body).encode()


async def test_a_layout_swap_waits_for_releases_holding_the_old_layout(served: tuple[Runtime, Client]) -> None:
    """A release checked ready holds its dataset until the sandbox has its plan: the supply
    prepares the new layout only after, and no release starts in between."""
    import dataclasses

    from gateway.errors import Unavailable
    from gateway.service.readiness import gate_of, held_ready

    rt, _client = served
    old = rt.registry.policies["residents"]
    gate = gate_of(rt)
    before = gate.layouts["residents"]
    with held_ready(rt, old):  # a release between its check and the sandbox call
        rt.registry.policies["residents"] = dataclasses.replace(old, max_rows=old.max_rows + 1, version="v-wider")
        swap = asyncio.ensure_future(Follower(supply_of(rt)).follow())
        for _ in range(500):
            await asyncio.sleep(0.01)
            if "residents" in gate.swapping:
                break
        assert "residents" in gate.swapping  # this follow, or the background one, waits for us
        await asyncio.sleep(0.2)
        assert gate.layouts["residents"] == before  # the held release still meets its layout
        with pytest.raises(Unavailable):
            held_ready(rt, rt.registry.policies["residents"]).__enter__()
    await asyncio.wait_for(swap, timeout=120)
    for _ in range(1200):
        if gate.layouts["residents"] != before:
            break
        await asyncio.sleep(0.1)
    assert gate.layouts["residents"] != before and gate.why_not_ready(rt.registry.policies["residents"]) is None
