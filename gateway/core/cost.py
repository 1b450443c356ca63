"""What one query may cost the sandbox: an explicit model, checked before anything is reserved.

A checked plan's work in a worker grows with three things, each bounded here (issue 19, 1-2):

- **terms**: nodes of the WHERE tree (comparisons, IN, BETWEEN, AND, OR, NOT). Every OpenDP
  measurement build carries the whole filter, and a release builds one per noisy part plus two,
  so a thousand terms held a worker for seconds before any row was read.
- **cells**: noisy parts x groups. Each part is one noisy column over every group.
- **quantile candidates**: for each quantile or median, the column's candidates x groups: the
  exponential mechanism scores every candidate in every group.

Groups are the public cells of the group keys; for private keys, whose groups are not known
before release, the policy's `max_cells`. The numbers come from the plan and the policy only,
never from data, so a refusal says nothing about the rows (R-DP-03). Past a limit the query is
refused with 422 `policy_violation`, located: the reason and a `limits` member name the part
of the query (`where`, `select`, `group_by`), its cost and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.checks import CheckedPlan
from gateway.core.plan import And, Not, Or, Predicate, canonical_aggregates
from gateway.errors import PolicyViolation


@dataclass(frozen=True)
class CostLimits:
    """The most one query may ask of a worker (settings `max_query_terms`, `max_query_cells`,
    `max_quantile_candidates`)."""

    terms: int
    cells: int
    quantile_candidates: int


@dataclass(frozen=True)
class QueryCost:
    terms: int
    parts: int
    groups: int
    quantile_candidates: int

    @property
    def cells(self) -> int:
        return self.parts * self.groups


def predicate_terms(pred: Predicate | None) -> int:
    """Nodes of a WHERE tree: leaves and connectives alike (an IN list is one node)."""
    if pred is None:
        return 0
    if isinstance(pred, And | Or):
        return 1 + sum(predicate_terms(t) for t in pred.terms)
    if isinstance(pred, Not):
        return 1 + predicate_terms(pred.term)
    return 1


def query_cost(checked: CheckedPlan) -> QueryCost:
    """The cost of a checked plan (its added COUNT(*) included), from plan and policy alone."""
    policy, plan = checked.policy, checked.plan
    groups = 1 if not plan.group_by else checked.cells if checked.cells is not None else policy.max_cells
    aggregates = canonical_aggregates(plan.aggregates)
    candidates = 0
    for agg in aggregates:
        if agg.func in ("median", "quantile"):
            column = policy.column(agg.column or "")
            candidates += (column.candidates if column is not None else 0) * groups
    return QueryCost(predicate_terms(plan.where), len(aggregates), groups, candidates)


def check_cost(checked: CheckedPlan, limits: CostLimits) -> QueryCost:
    """The plan's cost, or PolicyViolation naming every limit it passes and where."""
    cost = query_cost(checked)
    over: list[dict[str, Any]] = []
    if cost.terms > limits.terms:
        over.append({"limit": "max_query_terms", "at": "where", "cost": cost.terms, "max": limits.terms,
                     "reason": f"WHERE has {cost.terms} terms, more than the {limits.terms} one query may have"})
    if cost.cells > limits.cells:
        over.append({"limit": "max_query_cells", "at": "select", "cost": cost.cells, "max": limits.cells,
                     "reason": f"{cost.parts} noisy aggregates over {cost.groups} groups make {cost.cells} "
                               f"cells, more than the {limits.cells} one query may have"})
    if cost.quantile_candidates > limits.quantile_candidates:
        over.append({"limit": "max_quantile_candidates", "at": "select", "cost": cost.quantile_candidates,
                     "max": limits.quantile_candidates,
                     "reason": f"the quantiles score {cost.quantile_candidates} candidates over their groups, "
                               f"more than the {limits.quantile_candidates} one query may"})
    if over:
        raise CostExceeded(over)
    return cost


class CostExceeded(PolicyViolation):
    """422 `policy_violation`, with `limits`: each passed limit, where in the query, cost and max."""

    def __init__(self, over: list[dict[str, Any]]) -> None:
        super().__init__([o["reason"] for o in over])
        self.extra["limits"] = [{k: v for k, v in o.items() if k != "reason"} for o in over]
