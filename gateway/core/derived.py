"""Datasets derived from others (views): what they inherit from their base, and the lint of it.

A view joins a purchased table onto a county dataset (its `base`), one view row per base row:
it tells about the base's people as much as the base does. So it answers to the base's
governance (R-DP-18), whatever its own policy says:

- the base's status, and its join input's (a suspended or withdrawn input stops the view);
- the base's pool, and so its monthly and lifetime accounts (epsilon and delta);
- the base's owner (who co-signs, suspends, and alone with the bureau sees row counts) and its
  co-signature rule;
- the stricter classification, of the dataset and of each column both declare, and the
  stricter of every limit (epsilon range, important limits, cells, private keys, delta, caps,
  auto-approval, rate).

`inherit` makes the policy a view answers to; `inheritance_problems` is the lint of a view's
declaration against its base: what it declares must not contradict what it inherits. A view's
version is the hash of its own and its base's, so a change to the base is a new version of
the view (caches and checked plans keyed by version follow it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar

from gateway.core.policy import Column, DatasetPolicy, Level

_LEVELS: tuple[Level, ...] = ("general", "important", "core")
MAX_DEPTH = 8  # views of views; deeper (or circular) declarations inherit nothing further
T = TypeVar("T", int, float, Decimal)


def base_of(policy: DatasetPolicy) -> str | None:
    return str(policy.source.get("base")) if policy.source.kind == "view" else None


def inputs_of(policy: DatasetPolicy) -> tuple[str, ...]:
    """The datasets a view is built from: its base, then its join input."""
    if policy.source.kind != "view":
        return ()
    return tuple(str(policy.source.get(k)) for k in ("base", "join") if policy.source.get(k))


def stricter_level(a: Level, b: Level) -> Level:
    return _LEVELS[max(_LEVELS.index(a), _LEVELS.index(b))]


def _least(a: T | None, b: T | None) -> T | None:
    """The smaller limit; an absent one (no such limit) leaves the other."""
    if a is None or b is None:
        return b if a is None else a
    return min(a, b)


def _column(view: Column, base: Column | None) -> Column:
    if base is None:  # the purchased side: the view's own declaration
        return view
    return replace(view, classification=stricter_level(view.classification, base.classification),
                   hidden=view.hidden or base.hidden)


def inherit(view: DatasetPolicy, base: DatasetPolicy) -> DatasetPolicy:
    """The policy `view` answers to, given its base's (itself already inherited, for chains)."""
    allowed = view.private_keys_allowed and base.private_keys_allowed
    auto = None  # auto-approval loosens: only where both allow it, up to the smaller amount
    if view.auto_approve_epsilon is not None and base.auto_approve_epsilon is not None:
        auto = min(view.auto_approve_epsilon, base.auto_approve_epsilon)
    version = hashlib.sha256(f"{view.version}:{base.version}".encode()).hexdigest()
    return replace(
        view, owner=base.owner, pool=base.pool,
        classification=stricter_level(view.classification, base.classification),
        columns=tuple(_column(c, base.column(c.name)) for c in view.columns),
        aggregates=view.aggregates & base.aggregates,
        epsilon_min=max(view.epsilon_min, base.epsilon_min), epsilon_max=min(view.epsilon_max, base.epsilon_max),
        important_epsilon_max=_least(view.important_epsilon_max, base.important_epsilon_max),
        important_max_cells=_least(view.important_max_cells, base.important_max_cells),
        important_group_by=view.important_group_by and base.important_group_by,
        max_cells=min(view.max_cells, base.max_cells),
        private_keys_allowed=allowed, private_keys_delta=min(view.private_keys_delta, base.private_keys_delta),
        global_cap=min(view.global_cap, base.global_cap), lifetime_cap=_least(view.lifetime_cap, base.lifetime_cap),
        delta_per_grant=min(view.delta_per_grant, base.delta_per_grant) if allowed else Decimal(0),
        delta_global_cap=_least(view.delta_global_cap, base.delta_global_cap) if allowed else None,
        delta_lifetime_cap=_least(view.delta_lifetime_cap, base.delta_lifetime_cap) if allowed else None,
        requires_source_cosign=view.requires_source_cosign or base.requires_source_cosign,
        auto_approve_epsilon=auto,
        rate_per_second=_least(view.rate_per_second, base.rate_per_second),
        rate_burst=_least(view.rate_burst, base.rate_burst),
        version=version,
    )


def derived_from(policies: Mapping[str, DatasetPolicy], dataset: str) -> tuple[str, ...]:
    """The views built on `dataset`, and views of those, in name order."""
    found: set[str] = set()
    frontier = {dataset}
    for _ in range(MAX_DEPTH):
        frontier = {n for n, p in policies.items() if base_of(p) in frontier and n not in found and n != dataset}
        if not frontier:
            break
        found |= frontier
    return tuple(sorted(found))


def effective_policies(declared: Mapping[str, DatasetPolicy]) -> dict[str, DatasetPolicy]:
    """Every dataset's policy as it is enforced: views inherit from their bases, transitively."""
    out: dict[str, DatasetPolicy] = {}

    def resolve(name: str, depth: int) -> DatasetPolicy:
        if name not in out:
            policy = declared[name]
            base = base_of(policy)
            if base is not None and base in declared and base != name and depth < MAX_DEPTH:
                policy = inherit(policy, resolve(base, depth + 1))
            out[name] = policy
        return out[name]

    for name in declared:
        resolve(name, 0)
    return out


Path = tuple[str, ...]


def inheritance_problems(view: DatasetPolicy, base: DatasetPolicy) -> list[tuple[Path, str]]:
    """Where a view's declaration contradicts what it inherits from `base` (located by path).
    What a view leaves out it inherits; what it writes must be the base's, or stricter."""
    doc: Mapping[str, Any] = view.document
    found: list[tuple[Path, str]] = []
    if view.owner != base.owner:
        found.append((("owner",), f"a view is owned by its base's owner {base.owner!r}, not {view.owner!r}"))
    pool = doc.get("budget", {}).get("pool")
    if pool is not None and pool != base.pool:
        found.append((("budget", "pool"), f"a view spends its base's pool {base.pool!r}, not {pool!r}"))
    if _rank(view.classification) < _rank(base.classification):
        found.append((("classification",), f"a view is classified at least as its base ({base.classification})"))
    for column in view.columns:
        theirs = base.column(column.name)
        if theirs is not None and _rank(column.classification) < _rank(theirs.classification):
            found.append((("columns", column.name), f"{column.name}: classified at least as in the base "
                                                    f"({theirs.classification})"))
    if doc.get("access", {}).get("requires_source_cosign") is False and base.requires_source_cosign:
        found.append((("access", "requires_source_cosign"), "the base needs its owner's co-signature, so its "
                                                            "views do"))
    limits: list[tuple[Path, Decimal | int | None, Decimal | int | None]] = [
        (("epsilon", "max"), view.epsilon_max, base.epsilon_max),
        (("max_cells",), view.max_cells if "max_cells" in doc else None, base.max_cells),
        (("important", "epsilon_max"), view.important_epsilon_max, base.important_epsilon_max),
        (("important", "max_cells"), view.important_max_cells, base.important_max_cells)]
    for path, mine, theirs_limit in limits:
        if mine is not None and theirs_limit is not None and Decimal(mine) > Decimal(theirs_limit):
            found.append((path, f"{'.'.join(path)} cannot exceed the base's {theirs_limit}"))
    if view.private_keys_allowed and not base.private_keys_allowed:
        found.append((("private_keys",), "the base releases no private group keys, so its views do not"))
    return found


def _rank(level: Level) -> int:
    return _LEVELS.index(level)
