"""Running a compiled measurement on a snapshot, and shaping OpenDP's frame into a Release.

Runs only inside a sandbox worker: this is where noise is drawn. Everything after the
measurement's `collect()` is post-processing of DP output: a mean is its noisy sum over the
noisy row count (checks put COUNT(*) in every plan with a mean), clamped to the column's
bounds; rows are put in the canonical order (public keys in the order the policy declares
them); accuracy comes from the noise scales and the released values only.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from gateway.core.checks import COUNT_ALL, CheckedPlan
from gateway.core.plan import Aggregate, canonical_aggregates, canonical_keys
from gateway.core.policy import DatasetPolicy
from gateway.dp.compile import Compiled
from gateway.dp.outcome import Release


def run(checked: CheckedPlan, compiled: Compiled, source: pl.LazyFrame, snapshot_id: str,
        alpha: float = 0.05) -> Release:
    """One release: the only call that evaluates the measurement on data."""
    return shape(checked, compiled, draw(compiled, source), snapshot_id, alpha)


def draw(compiled: Compiled, source: pl.LazyFrame) -> pl.DataFrame:
    """The measurement's noisy parts on `source`, one column per part: where noise is drawn."""
    return compiled.measurement(source).collect()


def shape(checked: CheckedPlan, compiled: Compiled, raw: pl.DataFrame, snapshot_id: str,
          alpha: float) -> Release:
    plan, policy = checked.plan, checked.policy
    keys = canonical_keys(plan.group_by)
    if keys and checked.keys == "private":  # a group of undeclared or missing keys says nothing
        raw = raw.drop_nulls(list(keys))
    columns: dict[str, list[Any]] = {k: raw.get_column(k).cast(pl.String).to_list()
                                      if isinstance(raw.schema[k], pl.Enum) else raw.get_column(k).to_list()
                                      for k in keys}
    accuracy: dict[str, float | None] = {}
    whole, halves = compiled.accuracy(alpha), None
    for agg in canonical_aggregates(plan.aggregates):
        if agg.func == "mean":
            halves = halves or compiled.accuracy(alpha / 2)  # union bound over sum and count
            columns[agg.label], accuracy[agg.label] = _means(raw, agg, policy, halves)
        else:
            columns[agg.label] = raw.get_column(agg.label).to_list()
            accuracy[agg.label] = whole.get(agg.label)
    rows = list(zip(*columns.values(), strict=True)) if columns else []
    rows.sort(key=lambda row: _row_rank(row[: len(keys)], keys, policy))
    return Release(tuple(columns), tuple(rows), snapshot_id, accuracy, alpha)


def _means(raw: pl.DataFrame, agg: Aggregate, policy: DatasetPolicy,
           halves: dict[str, float | None]) -> tuple[list[float | None], float | None]:
    """Noisy sum / noisy count, clamped to the bounds; and the widest half-width over rows."""
    column = policy.column(agg.column or "")
    assert column is not None and column.bounds is not None, "checked before"
    low, high = column.bounds
    a_sum, a_count = halves.get(f"{agg.label} sum"), halves.get(COUNT_ALL.label)
    means: list[float | None] = []
    widths: list[float] = []
    for total, count in zip(raw.get_column(f"{agg.label} sum").to_list(),
                            raw.get_column(COUNT_ALL.label).to_list(), strict=True):
        means.append(min(max(total / count, low), high) if count and count > 0 else None)
        widths.append(mean_half_width(total, count, a_sum, a_count, (low, high)))
    return means, max(widths) if widths else None


def mean_half_width(total: float, count: int, a_sum: float | None, a_count: float | None,
                    bounds: tuple[float, float]) -> float:
    """Half-width of a mean's interval from its parts' half-widths (each at alpha / 2).

    With |sum error| <= a_s and |count error| <= a_n, the ratio errs by at most
    (a_s + |mean| a_n) / (count - a_n); a clamped mean never errs by more than the bounds' span.
    """
    span = bounds[1] - bounds[0]
    if a_sum is None or a_count is None or count is None or count <= a_count:
        return span
    return min((a_sum + abs(total / count) * a_count) / (count - a_count), span)


def _row_rank(key_values: tuple[Any, ...], keys: tuple[str, ...], policy: DatasetPolicy) -> tuple[Any, ...]:
    """Public keys sort in declaration order; other values by kind, then value."""
    rank: list[Any] = []
    for name, value in zip(keys, key_values, strict=True):
        column = policy.column(name)
        categories = column.categories if column is not None and column.categories else ()
        if value in categories:
            rank.append((0, categories.index(value), ""))
        else:
            rank.append((1, 0, repr(value)))
    return tuple(rank)
