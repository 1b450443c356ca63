"""Parsing does not stall the event loop (issue 19 point 3).

An 8 KiB SQL text with 70 IN lists takes ~50-60 ms to parse; on the loop, one client refused 16
times a second took /healthz from 2 ms to 0.5 s. Such a body is parsed in a thread: while it
parses, the loop keeps turning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from gateway.errors import InvalidQuery
from gateway.runtime.open import open_runtime
from gateway.runtime.parts import Runtime
from gateway.service.plans import plan_from_body, read_plan
from gateway.settings import load_settings

IN_LIST = "township IN ('Lingxi', 'Baishi', 'Qiaotou', 'Dongfeng', 'Xinhe')"
LONG_SQL = "SELECT COUNT(*) FROM residents WHERE " + " OR ".join([IN_LIST] * 70)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = open_runtime(load_settings(values={"state_dir": str(tmp_path_factory.mktemp("parse")),
                                            "max_sql_chars": 8192}))
    yield rt
    rt.close()


async def loop_turns_while(work: Any) -> tuple[int, Any]:
    """How often the loop turned while `work` ran, and its outcome (a value or an exception)."""
    task = asyncio.ensure_future(work)
    turns = 0
    while not task.done():
        await asyncio.sleep(0)
        turns += 1
    return turns, task.exception() or task.result()


async def test_a_long_question_parses_while_the_loop_turns(runtime: Runtime) -> None:
    body = {"dataset": "residents", "sql": LONG_SQL + " AND age > 1", "epsilon": 1}
    turns, plan = await loop_turns_while(read_plan(runtime, body))
    assert turns > 1, "the parse ran on the loop"  # on the loop, the task finishes in its first step
    assert plan == plan_from_body(runtime, body)
    assert plan.epsilon == Decimal(1)


async def test_a_long_refusal_parses_off_the_loop_and_says_the_same(runtime: Runtime) -> None:
    body = {"dataset": "residents", "sql": LONG_SQL + " AND LOWER(township) = 'x'", "epsilon": 1}
    turns, refused = await loop_turns_while(read_plan(runtime, body))
    assert turns > 1 and isinstance(refused, InvalidQuery)
    with pytest.raises(InvalidQuery) as same:
        plan_from_body(runtime, body)
    assert same.value.problem() == refused.problem()


async def test_a_json_plan_parses_off_the_loop(runtime: Runtime) -> None:
    where = {"or": [{"column": "age", "op": "=", "value": n % 110} for n in range(1000)]}
    body = {"dataset": "residents", "epsilon": 1, "plan": {"select": [{"aggregate": "count"}], "where": where}}
    turns, plan = await loop_turns_while(read_plan(runtime, body))
    assert turns > 1 and plan.dataset == "residents"
