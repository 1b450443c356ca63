"""Every noisy part draws its own noise: no two parts of a release ever share a draw.

The audit's finding (issue 11, point 1): with public keys, OpenDP 0.16 fills each empty group
with one `fill_null(noise)` expression per part; two parts of the same kind and scale
(COUNT(*) and COUNT(col), SUM(c) and a mean's sum) had identical expressions, polars'
common-subexpression elimination computed them once, and the two values were equal in every
empty cell while independent in the others: "nobody here" showed through at any epsilon.

Here each query is released many times on a small frame (written to an IPC file and scanned,
as a sandbox worker does) in which some groups have rows and some have none. For every pair
of noisy parts, in empty and non-empty cells apart, the number of releases in which the two
values are equal must stay within what independent draws allow. Two independent draws
X = a + e1, Y = b + e2 are equal with probability P(e1 - e2 = b - a) <= P(e1 = e2) (the
difference of two symmetric log-concave laws has its mode at 0), computed exactly for integer
Laplace noise from the scales OpenDP reports; a float Laplace draw hits any one value with
probability at most its density 1 / (2 scale) times the float spacing there (<= 2^-52 * 60
scale within 60 scales, e^-60 beyond), below 1e-13, taken as 1e-12. Each check fails a correct
engine with probability below 1e-9 (binomial tail); there are fewer than 200 checks here, so
a correct engine fails this file with probability below 1e-6. Shared draws make every empty
cell equal, far above any of the bounds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
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
from gateway.dp.release import draw
from gateway.policyfiles import load_policies, shipped_policies_dir

POLICIES = load_policies(shipped_policies_dir())
RELEASES = 30
PER_CHECK = 1e-9
FLOAT_TIE = 1e-12
TOWNS = [str(t) for t in POLICIES["residents"].column("township").categories]  # type: ignore[union-attr]
MONTHS = [str(m) for m in POLICIES["social_insurance"].column("month").categories]  # type: ignore[union-attr]
RESIDENTS_PRIVATE = replace(POLICIES["residents"], private_keys_allowed=True, private_keys_delta=Decimal("1e-7"))


def _residents(rng: np.random.Generator, towns: list[str], people: int) -> pl.DataFrame:
    """One row per person, `people` in each of `towns`; the other townships are empty."""
    town = [t for t in towns for _ in range(people)]
    n = len(town)
    return pl.DataFrame({
        "person_id": [f"P{i}" for i in range(n)], "household_id": [f"H{i}" for i in range(n)],
        "township": town, "age": rng.integers(0, 111, n), "sex": rng.choice(["F", "M"], n),
        "education": "college", "industry": "A", "employment_status": "employed",
        "income": np.round(rng.lognormal(10.3, 0.8, n), 0),
    })


def _social_insurance(rng: np.random.Generator) -> pl.DataFrame:
    """Several rows per person: each of 300 people pays January to June; July to December are empty."""
    person = [f"P{p}" for p in range(300) for _ in range(6)]
    month = [MONTHS[m] for _ in range(300) for m in range(6)]
    n = len(person)
    return pl.DataFrame({"person_id": person, "month": month,
                         "contribution_base": np.round(rng.uniform(2000, 30000, n), 0),
                         "employer_industry": rng.choice(["A", "C", "G"], n)})


def _vehicles(rng: np.random.Generator) -> pl.DataFrame:
    """Several rows per person: one to three vehicles each, 700 owners in each of eight townships."""
    owners, towns = [], []
    for town in TOWNS[:8]:
        for p in range(700):
            count = int(rng.integers(1, 4))
            owners += [f"{town}-{p}"] * count
            towns += [town] * count
    n = len(owners)
    return pl.DataFrame({"person_id": owners, "township": towns, "vehicle_type": rng.choice(["car", "ev"], n),
                         "vehicle_age": rng.integers(0, 31, n), "value": np.round(rng.gamma(2.0, 60_000.0, n), 0),
                         "insured": rng.random(n) < 0.7})


# name: (policy, frame, SQL, key column, epsilon, delta)
CASES: dict[str, tuple[DatasetPolicy, Any, str, str, str, str]] = {
    "public-one-row-per-person": (
        POLICIES["residents"], lambda rng: _residents(rng, TOWNS[:8], 40),
        "SELECT township, COUNT(*), COUNT(age), COUNT(income), SUM(age), SUM(income), AVG(age), AVG(income) "
        "FROM residents GROUP BY township", "township", "1", "0"),
    "public-several-rows-per-person": (
        POLICIES["social_insurance"], _social_insurance,
        "SELECT month, COUNT(*), COUNT(contribution_base), SUM(contribution_base), AVG(contribution_base) "
        "FROM social_insurance GROUP BY month", "month", "1", "0"),
    "private-one-row-per-person": (
        RESIDENTS_PRIVATE, lambda rng: _residents(rng, TOWNS[:8], 700),
        "SELECT township, COUNT(*), COUNT(age), COUNT(income), SUM(age), SUM(income), AVG(income) "
        "FROM residents GROUP BY township", "township", "1", "1e-7"),
    "private-several-rows-per-person": (
        POLICIES["vehicles"], _vehicles,
        "SELECT township, COUNT(*), COUNT(value), COUNT(vehicle_age), SUM(vehicle_age), SUM(value), AVG(value) "
        "FROM vehicles GROUP BY township", "township", "1", "1e-8"),  # the vehicles policy's delta
}


def _checked(policy: DatasetPolicy, sql: str, epsilon: str, delta: str) -> CheckedPlan:
    return check_plan(parse_sql(sql, epsilon=Decimal(epsilon), delta=Decimal(delta)), policy)


def _ipc(policy: DatasetPolicy, frame: pl.DataFrame, folder: Path) -> Path:
    typed = frame.select([pl.col(n).cast(t, strict=False) for n, t in frames.storage_schema(policy).items()])
    path = folder / f"{policy.dataset}.arrow"
    typed.write_ipc(path)
    return path


def integer_laplace_pmf(scale: float, support: np.ndarray) -> np.ndarray:
    r = math.exp(-1 / scale)
    return (1 - r) / (1 + r) * r ** np.abs(support)


def tie_probability(a: dict[str, Any], b: dict[str, Any]) -> float:
    """An upper bound on P(X = Y) for independent draws of the two parts, whatever their truths."""
    if a["distribution"] == b["distribution"] == "Integer Laplace":
        reach = math.ceil(80 * max(a["scale"], b["scale"]))
        k = np.arange(-reach, reach + 1)
        return float(np.sum(integer_laplace_pmf(a["scale"], k) * integer_laplace_pmf(b["scale"], k)))
    assert {a["distribution"], b["distribution"]} <= {"Integer Laplace", "Float Laplace"}
    return FLOAT_TIE


def most_ties(trials: int, p: float) -> int:
    """The largest tie count independent draws reach with probability above PER_CHECK."""
    return int(stats.binom.isf(PER_CHECK, trials, p))


@pytest.mark.parametrize("case", list(CASES))
def test_no_two_noisy_parts_share_a_draw(case: str, tmp_path: Path) -> None:
    policy, make, sql, key, epsilon, delta = CASES[case]
    frame = make(np.random.default_rng(20_251_107))
    path = _ipc(policy, frame, tmp_path)
    plan = _checked(policy, sql, epsilon, delta)
    compiled = compiler.compile_plan(plan)
    summary = {r["column"]: r for r in dp.summarize_polars_measurement(compiled.measurement).iter_rows(named=True)}
    occupied = set(frame[key].unique().to_list())
    raws = [draw(compiled, pl.scan_ipc(path, memory_map=True)) for _ in range(RELEASES)]
    parts = [c for c in raws[0].columns if c != key]
    assert set(parts) == set(summary), "every output column is a noisy part"
    released = {str(k) for raw in raws for k in raw[key].to_list()}
    if plan.keys == "public":
        assert occupied < released, "public keys release the empty groups too"
    else:
        assert released <= occupied, "private keys release no group without rows"
    checks = 0
    for a, b in itertools.combinations(parts, 2):
        p = tie_probability(summary[a], summary[b])
        for cells, wanted in (("empty", False), ("non-empty", True)):
            ties = trials = 0
            for raw in raws:
                rows = raw.filter(pl.col(key).cast(pl.String).is_in(list(occupied)) == wanted)
                ties += int((rows[a] == rows[b]).sum())
                trials += rows.height
            if trials == 0:
                continue
            checks += 1
            assert most_ties(trials, p) < trials / 2, "too few cells to tell shared draws apart"
            assert ties <= most_ties(trials, p), (
                f"{a} and {b} are equal in {ties} of {trials} {cells} cells; independent draws "
                f"tie with probability at most {p:.2g}")
    assert checks >= len(parts) - 1

