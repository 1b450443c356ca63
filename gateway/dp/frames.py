"""Polars pieces derived from a policy and a plan: storage schema, key sets, filters, candidates.

Everything here comes from public facts — the policy and the requester's plan — never from
data (R-DP-08). String columns with public categories are stored as `Enum`s of exactly those
categories: grouping on them is fast, and a value outside the categories becomes null, so
it can never match a filter nor form a group of its own (R-DP-06: undeclared values dropped).
"""

from __future__ import annotations

from functools import reduce
from math import prod
from typing import Any

import polars as pl

from gateway.core.plan import And, Between, Compare, InList, Not, Predicate
from gateway.core.policy import Column, DatasetPolicy

_PLAIN_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(), "integer": pl.Int64(), "float": pl.Float64(), "boolean": pl.Boolean(),
}


def stored_columns(policy: DatasetPolicy) -> tuple[Column, ...]:
    """Columns a worker keeps: the queryable ones, plus the privacy-id column if there is one."""
    idcol = policy.privacy_unit.column if policy.privacy_unit.kind == "identifier" else None
    return tuple(c for c in policy.columns if c.referenceable or c.name == idcol)


def dtype_of(column: Column) -> pl.DataType:
    if column.type == "string" and column.categories is not None:
        return pl.Enum([str(c) for c in column.categories])
    return _PLAIN_TYPES[column.type]


def storage_schema(policy: DatasetPolicy) -> pl.Schema:
    return pl.Schema({c.name: dtype_of(c) for c in stored_columns(policy)})


def nullable(column: Column) -> bool:
    """Numeric columns are checked complete at load; other columns may hold nulls."""
    return not column.numeric


def keys_frame(policy: DatasetPolicy, group_by: tuple[str, ...]) -> pl.DataFrame:
    """Every combination of the group keys' public categories, in declaration order."""
    frames = []
    for name in group_by:
        column = policy.column(name)
        assert column is not None and column.categories is not None, "checked before"
        frames.append(pl.DataFrame({name: pl.Series(name, list(column.categories), dtype=dtype_of(column))}))
    return reduce(lambda left, right: left.join(right, how="cross"), frames)


def max_groups(policy: DatasetPolicy, group_by: tuple[str, ...]) -> int:
    """A public bound on the groups of private keys: Enum and boolean keys are closed sets
    (plus null); any other key can take at most one value per row."""
    sizes = []
    for name in group_by:
        column = policy.column(name)
        dtype = dtype_of(column) if column is not None else None
        if isinstance(dtype, pl.Enum):
            sizes.append(len(dtype.categories) + 1)
        elif isinstance(dtype, pl.Boolean):
            sizes.append(3)
        else:
            return policy.max_rows
    return min(prod(sizes), policy.max_rows)


def candidates(column: Column) -> list[Any]:
    """Quantile candidates: `column.candidates` points evenly over the declared bounds."""
    assert column.bounds is not None, "checked before"
    low, high = column.bounds
    n = column.candidates
    points = [low + (high - low) * i / (n - 1) for i in range(n)]
    if column.type == "integer":
        return sorted({round(p) for p in points})
    return [float(p) for p in points]


def bounds(column: Column) -> tuple[Any, Any]:
    assert column.bounds is not None, "checked before"
    low, high = column.bounds
    return (int(low), int(high)) if column.type == "integer" else (float(low), float(high))


def where_expr(pred: Predicate) -> pl.Expr:
    """A checked predicate as a polars expression OpenDP accepts (IN and BETWEEN spelled out)."""
    if isinstance(pred, Compare):
        col, value = pl.col(pred.column), pl.lit(pred.value)
        return {
            "=": col == value, "!=": col != value, "<": col < value,
            "<=": col <= value, ">": col > value, ">=": col >= value,
        }[pred.op]
    if isinstance(pred, InList):
        # OpenDP 0.16 refuses is_in; a balanced OR of equalities keeps the tree shallow.
        expr = _balanced(pl.Expr.or_, [pl.col(pred.column) == pl.lit(v) for v in pred.values])
        return ~expr if pred.negated else expr
    if isinstance(pred, Between):
        expr = (pl.col(pred.column) >= pl.lit(pred.low)) & (pl.col(pred.column) <= pl.lit(pred.high))
        return ~expr if pred.negated else expr
    if isinstance(pred, Not):
        return ~where_expr(pred.term)
    op = pl.Expr.and_ if isinstance(pred, And) else pl.Expr.or_
    return _balanced(op, [where_expr(t) for t in pred.terms])


def _balanced(op: Any, exprs: list[pl.Expr]) -> pl.Expr:
    while len(exprs) > 1:
        pairs = [op(exprs[i], exprs[i + 1]) for i in range(0, len(exprs) - 1, 2)]
        exprs = pairs + ([exprs[-1]] if len(exprs) % 2 else [])
    return exprs[0]
