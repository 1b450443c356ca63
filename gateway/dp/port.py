"""The sandbox as the rest of the gateway sees it: the workers (`dp.sandbox.Sandbox`) or, in tests,
the in-process stand-in (`dp.fake.FakeSandbox`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from gateway.core.checks import CheckedPlan
from gateway.core.policy import DatasetPolicy
from gateway.dp.outcome import Release


class SandboxPort(Protocol):
    on_worker_retired: Callable[[], None]
    on_release_timeout: Callable[[], None]

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def snapshot_of(self, dataset: str) -> str | None: ...
    def worker_memory_mb(self) -> list[float]: ...
    async def load(self, dataset: str, policy: DatasetPolicy, path: Path, snapshot_id: str) -> None: ...
    async def release(self, checked: CheckedPlan, alpha: float = 0.05, org: str = "") -> Release: ...
    async def preview(self, checked: CheckedPlan, alpha: float = 0.05, org: str = "") -> dict[str, Any]: ...
