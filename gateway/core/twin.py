"""A synthetic twin of a dataset, and exact evaluation of a plan over it, for product drafts.

The twin has the dataset's schema and public categories and rows generated from the policy
alone (categories, bounds), so no real record is involved and results may be exact. Rows are
derived from a hash of (dataset, column, row number): the same twin every time, and no random
number generator anywhere near the release path (R-DP-01).
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections.abc import Sequence
from typing import Any

from gateway.core.plan import And, Between, InList, Not, Or, Plan, Predicate, Scalar, render
from gateway.core.policy import Column, DatasetPolicy

TWIN_ROWS = 2000
Row = dict[str, Scalar]


def _unit(dataset: str, column: str, row: int) -> int:
    digest = hashlib.blake2b(f"{dataset}\x1f{column}\x1f{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _value(policy: DatasetPolicy, col: Column, row: int) -> Scalar:
    h = _unit(policy.dataset, col.name, row)
    if col.categories is not None:
        return col.categories[h % len(col.categories)]
    if col.type == "boolean":
        return h % 2 == 0
    if col.type == "integer":
        lo, hi = (int(col.bounds[0]), int(col.bounds[1])) if col.bounds else (0, 100)
        return lo + h % (hi - lo + 1)
    if col.type == "float":
        lo_f, hi_f = col.bounds if col.bounds else (0.0, 1000.0)
        return round(lo_f + (h / 2**64) * (hi_f - lo_f), 2)
    return f"twin-{col.name}-{h % 997}"


def twin_rows(policy: DatasetPolicy, rows: int = TWIN_ROWS) -> list[Row]:
    """Generated rows with every column of the policy; the same rows on every call."""
    return [{col.name: _value(policy, col, i) for col in policy.columns} for i in range(rows)]


def matches(pred: Predicate | None, row: Row) -> bool:
    if pred is None:
        return True
    if isinstance(pred, And):
        return all(matches(t, row) for t in pred.terms)
    if isinstance(pred, Or):
        return any(matches(t, row) for t in pred.terms)
    if isinstance(pred, Not):
        return not matches(pred.term, row)
    value = row[pred.column]
    if isinstance(pred, InList):
        return (value in pred.values) != pred.negated
    if isinstance(pred, Between):
        return (pred.low <= value <= pred.high) != pred.negated  # type: ignore[operator]
    return _compare(value, pred.op, pred.value)


def _compare(left: Any, op: str, right: Any) -> bool:
    ops = {"=": left == right, "!=": left != right}
    if op in ops:
        return bool(ops[op])
    return bool({"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op])


def _aggregate(func: str, column: str | None, q: float | None, rows: Sequence[Row],
               policy: DatasetPolicy) -> Scalar | None:
    if func == "count":
        return len(rows)
    values = [float(r[column]) for r in rows] if column else []
    col = policy.column(column or "")
    if col is not None and col.bounds is not None:  # clipped as a release would be
        values = [min(max(v, col.bounds[0]), col.bounds[1]) for v in values]
    if func == "sum":
        return sum(values)
    if not values:
        return None
    if func == "mean":
        return statistics.fmean(values)
    if func == "median":
        return float(statistics.median(values))
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int((q or 0.5) * len(ordered)))]


def _domain(policy: DatasetPolicy, key: str) -> tuple[Scalar, ...]:
    col = policy.column(key)
    return tuple(col.categories) if col is not None and col.categories is not None else ()


Answer = tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]


def evaluate(plan: Plan, policy: DatasetPolicy, rows: Sequence[Row]) -> Answer:
    """The exact answer of a checked plan over twin rows, shaped as the requester asked."""
    kept = [r for r in rows if matches(plan.where, r)]
    keys = sorted(set(plan.group_by))
    aggregates = sorted({a.label: a for a in plan.aggregates}.items())
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in kept:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    # Public keys: exactly the declared key set, empty groups included, as a release has them.
    domains = [_domain(policy, k) for k in keys]
    combos = list(itertools.product(*domains)) if keys else [()]
    release_rows = [tuple(combo) + tuple(_aggregate(a.func, a.column, a.q, groups.get(combo, []), policy)
                                        for _label, a in aggregates) for combo in combos]
    release_columns = tuple(keys) + tuple(label for label, _a in aggregates)
    return render(plan, release_columns, release_rows)
