"""The sandbox's lanes and turns (issue 19 point 1, issue 11 point 5, R-DP-19).

Previews run on workers of their own, so a costly preview never holds the worker a release
needs; within a lane organisations take turns; and a compiled plan is reused only for the
organisation that compiled it, so no latency tells one organisation what another asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.jsonplan import parse_json_plan
from gateway.core.sql import parse_sql
from gateway.dp.sandbox import Sandbox
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
QUICK = "SELECT township, COUNT(*) AS n FROM residents GROUP BY township"


def checked(sql: str, epsilon: str = "1") -> CheckedPlan:
    plan = parse_sql(sql, epsilon=Decimal(epsilon))
    return check_plan(plan, POLICIES[plan.dataset])


def heavy_plan(epsilon: str) -> CheckedPlan:
    """The probe's plan, built below admission (the cost model would refuse it): seconds of compiling."""
    where = {"or": [{"column": "age", "op": "=", "value": n % 110} for n in range(1000)]}
    keys = ["township", "sex", "education"]
    select: list[dict[str, Any]] = [{"column": k} for k in keys] + [
        {"aggregate": "quantile", "column": "income", "q": round(0.05 * (i + 1), 2)} for i in range(16)]
    plan = parse_json_plan({"select": select, "group_by": keys, "where": where}, epsilon=Decimal(epsilon),
                           dataset="residents")
    return check_plan(plan, POLICIES["residents"])


@pytest.fixture(scope="module")
async def sandbox(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    box = Sandbox(workers=1, timeout_seconds=60, memory_mb=4096, cache_dir=tmp_path_factory.mktemp("lanes"),
                  preview_workers=1)
    await box.start()
    await box.load("residents", POLICIES["residents"], demo_data / "residents.parquet", "snap-1")
    await box.release(checked(QUICK), org="warm-up")  # the worker reads the snapshot once
    yield box
    await box.close()


async def finished_in_order(calls: list[tuple[str, Any]]) -> list[str]:
    """Start the calls in the order given (each queued before the next starts); their names in
    the order they finished."""
    done: list[str] = []

    async def run(name: str, call: Any) -> None:
        await call
        done.append(name)

    tasks = []
    for name, call in calls:
        tasks.append(asyncio.ensure_future(run(name, call)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    return done


async def test_costly_previews_never_hold_the_release_worker(sandbox: Sandbox) -> None:
    calls = [(f"preview-{n}", sandbox.preview(heavy_plan(f"0.0{n + 1}"), org="flood")) for n in range(2)]
    calls.append(("release", sandbox.release(checked(QUICK, "0.5"), org="victim")))
    order = await finished_in_order(calls)
    assert order[0] == "release", order


async def test_an_organisations_burst_waits_its_turn(sandbox: Sandbox) -> None:
    burst = [(f"flood-{n}", sandbox.release(checked(QUICK, f"0.{n + 1}"), org="flood")) for n in range(5)]
    order = await finished_in_order([*burst, ("victim", sandbox.release(checked(QUICK, "0.9"), org="victim"))])
    # The flood's first release holds the worker; the victim, served less recently than the
    # flood, goes next: it waits for the release running when it arrived, not for all five.
    assert order.index("victim") == 1, order


def test_compiled_plans_are_reused_within_one_organisation_only() -> None:
    from gateway.dp import compile as compiler

    plan = checked("SELECT sex, COUNT(*) FROM residents GROUP BY sex", "0.37")

    def compiled_for(org: str) -> object:
        token = compiler.CACHE_SCOPE.set(org)
        try:
            return compiler.compile_plan(plan)
        finally:
            compiler.CACHE_SCOPE.reset(token)

    first = compiled_for("bank")
    assert compiled_for("bank") is first
    assert compiled_for("insurer") is not first
