"""The cost model of one query (issue 19 points 1-2): terms, aggregates x groups, quantile candidates."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.core.checks import check_plan
from gateway.core.cost import CostExceeded, CostLimits, check_cost, predicate_terms, query_cost
from gateway.core.jsonplan import parse_json_plan
from gateway.core.sql import parse_sql
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
DEFAULTS = CostLimits(terms=128, cells=4000, quantile_candidates=100_000)


def checked(sql: str, delta: str = "0"):  # type: ignore[no-untyped-def]
    plan = parse_sql(sql, epsilon=Decimal("1"), delta=Decimal(delta))
    return check_plan(plan, POLICIES[plan.dataset])


def probe_plan(terms: int, quantiles: int) -> dict:  # type: ignore[type-arg]
    """The probe's preview: ~1,100 OR-ed terms, 16 quantiles over township x sex x education."""
    where = {"or": [{"column": "age", "op": "=", "value": n % 110} for n in range(terms)]}
    select = [{"column": k} for k in ("township", "sex", "education")] + [
        {"aggregate": "quantile", "column": "income", "q": round(0.05 * (i + 1), 2)} for i in range(quantiles)]
    return {"select": select, "group_by": ["township", "sex", "education"], "where": where}


def test_terms_count_every_node_of_the_where_tree() -> None:
    plan = checked("SELECT COUNT(*) FROM residents WHERE age > 3 AND (sex = 'F' OR NOT township IN ('Lingxi'))").plan
    assert predicate_terms(plan.where) == 5  # AND, >, OR, =, NOT IN (one node)
    assert predicate_terms(None) == 0


def test_cost_counts_parts_groups_and_candidates_from_plan_and_policy() -> None:
    cost = query_cost(checked("SELECT township, sex, COUNT(*), AVG(income), MEDIAN(income) FROM residents "
                              "GROUP BY township, sex"))
    assert (cost.parts, cost.groups) == (3, 40)  # COUNT(*), the mean's sum, the median
    assert cost.cells == 120
    assert cost.quantile_candidates == 201 * 40  # income declares 201 candidates


def test_ordinary_questions_pass_the_default_limits() -> None:
    for sql in ("SELECT township, COUNT(*) AS n, AVG(income) FROM residents WHERE age >= 18 GROUP BY township",
                "SELECT township, sex, education, COUNT(*) FROM residents GROUP BY township, sex, education",
                "SELECT township, MEDIAN(income), QUANTILE(income, 0.9) FROM residents GROUP BY township"):
        check_cost(checked(sql), DEFAULTS)


def test_the_probes_preview_is_refused_naming_each_limit_and_where() -> None:
    plan = parse_json_plan(probe_plan(1100, 16), epsilon=Decimal("0.01"), dataset="residents")
    with pytest.raises(CostExceeded) as refused:
        check_cost(check_plan(plan, POLICIES["residents"]), DEFAULTS)
    problem = refused.value.problem()
    assert refused.value.status == 422 and problem["code"] == "policy_violation"
    limits = {item["limit"]: item for item in problem["limits"]}
    assert limits["max_query_terms"] == {"limit": "max_query_terms", "at": "where", "cost": 1101, "max": 128}
    assert limits["max_query_cells"]["cost"] == 16 * 320 and limits["max_query_cells"]["at"] == "select"
    assert limits["max_quantile_candidates"]["cost"] == 16 * 320 * 201
    assert len(problem["reasons"]) == 3 and "WHERE has 1101 terms" in problem["reasons"][0]


def test_private_keys_count_their_cells_like_public_ones() -> None:
    plan = parse_sql("SELECT township, vehicle_type, COUNT(*) FROM vehicles GROUP BY township, vehicle_type",
                     epsilon=Decimal("1"), delta=Decimal("1e-8"))
    checked_plan = check_plan(plan, POLICIES["vehicles"])
    assert checked_plan.keys == "private"
    assert query_cost(checked_plan).groups == 20 * 7
