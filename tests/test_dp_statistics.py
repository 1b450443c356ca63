"""Statistical tests of every mechanism class (R-DP-15).

For counts, sums, means and quantiles; with public and with private keys; with one and with
several rows per person: the measurement is built once and released many times on a frame
whose true answers are known. Each noisy value is mapped through the CDF of the distribution
OpenDP reports for it (`summarize`: kind and scale); the results must be uniform. The
Dvoretzky-Kiefer-Wolfowitz inequality bounds the gap between their empirical CDF and the
uniform one: a correct mechanism passes a gap of sqrt(ln(2/p) / 2n) but with probability p,
here one in a million, for any n. The same test must fail when the scale is doubled or
halved. The 95% intervals from OpenDP's accuracy must cover 95% of the time (binomial bounds
at the same p), and a mean's interval, built from its parts, at least that often.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import opendp.prelude as dp
import polars as pl
import pytest
from scipy import stats

from gateway.core.checks import CheckedPlan, check_plan
from gateway.core.policy import DatasetPolicy
from gateway.core.sql import parse_sql
from gateway.dp import compile as compiler
from gateway.dp import frames
from gateway.dp.release import draw as release_parts
from gateway.dp.release import shape
from gateway.policyfiles import load_policies, shipped_policies_dir

pytestmark = pytest.mark.slow  # about a minute in all; `make test` runs them

FAILURE = 1e-8  # per check; about fifty checks keep a correct suite failing under 1e-6
RELEASES = {"public": 120, "private": 80}  # x 20 (or 18) groups: thousands of draws
ALPHA = 0.05
POLICIES = load_policies(shipped_policies_dir())
TOWNS = [str(t) for t in POLICIES["residents"].column("township").categories]  # type: ignore[union-attr]
BIG, TINY, EMPTY = TOWNS[:18], TOWNS[18], TOWNS[19]  # EMPTY has no row at all


@dataclass(frozen=True)
class Unit:
    """A dataset shape: its policy, integer and float columns and the filter every query uses."""

    policy: DatasetPolicy
    integer: str
    real: str
    where: str


def _residents(rng: np.random.Generator) -> pl.DataFrame:
    sizes = [220 + 5 * i for i in range(len(BIG))] + [1]
    towns = [t for t, n in zip([*BIG, TINY], sizes, strict=True) for _ in range(n)]
    n = len(towns)
    return pl.DataFrame({
        "person_id": [f"P{i}" for i in range(n)], "household_id": [f"H{i // 3}" for i in range(n)],
        "township": towns, "age": rng.integers(0, 111, n), "sex": rng.choice(["F", "M"], n),
        "education": "college", "industry": "A", "employment_status": "employed",
        "income": np.round(rng.lognormal(10.3, 0.8, n), 0),
    })


def _vehicles(rng: np.random.Generator) -> pl.DataFrame:
    """Up to three vehicles per person, all in the person's township."""
    owners, towns = [], []
    for t, town in enumerate([*BIG, TINY]):
        people = 1 if town == TINY else 260 + 5 * t
        for p in range(people):
            count = 1 if town == TINY else int(rng.integers(1, 4))
            owners += [f"{town}-{p}"] * count
            towns += [town] * count
    n = len(owners)
    return pl.DataFrame({
        "person_id": owners, "township": towns, "vehicle_type": rng.choice(["car", "ev"], n),
        "vehicle_age": rng.integers(0, 31, n), "value": np.round(rng.gamma(2.0, 60_000.0, n), 0),
        "insured": rng.random(n) < 0.7,
    })


ROW = Unit(replace(POLICIES["residents"], private_keys_allowed=True, private_keys_delta=Decimal("1e-7")),
           "age", "income", "age >= 5")
PERSON = Unit(POLICIES["vehicles"], "vehicle_age", "value", "vehicle_age >= 1")
FRAMES: dict[str, Callable[[np.random.Generator], pl.DataFrame]] = {"residents": _residents, "vehicles": _vehicles}


def typed_frame(unit: Unit) -> pl.DataFrame:
    raw = FRAMES[unit.policy.dataset](np.random.default_rng(20_240_601))
    return raw.select([pl.col(n).cast(t, strict=False) for n, t in frames.storage_schema(unit.policy).items()])


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[pl.DataFrame, Path]]:
    """Each unit's frame, and the IPC file releases scan (as in a sandbox worker: no copy)."""
    out = {}
    for unit in (ROW, PERSON):
        frame = typed_frame(unit)
        path = tmp_path_factory.mktemp("stats") / f"{unit.policy.dataset}.arrow"
        frame.write_ipc(path)
        out[unit.policy.dataset] = (frame, path)
    return out


def checked(unit: Unit, aggregates: str, keys: str, epsilon: str = "1") -> CheckedPlan:
    sql = f"SELECT township, {aggregates} FROM {unit.policy.dataset} WHERE {unit.where} GROUP BY township"
    delta = Decimal("1e-9") if keys == "private" else Decimal(0)
    return check_plan(parse_sql(sql, epsilon=Decimal(epsilon), delta=delta), unit.policy)


# ---------------------------------------------------------------- distributions


def laplace_cdf(x: np.ndarray, scale: float) -> np.ndarray:
    return np.where(x < 0, 0.5 * np.exp(np.minimum(x, 0) / scale), 1 - 0.5 * np.exp(-np.maximum(x, 0) / scale))


def discrete_laplace_cdf(k: np.ndarray, scale: float) -> np.ndarray:
    """P(Z <= k) for P(Z = k) proportional to exp(-|k| / scale), OpenDP's integer Laplace."""
    r = math.exp(-1 / scale)
    k = np.floor(k)
    return np.where(k < 0, r ** np.abs(k) / (1 + r), 1 - r ** (np.maximum(k, 0) + 1) / (1 + r))


def randomized_pit(cdf: Callable[[np.ndarray], np.ndarray], k: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform exactly when discrete `k` follows `cdf`: a uniform draw inside its probability step."""
    below, upto = cdf(k - 1), cdf(k)
    return below + rng.random(len(k)) * (upto - below)


def exponential_min_pmf(scores: np.ndarray, scale: float) -> np.ndarray:
    """OpenDP's `ExponentialMin` selection: the argmin of score - Exp(scale) noise.

    Candidate i wins at noisy value y <= s_i (density exp((y - s_i) / scale) / scale) when
    every other noisy value is above y: prod_j 1 - exp(-(s_j - y)+ / scale). The winner's y
    is at most min(s), and a candidate 40 scales above that wins with probability e^-40.
    """
    low = scores.min()
    grid = np.linspace(low - 40 * scale, low, 4001)
    log_above = np.log(np.maximum(-np.expm1(-np.maximum(scores[:, None] - grid, 0.0) / scale), 1e-300))
    log_all = log_above.sum(axis=0)
    near = np.flatnonzero(scores <= low + 40 * scale)
    density = np.exp((grid - scores[near, None]) / scale) / scale
    pmf = np.zeros(len(scores))
    pmf[near] = np.trapezoid(density * np.exp(log_all - log_above[near]), grid, axis=1)
    return pmf / pmf.sum()


def dkw_bound(n: int) -> float:
    return math.sqrt(math.log(2 / FAILURE) / (2 * n))


def uniformity_gap(pit: np.ndarray) -> float:
    """sup |F_n(u) - u| of the sample."""
    u = np.sort(pit)
    n = len(u)
    return float(max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n)))


def binomial_range(n: int, p: float) -> tuple[int, int]:
    return int(stats.binom.ppf(FAILURE / 2, n, p)), int(stats.binom.isf(FAILURE / 2, n, p))


# ---------------------------------------------------------------- releases and their errors


@dataclass
class Draws:
    """Noisy parts per (release, group), next to what they estimate."""

    summary: dict[str, dict[str, Any]]
    raws: list[pl.DataFrame]


def draw(plan: CheckedPlan, path: Path) -> Draws:
    compiled = compiler.compile_plan(plan)
    summary = dp.summarize_polars_measurement(compiled.measurement, ALPHA)
    rows = {r["column"]: r for r in summary.iter_rows(named=True)}
    return Draws(rows, [release_parts(compiled, pl.scan_ipc(path)) for _ in range(RELEASES[plan.keys])])


def truth(plan: CheckedPlan, frame: pl.DataFrame) -> pl.DataFrame:
    """Exact per-group values of the parts, on the filtered frame (one row per person or
    at most three vehicles per person: truncation keeps every row)."""
    from gateway.dp.frames import where_expr

    assert plan.plan.where is not None
    kept = frame.filter(where_expr(plan.plan.where))
    exprs = [pl.len().alias("count(*)")]
    for agg in plan.plan.aggregates:
        column = plan.policy.column(agg.column or "")
        if agg.func in ("sum", "mean") and column is not None:
            name = f"sum({column.name})"  # a mean reads the sum's draw
            exprs.append(pl.col(column.name).clip(*frames.bounds(column)).sum().alias(name))
    exact = kept.group_by("township").agg(exprs).with_columns(pl.col("township").cast(pl.String))
    if plan.keys == "private":  # big groups must fail the threshold all but never: no bias
        summary = dp.summarize_polars_measurement(compiler.compile_plan(plan).measurement)
        scale = summary.filter(pl.col("column") == "count(*)")["scale"].item()
        threshold = compiler.cost(plan).threshold
        smallest = exact.filter(pl.col("township") != TINY)["count(*)"].min()
        assert threshold is not None and smallest > threshold + 25 * scale
    return exact


def errors(draws: Draws, exact: pl.DataFrame, part: str) -> np.ndarray:
    """Noisy minus exact, per released group; an empty public group's exact value is 0."""
    out = []
    for raw in draws.raws:
        joined = raw.with_columns(pl.col("township").cast(pl.String)).join(
            exact.select("township", pl.col(part).alias("exact")), on="township", how="left")
        out.append(joined.select(pl.col(part) - pl.col("exact").fill_null(0)).to_series())
    return pl.concat(out).cast(pl.Float64).to_numpy()


def pit_of(kind: str, err: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    if kind == "Integer Laplace":
        return randomized_pit(lambda k: discrete_laplace_cdf(k, scale), err, rng)
    assert kind == "Float Laplace", kind
    return laplace_cdf(err, scale)


def assert_matches_reported_scale(kind: str, err: np.ndarray, scale: float) -> None:
    rng = np.random.default_rng(7)
    bound = dkw_bound(len(err))
    assert uniformity_gap(pit_of(kind, err, scale, rng)) <= bound, f"{kind} errors do not follow scale {scale}"
    for wrong in (2 * scale, scale / 2):
        assert uniformity_gap(pit_of(kind, err, wrong, rng)) > bound, f"scale {wrong} should have failed"


def assert_interval_covers(kind: str, err: np.ndarray, accuracy: float, scale: float) -> None:
    """OpenDP's accuracy is a (1 - ALPHA) interval: |error| <= accuracy that often."""
    if kind == "Integer Laplace":
        a = math.floor(accuracy)
        p = float(discrete_laplace_cdf(np.array([a]), scale)[0] - discrete_laplace_cdf(np.array([-a - 1]), scale)[0])
    else:
        p = 1 - math.exp(-accuracy / scale)
    assert 1 - ALPHA <= p < 1 - ALPHA + 0.02
    low, high = binomial_range(len(err), p)
    assert low <= int(np.sum(np.abs(err) <= accuracy)) <= high


# ---------------------------------------------------------------- the tests

UNITS = pytest.mark.parametrize("unit", [ROW, PERSON], ids=["one-row-per-person", "several-rows-per-person"])
KEYS = pytest.mark.parametrize("keys", ["public", "private"])


@UNITS
@KEYS
def test_counts_and_sums(unit: Unit, keys: str, stored: dict[str, tuple[pl.DataFrame, Path]]) -> None:
    plan = checked(unit, f"COUNT(*), SUM({unit.integer}), SUM({unit.real})", keys)
    frame, path = stored[unit.policy.dataset]
    draws, exact = draw(plan, path), truth(plan, frame)
    for part in ("count(*)", f"sum({unit.integer})", f"sum({unit.real})"):
        info = draws.summary[part]
        err = errors(draws, exact, part)
        assert_matches_reported_scale(info["distribution"], err, info["scale"])
        assert_interval_covers(info["distribution"], err, info["accuracy"], info["scale"])
    released = {t for raw in draws.raws for t in raw["township"].cast(pl.String).to_list()}
    if keys == "public":  # R-DP-06 (a): exactly the declared keys, every time
        assert all(raw.height == len(TOWNS) for raw in draws.raws) and released == set(TOWNS)
    else:  # (b): only groups that pass the threshold; a one-person group never does
        assert released == set(BIG)


@UNITS
@KEYS
def test_means(unit: Unit, keys: str, stored: dict[str, tuple[pl.DataFrame, Path]]) -> None:
    plan = checked(unit, f"AVG({unit.real})", keys)
    frame, path = stored[unit.policy.dataset]
    draws, exact = draw(plan, path), truth(plan, frame)
    label = f"mean({unit.real})"
    for part in (f"sum({unit.real})", "count(*)"):  # a mean is its noisy sum over the noisy row count
        info = draws.summary[part]
        assert_matches_reported_scale(info["distribution"], errors(draws, exact, part), info["scale"])
    _assert_mean_intervals_cover(plan, draws, exact, label)


def _assert_mean_intervals_cover(plan: CheckedPlan, draws: Draws, exact: pl.DataFrame, label: str) -> None:
    """Each row's reported interval (`Release.row_accuracy`) holds that group's mean."""
    compiled = compiler.compile_plan(plan)
    total = f"sum({label[5:-1]})"
    means = dict(zip(exact["township"], (exact[total] / exact["count(*)"]).to_list(), strict=True))
    covered = trials = 0
    for raw in draws.raws:
        release = shape(plan, compiled, raw, "s", ALPHA)
        index = release.columns.index(label)
        for row, accuracy in zip(release.rows, release.row_accuracy, strict=True):
            if row[0] not in means:
                continue
            width = accuracy[label]
            assert width is not None
            trials += 1
            covered += row[index] is not None and abs(row[index] - means[row[0]]) <= width
        assert release.accuracy[label] is not None
    assert covered >= binomial_range(trials, 1 - ALPHA)[0], "a mean's interval covers less than 95%"


@UNITS
@KEYS
def test_quantiles(unit: Unit, keys: str, stored: dict[str, tuple[pl.DataFrame, Path]]) -> None:
    plan = checked(unit, f"QUANTILE({unit.integer}, 0.25)", keys, epsilon="0.6")  # a wide spread: power
    frame, path = stored[unit.policy.dataset]
    draws = draw(plan, path)
    label = f"quantile({unit.integer}, 0.25)"
    info = draws.summary[label]
    assert info["distribution"] == "ExponentialMin" and info["accuracy"] is None
    column = plan.policy.column(unit.integer)
    assert column is not None
    candidates = frames.candidates(column)
    assert plan.plan.where is not None
    kept = frame.filter(frames.where_expr(plan.plan.where)).with_columns(pl.col("township").cast(pl.String))
    score = dp.t.make_quantile_score_candidates(dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance(),
                                                candidates, 0.25)
    values = {t: g[unit.integer].to_list() for (t,), g in kept.group_by("township")}
    scores = {t: np.asarray(score(v), dtype=float) for t, v in values.items()}
    chosen = [(t, candidates.index(q)) for raw in draws.raws
              for t, q in zip(raw["township"].cast(pl.String), raw[label], strict=True) if t in scores]
    rng = np.random.default_rng(11)
    bound = dkw_bound(len(chosen))
    for factor, should_pass in ((1.0, True), (2.0, False), (0.5, False)):
        cdfs = {t: np.concatenate([[0.0], np.cumsum(exponential_min_pmf(s, info["scale"] * factor))])
                for t, s in scores.items()}
        pit = np.array([cdfs[t][i] + rng.random() * (cdfs[t][i + 1] - cdfs[t][i]) for t, i in chosen])
        assert (uniformity_gap(pit) <= bound) == should_pass, f"scale x{factor}"
