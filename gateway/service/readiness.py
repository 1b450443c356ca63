"""Whether a dataset can be released from now on, decided before anything is reserved (R-DP-20).

The sandbox holds each dataset's snapshot prepared for one storage layout (`storage_fingerprint`
of the policy it was loaded with). A policy version that changes the layout makes the snapshot
unusable until it has been prepared again, which takes a moment. Asked after the point of no
refund, that moment burnt budget (issue 11.6); asked here, it is a 503 with Retry-After before
any reservation, and `/readyz` names the dataset.

A release holds the dataset (`held_ready`) from its last readiness check until the sandbox has
taken its plan, and the data supply swaps a layout only once no release holds the old one
(`swapping`): nothing after the point of no refund can meet a layout it was not checked against.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator

from gateway.core.policy import DatasetPolicy
from gateway.dp.snapshot import storage_fingerprint
from gateway.errors import Unavailable
from gateway.runtime.parts import Runtime

RETRY_SECONDS = 2


class ReleaseGate:
    """Per replica: the layout the sandbox serves per dataset, the releases holding it, the swaps."""

    def __init__(self, runtime: Runtime) -> None:
        self.layouts: dict[str, str] = {}
        self.holders: Counter[str] = Counter()
        self.swapping: set[str] = set()
        self.idle: dict[str, asyncio.Event] = {}

    def serving(self, policy: DatasetPolicy) -> None:
        """The sandbox now serves `policy.dataset` prepared for this policy's layout."""
        self.layouts[policy.dataset] = storage_fingerprint(policy)

    def stopped(self, dataset: str) -> None:
        self.layouts.pop(dataset, None)

    def why_not_ready(self, policy: DatasetPolicy) -> str | None:
        """None when a release under `policy` can start now; else what it waits for."""
        layout = self.layouts.get(policy.dataset)
        if layout is None:
            return "no data loaded yet"
        if policy.dataset in self.swapping or layout != storage_fingerprint(policy):
            return "its data is being prepared for the policy in force"
        return None

    def idle_event(self, dataset: str) -> asyncio.Event:
        event = self.idle.get(dataset)
        if event is None:
            event = self.idle[dataset] = asyncio.Event()
            event.set()
        return event


def gate_of(runtime: Runtime) -> ReleaseGate:
    return runtime.owned(ReleaseGate)


def ensure_ready(runtime: Runtime, policy: DatasetPolicy) -> None:
    """503 with Retry-After, before anything is reserved, while the dataset cannot be released."""
    why = gate_of(runtime).why_not_ready(policy)
    if why is not None:
        raise Unavailable(f"dataset {policy.dataset!r} is not ready: {why}", retry_after=RETRY_SECONDS)


@contextlib.contextmanager
def held_ready(runtime: Runtime, policy: DatasetPolicy) -> Iterator[None]:
    """Checked ready now, and kept so (no layout swap) until the block ends."""
    gate = gate_of(runtime)
    ensure_ready(runtime, policy)
    gate.holders[policy.dataset] += 1
    gate.idle_event(policy.dataset).clear()
    try:
        yield
    finally:
        gate.holders[policy.dataset] -= 1
        if gate.holders[policy.dataset] <= 0:
            del gate.holders[policy.dataset]
            gate.idle_event(policy.dataset).set()


@contextlib.asynccontextmanager
async def swapping(runtime: Runtime, policy: DatasetPolicy) -> AsyncIterator[None]:
    """Around a sandbox load: a new layout waits until no release holds the old one, and no
    release starts meanwhile. A load of the layout already served (a new snapshot) goes at once:
    the sandbox swaps it between two queries."""
    gate = gate_of(runtime)
    served = gate.layouts.get(policy.dataset)
    if served is None or served == storage_fingerprint(policy):
        yield
        return
    gate.swapping.add(policy.dataset)
    try:
        await gate.idle_event(policy.dataset).wait()
        yield
    finally:
        gate.swapping.discard(policy.dataset)


def datasets_not_ready(runtime: Runtime) -> dict[str, str]:
    """Dataset -> why, for every active dataset whose releases would be refused now (/readyz)."""
    gate = gate_of(runtime)
    registry = runtime.registry
    out = {}
    for dataset, policy in sorted(registry.policies.items()):
        if registry.withdrawn(dataset):
            continue
        why = gate.why_not_ready(policy)
        if why is not None:
            out[dataset] = why
    return out
