"""The query plan: frozen dataclasses, their canonical form and hash, and post-processing.

A plan is what a requester asked, stripped of spelling: the SQL parser and the JSON plan
reader both produce one. `Plan.canonical()` keeps only what changes the released numbers
(dataset, filters, group keys, aggregates, epsilon, delta) in a sorted, normalized form, so
that whitespace, keyword case, AND-term order, aliases, select order, ORDER BY, LIMIT and
literal spelling do not change `Plan.fingerprint()`. A release holds the group keys and
aggregates in that canonical order; `render` turns it into the columns and rows the requester
asked for (aliases, select order, ORDER BY, LIMIT), which is post-processing of DP output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from gateway.core.budget import from_nano, to_nano
from gateway.core.canonical import canonical_json

Scalar = str | int | float | bool
AGGREGATE_FUNCS = ("count", "sum", "mean", "median", "quantile")
COMPARE_OPS = ("=", "!=", "<", "<=", ">", ">=")

# R-IN-03: limits on what one query may ask.
MAX_SQL_CHARS = 8192
MAX_DEPTH = 32
MAX_AGGREGATES = 16
MAX_GROUP_BY = 3
MAX_IN_VALUES = 100
MAX_STRING_CHARS = 256


@dataclass(frozen=True)
class Compare:
    column: str
    op: Literal["=", "!=", "<", "<=", ">", ">="]
    value: Scalar


@dataclass(frozen=True)
class InList:
    column: str
    values: tuple[Scalar, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    column: str
    low: Scalar
    high: Scalar
    negated: bool = False


@dataclass(frozen=True)
class And:
    terms: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not:
    term: Predicate


Predicate = Compare | InList | Between | And | Or | Not


@dataclass(frozen=True)
class Aggregate:
    """One released statistic: `column` is None only for COUNT(*); `q` only for quantiles."""

    func: Literal["count", "sum", "mean", "median", "quantile"]
    column: str | None = None
    q: float | None = None

    @property
    def label(self) -> str:
        """The aggregate's column name in a release, e.g. `mean(income)`."""
        inner = self.column or "*"
        return f"{self.func}({inner}, {self.q!r})" if self.q is not None else f"{self.func}({inner})"

    def canonical(self) -> dict[str, Any]:
        return {"func": self.func, "column": self.column, "q": self.q}


@dataclass(frozen=True)
class Output:
    """One selected column: a group key (`key`) or an aggregate, under its output name."""

    name: str
    key: str | None = None
    aggregate: Aggregate | None = None

    @property
    def source(self) -> str:
        """The release column this output reads."""
        return self.aggregate.label if self.aggregate is not None else str(self.key)


@dataclass(frozen=True)
class OrderKey:
    output: str
    descending: bool = False


@dataclass(frozen=True)
class Plan:
    dataset: str
    select: tuple[Output, ...]
    group_by: tuple[str, ...]
    aggregates: tuple[Aggregate, ...]
    where: Predicate | None
    order_by: tuple[OrderKey, ...] = ()
    limit: int | None = None
    epsilon: Decimal = Decimal(1)
    delta: Decimal = Decimal(0)

    @property
    def release_columns(self) -> tuple[str, ...]:
        """Columns of a release of this plan: sorted group keys, then sorted aggregates."""
        return canonical_keys(self.group_by) + tuple(a.label for a in canonical_aggregates(self.aggregates))

    def canonical(self) -> dict[str, Any]:
        """What changes the released numbers, normalized; JSON-able."""
        return {
            "dataset": self.dataset,
            "group_by": list(canonical_keys(self.group_by)),
            "aggregates": [a.canonical() for a in canonical_aggregates(self.aggregates)],
            "where": canonical_predicate(self.where),
            "epsilon": str(from_nano(to_nano(self.epsilon))),
            "delta": decimal_text(self.delta),
        }

    def identity(self) -> str:
        """The plan exactly as asked (its repr), as a key: unlike dataclass equality it tells
        `age = TRUE` from `age = 1` (True == 1 in Python). Memoized like the fingerprint."""
        known: str | None = self.__dict__.get("_identity")
        if known is None:
            known = repr(self)
            object.__setattr__(self, "_identity", known)
        return known

    def fingerprint(self) -> str:
        # Memoized beside the fields (a plan is immutable); dataclass eq, hash and repr ignore it.
        known: str | None = self.__dict__.get("_fingerprint")
        if known is None:
            known = hashlib.sha256(canonical_json(self.canonical()).encode()).hexdigest()
            object.__setattr__(self, "_fingerprint", known)
        return known


def decimal_text(value: Decimal) -> str:
    """A decimal in plain positional notation without trailing zeros: 1e-8 -> "0.00000001"."""
    return format(Decimal(value).normalize(), "f")


def canonical_keys(keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(keys)))


def canonical_aggregates(aggregates: Sequence[Aggregate]) -> tuple[Aggregate, ...]:
    """Distinct aggregates: counts, sums, means, medians, quantiles; then by column and level."""
    return tuple(sorted(set(aggregates), key=lambda a: (
        AGGREGATE_FUNCS.index(a.func), a.column or "", a.q if a.q is not None else 0.0)))


def canonical_predicate(pred: Predicate | None) -> Any:
    """A predicate as JSON with AND/OR flattened, terms and IN lists sorted and deduplicated."""
    if pred is None:
        return None
    if isinstance(pred, Compare):
        return {"column": pred.column, "op": pred.op, "value": pred.value}
    if isinstance(pred, InList):
        values = sorted({canonical_json(v): v for v in pred.values}.items())
        return {"column": pred.column, "in": [v for _, v in values], "not": pred.negated}
    if isinstance(pred, Between):
        return {"column": pred.column, "between": [pred.low, pred.high], "not": pred.negated}
    if isinstance(pred, Not):
        inner = pred.term
        return canonical_predicate(inner.term) if isinstance(inner, Not) else {"not": canonical_predicate(inner)}
    kind = "and" if isinstance(pred, And) else "or"
    terms = {canonical_json(t): t for t in _flatten(pred)}
    if len(terms) == 1:
        return next(iter(terms.values()))
    return {kind: [terms[k] for k in sorted(terms)]}


def _flatten(pred: And | Or) -> list[Any]:
    """Canonical terms of nested ANDs (or ORs) as one list: (a AND b) AND c == a AND b AND c."""
    out: list[Any] = []
    for term in pred.terms:
        if type(term) is type(pred):
            out.extend(_flatten(term))
            continue
        canon = canonical_predicate(term)
        kind = "and" if isinstance(pred, And) else "or"
        out.extend(canon[kind] if isinstance(canon, dict) and set(canon) == {kind} else [canon])
    return out


def predicate_columns(pred: Predicate | None) -> tuple[str, ...]:
    """Every column a predicate reads, in order of appearance."""
    if pred is None:
        return ()
    if isinstance(pred, Compare | InList | Between):
        return (pred.column,)
    if isinstance(pred, Not):
        return predicate_columns(pred.term)
    return tuple(c for t in pred.terms for c in predicate_columns(t))


# ---------------------------------------------------------------- post-processing


def render(plan: Plan, release_columns: Sequence[str],
           release_rows: Sequence[Sequence[Any]]) -> tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]:
    """A stored release as the requester asked for it: aliases, select order, ORDER BY, LIMIT."""
    index = {name: i for i, name in enumerate(release_columns)}
    picks = [index[out.source] for out in plan.select]
    rows = tuple(tuple(release_rows[r][i] for i in picks) for r in render_order(plan, release_columns, release_rows))
    return tuple(out.name for out in plan.select), rows


def render_order(plan: Plan, release_columns: Sequence[str], release_rows: Sequence[Sequence[Any]]) -> list[int]:
    """The release rows the requester sees (by index), in the order they see them."""
    index = {name: i for i, name in enumerate(release_columns)}
    sources: dict[str, int] = {}
    for out in plan.select:  # the first output of a name, as the requester reads it
        sources.setdefault(out.name, index[out.source])
    order = list(range(len(release_rows)))
    for key in reversed(plan.order_by):  # stable sorts, last key first
        col = sources[key.output]
        present = [r for r in order if release_rows[r][col] is not None]
        missing = [r for r in order if release_rows[r][col] is None]
        order = sorted(present, key=lambda r: _row_key(col, release_rows[r]), reverse=key.descending) + missing
    return order[: plan.limit] if plan.limit is not None else order


def _row_key(column: int, row: Sequence[Any]) -> tuple[int, Any]:
    # Numbers and strings never share a column, but booleans sort as numbers would.
    value = row[column]
    return (0, value) if isinstance(value, int | float) else (1, str(value))
