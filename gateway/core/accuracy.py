"""Accuracy as stored with a release and as an answer shows it (API: `accuracy`).

A release stores, per aggregate, the half-width of its (1 - alpha) interval (for a mean, the
widest of its rows', as answers have always shown) and, under `rows`, the same per release row:
a grouped mean's interval depends on that group's noisy sum and count, and each row's covers
that row's mean at least 1 - alpha of the time. An answer shows both under its output names;
`accuracy.rows[i]` belongs to `rows[i]` after ORDER BY and LIMIT. A release stored before rows
were kept shows each column's widest half-width on every row, which is still a valid bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.core.plan import Plan, render_order

ROWS = "rows"  # never an aggregate's label: those always hold parentheses


def stored_accuracy(columns: Mapping[str, float | None],
                    rows: Sequence[Mapping[str, float | None]]) -> dict[str, Any]:
    """What the ledger keeps of a release's accuracy, keyed by release column."""
    return {**columns, ROWS: [dict(row) for row in rows]}


def accuracy_view(plan: Plan, release_columns: Sequence[str], release_rows: Sequence[Sequence[Any]],
                  stored: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """`{"alpha", "columns": {output: half-width}, "rows": [{output: half-width}, ...]}`."""
    outputs = [out for out in plan.select if out.aggregate is not None]
    per_row: Sequence[Mapping[str, Any]] | None = stored.get(ROWS)
    rows = [{out.name: (per_row[r] if per_row is not None else stored).get(out.source) for out in outputs}
            for r in render_order(plan, release_columns, release_rows)]
    return {"alpha": alpha, "columns": {out.name: stored.get(out.source) for out in outputs}, "rows": rows}
