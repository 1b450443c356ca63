"""The noisy parts of a plan: each distinct quantity the engine draws noise for, once.

A plan's aggregates are what the requester reads; its parts are what the measurement draws.
They differ where one draw serves several aggregates: a mean is its sum's draw over COUNT(*)'s
(so `SUM(c), AVG(c)` draws one noisy sum, not two), and a median is the 0.5 quantile. Every
part gets an equal share of the charge, so the charge is exactly what the draws spend: no
aggregate pays twice for the same draw (issue 11, point 7), and no two parts are ever the same
quantity drawn twice (point 1: the engine also makes their noise expressions distinct).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.core.plan import Aggregate, canonical_aggregates


@dataclass(frozen=True)
class Part:
    """One noisy quantity: a count (of rows, or of a column's non-null values), a clamped sum,
    or a quantile chosen among the column's candidates."""

    func: Literal["count", "sum", "quantile"]
    column: str | None = None
    q: float | None = None

    @property
    def label(self) -> str:
        """The part's column in the measurement's output, e.g. `sum(income)`."""
        return Aggregate(self.func, self.column, self.q).label


def parts_of(agg: Aggregate) -> tuple[Part, ...]:
    """The parts an aggregate reads: a mean reads its sum and COUNT(*) (numeric columns hold no
    nulls, checked when a snapshot is loaded); a median is the 0.5 quantile."""
    if agg.func == "mean":
        return Part("sum", agg.column), Part("count")
    if agg.func == "median":
        return (Part("quantile", agg.column, 0.5),)
    if agg.func == "quantile":
        assert agg.q is not None, "a quantile carries its level"
        return (Part("quantile", agg.column, float(agg.q)),)
    return (Part(agg.func, agg.column),)


def plan_parts(aggregates: Sequence[Aggregate]) -> tuple[Part, ...]:
    """The distinct parts of a plan's aggregates, in canonical order: the measurement's columns."""
    seen: dict[Part, None] = {}
    for agg in canonical_aggregates(aggregates):
        seen.update(dict.fromkeys(parts_of(agg)))
    return tuple(seen)
