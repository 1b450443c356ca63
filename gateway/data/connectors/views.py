"""Views: an external (purchased) table joined many-to-one onto a county dataset at snapshot time.

OpenDP 0.16 cannot join inside a query, so the join is done here, once per snapshot of either
side, and the result is a dataset of its own. Each view row comes from exactly one base row
(an inner join on a key that is unique in the external table), so a person contributes to
the view at most as much as to the base: the view's privacy unit must be the base's. Base
rows without a match are not in the view. External columns whose names clash with base
columns are suffixed with `_<external dataset>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from gateway.core.policy import DatasetPolicy
from gateway.data.validate import Problem, SnapshotRefused


@dataclass(frozen=True)
class Side:
    """One input of a view: its policy and the snapshot file it is built from."""

    policy: DatasetPolicy
    snapshot_id: str
    path: Path


def view_inputs(policy: DatasetPolicy) -> tuple[str, str, str]:
    """(base, join, on) of a view policy."""
    return str(policy.source.get("base")), str(policy.source.get("join")), str(policy.source.get("on"))


def joined(view: DatasetPolicy, base: Side, external: Side) -> pl.LazyFrame:
    """The lazy many-to-one join; SnapshotRefused when the declaration cannot hold."""
    _, _, key = view_inputs(view)
    problems = _declaration_problems(view, base.policy, external.policy, key)
    if not problems:
        duplicated = (pl.scan_parquet(external.path).select(pl.col(key).is_duplicated().any())
                      .collect().item())
        if duplicated:
            problems.append(Problem("join_key_not_unique", f"{external.policy.dataset}.{key} "
                                    "repeats a key: the join would copy base rows", key))
    if problems:
        raise SnapshotRefused(view.dataset, problems)
    return pl.scan_parquet(base.path).join(pl.scan_parquet(external.path), on=key, how="inner",
                                           suffix=f"_{external.policy.dataset}")


def _declaration_problems(view: DatasetPolicy, base: DatasetPolicy, external: DatasetPolicy,
                          key: str) -> list[Problem]:
    problems = []
    mine, theirs = view.privacy_unit, base.privacy_unit
    if (mine.kind, mine.column) != (theirs.kind, theirs.column):
        problems.append(Problem("privacy_unit_mismatch", f"the view's privacy unit must be its "
                                f"base's ({theirs.kind} {theirs.column or ''})".rstrip()))
    for side in (base, external):
        if side.column(key) is None:
            problems.append(Problem("join_key_missing", f"{side.dataset} declares no column "
                                    f"{key!r} to join on", key))
    if base.column(key) and external.column(key) and base.column(key).type != external.column(key).type:  # type: ignore[union-attr]
        problems.append(Problem("join_key_type", f"{key!r} is {base.column(key).type} in "  # type: ignore[union-attr]
                                f"{base.dataset} but not in {external.dataset}", key))
    return problems
