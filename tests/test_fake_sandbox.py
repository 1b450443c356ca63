"""The in-process sandbox stand-in: a whole gateway over real HTTP and a real store, without workers.

It shows what reaches the sandbox and when: a release is charged and billed through the real
ledger; a replay, a cached answer and a refusal never reach it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.dp.fake import FakeSandbox
from gateway.runtime.parts import Runtime
from tests.fixtures.supply.harness import Client, open_runtime_async, serving

SQL = "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
async def runtime(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> AsyncIterator[Runtime]:
    rt = await open_runtime_async(tmp_path_factory.mktemp("fake-sandbox"), demo_data)
    yield rt
    await asyncio.to_thread(rt.close)


@pytest.fixture(scope="module")
async def served(runtime: Runtime) -> AsyncIterator[tuple[Client, FakeSandbox]]:
    fake = FakeSandbox(answer=7.0)
    async with serving(runtime, fake) as client:
        yield client, fake


async def ask(client: Client, body: dict[str, object], key: str | None = None) -> tuple[int, dict[str, object]]:
    headers = {**JSON, **({"Idempotency-Key": key} if key else {})}
    status, _, answer = await client.call("POST", "/v1/queries", "demo-bank", data=json.dumps(body),
                                          headers=headers)
    return status, answer


async def test_a_release_is_charged_and_answers_the_stand_ins_value_over_public_keys(
        served: tuple[Client, FakeSandbox]) -> None:
    client, fake = served
    before = len([c for c in fake.calls if c[0] == "release"])
    status, answer = await ask(client, {"dataset": "residents", "sql": SQL, "epsilon": 0.25})
    assert status == 200, answer
    assert answer["rows"] == [["F", 7.0], ["M", 7.0]] and answer["epsilon_spent"] == 0.25
    assert answer["accuracy"]["columns"] == {"n": None}
    assert len([c for c in fake.calls if c[0] == "release"]) == before + 1
    status, _, budget = await client.call("GET", "/v1/budget", "demo-bank")
    line = next(d for d in budget["datasets"] if d["dataset"] == "residents")
    assert status == 200 and line["epsilon_spent"] >= 0.25


async def test_replays_cached_answers_and_refusals_never_reach_the_sandbox(
        served: tuple[Client, FakeSandbox]) -> None:
    client, fake = served
    body = {"dataset": "residents", "sql": "SELECT township, COUNT(*) AS n FROM residents GROUP BY township",
            "epsilon": 0.1}
    first = await ask(client, body, key="fake-1")
    releases = len([c for c in fake.calls if c[0] == "release"])
    replay = await ask(client, body, key="fake-1")
    cached = await ask(client, body)
    refused = await ask(client, {"dataset": "residents", "sql": "SELECT person_id FROM residents", "epsilon": 0.1})
    assert first[0] == replay[0] == cached[0] == 200 and replay[1] == first[1]
    assert cached[1]["cached"] is True and cached[1]["epsilon_spent"] == 0
    assert refused[0] in (400, 422)
    assert len([c for c in fake.calls if c[0] == "release"]) == releases
