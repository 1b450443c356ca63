"""Plan x dataset policy x the caller's grant -> a CheckedPlan, or every reason it is refused.

Nothing here touches data. A refusal lists all the reasons at once, so that a requester can
fix a query in one round trip. Columns that are hidden or core answer exactly like unknown
ones, so that a refusal does not reveal that they exist (R-DP-09). A checked plan carries the
plan with its literals normalized to the column types (so that `age >= 18`, `age >= 18.0`
and `age >= '18'` hash the same), how group keys are released, and the epsilon split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from math import prod
from typing import Literal

from gateway.core.budget import split_epsilon, to_nano
from gateway.core.literals import normalize_predicate
from gateway.core.parts import plan_parts
from gateway.core.plan import Aggregate, Plan, predicate_columns
from gateway.core.policy import Column, DatasetPolicy
from gateway.errors import PolicyViolation

KeyMode = Literal["none", "public", "private"]
_NEEDS_NUMBERS = ("sum", "mean", "median", "quantile")
_SQL_NAMES = {"count": "COUNT", "sum": "SUM", "mean": "AVG", "median": "MEDIAN", "quantile": "QUANTILE"}
COUNT_ALL = Aggregate("count")
MIN_DELTA = Decimal("1e-12")


@dataclass(frozen=True)
class CheckedPlan:
    """A plan the policy allows: the only input the engine compiles."""

    plan: Plan
    policy: DatasetPolicy
    keys: KeyMode
    epsilon_nano: int
    epsilon_split: tuple[int, ...]
    cells: int | None
    important: bool

    @property
    def delta(self) -> Decimal:
        return self.plan.delta

    def fingerprint(self) -> str:
        return self.plan.fingerprint()


def check_plan(plan: Plan, policy: DatasetPolicy,
               grant_epsilon_limit: Decimal | None = None) -> CheckedPlan:
    """The plan as the policy allows it, or PolicyViolation listing every reason."""
    reasons: list[str] = []
    if not policy.queryable:
        reasons.append(f"the dataset {policy.dataset!r} holds core data and cannot be queried")
    if plan.dataset != policy.dataset:
        reasons.append(f"the query reads {plan.dataset!r}, not {policy.dataset!r}")
    columns = _known_columns(plan, policy, reasons)
    reasons.extend(_use_reasons(plan, policy, columns))
    where = normalize_predicate(plan.where, columns, reasons.append) if plan.where is not None else None
    keys = _key_mode(plan, policy, columns, reasons)
    important = policy.classification == "important" or any(
        c.classification == "important" for c in columns.values())
    cells = _cells(plan, columns)
    reasons.extend(_epsilon_reasons(plan, policy, important, grant_epsilon_limit))
    reasons.extend(_cell_reasons(plan, policy, important, cells))
    if reasons:
        raise PolicyViolation(reasons)
    aggregates = plan.aggregates
    # OpenDP thresholds private keys on a noisy row count; a mean is its noisy sum over the
    # noisy row count (numeric columns are complete, checked when a snapshot is loaded).
    needs_count = keys == "private" or any(a.func == "mean" for a in aggregates)
    if needs_count and COUNT_ALL not in aggregates:
        aggregates += (COUNT_ALL,)
    checked = replace(plan, where=where, aggregates=aggregates)
    eps_nano = to_nano(plan.epsilon)
    parts = len(plan_parts(aggregates))  # one share per distinct draw: the charge is what they spend
    return CheckedPlan(plan=checked, policy=policy, keys=keys, epsilon_nano=eps_nano,
                       epsilon_split=split_epsilon(eps_nano, parts), cells=cells, important=important)


def _known_columns(plan: Plan, policy: DatasetPolicy, reasons: list[str]) -> dict[str, Column]:
    """Referenced columns the requester may see; hidden and core ones read as unknown."""
    names = list(plan.group_by) + [a.column for a in plan.aggregates if a.column] + list(
        predicate_columns(plan.where))
    known: dict[str, Column] = {}
    for name in dict.fromkeys(names):
        column = policy.column(name)
        if column is None or not column.referenceable:
            reasons.append(f"unknown column {name!r} in {policy.dataset!r}")
        else:
            known[name] = column
    return known


def _use_reasons(plan: Plan, policy: DatasetPolicy, columns: dict[str, Column]) -> list[str]:
    reasons = []
    for agg in dict.fromkeys(plan.aggregates):
        sql = _SQL_NAMES[agg.func]
        if agg.func not in policy.aggregates:
            reasons.append(f"{sql} is not allowed on {policy.dataset!r}")
        column = columns.get(agg.column or "")
        if column is None:
            continue
        if not column.aggregate:
            reasons.append(f"column {column.name!r} cannot be aggregated")
        elif agg.func in _NEEDS_NUMBERS and (not column.numeric or column.bounds is None):
            reasons.append(f"{sql} needs a numeric column with declared bounds; {column.name!r} is not one")
    for name in dict.fromkeys(predicate_columns(plan.where)):
        if name in columns and not columns[name].filter:
            reasons.append(f"column {name!r} cannot be used in WHERE")
    for name in plan.group_by:
        if name in columns and not columns[name].group_by:
            reasons.append(f"column {name!r} cannot be used in GROUP BY")
    return reasons


def _key_mode(plan: Plan, policy: DatasetPolicy, columns: dict[str, Column],
              reasons: list[str]) -> KeyMode:
    """Public keys by default (R-DP-06 a); private keys only with delta > 0 when allowed (b)."""
    if plan.delta < 0:
        reasons.append("delta cannot be negative")
    if plan.delta <= 0:
        for name in plan.group_by:
            column = columns.get(name)
            if column is not None and column.group_by and column.categories is None:
                reasons.append(f"column {name!r} has no public categories; grouping by it needs "
                               "private keys, a delta and a policy that allows them")
        return "public" if plan.group_by else "none"
    if not plan.group_by:
        reasons.append("delta applies only to GROUP BY with private keys; send delta 0")
    if not policy.private_keys_allowed:
        reasons.append(f"{policy.dataset!r} does not release private group keys; send delta 0")
    elif plan.delta > policy.private_keys_delta:
        reasons.append(f"delta {plan.delta} is above the policy's {policy.private_keys_delta}")
    if plan.delta < MIN_DELTA:  # below what a threshold can reach in floating point
        reasons.append(f"delta {plan.delta} is below the smallest supported, {MIN_DELTA}")
    return "private"


def _cells(plan: Plan, columns: dict[str, Column]) -> int | None:
    sizes = [len(c.categories) for k in plan.group_by if (c := columns.get(k)) and c.categories]
    return prod(sizes) if len(sizes) == len(plan.group_by) else None


def _epsilon_reasons(plan: Plan, policy: DatasetPolicy, important: bool,
                     grant_limit: Decimal | None) -> list[str]:
    eps = plan.epsilon
    checks: list[tuple[bool, Callable[[], str]]] = [
        (eps < policy.epsilon_min or eps > policy.epsilon_max,
         lambda: f"epsilon {eps} is outside [{policy.epsilon_min}, {policy.epsilon_max}]"),
        (important and policy.important_epsilon_max is not None and eps > policy.important_epsilon_max,
         lambda: f"epsilon {eps} is above {policy.important_epsilon_max}, the limit for important data"),
        (grant_limit is not None and eps > grant_limit,
         lambda: f"epsilon {eps} is above your grant's limit of {grant_limit} per period"),
    ]
    return [message() for failed, message in checks if failed]


def _cell_reasons(plan: Plan, policy: DatasetPolicy, important: bool, cells: int | None) -> list[str]:
    reasons = []
    if important and plan.group_by and not policy.important_group_by:
        reasons.append("important data cannot be grouped on this dataset")
    if cells is not None and cells > policy.max_cells:
        reasons.append(f"the groups make {cells} cells, more than the {policy.max_cells} allowed")
    elif important and cells is not None and policy.important_max_cells is not None \
            and cells > policy.important_max_cells:
        reasons.append(f"the groups make {cells} cells, more than the {policy.important_max_cells} "
                       "allowed for important data")
    return reasons
