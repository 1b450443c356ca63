"""Compiling checked plans into OpenDP measurements: cost, split, accuracy, features; no data."""

from __future__ import annotations

import time
from decimal import Decimal

import opendp.prelude as dp
import polars as pl
import pytest

from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.sql import parse_sql
from gateway.dp import compile as compiler
from gateway.dp import frames
from gateway.dp.calibrate import CalibrationError, calibrate
from gateway.dp.release import run
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())


def checked(sql: str, epsilon: str = "1", delta: str = "0") -> CheckedPlan:
    plan = parse_sql(sql, epsilon=Decimal(epsilon), delta=Decimal(delta))
    return check_plan(plan, POLICIES[plan.dataset])


def scales(plan: CheckedPlan) -> dict[str, float]:
    summary = dp.summarize_polars_measurement(compiler.compile_plan(plan).measurement)
    return dict(zip(summary["column"].to_list(), summary["scale"].to_list(), strict=True))


@pytest.mark.parametrize(("sql", "epsilon", "delta"), [
    ("SELECT township, COUNT(*), AVG(income) FROM residents WHERE age >= 18 GROUP BY township", "1", "0"),
    ("SELECT COUNT(*), MEDIAN(age), QUANTILE(income, 0.9), SUM(income) FROM residents", "0.3", "0"),
    ("SELECT month, COUNT(*), AVG(contribution_base) FROM social_insurance GROUP BY month", "0.5", "0"),
    ("SELECT township, vehicle_type, SUM(value) FROM vehicles WHERE insured GROUP BY township, vehicle_type",
     "0.7", "1e-8"),
])
def test_the_privacy_map_proves_the_charge_and_wastes_little(sql: str, epsilon: str, delta: str) -> None:
    """R-DP-02: the charge comes from plan and policy; OpenDP's map never exceeds it."""
    plan = checked(sql, epsilon, delta)
    cost = compiler.cost(plan)
    assert cost.epsilon_nano == plan.epsilon_nano
    assert Decimal(cost.mechanism_epsilon) <= Decimal(epsilon)
    assert cost.mechanism_epsilon > 0.999 * float(epsilon)
    assert Decimal(cost.mechanism_delta) <= Decimal(delta)
    assert (cost.threshold is not None) == (plan.keys == "private")


def test_epsilon_is_split_evenly_over_the_noisy_parts() -> None:
    """The mean reads SUM(age)'s draw and COUNT(*)'s: two parts, half of epsilon each."""
    plan = checked("SELECT COUNT(*), SUM(age), AVG(age) FROM residents", "1")
    assert scales(plan) == pytest.approx({"count(*)": 2.0, "sum(age)": 220.0}, rel=1e-6)


def test_several_rows_per_person_scale_the_noise_by_the_truncation_bound() -> None:
    """R-DP-07: social insurance keeps at most 12 rows per person, so a count moves by 12."""
    plan = checked("SELECT COUNT(*) FROM social_insurance", "0.5")
    assert scales(plan)["count(*)"] == pytest.approx(24.0, rel=1e-6)


def test_a_smaller_delta_needs_a_higher_threshold() -> None:
    sql = "SELECT township, COUNT(*) FROM vehicles GROUP BY township"
    loose, strict = compiler.cost(checked(sql, "1", "1e-8")), compiler.cost(checked(sql, "1", "1e-10"))
    assert loose.threshold is not None and strict.threshold is not None
    assert strict.threshold > loose.threshold > 0


def test_accuracy_comes_from_the_scales_without_data() -> None:
    plan = checked("SELECT township, COUNT(*) AS n, AVG(income) AS m, MEDIAN(age) FROM residents GROUP BY township")
    accuracy = compiler.accuracy(plan, alpha=0.05)
    expected = dp.discrete_laplacian_scale_to_accuracy(scale=scales(plan)["count(*)"], alpha=0.05)
    assert accuracy == {"count(*)": pytest.approx(expected), "mean(income)": None, "median(age)": None}
    figures = compiler.preview_figures(plan)
    assert figures["accuracy"]["columns"] == {"n": pytest.approx(expected), "m": None, "median(age)": None}
    assert (figures["epsilon"], figures["delta"], figures["threshold"]) == (1.0, 0.0, None)


def test_compiling_is_cheap_and_cached() -> None:
    plan = checked("SELECT township, sex, COUNT(*), AVG(income) FROM residents GROUP BY township, sex", "0.8")
    started = time.perf_counter()
    compiler.cost(plan)
    first = time.perf_counter() - started
    started = time.perf_counter()
    compiler.cost(plan)
    again = time.perf_counter() - started
    assert first < 1.0, "computing scales directly must beat resolve()'s thousand builds"
    assert again < first / 10


def test_the_query_plan_holds_no_data() -> None:
    plan = checked("SELECT township, COUNT(*) FROM residents WHERE age > 3 GROUP BY township")
    polars_plan = compiler.query_plan(plan, (1.0,))
    assert polars_plan.collect_schema().names() == ["township", "count(*)"]
    assert "DF [" in polars_plan.explain(optimized=False) or "DataFrameScan" in polars_plan.explain()


def test_public_keys_come_out_complete_in_declared_order() -> None:
    """R-DP-06 (a): exactly the declared keys, empty groups as noisy zeros."""
    plan = checked("SELECT sex, education, COUNT(*) FROM residents WHERE township = 'Lingxi' "
                   "GROUP BY sex, education")
    rows = pl.DataFrame({"person_id": ["p1", "p2"], "household_id": ["h", "h"],
                         "township": ["Lingxi", "Lingxi"], "age": [30, 40], "sex": ["F", "X"],
                         "education": ["college", "college"], "industry": ["A", "B"],
                         "employment_status": ["employed", "employed"], "income": [1.0, 2.0]})
    schema = frames.storage_schema(POLICIES["residents"])
    typed = rows.select([pl.col(n).cast(t, strict=False) for n, t in schema.items()])
    release = run(plan, compiler.compile_plan(plan), typed.lazy(), "snap")
    assert release.columns == ("education", "sex", "count(*)")
    education = POLICIES["residents"].column("education").categories  # type: ignore[union-attr]
    assert [r[:2] for r in release.rows] == [(e, s) for e in education for s in ("F", "M")]  # type: ignore[union-attr]


def test_only_the_contrib_feature_may_be_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """R-DP-01: the engine refuses to run with any other OpenDP feature, or another library."""
    compiler.assert_features_safe()
    for feature in ("honest-but-curious", "idealized-numerics"):
        dp.enable_features(feature)
        try:
            with pytest.raises(RuntimeError, match=feature):
                compiler.assert_features_safe()
        finally:
            dp.disable_features(feature)
    monkeypatch.setenv("OPENDP_LIB_DIR", "/tmp/elsewhere")
    with pytest.raises(RuntimeError, match="OPENDP_LIB_DIR"):
        compiler.assert_features_safe()


def _laplace_pair(scales: tuple[float, ...], threshold: int | None) -> object:
    space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    return dp.c.make_composition([dp.m.make_laplace(*space, scale=s) for s in scales])


def test_calibrate_gives_each_part_its_share_and_proves_the_total() -> None:
    result = calibrate(_laplace_pair, [Decimal("0.25"), Decimal("0.5")], 1)
    assert result.scales == pytest.approx((4.0, 2.0), rel=1e-9)
    assert Decimal(result.epsilon) <= Decimal("0.75")


def test_calibrate_refuses_a_measurement_whose_loss_ignores_the_scale() -> None:
    def constant(scales: tuple[float, ...], threshold: int | None) -> object:
        return _laplace_pair((1.0,) * len(scales), threshold)

    with pytest.raises(CalibrationError):
        calibrate(constant, [Decimal("0.5"), Decimal("0.5")], 1)
