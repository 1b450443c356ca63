"""Grouping by a column without public categories (issue 11.8): docs/policies.md promises it where
a policy allows private keys, and the lint, the checks and the engine agree with the document.

Such a column's keys come from the data, so they are released only through OpenDP's noisy
threshold (R-DP-06 b): a query must send a delta, and a policy that does not allow private keys
may not declare such a column at all.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from gateway.core.checks import check_plan
from gateway.core.policy import DatasetPolicy
from gateway.core.policy_parse import parse_policy
from gateway.core.sql import parse_sql
from gateway.dp.compile import compile_plan
from gateway.dp.release import run
from gateway.dp.snapshot import conformed
from gateway.errors import PolicyInvalid, PolicyViolation
from gateway.policyfiles import policy_schema, shipped_policies_dir

VEHICLES_YAML = (shipped_policies_dir() / "vehicles.yaml").read_text(encoding="utf-8")
TYPES = "    categories: [car, suv, ev, van, truck, motorcycle, tricycle]\n"


def vehicles_without_type_categories(private_keys: str = "private_keys: {allowed: true, delta: \"1e-8\"}") -> str:
    assert TYPES in VEHICLES_YAML
    text = VEHICLES_YAML.replace(TYPES, "")
    head, _, tail = text.partition("private_keys:")
    return head + private_keys + "\n" + tail.split("\n", 1)[1]


def parsed(text: str) -> DatasetPolicy:
    return parse_policy(text, "vehicles.yaml", policy_schema())


def test_the_lint_accepts_a_group_column_without_categories_where_private_keys_are_allowed() -> None:
    policy = parsed(vehicles_without_type_categories())
    column = policy.column("vehicle_type")
    assert column is not None and column.group_by and column.categories is None


def test_the_lint_refuses_it_where_every_group_key_must_be_public() -> None:
    with pytest.raises(PolicyInvalid) as refused:
        parsed(vehicles_without_type_categories("private_keys: {allowed: false}"))
    assert [p.message for p in refused.value.problems] == [
        "vehicle_type: a group-by column needs its public categories unless private_keys.allowed is true"]


def test_the_documented_promise_matches_the_lint() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "policies.md").read_text(encoding="utf-8")
    flat = " ".join(docs.split())
    assert "a query may group by a column without public categories by sending `delta` > 0" in flat
    assert "a `group_by` column has `categories` unless `private_keys.allowed` is true" in flat


def test_a_query_groups_by_it_only_with_private_keys_and_releases_only_keys_from_the_data(
        demo_data: Path) -> None:
    policy = parsed(vehicles_without_type_categories())
    sql = "SELECT vehicle_type, COUNT(*) AS n FROM vehicles GROUP BY vehicle_type"
    with pytest.raises(PolicyViolation, match="has no public categories"):
        check_plan(parse_sql(sql, epsilon=Decimal("1")), policy)
    checked = check_plan(parse_sql(sql, epsilon=Decimal("1"), delta=Decimal("1e-8")), policy)
    assert checked.keys == "private" and checked.cells is None
    frame = conformed(pl.scan_parquet(demo_data / "vehicles.parquet"), policy).collect()
    release = run(checked, compile_plan(checked), frame.lazy(), "test-snapshot")
    released = {row[0] for row in release.rows}
    real = set(frame.get_column("vehicle_type").drop_nulls().unique().to_list())
    assert released and released <= real  # thousands of cars pass any threshold; no invented key
