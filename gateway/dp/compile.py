"""Checked plan -> an OpenDP measurement over the dataset's domain; its cost and accuracy.

No data is read here: the domain, bounds, key sets, candidates and row bound come from the
policy (R-DP-08), the query from our checked plan. The measurement is OpenDP's own
`make_private_lazyframe` (the constructor its Context uses), over a placeholder frame with
the storage schema; the sandbox later applies it to the snapshot. Noise scales are computed
directly from the plan's epsilon split (see `calibrate`) and proven by the privacy map, so
a query costs a few measurement builds instead of `resolve()`'s thousand.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import polars as pl

# OpenDP's modules by name, not `opendp.prelude`: the prelude also imports OpenDP's scikit-learn,
# numpy, mbi and ibis extras (scikit-learn alone, when installed, took ~1 s of every worker's and
# every snapshot preparation's start). Importing `opendp.extras.polars` registers `expr.dp`.
from opendp.accuracy import summarize_polars_measurement
from opendp.domains import atom_domain, enum_domain, lazyframe_domain, option_domain, series_domain, with_margin
from opendp.extras.polars import Margin, dp_len
from opendp.measurements import make_private_lazyframe
from opendp.measures import approximate, max_divergence
from opendp.metrics import symmetric_distance, symmetric_id_distance
from opendp.mod import GLOBAL_FEATURES, enable_features
from opendp.typing import String, f64, i64

from gateway.core.budget import NANO, from_nano
from gateway.core.checks import CheckedPlan
from gateway.core.parts import Part, plan_parts
from gateway.core.plan import canonical_aggregates, canonical_keys
from gateway.core.policy import Column, DatasetPolicy
from gateway.dp import draws, frames
from gateway.dp.calibrate import Calibrated, calibrate

enable_features("contrib")  # the only feature the engine needs (R-DP-01)
SAFE_FEATURES = frozenset({"contrib"})
_CACHE_SIZE = 256


def assert_features_safe() -> None:
    """Refuse to run with OpenDP features beyond `contrib`, or with a swapped library (R-DP-01)."""
    extra = set(GLOBAL_FEATURES) - SAFE_FEATURES
    if extra:
        raise RuntimeError(f"unsafe OpenDP features are enabled: {', '.join(sorted(extra))}")
    for variable in ("OPENDP_LIB_DIR", "OPENDP_POLARS_LIB_PATH"):
        if os.environ.get(variable):
            raise RuntimeError(f"{variable} replaces the OpenDP library; unset it")


@dataclass(frozen=True)
class Compiled:
    parts: tuple[Part, ...]  # the measurement's output columns, in order (`Part.label`)
    calibrated: Calibrated
    _accuracy: dict[float, dict[str, float | None]] = field(default_factory=dict, compare=False)

    @property
    def measurement(self) -> Any:
        return self.calibrated.measurement

    def accuracy(self, alpha: float) -> dict[str, float | None]:
        """Half-width of a (1 - alpha) interval of each noisy column (OpenDP's summarize);
        it depends on the scales only, so it is kept per alpha."""
        if alpha not in self._accuracy:
            summary = summarize_polars_measurement(self.measurement, alpha)
            self._accuracy[alpha] = dict(zip(summary["column"].to_list(), summary["accuracy"].to_list(),
                                             strict=True))
        return self._accuracy[alpha]


@dataclass(frozen=True)
class Cost:
    """What a release charges (the request, rounded up to nano-epsilon) and what OpenDP's
    privacy map proves it spends (never more)."""

    epsilon_nano: int
    delta: Decimal
    mechanism_epsilon: float
    mechanism_delta: float
    threshold: int | None


def parts_of(checked: CheckedPlan) -> tuple[Part, ...]:
    return plan_parts(checked.plan.aggregates)


def query_plan(checked: CheckedPlan, scales: tuple[float, ...]) -> pl.LazyFrame:
    """The polars plan OpenDP checks: filter, truncate per person, aggregate, join public keys."""
    policy, plan = checked.policy, checked.plan
    frame = pl.LazyFrame(schema=frames.storage_schema(policy))
    if plan.where is not None:
        frame = frame.filter(frames.where_expr(plan.where))
    unit = policy.privacy_unit
    if unit.kind == "identifier":
        # R-DP-07: keep at most max_contributions rows per person (truncate_per_group, first rows).
        frame = frame.filter(pl.int_range(pl.len()).over(unit.column) < unit.max_contributions)
    # Pairwise distinct scales make every part's noise expression distinct (issue 11, point 1).
    exprs = [_expression(part, policy, scale)
             for part, scale in zip(parts_of(checked), draws.distinct_scales(scales), strict=True)]
    keys = list(canonical_keys(plan.group_by))
    if not keys:
        return frame.select(exprs)
    grouped = frame.group_by(keys).agg(exprs)
    if checked.keys == "private":
        return grouped
    return frames.keys_frame(policy, tuple(keys)).lazy().join(grouped, on=keys, how="left", nulls_equal=True)


def _expression(part: Part, policy: DatasetPolicy, scale: float) -> pl.Expr:
    if part.column is None:
        return dp_len(scale=scale, signed=True).alias(part.label)
    column = policy.column(part.column)
    assert column is not None, "checked before"
    expr = pl.col(part.column)
    if part.func == "count":
        out = expr.dp.count(scale=scale, signed=True)  # type: ignore[attr-defined]
    elif part.func == "sum":
        # Clip, sum, noise as OpenDP's own stages: `dp.sum` expands to the same plus a fill of
        # nulls and NaNs, which a numeric column never holds (checked at load, and the domain
        # says so), yet cost a pass over every row (issue 18: ~10% of a grouped mean's release).
        # OpenDP proves the same sensitivity either way; the calibration's map checks it.
        low, high = frames.bounds(column)
        out = expr.clip(low, high).sum().dp.noise(scale=scale)  # type: ignore[attr-defined]
    else:
        out = expr.dp.quantile(part.q, frames.candidates(column), scale=scale)  # type: ignore[attr-defined]
    return out.alias(part.label)


def input_domain(checked: CheckedPlan) -> Any:
    """The dataset's domain from its policy; the row bound and key bound are public margins."""
    policy = checked.policy
    domain = lazyframe_domain([series_domain(c.name, _element_domain(c))
                                  for c in frames.stored_columns(policy)])
    domain = with_margin(domain, Margin(by=[], max_length=policy.max_rows))
    if checked.keys == "private":
        keys = canonical_keys(checked.plan.group_by)
        margin = Margin(by=list(keys), max_groups=frames.max_groups(policy, keys))
        domain = with_margin(domain, margin)
    return domain


def _element_domain(column: Column) -> Any:
    dtype = frames.dtype_of(column)
    if column.type == "integer":
        return atom_domain(T=i64)
    if column.type == "float":
        return atom_domain(T=f64, nan=False)
    if isinstance(dtype, pl.Enum):
        return option_domain(enum_domain(pl.Series(list(dtype.categories))))
    return option_domain(atom_domain(T="bool" if column.type == "boolean" else String))


def privacy_unit(policy: DatasetPolicy) -> tuple[Any, int]:
    """Input metric and distance: one row, or one person's rows by identifier (R-DP-07)."""
    unit = policy.privacy_unit
    if unit.kind == "identifier":
        return symmetric_id_distance(unit.column), 1
    return symmetric_distance(), 1


class _LRU(OrderedDict[str, Compiled]):
    def remember(self, key: str, value: Compiled) -> Compiled:
        self[key] = value
        while len(self) > _CACHE_SIZE:
            self.popitem(last=False)
        return value


_compiled = _LRU()
# Whose history the cache may reuse: the worker sets the caller's organisation per message, so a
# plan another organisation compiled is built afresh, and no latency shows it was asked (R-DP-19).
CACHE_SCOPE: ContextVar[str] = ContextVar("cache_scope", default="")


def compile_plan(checked: CheckedPlan) -> Compiled:
    """The calibrated measurement of a checked plan; cached per caller's organisation
    (`CACHE_SCOPE`), plan, policy version and split."""
    key = "|".join((CACHE_SCOPE.get(), checked.policy.version, checked.fingerprint(), checked.keys,
                    ",".join(map(str, checked.epsilon_split))))
    if key in _compiled:
        _compiled.move_to_end(key)
        return _compiled[key]
    parts = parts_of(checked)
    if len(parts) != len(checked.epsilon_split):
        raise RuntimeError("the epsilon split does not match the plan's noisy parts")
    domain = input_domain(checked)
    metric, d_in = privacy_unit(checked.policy)
    measure = approximate(max_divergence()) if checked.keys == "private" else max_divergence()

    def build(scales: tuple[float, ...], threshold: int | None) -> Any:
        return make_private_lazyframe(domain, metric, measure, query_plan(checked, scales),
                                           threshold=threshold)

    shares = [Decimal(n) / NANO for n in checked.epsilon_split]
    delta = checked.delta if checked.keys == "private" else None
    calibrated = calibrate(build, shares, d_in, delta=delta)
    return _compiled.remember(key, Compiled(parts, calibrated))


def cost(checked: CheckedPlan) -> Cost:
    """The charge of a release (R-DP-02): computed from plan and policy, before any data."""
    calibrated = compile_plan(checked).calibrated
    if Decimal(calibrated.epsilon) > from_nano(checked.epsilon_nano):
        raise RuntimeError("the measurement spends more than the charge")
    return Cost(checked.epsilon_nano, checked.delta, calibrated.epsilon, calibrated.delta,
                calibrated.threshold)


def accuracy(checked: CheckedPlan, alpha: float = 0.05) -> dict[str, float | None]:
    """Per aggregate (keyed by its release column, `Output.source`): the half-width of its
    (1 - alpha) interval, without data.

    Means and quantiles have none before release (a mean's depends on its noisy count; the
    Release carries it, computed from the released values).
    """
    by_part = compile_plan(checked).accuracy(alpha)
    return {a.label: by_part.get(a.label) if a.func in ("count", "sum") else None
            for a in canonical_aggregates(checked.plan.aggregates)}


def preview_figures(checked: CheckedPlan, alpha: float = 0.05) -> dict[str, Any]:
    """What `POST /v1/queries/preview` shows of the engine: charge, accuracy by output name,
    and the threshold of private keys."""
    charge = cost(checked)
    by_label = accuracy(checked, alpha)
    return {
        "epsilon": float(from_nano(charge.epsilon_nano)),
        "delta": float(charge.delta),
        "accuracy": {"alpha": alpha, "columns": {o.name: by_label.get(o.source)
                                                 for o in checked.plan.select if o.aggregate is not None}},
        "threshold": charge.threshold,
    }
