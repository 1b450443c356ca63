"""Noise scales from a privacy budget, computed directly and proven by OpenDP's privacy map.

OpenDP's `resolve()` searches a global scale with about a thousand measurement builds
(about a second per query). Every mechanism the engine uses (Laplace on counts and sums, the
exponential mechanism on quantiles) has a pure-epsilon loss proportional to 1/scale, so a
few builds suffice: the loss of each part at unit scale, then the scale that gives the part
its share of epsilon. That proportionality is the only assumption, and it is never trusted:
the final measurement's privacy map must fit the budget exactly, or nothing is released.
This module is the one place that leans on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opendp.mod import OpenDPException

Build = Callable[[tuple[float, ...], int | None], Any]  # (scales, threshold) -> Measurement
NO_THRESHOLD_LIMIT = 2**32 - 1  # while solving scales, a threshold that suppresses nothing
_BUMPS = 40  # tries to absorb float rounding in the map before giving up


class CalibrationError(RuntimeError):
    """No scale could be proven within the budget: a bug, never a requester's error."""


@dataclass(frozen=True)
class Calibrated:
    measurement: Any
    scales: tuple[float, ...]
    threshold: int | None
    epsilon: float  # from the privacy map: at most the budget
    delta: float


def loss(measurement: Any, d_in: int, approximate: bool) -> tuple[float, float]:
    out = measurement.map(d_in)
    return (float(out[0]), float(out[1])) if approximate else (float(out), 0.0)


def calibrate(build: Build, shares: Sequence[Decimal], d_in: int, *,
              delta: Decimal | None = None) -> Calibrated:
    """Per-part scales giving part i the loss shares[i]; with `delta`, also the threshold.

    The sum of the shares is the budget; the result's map is checked against it exactly.
    """
    approximate = delta is not None
    threshold = NO_THRESHOLD_LIMIT if approximate else None
    unit = _unit_losses(build, len(shares), d_in, threshold, approximate)
    scales = tuple(u / float(s) for u, s in zip(unit, shares, strict=True))
    budget = sum(shares, Decimal(0))
    measurement, scales, eps = _fit(build, scales, threshold, d_in, budget, approximate)
    if not approximate:
        return Calibrated(measurement, scales, None, eps, 0.0)
    assert delta is not None
    threshold = _threshold(build, scales, d_in, delta)
    measurement = build(scales, threshold)
    eps, dlt = loss(measurement, d_in, True)
    if Decimal(eps) > budget or Decimal(dlt) > delta:
        raise CalibrationError("the thresholded measurement does not fit the budget")
    return Calibrated(measurement, scales, threshold, eps, dlt)


def _unit_losses(build: Build, n: int, d_in: int, threshold: int | None,
                 approximate: bool) -> list[float]:
    """Loss of each part at scale 1: halving a part's loss by doubling its scale isolates it."""
    ones = (1.0,) * n
    total = loss(build(ones, threshold), d_in, approximate)[0]
    unit = []
    for i in range(n):
        doubled = (*ones[:i], 2.0, *ones[i + 1:])
        unit.append(2.0 * (total - loss(build(doubled, threshold), d_in, approximate)[0]))
    if any(u <= 0 for u in unit):
        raise CalibrationError("a part has no privacy loss at unit scale")
    return unit


def _fit(build: Build, scales: tuple[float, ...], threshold: int | None, d_in: int,
         budget: Decimal, approximate: bool) -> tuple[Any, tuple[float, ...], float]:
    """Nudge the scales up until the map fits the budget exactly (float rounding only)."""
    factor = 1.0
    for attempt in range(_BUMPS):
        candidate = tuple(s * factor for s in scales)
        measurement = build(candidate, threshold)
        eps = loss(measurement, d_in, approximate)[0]
        if Decimal(eps) <= budget:
            return measurement, candidate, eps
        factor *= 1.0 + 2.0**-40 * 2**attempt
    raise CalibrationError("the privacy map stays above the budget")


def _threshold(build: Build, scales: tuple[float, ...], d_in: int, delta: Decimal) -> int:
    """The smallest threshold whose delta fits; delta falls as the threshold rises."""
    if not _delta_fits(build, scales, NO_THRESHOLD_LIMIT, d_in, delta):
        raise CalibrationError("no threshold reaches the requested delta")
    high = 8  # thresholds are small: double up to one that fits, then bisect
    while high < NO_THRESHOLD_LIMIT and not _delta_fits(build, scales, high, d_in, delta):
        high = min(2 * high, NO_THRESHOLD_LIMIT)
    low = high // 2
    while low < high:
        mid = (low + high) // 2
        if _delta_fits(build, scales, mid, d_in, delta):
            high = mid
        else:
            low = mid + 1
    return high


def _delta_fits(build: Build, scales: tuple[float, ...], threshold: int, d_in: int,
                delta: Decimal) -> bool:
    try:
        return Decimal(loss(build(scales, threshold), d_in, True)[1]) <= delta
    except OpenDPException:  # a threshold too low to bound delta at all
        return False
