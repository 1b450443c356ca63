"""Noisy parts over real HTTP (issue 11, points 1 and 7): independent draws in empty cells,
one charge per distinct part, and an interval per released row.

The tie bounds are those of `tests/test_dp_draws.py`: integer Laplace draws are equal with a
probability computed from their scales (taken from the engine's own measurement of the same
checked plan); each check fails a correct engine with probability below 1e-9.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import opendp.prelude as dp
import pytest

from gateway.core.checks import check_plan
from gateway.core.sql import parse_sql
from gateway.dp import compile as compiler
from gateway.policyfiles import load_policies, shipped_policies_dir
from tests.support import Gateway, seed_demo_data
from tests.test_dp_draws import most_ties, tie_probability

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000"}
BANK = "demo-bank"
POLICIES = load_policies(shipped_policies_dir())
COUNTS = "SELECT township, COUNT(*) AS a, COUNT(age) AS b, COUNT(income) AS c, SUM(income) AS s, " \
         "AVG(income) AS m FROM residents{where} GROUP BY township"
NOBODY = " WHERE sex = 'F' AND sex = 'M'"  # every township's cell is empty
EPSILONS = ("0.1", "0.11", "0.12", "0.13", "0.14")  # distinct canonical plans: a fresh draw each


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("release-parts")
    seed_demo_data(state, demo_data)
    gateway = Gateway(state, env=FAST).start()
    yield gateway
    gateway.stop()


def ask(gw: Gateway, sql: str, epsilon: str, path: str = "/v1/queries") -> dict[str, Any]:
    reply = gw.api("POST", path, BANK, {"dataset": "residents", "sql": sql, "epsilon": float(epsilon)})
    assert reply.status == 200, reply.body[:400]
    return reply.json  # type: ignore[no-any-return]


def spent(gw: Gateway) -> float:
    lines = gw.api("GET", "/v1/budget", BANK).json["datasets"]
    return float(next(d for d in lines if d["dataset"] == "residents")["epsilon_spent"])


def scales_of(sql: str, epsilon: str) -> dict[str, dict[str, Any]]:
    plan = check_plan(parse_sql(sql, epsilon=Decimal(epsilon)), POLICIES["residents"])
    summary = dp.summarize_polars_measurement(compiler.compile_plan(plan).measurement)
    return {r["column"]: r for r in summary.iter_rows(named=True)}


def test_empty_cells_look_like_full_ones_to_a_pair_of_counts(gw: Gateway) -> None:
    """The audit's distinguisher: COUNT(*) and COUNT(col) equal in every empty cell."""
    parts = scales_of(COUNTS.format(where=""), EPSILONS[-1])  # the largest epsilon ties most often
    p = tie_probability(parts["count(*)"], parts["count(age)"])
    assert p == pytest.approx(tie_probability(parts["count(age)"], parts["count(income)"]))
    for where in (NOBODY, ""):
        answers = [ask(gw, COUNTS.format(where=where), eps) for eps in EPSILONS]
        assert all(not a["cached"] for a in answers)
        for x, y in itertools.combinations((1, 2, 3), 2):
            pairs = [(row[x], row[y]) for a in answers for row in a["rows"]]
            ties = sum(u == v for u, v in pairs)
            assert most_ties(len(pairs), p) < len(pairs) / 2
            assert ties <= most_ties(len(pairs), p), (
                f"columns {x} and {y} are equal in {ties} of {len(pairs)} cells ({where or 'all rows'})")


def test_a_mean_beside_its_sum_is_charged_once(gw: Gateway) -> None:
    """SUM(c) and AVG(c) draw one noisy sum and one noisy count: epsilon is split in two, the
    preview and the release say so alike, and the budget moves by exactly the charge."""
    sql = "SELECT SUM(income) AS s, AVG(income) AS m FROM residents WHERE age >= 30"
    preview = ask(gw, sql, "1", path="/v1/queries/preview")
    alone = scales_of("SELECT SUM(income) FROM residents WHERE age >= 30", "0.5")["sum(income)"]["scale"]
    half = dp.laplacian_scale_to_accuracy(scale=alone, alpha=0.05)  # the sum gets half of epsilon
    assert preview["epsilon"] == 1.0
    assert preview["accuracy"]["columns"]["s"] == pytest.approx(half, rel=1e-6)
    before = spent(gw)
    answer = ask(gw, sql, "1")
    assert answer["epsilon_spent"] == preview["epsilon"] == 1.0
    assert spent(gw) == pytest.approx(before + 1.0)
    assert answer["accuracy"]["columns"]["s"] == pytest.approx(preview["accuracy"]["columns"]["s"], rel=1e-12)
    parts = scales_of(sql, "1")
    assert set(parts) == {"sum(income)", "count(*)"}, "the mean reuses the sum's draw and the count's"


def test_a_grouped_mean_has_an_interval_per_row(gw: Gateway) -> None:
    """`accuracy.rows[i]` belongs to `rows[i]`, whatever ORDER BY and LIMIT did; `columns`
    keeps the widest, as before."""
    base = "SELECT education, COUNT(*) AS n, AVG(income) AS m FROM residents WHERE age >= 60 GROUP BY education"
    plain = ask(gw, base, "0.5")
    ordered = ask(gw, base + " ORDER BY n DESC LIMIT 4", "0.5")
    assert ordered["cached"] and ordered["query_id"] == plain["query_id"]  # the same stored release
    for answer in (plain, ordered):
        rows, accuracy = answer["rows"], answer["accuracy"]
        assert len(accuracy["rows"]) == len(rows)
        assert all(set(r) == {"n", "m"} for r in accuracy["rows"])
        assert all(r["n"] == accuracy["columns"]["n"] for r in accuracy["rows"])
    per_row = {row[0]: acc for row, acc in zip(plain["rows"], plain["accuracy"]["rows"], strict=True)}
    for row, acc in zip(ordered["rows"], ordered["accuracy"]["rows"], strict=True):
        assert acc == per_row[row[0]]
    widths = [r["m"] for r in plain["accuracy"]["rows"]]
    assert max(widths) == plain["accuracy"]["columns"]["m"]
    assert min(widths) < max(widths) / 2, "big groups get narrower intervals than the widest"
