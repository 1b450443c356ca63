"""Releases on polars' streaming engine draw each cell's noise once (issue 18: `streaming_engine`).

The engine runs a query in morsels. Were a noise step run per morsel, a cell spread over many
morsels would carry the sum of many draws: wider noise than OpenDP's privacy map proves, and
answers that a requester would read as more accurate than they are. Here the real sandbox worker
runs with tiny morsels (100 rows: every group spans dozens of them), and the noisy counts and
sums must follow exactly the distribution OpenDP reports for them (the Dvoretzky-Kiefer-Wolfowitz
test of tests/test_dp_statistics.py, failing a correct mechanism once in 1e8; the same draws must
fail at double and half the scale).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal

import numpy as np
import polars as pl
import pytest
from opendp.accuracy import summarize_polars_measurement

from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.sql import parse_sql
from gateway.dp import compile as compiler
from gateway.dp import frames
from gateway.dp.sandbox import Sandbox
from gateway.dp.worker import use_engine
from gateway.policyfiles import load_policies, shipped_policies_dir
from tests.test_dp_statistics import assert_matches_reported_scale

POLICY = load_policies(shipped_policies_dir())["residents"]
TOWNS = [str(t) for t in POLICY.column("township").categories]  # type: ignore[union-attr]
PER_TOWN = 3_000  # 60,000 rows: 600 morsels of 100
RELEASES = 100  # x 20 towns: 2,000 draws of each part
QUERY = "SELECT township, COUNT(*) AS n, SUM(income) AS total FROM residents GROUP BY township"


def residents() -> pl.DataFrame:
    rng = np.random.default_rng(20_261_207)
    n = PER_TOWN * len(TOWNS)
    return pl.DataFrame({
        "person_id": [f"P{i}" for i in range(n)], "household_id": [f"H{i // 3}" for i in range(n)],
        # Towns interleaved row by row: every morsel holds a little of every group.
        "township": [TOWNS[i % len(TOWNS)] for i in range(n)], "age": rng.integers(0, 111, n),
        "sex": rng.choice(["F", "M"], n), "education": "college", "industry": "A",
        "employment_status": "employed", "income": np.round(rng.lognormal(10.3, 0.8, n), 0),
    })


@pytest.fixture(scope="module")
async def streaming_box(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Sandbox, pl.DataFrame]]:
    mp = pytest.MonkeyPatch()
    mp.setenv("POLARS_IDEAL_MORSEL_SIZE", "100")  # read by the spawned worker's polars
    folder = tmp_path_factory.mktemp("streaming")
    frame = residents()
    frame.write_parquet(folder / "residents.parquet")
    box = Sandbox(workers=1, timeout_seconds=60, memory_mb=4096, cache_dir=folder / "cache", streaming=True)
    try:
        await box.start()
        await box.load("residents", POLICY, folder / "residents.parquet", "streaming-1")
        yield box, frame
    finally:
        await box.close()
        mp.undo()


def scales(checked: CheckedPlan) -> dict[str, tuple[str, float]]:
    summary = summarize_polars_measurement(compiler.compile_plan(checked).measurement, 0.05)
    return {r["column"]: (r["distribution"], r["scale"]) for r in summary.iter_rows(named=True)}


async def test_noise_is_drawn_once_per_cell_across_morsels(streaming_box: tuple[Sandbox, pl.DataFrame]) -> None:
    box, frame = streaming_box
    checked = check_plan(parse_sql(QUERY, epsilon=Decimal(1)), POLICY)
    low, high = frames.bounds(POLICY.column("income"))  # type: ignore[arg-type]
    exact = {r["township"]: (r["n"], r["total"]) for r in frame.group_by("township").agg(
        pl.len().alias("n"), pl.col("income").clip(low, high).sum().alias("total")).iter_rows(named=True)}
    count_errors, sum_errors = [], []
    for _ in range(RELEASES):
        release = await box.release(checked)
        assert release.columns == ("township", "count(*)", "sum(income)")
        for town, n, total in release.rows:
            count_errors.append(n - exact[str(town)][0])
            sum_errors.append(total - exact[str(town)][1])
    for part, errors in (("count(*)", count_errors), ("sum(income)", sum_errors)):
        kind, scale = scales(checked)[part]
        assert_matches_reported_scale(kind, np.array(errors, dtype=float), scale)


def test_the_setting_chooses_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenDP's polars reads the engine from the worker's environment at each collect."""
    monkeypatch.delenv("POLARS_AUTO_NEW_STREAMING", raising=False)
    use_engine(True)
    assert os.environ["POLARS_AUTO_NEW_STREAMING"] == "1"
    use_engine(False)
    assert "POLARS_AUTO_NEW_STREAMING" not in os.environ
