"""The catalog over real HTTP: schemas and privacy units, never a value the policy keeps private.

Invariant 1 and R-DP-10: the catalog shows what the policy declares public (categories, bounds,
limits, prices) and nothing derived from the data (row counts above all); hidden and core
columns never appear (R-DP-09).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
import pytest

from gateway.core.catalog import catalog_entry
from gateway.core.policy import DatasetPolicy
from gateway.core.policy_parse import parse_policy
from gateway.policyfiles import load_policies, policy_schema, shipped_policies_dir
from tests.support import Gateway

DATASETS = ["enterprises", "residents", "social_insurance", "vehicles"]
COLUMN_KEYS = {"name", "type", "classification", "group_by", "aggregate", "filter", "categories",
               "bounds", "description"}


@pytest.fixture(scope="module")
def policies() -> dict[str, DatasetPolicy]:
    return load_policies(shipped_policies_dir())


@pytest.fixture(scope="module")
def catalog(gateway: Gateway) -> tuple[dict[str, Any], bytes]:
    reply = gateway.api("GET", "/v1/datasets", "demo-bank")
    assert reply.status == 200, reply.body
    return reply.json, reply.body


def numbers(value: Any, path: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a JSON value, with where it sits (booleans are not numbers here)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{path}[{index}]")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield path, float(value)


def declared_numbers(policy: DatasetPolicy) -> set[float]:
    """Every number the policy document states, decimals written as strings included."""
    found: set[float] = set()
    stack: list[Any] = [policy.document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            found.add(float(item))
        elif isinstance(item, str):
            with contextlib.suppress(ArithmeticError):
                found.add(float(Decimal(item)))
    return found


def hidden_names(policy: DatasetPolicy) -> list[str]:
    return [c.name for c in policy.columns if not c.referenceable]


# ---------------------------------------------------------------- what is listed


def test_the_bank_sees_the_four_datasets_with_schemas_and_privacy_units(
        catalog: tuple[dict[str, Any], bytes], policies: dict[str, DatasetPolicy]) -> None:
    items = {d["id"]: d for d in catalog[0]["datasets"]}
    assert sorted(items) == DATASETS
    assert items["residents"]["privacy_unit"] == {"kind": "row"}
    assert items["enterprises"]["privacy_unit"] == {"kind": "row"}
    assert items["vehicles"]["privacy_unit"] == {"kind": "identifier", "max_contributions": 3}
    assert items["social_insurance"]["privacy_unit"] == {"kind": "identifier", "max_contributions": 12}
    for dataset, item in items.items():
        policy = policies[dataset]
        assert item["policy_version"] == policy.version
        assert item["source_department"] == policy.owner and item["status"] == "active"
        assert [c["name"] for c in item["columns"]] == [c.name for c in policy.public_columns]
        assert all(set(c) <= COLUMN_KEYS and c["type"] in ("string", "integer", "float", "boolean")
                   for c in item["columns"])
    assert {"township", "age", "sex", "income"} <= {c["name"] for c in items["residents"]["columns"]}


def test_one_entry_equals_its_line_in_the_list(gateway: Gateway,
                                               catalog: tuple[dict[str, Any], bytes]) -> None:
    for item in catalog[0]["datasets"]:
        reply = gateway.api("GET", f"/v1/datasets/{item['id']}", "demo-bank")
        assert reply.status == 200 and reply.json == item


def test_every_role_can_read_the_catalog(gateway: Gateway) -> None:
    for client_id in gateway.credentials:
        listed = gateway.api("GET", "/v1/datasets", client_id)
        assert listed.status == 200, (client_id, listed.body)
        assert sorted(d["id"] for d in listed.json["datasets"]) == DATASETS
        assert gateway.api("GET", "/v1/datasets/residents", client_id).status == 200


def test_the_catalog_needs_a_token(gateway: Gateway) -> None:
    reply = gateway.api("GET", "/v1/datasets")
    assert reply.status == 401 and reply.is_problem


def test_unknown_dataset_is_a_404_problem(gateway: Gateway) -> None:
    reply = gateway.api("GET", "/v1/datasets/tax_returns", "demo-bank")
    assert reply.status == 404 and reply.is_problem
    assert reply.json["code"] == "not_found"
    assert set(reply.json) >= {"type", "title", "status", "detail", "code"}


# ---------------------------------------------------------------- what is never shown


def test_hidden_columns_appear_nowhere_in_the_catalog(
        catalog: tuple[dict[str, Any], bytes], policies: dict[str, DatasetPolicy]) -> None:
    names = {n for p in policies.values() for n in hidden_names(p)}
    assert {"person_id", "household_id", "enterprise_id"} <= names
    text = catalog[1].decode()
    assert [n for n in names if n in text] == []


def test_a_core_column_never_reaches_a_catalog_entry() -> None:
    text = (shipped_policies_dir() / "residents.yaml").read_text().replace(
        "  age: {type: integer,",
        "  id_card_number: {type: string, classification: core, hidden: true}\n  age: {type: integer,")
    policy = parse_policy(text, "residents.yaml", policy_schema())
    assert policy.column("id_card_number") is not None
    assert "id_card_number" not in json.dumps(catalog_entry(policy, "active"))


def test_categories_and_bounds_are_exactly_the_declared_ones(
        catalog: tuple[dict[str, Any], bytes], policies: dict[str, DatasetPolicy]) -> None:
    for item in catalog[0]["datasets"]:
        policy = policies[item["id"]]
        for shown in item["columns"]:
            col = policy.column(shown["name"])
            assert col is not None and col.referenceable
            declared = policy.document["columns"][col.name]
            assert shown.get("categories") == declared.get("categories")
            assert shown.get("bounds") == declared.get("bounds")
            assert (shown["group_by"], shown["aggregate"], shown["filter"]) == (
                col.group_by, col.aggregate, col.filter)


def test_every_number_shown_is_declared_by_the_policy(
        catalog: tuple[dict[str, Any], bytes], policies: dict[str, DatasetPolicy]) -> None:
    for item in catalog[0]["datasets"]:
        declared = declared_numbers(policies[item["id"]])
        undeclared = [(path, n) for path, n in numbers(item) if n not in declared]
        assert undeclared == [], item["id"]


def test_no_row_count_of_the_data_appears(gateway: Gateway,
                                          catalog: tuple[dict[str, Any], bytes]) -> None:
    counts = {f.stem: pq.ParquetFile(f).metadata.num_rows
              for f in (gateway.state_dir / "data").glob("*.parquet")}
    assert sorted(counts) == DATASETS
    shown = {n for _p, n in numbers(catalog[0])}
    text = catalog[1].decode()
    for dataset, rows in counts.items():
        assert float(rows) not in shown, dataset
        assert str(rows) not in text, dataset
    one = gateway.api("GET", "/v1/datasets/residents", "demo-bank")
    assert all(str(counts["residents"]) not in v for v in one.headers.values())
