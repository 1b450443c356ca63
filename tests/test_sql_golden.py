"""The SQL subset as golden data (R-IN-01..03): accepted queries with their canonical plans,
refused ones with their error codes and positions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core.checks import check_plan
from gateway.core.sql import parse_sql
from gateway.errors import InvalidQuery, PolicyViolation
from gateway.policyfiles import load_policies, shipped_policies_dir

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sql"
POLICIES = load_policies(shipped_policies_dir())
ACCEPTED: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "accepted.yaml").read_text(encoding="utf-8"))
REFUSED: list[dict[str, Any]] = yaml.safe_load((FIXTURES / "refused.yaml").read_text(encoding="utf-8"))


def _parse(case: dict[str, Any]) -> Any:
    return parse_sql(case["sql"], epsilon=Decimal(case.get("epsilon", "1")),
                     delta=Decimal(case.get("delta", "0")))


@pytest.mark.parametrize("case", ACCEPTED, ids=[c["name"] for c in ACCEPTED])
def test_accepted(case: dict[str, Any]) -> None:
    plan = _parse(case)
    assert plan.canonical() == case["plan"]
    assert [o.name for o in plan.select] == case["outputs"]
    checked = check_plan(plan, POLICIES[plan.dataset])
    if "checked" in case:
        assert checked.plan.canonical() == case["checked"]


@pytest.mark.parametrize("case", REFUSED, ids=[c["sql"][:60] or "(empty)" for c in REFUSED])
def test_refused(case: dict[str, Any]) -> None:
    if case["code"] == "invalid_query":
        with pytest.raises(InvalidQuery) as refused:
            _parse(case)
        assert (refused.value.line, refused.value.column) == (case["line"], case["column"])
        assert refused.value.detail == case["message"]
        if case["line"] is not None:
            assert refused.value.problem()["position"] == {"line": case["line"], "column": case["column"]}
        return
    plan = _parse(case)
    with pytest.raises(PolicyViolation) as violation:
        check_plan(plan, POLICIES[plan.dataset])
    assert violation.value.code == case["code"]
    assert list(violation.value.reasons) == case["reasons"]


def test_every_case_is_distinct() -> None:
    for cases in (ACCEPTED, REFUSED):
        assert len({(c["sql"], c.get("epsilon"), c.get("delta")) for c in cases}) == len(cases)


def test_sql_over_the_length_limit_is_refused_before_parsing() -> None:
    sql = "SELECT COUNT(*) FROM residents WHERE " + " OR ".join(["age = 1"] * 1200)
    with pytest.raises(InvalidQuery, match="longer than 8192"):
        parse_sql(sql, epsilon=Decimal(1))
    with pytest.raises(InvalidQuery, match="longer than 100"):
        parse_sql("SELECT COUNT(*) FROM residents WHERE age > 1 AND age < 100 AND sex = 'F' AND "
                  "township = 'Lingxi' AND education = 'college'", epsilon=Decimal(1), max_chars=100)


def test_long_flat_conditions_are_fine_but_deep_nesting_is_not() -> None:
    flat = "SELECT COUNT(*) FROM residents WHERE " + " AND ".join(f"age <> {i}" for i in range(400))
    assert len(parse_sql(flat, epsilon=Decimal(1)).where.terms) == 400  # type: ignore[union-attr]
    nested = "SELECT COUNT(*) FROM residents WHERE " + "NOT " * 40 + "age > 1"
    with pytest.raises(InvalidQuery, match="nested deeper than 32"):
        parse_sql(nested, epsilon=Decimal(1))


def test_the_request_dataset_must_be_the_one_queried() -> None:
    with pytest.raises(InvalidQuery, match="names the dataset 'vehicles'") as refused:
        parse_sql("SELECT COUNT(*) FROM residents", epsilon=Decimal(1), dataset="vehicles")
    assert (refused.value.line, refused.value.column) == (1, 22)
