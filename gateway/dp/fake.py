"""An in-process stand-in for the sandbox, for tests that need a whole gateway but no noise.

Like httpx's MockTransport: it has the sandbox's interface and none of its machinery. It reads
no row and imports no OpenDP: a release answers every combination of the plan's public group keys
(one row when ungrouped) with the value `answer` for each aggregate and no accuracy, and a preview
answers the charge the checks computed. Whatever the data, the answer is the same, so it can leak
nothing; and it is never what `gateway serve` runs (the app takes it only from a caller's hand).
It records what it was asked in `calls`, for tests of what reaches the sandbox and when.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.core.budget import from_nano
from gateway.core.checks import CheckedPlan
from gateway.core.plan import canonical_aggregates, canonical_keys
from gateway.core.policy import DatasetPolicy
from gateway.dp.outcome import Release
from gateway.errors import Unavailable


class FakeSandbox:
    def __init__(self, answer: float = 0.0) -> None:
        self.answer = answer
        self.loaded: dict[str, str] = {}  # dataset -> snapshot id
        self.calls: list[tuple[str, str]] = []  # (kind, dataset), in order
        self.on_worker_retired: Callable[[], None] = lambda: None
        self.on_release_timeout: Callable[[], None] = lambda: None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.loaded.clear()

    def snapshot_of(self, dataset: str) -> str | None:
        return self.loaded.get(dataset)

    def worker_memory_mb(self) -> list[float]:
        return []

    async def load(self, dataset: str, policy: DatasetPolicy, path: Path, snapshot_id: str) -> None:
        if dataset != policy.dataset:
            raise ValueError("the policy is not this dataset's")
        self.calls.append(("load", dataset))
        self.loaded[dataset] = snapshot_id

    async def release(self, checked: CheckedPlan, alpha: float = 0.05, org: str = "") -> Release:
        dataset = checked.policy.dataset
        self.calls.append(("release", dataset))
        if dataset not in self.loaded:
            raise Unavailable("The dataset is not ready; try again shortly.")
        keys = canonical_keys(checked.plan.group_by)
        aggregates = canonical_aggregates(checked.plan.aggregates)
        key_values = [self._categories(checked.policy, k) for k in keys]
        rows = tuple((*combo, *(self.answer for _ in aggregates)) for combo in itertools.product(*key_values))
        no_bound = {a.label: None for a in aggregates}
        return Release((*keys, *(a.label for a in aggregates)), rows, self.loaded[dataset], no_bound, alpha,
                       row_accuracy=tuple(dict(no_bound) for _ in rows))

    async def preview(self, checked: CheckedPlan, alpha: float = 0.05, org: str = "") -> dict[str, Any]:
        self.calls.append(("preview", checked.policy.dataset))
        return {"epsilon": float(from_nano(checked.epsilon_nano)), "delta": float(checked.plan.delta),
                "accuracy": {"alpha": alpha, "columns": {o.name: None for o in checked.plan.select
                                                         if o.aggregate is not None}},
                "threshold": None}

    @staticmethod
    def _categories(policy: DatasetPolicy, key: str) -> tuple[Any, ...]:
        column = policy.column(key)
        return tuple(column.categories) if column is not None and column.categories else ()
