"""Policy checks: every reason a plan is refused, all at once, before any data (R-DP-06, R-DP-09)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from gateway.core.budget import to_nano
from gateway.core.checks import COUNT_ALL, CheckedPlan, check_plan
from gateway.core.policy import DatasetPolicy
from gateway.core.sql import parse_sql
from gateway.errors import PolicyViolation
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())


def check(sql: str, epsilon: str = "1", delta: str = "0", policy: DatasetPolicy | None = None,
          grant: str | None = None) -> CheckedPlan:
    plan = parse_sql(sql, epsilon=Decimal(epsilon), delta=Decimal(delta))
    return check_plan(plan, policy or POLICIES[plan.dataset], Decimal(grant) if grant else None)


def reasons(sql: str, **kwargs: object) -> list[str]:
    with pytest.raises(PolicyViolation) as refused:
        check(sql, **kwargs)  # type: ignore[arg-type]
    assert refused.value.status == 422 and refused.value.code == "policy_violation"
    assert refused.value.problem()["reasons"] == list(refused.value.reasons)
    return list(refused.value.reasons)


def with_column(policy: DatasetPolicy, name: str, **changes: Any) -> DatasetPolicy:
    return replace(policy, columns=tuple(replace(c, **changes) if c.name == name else c for c in policy.columns))


def test_an_allowed_plan_is_checked_with_its_key_mode_and_split() -> None:
    checked = check("SELECT township, COUNT(*), AVG(income) FROM residents WHERE age >= 18 GROUP BY township",
                    epsilon="0.9")
    assert checked.keys == "public" and checked.cells == 20 and checked.important
    assert checked.epsilon_nano == to_nano("0.9")
    assert checked.epsilon_split == (450_000_000,) * 2  # the count, and the mean's sum (over that count)
    assert check("SELECT COUNT(*) FROM residents").keys == "none"


def test_the_split_never_exceeds_the_charge() -> None:
    checked = check("SELECT SUM(age), AVG(age), MEDIAN(age), QUANTILE(age, 0.9) FROM residents", epsilon="1")
    assert COUNT_ALL in checked.plan.aggregates  # a mean divides by the noisy row count
    # Four draws: the sum (also the mean's), the row count, the median and the 0.9 quantile.
    assert len(checked.epsilon_split) == 4 and len(set(checked.epsilon_split)) == 1
    assert sum(checked.epsilon_split) <= checked.epsilon_nano < sum(checked.epsilon_split) + 4


def test_hidden_and_core_columns_answer_like_unknown_ones() -> None:
    core = with_column(POLICIES["residents"], "income", classification="core", hidden=True)
    assert reasons("SELECT COUNT(*) FROM residents WHERE household_id = 'x'") == \
        ["unknown column 'household_id' in 'residents'"]
    assert reasons("SELECT SUM(person_id) FROM residents") == ["unknown column 'person_id' in 'residents'"]
    assert reasons("SELECT AVG(income) FROM residents", policy=core) == ["unknown column 'income' in 'residents'"]
    assert reasons("SELECT COUNT(*) FROM residents WHERE shoe_size = 4") == \
        ["unknown column 'shoe_size' in 'residents'"]


def test_a_core_dataset_and_a_wrong_dataset_are_refused() -> None:
    core = replace(POLICIES["residents"], classification="core")
    assert reasons("SELECT COUNT(*) FROM residents", policy=core) == \
        ["the dataset 'residents' holds core data and cannot be queried"]
    assert reasons("SELECT COUNT(*) FROM residents", policy=POLICIES["vehicles"]) == \
        ["the query reads 'residents', not 'vehicles'"]


def test_each_column_is_used_only_as_its_policy_allows() -> None:
    assert reasons("SELECT age, COUNT(*) FROM residents GROUP BY age") == ["column 'age' cannot be used in GROUP BY"]
    assert reasons("SELECT SUM(township) FROM residents") == ["column 'township' cannot be aggregated"]
    assert reasons("SELECT COUNT(*) FROM enterprises WHERE tax_paid > 0") == \
        ["column 'tax_paid' cannot be used in WHERE"]


def test_aggregates_must_be_in_the_policy_and_need_bounded_numbers() -> None:
    assert reasons("SELECT month, MEDIAN(contribution_base) FROM social_insurance GROUP BY month") == \
        ["MEDIAN is not allowed on 'social_insurance'"]
    text = with_column(POLICIES["residents"], "sex", aggregate=True)
    assert reasons("SELECT QUANTILE(sex, 0.5) FROM residents", policy=text) == \
        ["QUANTILE needs a numeric column with declared bounds; 'sex' is not one"]


def test_filter_literals_stay_inside_declared_domains() -> None:
    assert reasons("SELECT COUNT(*) FROM residents WHERE township IN ('Lingxi', 'Atlantis') "
                   "AND sex BETWEEN 'F' AND 'M' AND age = 'old' AND education < 'college'") == [
        "'Atlantis' is not one of the categories of column 'township'",
        "column 'sex' is compared only with =, != or IN, not BETWEEN",
        "'old' is not a valid integer for column 'age'",
        "column 'education' is compared only with =, != or IN",
    ]
    assert reasons("SELECT COUNT(*) FROM vehicles WHERE insured = 'perhaps'") == \
        ["'perhaps' is not a valid boolean for column 'insured'"]


def test_numeric_literals_outside_the_declared_bounds_are_refused_not_clamped() -> None:
    """Issue 11.8: a literal outside a column's bounds names no value the domain holds, so it is
    refused (422, before any spend) with the literal, the bounds and the column, never clamped."""
    assert reasons("SELECT COUNT(*) FROM residents WHERE age >= 200 OR income BETWEEN -5 AND 10") == [
        "200 is outside the bounds [0, 110] of column 'age'",
        "-5.0 is outside the bounds [0, 2000000] of column 'income'",
    ]
    assert reasons("SELECT COUNT(*) FROM vehicles WHERE vehicle_age IN (1, 31) AND NOT value != 1e7") == [
        "31 is outside the bounds [0, 30] of column 'vehicle_age'",
        "10000000.0 is outside the bounds [0, 1000000] of column 'value'",
    ]
    at_the_edges = check("SELECT COUNT(*) FROM residents WHERE age BETWEEN 0 AND 110 AND income <= 2000000")
    assert at_the_edges.plan.where is not None


def test_public_keys_need_categories_and_private_keys_need_the_policy_and_a_delta() -> None:
    uncategorized = with_column(POLICIES["vehicles"], "vehicle_type", categories=None)
    assert reasons("SELECT vehicle_type, COUNT(*) FROM vehicles GROUP BY vehicle_type", policy=uncategorized) == [
        "column 'vehicle_type' has no public categories; grouping by it needs private keys, a delta "
        "and a policy that allows them"]
    private = check("SELECT vehicle_type, AVG(value) FROM vehicles GROUP BY vehicle_type", delta="1e-8",
                    policy=uncategorized)
    assert private.keys == "private" and private.cells is None
    assert COUNT_ALL in private.plan.aggregates and len(private.epsilon_split) == 2  # the threshold's count
    assert reasons("SELECT township, COUNT(*) FROM residents GROUP BY township", delta="1e-9") == \
        ["'residents' does not release private group keys; send delta 0"]
    assert reasons("SELECT township, COUNT(*) FROM vehicles GROUP BY township", delta="1e-6") == \
        ["delta 0.000001 is above the policy's 1E-8"]
    assert reasons("SELECT COUNT(*) FROM vehicles", delta="1e-8") == \
        ["delta applies only to GROUP BY with private keys; send delta 0"]
    assert reasons("SELECT township, COUNT(*) FROM vehicles GROUP BY township", delta="1e-20") == \
        ["delta 1E-20 is below the smallest supported, 1E-12"]


def test_epsilon_must_fit_the_policy_the_important_limit_and_the_grant() -> None:
    assert reasons("SELECT COUNT(*) FROM residents", epsilon="0.001") == ["epsilon 0.001 is outside [0.01, 2.0]"]
    assert reasons("SELECT COUNT(*) FROM residents", epsilon="2.5") == ["epsilon 2.5 is outside [0.01, 2.0]"]
    assert reasons("SELECT AVG(income) FROM residents", epsilon="1.5") == \
        ["epsilon 1.5 is above 1.0, the limit for important data"]
    assert check("SELECT AVG(age) FROM residents", epsilon="1.5").important is False
    assert reasons("SELECT COUNT(*) FROM residents", grant="0.5") == \
        ["epsilon 1 is above your grant's limit of 0.5 per period"]
    important_dataset = POLICIES["social_insurance"]
    assert check("SELECT COUNT(*) FROM social_insurance", policy=important_dataset).important


def test_cells_are_limited_and_tighter_for_important_data() -> None:
    assert reasons("SELECT township, industry, education, COUNT(*) FROM residents "
                   "GROUP BY township, industry, education") == \
        ["the groups make 3360 cells, more than the 1000 allowed"]
    assert reasons("SELECT township, industry, AVG(income) FROM residents GROUP BY township, industry") == \
        ["the groups make 420 cells, more than the 400 allowed for important data"]
    no_grouping = replace(POLICIES["residents"], important_group_by=False)
    assert reasons("SELECT sex, AVG(income) FROM residents GROUP BY sex", policy=no_grouping) == \
        ["important data cannot be grouped on this dataset"]


def test_every_reason_is_listed_at_once() -> None:
    found = reasons("SELECT township, age, SUM(sex), MEDIAN(person_id) FROM residents "
                    "WHERE township = 'Atlantis' GROUP BY township, age", epsilon="9")
    assert found == [
        "unknown column 'person_id' in 'residents'",
        "column 'sex' cannot be aggregated",
        "column 'age' cannot be used in GROUP BY",
        "'Atlantis' is not one of the categories of column 'township'",
        "epsilon 9 is outside [0.01, 2.0]",
    ]


def test_checked_plans_hash_by_their_normalized_literals() -> None:
    plain = check("SELECT COUNT(*) FROM vehicles WHERE insured = TRUE AND value > 1000")
    spelled = check("SELECT COUNT(*) FROM vehicles WHERE insured = 'true' AND value > 1e3")
    assert plain.fingerprint() == spelled.fingerprint()
