"""The public catalog entry of a dataset: schema and public facts of its policy, never a value."""

from __future__ import annotations

from typing import Any

from gateway.core.policy import Column, DatasetPolicy


def column_entry(col: Column) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": col.name, "type": col.type, "classification": col.classification,
                             "group_by": col.group_by, "aggregate": col.aggregate, "filter": col.filter}
    if col.description:
        entry["description"] = col.description
    if col.categories is not None:
        entry["categories"] = list(col.categories)
    if col.bounds is not None:
        entry["bounds"] = list(col.bounds)
    return entry


def catalog_entry(policy: DatasetPolicy, status: str) -> dict[str, Any]:
    """What any caller may know of a dataset: declared schema, unit, limits and price."""
    unit = policy.privacy_unit
    privacy_unit: dict[str, Any] = {"kind": unit.kind}
    if unit.kind == "identifier":
        privacy_unit["max_contributions"] = unit.max_contributions
    return {
        "id": policy.dataset,
        "title": policy.title,
        "description": policy.description,
        "source_department": policy.owner,
        "classification": policy.classification,
        "status": status,
        "queryable": policy.queryable and status == "active",
        "privacy_unit": privacy_unit,
        "columns": [column_entry(c) for c in policy.public_columns],
        "aggregates": sorted(policy.aggregates),
        "epsilon": {"min": float(policy.epsilon_min), "max": float(policy.epsilon_max)},
        "private_keys": policy.private_keys_allowed,
        "max_cells": policy.max_cells,
        "price": {"per_call_minor": policy.pricing.per_call_minor,
                  "cached_call_minor": policy.pricing.cached_call_minor,
                  "currency": policy.pricing.currency},
        "policy_version": policy.version,
    }
