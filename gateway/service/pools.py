"""A dataset's pool cannot change once the pool has been charged (issue 19, also seen).

Monthly and lifetime accounts are named by pool. Renaming a pool (or moving a dataset into
another) would open fresh accounts for the same people, so its lifetime cap — the one bound
that never renews — would start again from zero. Such a change is refused as a located policy
problem at `budget.pool`, by the API and by `gateway policy apply` alike.
"""

from __future__ import annotations

from typing import Any

import yaml

from gateway.core.budget import pool_account, pool_lifetime_account
from gateway.core.policy import DatasetPolicy
from gateway.errors import Located
from gateway.store.db import Tx


def pool_charged(tx: Tx, pool: str) -> bool:
    """Anything ever charged or reserved on the pool's monthly or lifetime accounts."""
    row = tx.one("SELECT 1 FROM budget_accounts WHERE account IN (?, ?) AND spent_nano + reserved_nano > 0",
                 (pool_account(pool), pool_lifetime_account(pool)))
    return row is not None


def pool_change_problem(tx: Tx, old_document: dict[str, Any], policy: DatasetPolicy, text: str,
                        filename: str) -> Located | None:
    """The located refusal of a pool change on a charged pool; None when the change is allowed."""
    if not old_document:
        return None
    old_pool = old_document.get("budget", {}).get("pool", old_document.get("dataset"))
    if old_pool == policy.pool or not pool_charged(tx, str(old_pool)):
        return None
    line, column = _position(text, ("budget", "pool")) or _position(text, ("budget",)) or (1, 1)
    return Located(filename, line, column,
                   f"budget.pool cannot change from {old_pool!r} to {policy.pool!r}: the pool has been charged, "
                   "and a new name would start its lifetime account again from zero")


def _position(text: str, path: tuple[str, ...]) -> tuple[int, int] | None:
    """1-based line and column of the value at `path` in a YAML (or JSON) text, if there."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
        if node is None:
            return None
    if node is None:
        return None
    return node.start_mark.line + 1, node.start_mark.column + 1
