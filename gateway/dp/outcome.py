"""What crosses back from a sandbox worker: a release (only DP output) and its accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Release:
    """One DP answer before post-processing: group keys and aggregates in canonical order.

    `accuracy` maps each aggregate column to the half-width of its (1 - alpha) interval, or
    None where none exists (quantiles): for a mean, the widest of its rows'. `row_accuracy`
    holds the same per row (aligned with `rows`): a mean's interval depends on its row's noisy
    sum and count, each row's covers that row's mean at least 1 - alpha of the time. Both are
    computed from the noise scales and the released values only.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    snapshot_id: str
    accuracy: Mapping[str, float | None] = field(default_factory=dict)
    alpha: float = 0.05
    row_accuracy: tuple[Mapping[str, float | None], ...] = ()


class SnapshotInvalid(Exception):
    """A snapshot does not match its policy's domain; the message names columns, never values."""
