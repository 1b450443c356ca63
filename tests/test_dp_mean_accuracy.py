"""A grouped mean's interval, row by row (issue 11, point 7): honest and not wider than needed.

A release carries, beside the widest half-width per column (`Release.accuracy`, as before),
one half-width per row and aggregate (`Release.row_accuracy`). A mean's is built from its
noisy sum and noisy count (each at alpha / 2, a union bound), so it is narrow where a group
is big and the whole span where the noisy count is too small to bound anything.

Coverage is measured: the query is released many times on a frame whose group means are
known, and in every group the share of releases whose interval holds the true mean must be
at least 1 - alpha, up to the binomial tail: a check fails a correct engine with probability
below 1e-8, and there are fewer than 30 of them. The same check must fail for intervals a
quarter as wide, so that it could catch intervals that are too narrow.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from gateway.core.checks import check_plan
from gateway.core.policy import DatasetPolicy
from gateway.core.sql import parse_sql
from gateway.dp import compile as compiler
from gateway.dp import frames
from gateway.dp.release import run
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
ALPHA = 0.05
RELEASES = 300
PER_CHECK = 1e-8
TOWNS = [str(t) for t in POLICIES["residents"].column("township").categories]  # type: ignore[union-attr]
MONTHS = [str(m) for m in POLICIES["social_insurance"].column("month").categories]  # type: ignore[union-attr]
SIZES = [0, 1, 4, 15, 40, 120, 400, 1200, 4000]  # people per group; the first group is empty


def _residents(rng: np.random.Generator) -> pl.DataFrame:
    town = [TOWNS[g] for g, n in enumerate(SIZES) for _ in range(n)]
    n = len(town)
    return pl.DataFrame({
        "person_id": [f"P{i}" for i in range(n)], "household_id": [f"H{i}" for i in range(n)],
        "township": town, "age": rng.integers(0, 111, n), "sex": "F", "education": "college",
        "industry": "A", "employment_status": "employed", "income": np.round(rng.lognormal(10.3, 0.8, n), 0),
    })


def _social_insurance(rng: np.random.Generator) -> pl.DataFrame:
    """Several rows per person: person p of group g pays in month g and in up to eleven others."""
    person, month = [], []
    for g, n in enumerate(SIZES):
        for p in range(n):
            extra = rng.choice([m for m in range(len(SIZES), 12)], int(rng.integers(0, 4)), replace=False)
            for m in (g, *extra):
                person.append(f"G{g}-{p}")
                month.append(MONTHS[m])
    n = len(person)
    return pl.DataFrame({"person_id": person, "month": month,
                         "contribution_base": np.round(rng.uniform(2000, 30000, n), 0), "employer_industry": "A"})


CASES: dict[str, tuple[DatasetPolicy, Any, str, str, str]] = {
    "one-row-per-person": (POLICIES["residents"], _residents, "township", "income", "1"),
    "several-rows-per-person": (POLICIES["social_insurance"], _social_insurance, "month", "contribution_base", "1"),
}


def most_misses(trials: int) -> int:
    return int(stats.binom.isf(PER_CHECK, trials, ALPHA))


@pytest.mark.parametrize("case", list(CASES))
def test_a_grouped_mean_reports_an_honest_interval_per_row(case: str, tmp_path: Path) -> None:
    policy, make, key, column, epsilon = CASES[case]
    frame = make(np.random.default_rng(7_011)).select(
        [pl.col(n).cast(t, strict=False) for n, t in frames.storage_schema(policy).items()])
    path = tmp_path / "frame.arrow"
    frame.write_ipc(path)
    truth = dict(frame.group_by(key).agg(pl.col(column).mean()).select(
        pl.col(key).cast(pl.String), column).iter_rows())
    sql = f"SELECT {key}, AVG({column}) FROM {policy.dataset} GROUP BY {key}"
    plan = check_plan(parse_sql(sql, epsilon=Decimal(epsilon)), policy)
    compiled = compiler.compile_plan(plan)
    label = f"mean({column})"
    low, high = frames.bounds(policy.column(column))  # type: ignore[arg-type]
    misses = {k: 0 for k in truth}
    narrow_misses = {k: 0 for k in truth}
    widths: dict[str, list[float]] = {k: [] for k in truth}
    for _ in range(RELEASES):
        release = run(plan, compiled, pl.scan_ipc(path, memory_map=True), "s", ALPHA)
        assert len(release.row_accuracy) == len(release.rows)
        index = release.columns.index(label)
        row_widths = [acc[label] for acc in release.row_accuracy]
        assert release.accuracy[label] == max(row_widths), "the column keeps the widest row's"
        for row, width in zip(release.rows, row_widths, strict=True):
            assert width is not None and 0 < width <= high - low
            if row[0] not in truth:
                continue
            error = abs(row[index] - truth[row[0]]) if row[index] is not None else high - low
            misses[row[0]] += error > width
            narrow_misses[row[0]] += error > width / 4
            widths[row[0]].append(width)
    for group in truth:
        assert misses[group] <= most_misses(RELEASES), f"{group}: the interval missed {misses[group]} times"
    assert any(narrow_misses[g] > most_misses(RELEASES) for g in truth), "a quarter-width interval must fail"
    biggest = max(truth, key=lambda g: frame.filter(pl.col(key).cast(pl.String) == g).height)
    assert np.median(widths[biggest]) < (high - low) / 20, "a big group's interval is narrow"
    assert max(max(w) for w in widths.values()) == high - low, "a one-person group's is the whole span"
