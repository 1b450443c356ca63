"""Running a compiled measurement on a snapshot, and shaping OpenDP's frame into a Release.

Runs only inside a sandbox worker: this is where noise is drawn. Everything after the
measurement's collection is post-processing of DP output: an aggregate reads its part's column
(a SUM and a mean's sum read the same draw); a mean is its noisy sum over the noisy row count,
clamped to the column's bounds; rows are put in the canonical order (public keys in the order
the policy declares them); accuracy comes from the noise scales and the released values only,
per column (the widest row's) and per row.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from gateway.core.checks import CheckedPlan
from gateway.core.parts import parts_of
from gateway.core.plan import Aggregate, canonical_aggregates, canonical_keys
from gateway.core.policy import DatasetPolicy
from gateway.dp import draws
from gateway.dp.compile import Compiled
from gateway.dp.outcome import Release


def run(checked: CheckedPlan, compiled: Compiled, source: pl.LazyFrame, snapshot_id: str,
        alpha: float = 0.05) -> Release:
    """One release: the only call that evaluates the measurement on data."""
    return shape(checked, compiled, draw(compiled, source), snapshot_id, alpha)


def draw(compiled: Compiled, source: pl.LazyFrame) -> pl.DataFrame:
    """The measurement's noisy parts on `source`, one column per part: where noise is drawn,
    each part independently of the others (`draws`)."""
    return draws.collect(compiled.measurement, source)


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
    widths: dict[str, list[float | None]] = {}  # per aggregate, one per row of `raw`
    whole, halves = compiled.accuracy(alpha), None
    for agg in canonical_aggregates(plan.aggregates):
        if agg.func == "mean":
            halves = halves or compiled.accuracy(alpha / 2)  # union bound over sum and count
            columns[agg.label], widths[agg.label] = _means(raw, agg, policy, halves)
            accuracy[agg.label] = max(widths[agg.label], default=None)  # type: ignore[type-var]
        else:
            (part,) = parts_of(agg)  # the same draw may serve several aggregates (a mean's sum)
            columns[agg.label] = raw.get_column(part.label).to_list()
            accuracy[agg.label] = whole.get(part.label)
            widths[agg.label] = [accuracy[agg.label]] * raw.height
    rows = list(zip(*columns.values(), strict=True)) if columns else []
    per_row = [dict(zip(widths, w, strict=True)) for w in zip(*widths.values(), strict=True)] if widths \
        else [{} for _ in rows]
    order = sorted(range(len(rows)), key=lambda i: _row_rank(rows[i][: len(keys)], keys, policy))
    return Release(tuple(columns), tuple(rows[i] for i in order), snapshot_id, accuracy, alpha,
                   tuple(per_row[i] for i in order))


def _means(raw: pl.DataFrame, agg: Aggregate, policy: DatasetPolicy,
           halves: dict[str, float | None]) -> tuple[list[float | None], list[float | None]]:
    """Noisy sum / noisy count, clamped to the bounds; and each row's half-width."""
    column = policy.column(agg.column or "")
    assert column is not None and column.bounds is not None, "checked before"
    low, high = column.bounds
    total_part, count_part = (p.label for p in parts_of(agg))
    a_sum, a_count = halves.get(total_part), halves.get(count_part)
    means: list[float | None] = []
    widths: list[float | None] = []
    for total, count in zip(raw.get_column(total_part).to_list(), raw.get_column(count_part).to_list(),
                            strict=True):
        means.append(min(max(total / count, low), high) if count and count > 0 else None)
        widths.append(mean_half_width(total, count, a_sum, a_count, (low, high)))
    return means, widths


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
