"""The plan's canonical form and hash: spelling never changes it, meaning always does."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.checks import check_plan
from gateway.core.plan import Aggregate, OrderKey, Output, Plan, render
from gateway.core.sql import parse_json_plan, parse_sql
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
BASE = ("SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
        "WHERE age >= 18 AND sex = 'F' GROUP BY township")


def fingerprint(sql: str, epsilon: str = "1", delta: str = "0") -> str:
    return parse_sql(sql, epsilon=Decimal(epsilon), delta=Decimal(delta)).fingerprint()


def checked_fingerprint(sql: str, epsilon: str = "1") -> str:
    plan = parse_sql(sql, epsilon=Decimal(epsilon))
    return check_plan(plan, POLICIES[plan.dataset]).fingerprint()


@pytest.mark.parametrize("variant", [
    "select township, count(*) as n, avg(income) as mean_income from residents "
    "where age >= 18 and sex = 'F' group by township",
    "SELECT\n  township,\n  COUNT(*) AS n,\n  AVG(income) AS mean_income\nFROM residents\n"
    "WHERE sex = 'F'\n  AND age >= 18\nGROUP BY township",
    "SELECT AVG(income) AS average, township AS town, COUNT(*) FROM residents "
    "WHERE (sex = 'F') AND (18 <= age) GROUP BY township ORDER BY average DESC LIMIT 3",
    "SELECT township, COUNT(*), AVG(income) FROM residents r WHERE r.age >= 18.0 AND r.sex = 'F' "
    "AND age >= 18 GROUP BY 1",
    "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
    "WHERE NOT NOT (age >= 18 AND sex = 'F') GROUP BY township",
])
def test_spelling_does_not_change_the_fingerprint(variant: str) -> None:
    assert fingerprint(variant) == fingerprint(BASE)


@pytest.mark.parametrize("variant", [
    BASE.replace("age >= 18", "age > 18"),
    BASE.replace("'F'", "'M'"),
    BASE.replace(" AND ", " OR "),
    BASE.replace("AVG(income)", "SUM(income)"),
    BASE.replace("GROUP BY township", "GROUP BY township, sex").replace("SELECT township", "SELECT township, sex"),
    BASE.replace("COUNT(*) AS n, ", ""),
])
def test_meaning_changes_the_fingerprint(variant: str) -> None:
    assert fingerprint(variant) != fingerprint(BASE)


def test_epsilon_and_delta_are_part_of_the_fingerprint() -> None:
    assert fingerprint(BASE, "1") != fingerprint(BASE, "0.5")
    assert fingerprint(BASE, "1") == fingerprint(BASE, "1.000")
    assert fingerprint(BASE, delta="1e-8") != fingerprint(BASE)


def test_literal_spelling_is_normalized_by_column_type_once_checked() -> None:
    spellings = [BASE, BASE.replace("18", "18.0"), BASE.replace("18", "'18'"), BASE.replace("18", "1.8e1")]
    assert len({checked_fingerprint(s) for s in spellings}) == 1


def test_in_lists_are_sets() -> None:
    one = "SELECT COUNT(*) FROM residents WHERE township IN ('Lingxi', 'Baishi')"
    two = "SELECT COUNT(*) FROM residents WHERE township IN ('Baishi', 'Lingxi', 'Baishi')"
    assert fingerprint(one) == fingerprint(two)


def test_json_plan_and_sql_share_one_canonical_form() -> None:
    plan = parse_json_plan({
        "dataset": "residents",
        "select": [{"column": "township"}, {"aggregate": "count", "as": "n"},
                   {"aggregate": "avg", "column": "income", "as": "mean_income"}],
        "group_by": ["township"],
        "where": {"and": [{"column": "sex", "op": "=", "value": "F"},
                          {"column": "age", "op": ">=", "value": 18}]},
    }, epsilon=Decimal(1))
    assert plan.fingerprint() == fingerprint(BASE)


@settings(max_examples=60, deadline=None)
@given(st.permutations(["age >= 18", "sex = 'F'", "township IN ('Lingxi', 'Baishi')",
                        "(education = 'primary' OR education = 'college')", "NOT income BETWEEN 1 AND 2"]))
def test_and_terms_commute(terms: list[str]) -> None:
    reference = "SELECT COUNT(*) FROM residents WHERE age >= 18 AND sex = 'F' AND township IN " \
                "('Lingxi', 'Baishi') AND (education = 'primary' OR education = 'college') " \
                "AND NOT income BETWEEN 1 AND 2"
    assert fingerprint("SELECT COUNT(*) FROM residents WHERE " + " AND ".join(terms)) == fingerprint(reference)


def test_canonical_form_is_json_and_drops_presentation() -> None:
    plan = parse_sql(BASE + " ORDER BY n DESC LIMIT 5", epsilon=Decimal("0.5"))
    canonical = plan.canonical()
    assert json.loads(json.dumps(canonical)) == canonical
    assert set(canonical) == {"dataset", "group_by", "aggregates", "where", "epsilon", "delta"}
    assert canonical["epsilon"] == "0.5"
    assert plan.release_columns == ("township", "count(*)", "mean(income)")


def _plan_for_render() -> Plan:
    count, mean = Aggregate("count"), Aggregate("mean", "income")
    return Plan(dataset="residents",
                select=(Output("m", aggregate=mean), Output("t", key="township"), Output("n", aggregate=count)),
                group_by=("township",), aggregates=(mean, count), where=None,
                order_by=(OrderKey("m", descending=True), OrderKey("t")), limit=3)


def test_render_applies_aliases_select_order_order_by_and_limit() -> None:
    release_columns = ("township", "count(*)", "mean(income)")
    rows = [("A", 10, 5.0), ("B", 12, None), ("C", 7, 9.5), ("D", 3, 5.0)]
    columns, out = render(_plan_for_render(), release_columns, rows)
    assert columns == ("m", "t", "n")
    assert out == ((9.5, "C", 7), (5.0, "A", 10), (5.0, "D", 3))  # ties by t, nulls last


def test_render_without_order_keeps_the_release_order() -> None:
    plan = parse_sql("SELECT COUNT(*) AS n, township FROM residents GROUP BY township", epsilon=Decimal(1))
    columns, rows = render(plan, ("township", "count(*)"), [("A", 1), ("B", 2)])
    assert columns == ("n", "township") and rows == ((1, "A"), (2, "B"))
