"""Literals in filters, normalized to their column's type and held inside declared domains.

`age >= 18`, `age >= 18.0` and `age >= '18'` all become the integer 18, so that they hash
the same; a value of the wrong kind, outside a column's public categories, or outside its
declared bounds (R-DP-09) is reported: refused, never clamped, since a clamped literal would
answer a question other than the one asked. Text and boolean columns are compared only with
=, !=, IN: their order is not part of the policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from gateway.core.plan import And, Between, Compare, InList, Not, Or, Predicate, Scalar
from gateway.core.policy import Column

Report = Callable[[str], None]
_ORDERED_TYPES = ("integer", "float")
_INT64 = (-(2**63), 2**63 - 1)


def normalize_predicate(pred: Predicate, columns: dict[str, Column], report: Report) -> Predicate:
    """The predicate with every literal in its column's type; problems go to `report`."""
    if isinstance(pred, And | Or):
        return type(pred)(tuple(normalize_predicate(t, columns, report) for t in pred.terms))
    if isinstance(pred, Not):
        return Not(normalize_predicate(pred.term, columns, report))
    column = columns.get(pred.column)
    if column is None:  # already reported as unknown
        return pred
    if isinstance(pred, Compare):
        if pred.op not in ("=", "!=") and column.type not in _ORDERED_TYPES:
            report(f"column {column.name!r} is compared only with =, != or IN")
        return Compare(pred.column, pred.op, _value(pred.value, column, report))
    if isinstance(pred, InList):
        return InList(pred.column, tuple(_value(v, column, report) for v in pred.values), pred.negated)
    if column.type not in _ORDERED_TYPES:
        report(f"column {column.name!r} is compared only with =, != or IN, not BETWEEN")
    return Between(pred.column, _value(pred.low, column, report), _value(pred.high, column, report),
                   pred.negated)


def _value(value: Scalar, column: Column, report: Report) -> Scalar:
    normalized = coerce(value, column.type)
    if normalized is None:
        report(f"{value!r} is not a valid {column.type} for column {column.name!r}")
        return value
    if column.categories is not None and normalized not in column.categories:
        report(f"{value!r} is not one of the categories of column {column.name!r}")
    if column.bounds is not None and isinstance(normalized, int | float) \
            and not column.bounds[0] <= normalized <= column.bounds[1]:
        low, high = column.bounds
        report(f"{normalized!r} is outside the bounds [{low}, {high}] of column {column.name!r}")
    return normalized


def coerce(value: Scalar, kind: str) -> Scalar | None:
    """`value` as a literal of a column type, or None when it is not one."""
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(value.lower()) if isinstance(value, str) else None
    number = _decimal(value)
    if number is None:
        return None
    if kind == "integer":
        # Outside 64 bits the engine cannot compare: refused here, before any budget is reserved.
        integral = number == number.to_integral_value() and _INT64[0] <= number <= _INT64[1]
        return int(number) if integral else None
    as_float = float(number)
    return as_float if math.isfinite(as_float) else None


def _decimal(value: Scalar) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None
