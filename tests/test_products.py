"""Product templates: parameters typed and range-checked, bound as values into the plan (R-IN-05)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.checks import check_plan
from gateway.core.plan import Between, Compare, InList
from gateway.core.policy import DatasetPolicy
from gateway.core.products import (
    SLOT_PREFIX,
    Template,
    bind,
    draft_template,
    mark_slots,
    parse_parameters,
)
from gateway.core.sql import parse_sql
from gateway.core.twin import evaluate, twin_rows
from gateway.errors import InvalidQuery, InvalidRequest, PolicyViolation
from gateway.policyfiles import load_policies, shipped_policies_dir

SQL = ("SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
       "WHERE age BETWEEN :min_age AND :max_age AND sex = :sex GROUP BY township")
PARAMS = [{"name": "min_age", "type": "integer", "minimum": 18, "maximum": 100, "example": 25},
          {"name": "max_age", "type": "integer", "minimum": 18, "maximum": 110, "default": 60},
          {"name": "sex", "type": "string"}]


@pytest.fixture(scope="module")
def policies() -> dict[str, DatasetPolicy]:
    return load_policies(shipped_policies_dir())


@pytest.fixture(scope="module")
def template(policies: dict[str, DatasetPolicy]) -> Template:
    return draft_template(SQL, parse_parameters(PARAMS), epsilon=Decimal("0.5"), delta=Decimal(0),
                          policy=policies["residents"])


def test_slots_are_found_by_token_not_by_text() -> None:
    marked, names = mark_slots("SELECT COUNT(*) FROM t WHERE a = :x AND b = ':y' AND c IN (:z, :x)")
    assert names == ("x", "z", "x")
    assert "':y'" in marked and f"'{SLOT_PREFIX}x'" in marked and "= :x" not in marked


def test_draft_completes_parameters_from_the_policy(template: Template) -> None:
    sex = template.parameter("sex")
    assert sex is not None and sex.allowed == ("F", "M") and sex.example == "F"
    assert template.parameter("max_age").example == 60  # type: ignore[union-attr]
    assert template.example_values() == {"min_age": 25, "max_age": 60, "sex": "F"}


def test_bound_plan_equals_the_same_query_written_with_literals(template: Template) -> None:
    bound = bind(template, {"min_age": 30, "max_age": 40, "sex": "M"})
    literal = parse_sql(SQL.replace(":min_age", "30").replace(":max_age", "40").replace(":sex", "'M'"),
                        epsilon=Decimal("0.5"))
    assert bound == literal and bound.fingerprint() == literal.fingerprint()


@settings(deadline=None)
@given(st.integers(18, 100), st.integers(18, 110), st.sampled_from(["F", "M"]))
def test_any_valid_binding_passes_the_policy(template: Template, policies: dict[str, DatasetPolicy],
                                             lo: int, hi: int, sex: str) -> None:
    policy = policies["residents"]
    plan = bind(template, {"min_age": lo, "max_age": hi, "sex": sex})
    check_plan(plan, policy)
    assert SLOT_PREFIX not in repr(plan)


@pytest.mark.parametrize(("values", "message"), [
    ({"min_age": "25", "sex": "F"}, "must be an integer"),
    ({"min_age": True, "sex": "F"}, "must be an integer"),
    ({"min_age": 25.5, "sex": "F"}, "must be an integer"),
    ({"min_age": 17, "sex": "F"}, "at least 18"),
    ({"min_age": 25, "max_age": 111, "sex": "F"}, "at most 110"),
    ({"min_age": 25, "sex": "F' OR 1=1 --"}, "allowed values"),
    ({"min_age": 25, "sex": "F", "extra": 1}, "unknown parameter"),
    ({"sex": "F"}, "'min_age' is required"),
])
def test_bad_values_are_refused_before_anything_runs(template: Template, values: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        bind(template, values)


def test_a_value_is_a_literal_never_sql(policies: dict[str, DatasetPolicy]) -> None:
    # Even a parameter whose allowed values hold SQL-looking text binds it as one string value.
    nasty = "x') OR 1=1 --"
    params = parse_parameters([{"name": "t", "type": "string", "allowed": ["Lingxi", nasty]}])
    sql = "SELECT COUNT(*) AS n FROM residents WHERE township = :t"
    with pytest.raises(PolicyViolation, match="not a category"):
        draft_template(sql, params, epsilon=Decimal("0.1"), delta=Decimal(0), policy=policies["residents"])
    tpl = draft_template(sql, parse_parameters([{"name": "t", "type": "string"}]), epsilon=Decimal("0.1"),
                         delta=Decimal(0), policy=policies["residents"])
    with pytest.raises(InvalidRequest):
        bind(tpl, {"t": nasty})
    plan = bind(tpl, {"t": "Lingxi"})
    assert plan.where == Compare("township", "=", "Lingxi")


@pytest.mark.parametrize(("spec", "message"), [
    ([{"name": "Bad-Name", "type": "integer"}], "name must match"),
    ([{"name": "a", "type": "date"}], "type must be one of"),
    ([{"name": "a", "type": "integer", "minimum": 5, "maximum": 1}], "minimum is above maximum"),
    ([{"name": "a", "type": "integer", "minimum": 0, "maximum": 9, "default": 10}], "default"),
    ([{"name": "a", "type": "string", "minimum": 1}], "only for numeric"),
    ([{"name": "a", "type": "integer", "allowed": [1, "2"]}], "not an integer"),
    ([{"name": "a", "type": "integer", "sql": "x"}], "unknown field"),
    ([{"name": "a", "type": "integer"}, {"name": "a", "type": "integer"}], "unique"),
    ("not a list", "must be a list"),
])
def test_bad_declarations_are_refused(spec: object, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_parameters(spec)


@pytest.mark.parametrize(("sql", "params", "error", "message"), [
    ("SELECT COUNT(*) AS n FROM residents WHERE age > :a", [], InvalidRequest, "undeclared"),
    ("SELECT COUNT(*) AS n FROM residents", [{"name": "a", "type": "integer", "minimum": 0, "maximum": 1}],
     InvalidRequest, "not used"),
    ("SELECT COUNT(*) AS n FROM residents WHERE age > 1 LIMIT :a",
     [{"name": "a", "type": "integer", "minimum": 0, "maximum": 1}], InvalidQuery, "LIMIT"),
    ("SELECT COUNT(*) AS n FROM residents WHERE age > :a", [{"name": "a", "type": "string", "allowed": ["x"]}],
     PolicyViolation, "compared with integer"),
    ("SELECT COUNT(*) AS n FROM residents WHERE age > :a", [{"name": "a", "type": "integer"}],
     PolicyViolation, "needs minimum and maximum"),
    ("SELECT COUNT(*) AS n FROM residents WHERE person_id = :a",
     [{"name": "a", "type": "string", "allowed": ["p1"]}], PolicyViolation, "unknown column"),
    ("SELECT COUNT(*) AS n FROM enterprises WHERE age > :a",
     [{"name": "a", "type": "integer", "minimum": 0, "maximum": 1}], InvalidQuery, "residents"),
])
def test_bad_drafts_are_refused(policies: dict[str, DatasetPolicy], sql: str, params: list, error: type,
                                message: str) -> None:
    with pytest.raises(error, match=message):
        draft_template(sql, parse_parameters(params), epsilon=Decimal("0.1"), delta=Decimal(0),
                       policy=policies["residents"])


def test_in_list_and_between_slots_bind(policies: dict[str, DatasetPolicy]) -> None:
    sql = "SELECT COUNT(*) AS n FROM residents WHERE township IN (:a, :b) AND NOT income BETWEEN :lo AND :hi"
    params = parse_parameters([{"name": "a", "type": "string"}, {"name": "b", "type": "string"},
                               {"name": "lo", "type": "number", "minimum": 0, "maximum": 1e6},
                               {"name": "hi", "type": "integer", "minimum": 0, "maximum": 2000000}])
    tpl = draft_template(sql, params, epsilon=Decimal("0.1"), delta=Decimal(0), policy=policies["residents"])
    plan = bind(tpl, {"a": "Lingxi", "b": "Baishi", "lo": 1.5, "hi": 900})
    terms = plan.where.terms  # type: ignore[union-attr]
    assert terms[0] == InList("township", ("Lingxi", "Baishi"))
    assert terms[1] == Between("income", 1.5, 900, negated=True)


def test_twin_is_synthetic_deterministic_and_inside_the_policy(policies: dict[str, DatasetPolicy]) -> None:
    policy = policies["residents"]
    rows = twin_rows(policy, 300)
    assert rows == twin_rows(policy, 300)
    towns = set(policy.column("township").categories)  # type: ignore[union-attr, arg-type]
    assert all(r["township"] in towns and 0 <= r["age"] <= 110 for r in rows)  # type: ignore[operator]


def test_twin_answers_exactly_with_the_public_key_set(template: Template, policies: dict[str, DatasetPolicy]) -> None:
    policy = policies["residents"]
    rows = twin_rows(policy, 500)
    checked = check_plan(bind(template, {"min_age": 20, "max_age": 50, "sex": "F"}), policy).plan
    columns, out = evaluate(checked, policy, rows)
    assert columns == ("township", "n", "mean_income")
    assert [r[0] for r in out] == list(policy.column("township").categories)  # type: ignore[union-attr]
    expected = sum(1 for r in rows if 20 <= r["age"] <= 50 and r["sex"] == "F")  # type: ignore[operator]
    assert sum(r[1] for r in out) == expected
