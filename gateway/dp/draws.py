"""Every noisy part of a release draws its own noise (issue 11, point 1).

OpenDP 0.16 builds a polars plan in which each part's noise is a plugin call, and fills the
empty groups of public keys with one `fill_null(noise(0))` call per part. Two parts of the
same kind and scale had identical calls, and polars' common-subexpression elimination (CSE),
on by default, computed them once: every empty cell showed two equal values, non-empty cells
two independent ones. Two defences, each enough alone:

1. Distinct expressions: no two parts of a measurement share a noise scale (`distinct_scales`
   moves a repeated scale to the next float up, which costs nothing measurable and only adds
   noise), so no two noise calls are alike and CSE finds nothing to merge, whoever collects.
2. No merging at all: a release is collected here with CSE and common-subplan elimination off
   (`RELEASE_OPTIMIZATIONS`). OpenDP collects its `OnceFrame` itself with polars' defaults,
   so the plan is taken out of the `OnceFrame` (`lazy()`, which OpenDP puts behind its
   `honest-but-curious` feature: the plan must run once and its row order stay unseen) and
   collected once, then shuffled as OpenDP would. The feature is on for that one call only.
   OpenDP cannot hand out a plan that holds an opaque function (quantiles); those releases
   are collected by OpenDP, and defence 1 is what keeps their parts apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import opendp.prelude as dp
import polars as pl
from opendp.mod import GLOBAL_FEATURES, OpenDPException

RELEASE_OPTIMIZATIONS = pl.QueryOptFlags(comm_subexpr_elim=False, comm_subplan_elim=False)
_PLAN_FEATURE = "honest-but-curious"


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


def plan_comes_out(measurement: Any, placeholder: pl.LazyFrame) -> bool:
    """Whether OpenDP hands out the measurement's polars plan: it depends on the plan's shape
    only, so it is decided once, on an empty frame, when the plan is compiled."""
    try:
        _plan_of(measurement(placeholder))
    except OpenDPException:  # "serialization not supported for this 'opaque' function"
        return False
    return True


def collect(measurement: Any, source: pl.LazyFrame, plan_comes_out: bool) -> pl.DataFrame:
    """The measurement's output on `source`, evaluated exactly once."""
    once = measurement(source)
    if not plan_comes_out:
        collected: pl.DataFrame = once.collect()
        return collected
    frame = _plan_of(once).collect(optimizations=RELEASE_OPTIMIZATIONS)
    return frame.sample(fraction=1.0, shuffle=True)  # as OnceFrame.collect: row order says nothing


def _plan_of(once: Any) -> pl.LazyFrame:
    with _feature(_PLAN_FEATURE):
        plan: pl.LazyFrame = once.lazy()
    return plan


@contextmanager
def _feature(name: str) -> Iterator[None]:
    """An OpenDP feature for the span of one call; afterwards the set is as it was (R-DP-01)."""
    was_on = name in GLOBAL_FEATURES
    dp.enable_features(name)
    try:
        yield
    finally:
        if not was_on:
            dp.disable_features(name)
