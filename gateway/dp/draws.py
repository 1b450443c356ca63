"""Every noisy part of a release draws its own noise (issue 11, point 1).

OpenDP 0.16 builds a polars plan in which each part's noise is a plugin call, and fills the
empty groups of public keys with one `fill_null(noise(0))` call per part. Two parts of the
same kind and scale had identical calls, and polars' common-subexpression elimination (CSE),
on by default in the collect OpenDP runs, computed them once: every empty cell showed two
equal values, non-empty cells two independent ones.

The defence: no two noise expressions of a measurement are alike. Checks already give each
distinct quantity one part (a mean reuses the draws of its SUM and COUNT(*), a median is the
0.5 quantile); `distinct_scales` then moves a repeated scale to the next float up (it only
adds noise, immeasurably), and OpenDP writes the exact scale into each noise call, so no two
calls are equal and CSE finds nothing to merge, whatever polars' optimiser does. Releases are
collected by OpenDP itself (`OnceFrame.collect`): taking the plan out to collect it with CSE
off would need OpenDP's `honest-but-curious` feature, which the engine never enables (R-DP-01).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl


def distinct_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """The scales with every repeat moved up to the next unused float: pairwise distinct."""
    taken: set[float] = set()
    out = []
    for scale in scales:
        while scale in taken:
            scale = math.nextafter(scale, math.inf)
        taken.add(scale)
        out.append(scale)
    return tuple(out)


def collect(measurement: Any, source: pl.LazyFrame) -> pl.DataFrame:
    """The measurement's output on `source`, evaluated exactly once, by OpenDP."""
    frame: pl.DataFrame = measurement(source).collect()
    return frame
