"""A bank trying to learn one resident's income from DP answers (R-DP-03, -04, -10, -13).

The target is a real person of the demo data, singled out by public columns. The bank
differences two sums, re-asks the same question in every spelling it can think of, then asks
equivalent but differently written questions: spellings of one canonical query return the
stored noise at no cost, every fresh draw is charged, and the grant stops the averaging. A
query that matches nobody and one that matches the target look the same on every channel
except the released numbers.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.support import FAST_RATES, Gateway, Reply, demo_gateway

BANK, INSURER = "demo-bank", "demo-insurer"
INCOME_SPAN = 2_000_000  # the policy's bounds on income: one person moves a sum by at most this
VARYING_HEADERS = {"date", "x-request-id", "content-length"}


@dataclass(frozen=True)
class Target:
    """One resident singled out by public columns, and what the data says of them."""

    township: str
    sex: str
    education: str
    industry: str
    age: int
    income: float

    def where(self, age_condition: str | None = None) -> str:
        age = age_condition or f"age = {self.age}"
        return f"township = '{self.township}' AND sex = '{self.sex}' AND education = '{self.education}' AND {age}"


@pytest.fixture(scope="module")
def residents(demo_data: Path) -> pl.DataFrame:
    return pl.read_parquet(demo_data / "residents.parquet")


@pytest.fixture(scope="module")
def target(residents: pl.DataFrame) -> Target:
    """The richest resident whose township, sex, education and age match nobody else."""
    keys = ["township", "sex", "education", "age"]
    unique = residents.join(residents.group_by(keys).len().filter(pl.col("len") == 1), on=keys)
    row = unique.sort("income", descending=True).row(0, named=True)
    return Target(row["township"], row["sex"], row["education"], row["industry"], row["age"], row["income"])


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("attacks-dp"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


def ask(gw: Gateway, sql: str | None, eps: Any, client: str = BANK, plan: dict[str, Any] | None = None,
        path: str = "/v1/queries") -> Reply:
    body: dict[str, Any] = {"dataset": "residents", "epsilon": eps}
    body.update({"plan": plan} if plan is not None else {"sql": sql})
    return gw.api("POST", path, client, body)


def residents_budget(gw: Gateway, client: str) -> dict[str, float]:
    lines = gw.api("GET", "/v1/budget", client).json["datasets"]
    return next(d for d in lines if d["dataset"] == "residents")


def test_differencing_one_person_is_drowned_in_noise(gw: Gateway, target: Target) -> None:
    """Sum over a group minus the sum over the group without the target: each sum is charged,
    and each is uncertain by more than a whole income can be (the bound that makes it DP)."""
    group = f"township = '{target.township}' AND sex = '{target.sex}'"
    without = f"{group} AND NOT (education = '{target.education}' AND age = {target.age})"
    before = residents_budget(gw, BANK)["epsilon_spent"]
    answers = [ask(gw, f"SELECT SUM(income) AS s FROM residents WHERE {where}", 1.0) for where in (group, without)]
    for a in answers:
        assert a.status == 200 and a.json["cached"] is False and a.json["epsilon_spent"] == 1.0, a.body[:300]
        assert a.json["accuracy"]["columns"]["s"] > INCOME_SPAN, "a 95% interval narrower than one income"
    assert residents_budget(gw, BANK)["epsilon_spent"] == pytest.approx(before + 2.0)
    more = ask(gw, f"SELECT SUM(income) AS s FROM residents WHERE {group}", 1.5)
    assert more.status == 422, "income is important data: at most epsilon 1 per question"


def cached_spellings(t: Target) -> list[tuple[str | None, Any, dict[str, Any] | None]]:
    """Ways to write one canonical question: (sql, epsilon, plan)."""
    w = t.where()
    plan = {"select": [{"aggregate": "sum", "column": "income", "as": "total"}],
            "where": {"and": [{"column": "age", "op": "=", "value": t.age},
                              {"column": "education", "op": "=", "value": t.education},
                              {"column": "sex", "op": "=", "value": t.sex},
                              {"column": "township", "op": "=", "value": t.township}]}}
    return [
        (f"select sum(income) as total from residents where {w.replace('AND', 'and')}", 1, None),
        (f"SeLeCt\n\tSUM( income )  AS  s\nFROM residents -- the bank's note\nWHERE {w} /* again */", "1.000", None),
        (f"SELECT SUM(r.income) FROM residents AS r WHERE {t.age} = r.age AND r.sex = '{t.sex}' AND "
         f"r.education = '{t.education}' AND r.township = '{t.township}' ORDER BY 1 DESC LIMIT 3", 1.0, None),
        (f"SELECT SUM(income) FROM residents WHERE ({t.where(f'age = {t.age}.0')}) AND township = '{t.township}'",
         1.0, None),
        (f"SELECT SUM(income) FROM residents WHERE NOT (NOT ({t.where(repr(str(t.age)) + ' = age')}))", 1.0, None),
        (f"SELECT SUM(\"income\") AS x FROM residents WHERE {t.where(f'age = {t.age}')}", 1.0, None),
        (None, 1.0, plan),
    ]


def fresh_equivalents(t: Target) -> list[str]:
    """Other filters selecting exactly the target: different canonical plans, so fresh noise."""
    n, ind = t.age, t.industry
    conditions = [f"age >= {n} AND age <= {n}", f"age BETWEEN {n} AND {n}", f"age IN ({n})",
                  f"age > {n - 1} AND age < {n + 1}", f"NOT (age != {n})", f"age >= {n} AND age < {n + 1}",
                  f"age > {n - 1} AND age <= {n}", f"NOT (age < {n} OR age > {n})", f"age = {n} AND industry = '{ind}'",
                  f"age IN ({n}) AND industry IN ('{ind}')", f"age BETWEEN {n} AND {n} AND industry = '{ind}'",
                  f"age >= {n} AND age <= {n} AND industry = '{ind}'"]
    return [f"SELECT SUM(income) AS s FROM residents WHERE {t.where(c)}" for c in conditions]


def test_averaging_repeats_is_free_only_when_it_teaches_nothing(gw: Gateway, target: Target) -> None:
    """R-DP-04: the same canonical question in any spelling is the stored noise at 0 epsilon;
    equivalent but different questions draw fresh noise, each charged, until the grant is spent."""
    first = ask(gw, f"SELECT SUM(income) AS s FROM residents WHERE {target.where()}", 1.0)
    assert first.status == 200, first.body[:300]
    stored = first.json["rows"][0][0]
    spent = residents_budget(gw, BANK)
    for sql, eps, plan in cached_spellings(target):
        again = ask(gw, sql, eps, plan=plan)
        assert again.status == 200, (sql, plan, again.body[:300])
        assert again.json["cached"] is True and again.json["epsilon_spent"] == 0, (sql, plan)
        assert again.json["rows"][0][0] == stored, "a re-ask drew fresh noise"
        assert again.json["query_id"] == first.json["query_id"]
    assert residents_budget(gw, BANK) == spent, "a cached answer was charged"

    fits = int(round(spent["epsilon_remaining"], 9) // 1.0)
    replies = [ask(gw, sql, 1.0) for sql in fresh_equivalents(target)]
    assert len(replies) > fits, "the attack must run into the limit"
    fresh, refused = replies[:fits], replies[fits:]
    assert all(r.status == 200 and r.json["cached"] is False and r.json["epsilon_spent"] == 1.0 for r in fresh)
    assert len({r.json["rows"][0][0] for r in fresh} | {stored}) == fits + 1, "fresh noise repeated a draw"
    assert all(r.status == 403 and r.json["code"] == "budget_exhausted" for r in refused)
    after = residents_budget(gw, BANK)
    assert after["epsilon_spent"] == pytest.approx(after["epsilon_limit"]) and after["epsilon_remaining"] == 0
    preview = ask(gw, fresh_equivalents(target)[0].replace("SUM(income)", "COUNT(*)"), 0.01,
                  path="/v1/queries/preview")
    assert preview.status == 200 and preview.json["would_fit"] is False
    assert ask(gw, cached_spellings(target)[0][0], 1).json["cached"] is True, "stored answers stay readable"


# ---------------------------------------------------------------- side channels


def side_channel_sql(township: str) -> str:
    return ("SELECT education, COUNT(*) AS n, AVG(income) AS mean_income, MEDIAN(income) AS median_income "
            f"FROM residents WHERE township = '{township}' AND age >= 100 GROUP BY education")


def townships_by_centenarians(residents: pl.DataFrame) -> tuple[str, str]:
    """A township where someone is 100 or older, and one where nobody is."""
    old = set(residents.filter(pl.col("age") >= 100)["township"].unique().to_list())
    empty = sorted(set(residents["township"].unique().to_list()) - old)
    assert old and empty, "the demo data has centenarians in some townships only"
    return sorted(old)[0], empty[0]


def headers_that_must_match(reply: Reply) -> dict[str, str]:
    return {k.lower(): v for k, v in reply.headers.items() if k.lower() not in VARYING_HEADERS}


def audit_shape(gw: Gateway, query_id: str) -> list[tuple[str, tuple[str, ...]]]:
    db = sqlite3.connect(f"file:{gw.state_dir / 'gateway.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT kind, payload FROM audit_log WHERE subject = ? ORDER BY seq", (query_id,)).fetchall()
    finally:
        db.close()
    return [(kind, tuple(sorted(json.loads(payload)))) for kind, payload in rows]


def test_nobody_and_somebody_look_the_same_on_every_channel(gw: Gateway, residents: pl.DataFrame) -> None:
    """R-DP-03, R-DP-06: status, headers, keys, key set, epsilon, accuracy of counts, usage and
    audit are identical whether the filter matches nobody or somebody."""
    somebody, nobody = townships_by_centenarians(residents)
    catalog = gw.api("GET", "/v1/datasets/residents", INSURER).json
    educations = next(c["categories"] for c in catalog["columns"] if c["name"] == "education")
    previews = [ask(gw, side_channel_sql(t), 0.25, INSURER, path="/v1/queries/preview") for t in (somebody, nobody)]
    assert previews[0].status == 200 and previews[0].body == previews[1].body
    replies = [ask(gw, side_channel_sql(t), 0.25, INSURER) for t in (somebody, nobody)]
    full, empty = (r.json for r in replies)
    assert replies[0].status == replies[1].status == 200, replies[1].body[:300]
    assert headers_that_must_match(replies[0]) == headers_that_must_match(replies[1])
    assert set(full) == set(empty) and full["columns"] == empty["columns"]
    assert [r[0] for r in full["rows"]] == [r[0] for r in empty["rows"]] == educations
    assert full["epsilon_spent"] == empty["epsilon_spent"] == 0.25
    assert full["accuracy"]["columns"]["n"] == empty["accuracy"]["columns"]["n"]
    assert set(full["accuracy"]["columns"]) == set(empty["accuracy"]["columns"])
    assert set(full["usage"]) == set(empty["usage"]) and full["usage"]["price_minor"] == empty["usage"]["price_minor"]
    records = {u["query_id"]: u for u in gw.api("GET", "/v1/usage", INSURER).json["items"]}
    a, b = records[full["query_id"]], records[empty["query_id"]]
    varying = {"usage_id", "query_id", "committed_at"}
    assert {k: v for k, v in a.items() if k not in varying} == {k: v for k, v in b.items() if k not in varying}
    assert audit_shape(gw, full["query_id"]) == audit_shape(gw, empty["query_id"]) != []
    stored = [gw.api("GET", f"/v1/queries/{d['query_id']}", INSURER).json for d in (full, empty)]
    assert set(stored[0]) == set(stored[1]) and stored[0]["release"]["columns"] == stored[1]["release"]["columns"]


def test_undeclared_keys_are_refused_not_answered_empty(gw: Gateway) -> None:
    """R-DP-06: a literal outside the public categories is a 422 before any spend, never an
    empty group whose absence would say something."""
    before = residents_budget(gw, INSURER)
    for where in ("education = 'doctorate'", "education IN ('bachelor', 'doctorate')", "sex != 'X'"):
        r = ask(gw, f"SELECT education, COUNT(*) FROM residents WHERE {where} GROUP BY education", 0.1, INSURER)
        assert r.status == 422 and r.json["code"] == "policy_violation", (where, r.body[:300])
    assert residents_budget(gw, INSURER) == before


def true_counts(demo_data: Path, residents: pl.DataFrame) -> set[str]:
    """Exact numbers only the data knows (five digits or more, so they cannot appear by chance)."""
    counts = {pl.scan_parquet(f).select(pl.len()).collect().item() for f in demo_data.glob("*.parquet")}
    counts |= {residents.filter(pl.col("age") >= 18).height, residents.filter(pl.col("age") < 60).height,
               int(residents["income"].sum())}
    return {str(c) for c in counts if c >= 10_000}


def test_no_exact_count_reaches_anyone_but_the_bureau(gw: Gateway, demo_data: Path, residents: pl.DataFrame) -> None:
    """R-DP-10: row counts and matched rows appear in no answer, error, usage record, invoice,
    catalog, product list, metrics or log line; the bureau's snapshot list is the one place."""
    ask(gw, "SELECT COUNT(*) AS n FROM residents WHERE age >= 18", 0.1, INSURER)
    ask(gw, "SELECT COUNT(*) AS n FROM residents WHERE age < 60 AND township = 'Nowhere'", 0.1, INSURER)
    period = gw.api("GET", "/v1/budget", INSURER).json["period"]
    seen = {
        "usage": gw.api("GET", "/v1/usage", "demo-bureau"), "invoice": gw.api("GET", f"/v1/invoices/{period}", INSURER),
        "catalog": gw.api("GET", "/v1/datasets", INSURER), "products": gw.api("GET", "/v1/products", INSURER),
        "metrics": gw.api("GET", "/metrics", "demo-ops"), "readyz": gw.api("GET", "/readyz"),
        "budget": gw.api("GET", "/v1/budget", INSURER),
        "revenue": gw.api("GET", f"/v1/revenue/{period}", "demo-bureau"),
        "snapshots as merchant": gw.api("GET", "/v1/datasets/residents/snapshots", "demo-merchant"),
        "snapshots as another department": gw.api("GET", "/v1/datasets/residents/snapshots", "demo-source-amr"),
    }
    counts = true_counts(demo_data, residents)
    pattern = re.compile(r"\b(" + "|".join(sorted(counts)) + r")\b")
    for name, reply in seen.items():
        text = reply.body.decode(errors="replace") + json.dumps(reply.headers)
        assert not pattern.search(text), (name, pattern.search(text))
    assert not pattern.search((gw.state_dir / "server.log").read_text(errors="replace")), "a count in the log"
    assert seen["snapshots as merchant"].status == 403 and seen["snapshots as another department"].status in (403, 404)
    bureau = gw.api("GET", "/v1/datasets/residents/snapshots", "demo-bureau").body.decode()
    assert str(residents.height) in bureau, "the bureau does see the row count of a snapshot"
