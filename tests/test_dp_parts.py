"""Noisy parts: each distinct quantity drawn and charged once (issue 11, point 7), and never
two parts sharing a draw (point 1; see gateway/dp/draws.py).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import opendp.prelude as dp
import polars as pl
import pytest
from opendp.mod import GLOBAL_FEATURES

from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.policy import DatasetPolicy
from gateway.core.sql import parse_sql
from gateway.dp import compile as compiler
from gateway.dp import frames
from gateway.dp.release import draw, run
from tests.test_dp_draws import POLICIES, RESIDENTS_PRIVATE, TOWNS, _ipc, _residents

# A plugin call (noise, noisy max, ...) that polars' CSE computed once for several uses.
MERGED_DRAW = re.compile(r'_plugin\(\)\.alias\("__POLARS_CSER_')


def checked(sql: str, epsilon: str = "1", delta: str = "0", policy: DatasetPolicy | None = None) -> CheckedPlan:
    plan = parse_sql(sql, epsilon=Decimal(epsilon), delta=Decimal(delta))
    return check_plan(plan, policy or POLICIES[plan.dataset])


def scales(plan: CheckedPlan) -> dict[str, float]:
    summary = dp.summarize_polars_measurement(compiler.compile_plan(plan).measurement)
    return dict(zip(summary["column"].to_list(), summary["scale"].to_list(), strict=True))


def placeholder(plan: CheckedPlan) -> pl.LazyFrame:
    return pl.LazyFrame(schema=frames.storage_schema(plan.policy))


def optimized_with_cse(plan: CheckedPlan) -> str:
    """The release plan as polars' defaults (OpenDP's own collect) run it. Reading a plan needs
    `honest-but-curious`: this test turns it on to inspect, never the engine."""
    once = compiler.compile_plan(plan).measurement(placeholder(plan))
    dp.enable_features("honest-but-curious")
    try:
        return str(once.lazy().explain())
    finally:
        dp.disable_features("honest-but-curious")


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT SUM(age), AVG(age) FROM residents", {"sum(age)": 220.0, "count(*)": 2.0}),
    ("SELECT township, SUM(income), AVG(income), COUNT(*) FROM residents GROUP BY township",
     {"sum(income)": "SELECT township, SUM(income) FROM residents GROUP BY township", "count(*)": 2.0}),
    ("SELECT MEDIAN(age), QUANTILE(age, 0.5), SUM(age) FROM residents",
     {"quantile(age, 0.5)": None, "sum(age)": 220.0}),
])
def test_a_part_read_twice_is_drawn_and_charged_once(sql: str, expected: dict[str, float | str | None]) -> None:
    """A mean's sum that a SUM also asks for, its COUNT(*), a median asked as a quantile: one
    draw each, and epsilon split over the draws, so the map proves the whole charge spent.
    (A float sum's scale carries OpenDP's rounding slack: it is the scale of that sum alone at
    half the epsilon.)"""
    plan = checked(sql)
    assert len(plan.epsilon_split) == len(expected)
    found = scales(plan)
    assert set(found) == set(expected)
    for part, scale in expected.items():
        if isinstance(scale, str):
            scale = scales(checked(scale, "0.5"))[part]
        if scale is not None:
            assert found[part] == pytest.approx(scale, rel=1e-9)
    cost = compiler.cost(plan)
    assert cost.epsilon_nano == plan.epsilon_nano
    assert 0.999 < cost.mechanism_epsilon <= 1.0


def test_a_mean_is_its_sums_draw_over_the_counts(tmp_path: Path) -> None:
    plan = checked("SELECT township, COUNT(*), SUM(age), AVG(age) FROM residents GROUP BY township")
    frame = _residents(np.random.default_rng(5), TOWNS[:3], 30)
    path = _ipc(plan.policy, frame, tmp_path)
    release = run(plan, compiler.compile_plan(plan), pl.scan_ipc(path), "s")
    assert release.columns == ("township", "count(*)", "sum(age)", "mean(age)")
    for _, count, total, mean in release.rows:
        assert mean == (min(max(total / count, 0), 110) if count > 0 else None)


PLANS = [
    ("SELECT township, COUNT(*), COUNT(age), COUNT(income), SUM(age), SUM(income), AVG(income) FROM residents "
     "GROUP BY township", "0", None),
    ("SELECT COUNT(*), COUNT(age), COUNT(income), SUM(age), AVG(age) FROM residents", "0", None),
    ("SELECT township, COUNT(*), COUNT(age), SUM(income) FROM residents GROUP BY township", "1e-8", RESIDENTS_PRIVATE),
    ("SELECT month, COUNT(*), COUNT(contribution_base), AVG(contribution_base) FROM social_insurance GROUP BY month",
     "0", None),
    ("SELECT township, COUNT(*), COUNT(value), COUNT(vehicle_age), SUM(value) FROM vehicles GROUP BY township",
     "1e-8", None),
    ("SELECT township, MEDIAN(age), QUANTILE(age, 0.25), QUANTILE(age, 0.75), COUNT(*), COUNT(age) FROM residents "
     "GROUP BY township", "0", None),
    ("SELECT township, insured, MEDIAN(vehicle_age), QUANTILE(value, 0.9), COUNT(*) FROM vehicles "
     "GROUP BY township, insured", "1e-8", None),
]


@pytest.mark.parametrize(("sql", "delta", "policy"), PLANS)
def test_no_two_noise_expressions_are_alike(sql: str, delta: str, policy: DatasetPolicy | None) -> None:
    """Defence 1: pairwise distinct scales, so even polars' defaults merge no draw."""
    plan = checked(sql, "0.7", delta, policy)
    found = scales(plan)
    assert len(set(found.values())) == len(found), found
    compiled = compiler.compile_plan(plan)
    if any(p.func == "quantile" for p in compiled.parts):
        return  # OpenDP does not show plans with quantiles (opaque functions): the scales must do
    assert not MERGED_DRAW.search(optimized_with_cse(plan))


def test_a_release_leaves_no_opendp_feature_but_contrib_on(tmp_path: Path) -> None:
    """R-DP-01: releases are collected by OpenDP itself; `honest-but-curious` is never enabled."""
    plan = checked("SELECT township, COUNT(*), COUNT(age) FROM residents GROUP BY township")
    frame = _residents(np.random.default_rng(9), TOWNS[:2], 20)
    draw(compiler.compile_plan(plan), pl.scan_ipc(_ipc(plan.policy, frame, tmp_path)))
    assert "honest-but-curious" not in GLOBAL_FEATURES
    compiler.assert_features_safe()


def test_a_swapped_plugin_library_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan names the library whose plugins draw the noise; OpenDP lets this variable swap it."""
    monkeypatch.setenv("OPENDP_POLARS_LIB_PATH", "/tmp/elsewhere.so")
    with pytest.raises(RuntimeError, match="OPENDP_POLARS_LIB_PATH"):
        compiler.assert_features_safe()
