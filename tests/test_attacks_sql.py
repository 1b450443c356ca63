"""A bank trying to reach raw rows through the query language (R-IN-01..05, R-DP-08, R-DP-09).

Every trick below is sent over real HTTP by a requester holding a residents grant. Each must
be refused before any budget is reserved: a problem+json 400 or 422, no epsilon spent, no
usage record, no release attempted (ops' release counter does not move), and no text from
OpenDP, polars or a traceback in the answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.support import FAST_RATES, Gateway, Reply, demo_gateway

BANK = "demo-bank"
INTERNALS = ("OpenDP", "opendp", "polars", "Polars", "Traceback", 'File "', ".py", "MakeTransformation",
             "LazyFrame", "Int128", "sqlglot")
Q, P = "invalid_query", "policy_violation"

SQL_TRICKS: list[tuple[str, str, str]] = [  # (why, SQL, expected code)
    ("table function", "SELECT COUNT(*) FROM read_parquet('residents.parquet')", Q),
    ("table function on a path", "SELECT COUNT(*) FROM read_csv('/etc/passwd')", Q),
    ("subquery in FROM", "SELECT COUNT(*) FROM (SELECT * FROM residents)", Q),
    ("subquery in WHERE", "SELECT SUM(income) FROM residents WHERE age > (SELECT 3)", Q),
    ("subquery in IN", "SELECT SUM(income) FROM residents WHERE age IN (SELECT age FROM residents)", Q),
    ("EXISTS", "SELECT SUM(income) FROM residents WHERE EXISTS (SELECT 1 FROM residents)", Q),
    ("CTE", "WITH r AS (SELECT * FROM residents) SELECT COUNT(*) FROM r", Q),
    ("UNION", "SELECT COUNT(*) FROM residents UNION SELECT COUNT(*) FROM residents", Q),
    ("window function", "SELECT SUM(income) OVER (PARTITION BY township) FROM residents", Q),
    ("named window", "SELECT SUM(income) FROM residents WINDOW w AS (PARTITION BY age)", Q),
    ("second statement", "SELECT COUNT(*) FROM residents; SELECT income FROM residents", Q),
    ("statement after a comment", "SELECT COUNT(*) FROM residents /* x */; SELECT income FROM residents", Q),
    ("non-SELECT", "COPY residents TO '/tmp/out.csv'", Q),
    ("pragma", "PRAGMA table_info(residents)", Q),
    ("attach", "ATTACH '/tmp/x.db' AS y", Q),
    ("SELECT *", "SELECT * FROM residents", Q),
    ("bare column", "SELECT income FROM residents", Q),
    ("JOIN", "SELECT SUM(income) FROM residents r JOIN vehicles v ON r.township = v.township", Q),
    ("comma join", "SELECT SUM(income) FROM residents, vehicles", Q),
    ("hidden column", "SELECT COUNT(*) FROM residents WHERE person_id = 'R0000001'", P),
    ("quoted hidden column", "SELECT COUNT(*) FROM residents WHERE \"person_id\" = 'R0000001'", P),
    ("backquoted hidden column", "SELECT COUNT(*) FROM residents WHERE `person_id` = 'R0000001'", Q),
    ("qualified hidden column", "SELECT COUNT(*) FROM residents WHERE residents.person_id = 'R0000001'", P),
    ("second hidden column", "SELECT COUNT(*) FROM residents WHERE household_id IN ('H1', 'H2')", P),
    ("hidden column in OR", "SELECT SUM(income) FROM residents WHERE \"person_id\" = 'a' OR age > 1", P),
    ("hidden column under NOT", "SELECT SUM(income) FROM residents WHERE NOT NOT NOT person_id = 'a'", P),
    ("count of a hidden column", "SELECT COUNT(person_id) FROM residents", P),
    ("distinct count", "SELECT COUNT(DISTINCT person_id) FROM residents", Q),
    ("group by a hidden column", "SELECT person_id, COUNT(*) FROM residents GROUP BY person_id", P),
    ("group by a non-public column", "SELECT income, COUNT(*) FROM residents GROUP BY income", P),
    ("group by a column without categories", "SELECT age, COUNT(*) FROM residents GROUP BY age", P),
    ("group by an expression", "SELECT SUM(income) FROM residents GROUP BY ROLLUP(township)", Q),
    ("group by a string", "SELECT township, COUNT(*) FROM residents GROUP BY 'person_id'", Q),
    ("schema-qualified table", "SELECT COUNT(*) FROM main.residents", Q),
    ("catalog-qualified table", "SELECT COUNT(*) FROM county.main.residents", Q),
    ("catalog tables", "SELECT COUNT(*) FROM information_schema.tables", Q),
    ("schema-qualified column", "SELECT COUNT(*) FROM residents WHERE main.residents.age > 3", Q),
    ("another table", "SELECT COUNT(*) FROM sqlite_master", Q),
    ("string function", "SELECT COUNT(*) FROM residents WHERE SUBSTR(person_id, 1, 1) = 'R'", Q),
    ("lower()", "SELECT COUNT(*) FROM residents WHERE LOWER(township) = 'lingxi'", Q),
    ("CAST", "SELECT COUNT(*) FROM residents WHERE CAST(income AS INT) = 52000", Q),
    ("CASE in WHERE", "SELECT COUNT(*) FROM residents WHERE CASE WHEN income > 5 THEN 1 ELSE 0 END = 1", Q),
    ("CASE in an aggregate", "SELECT SUM(CASE WHEN age > 30 THEN income ELSE 0 END) FROM residents", Q),
    ("arithmetic in an aggregate", "SELECT SUM(income + 0) FROM residents", Q),
    ("arithmetic on an aggregate", "SELECT SUM(income) * 2 FROM residents", Q),
    ("LIKE on a hidden column", "SELECT COUNT(*) FROM residents WHERE person_id LIKE 'R00%'", Q),
    ("LIKE on a public column", "SELECT COUNT(*) FROM residents WHERE township LIKE 'L%'", Q),
    ("column against column", "SELECT SUM(income) FROM residents WHERE age > income", Q),
    ("tautology", "SELECT SUM(income) FROM residents WHERE 1 = 1", Q),
    ("IS NULL", "SELECT SUM(income) FROM residents WHERE age IS NULL", Q),
    ("MAX", "SELECT MAX(income) FROM residents", Q),
    ("MIN", "SELECT MIN(age) FROM residents", Q),
    ("HAVING", "SELECT SUM(income) FROM residents HAVING SUM(income) > 0", Q),
    ("OFFSET", "SELECT township, COUNT(*) FROM residents GROUP BY township LIMIT 1 OFFSET 1", Q),
    ("ORDER BY a raw column", "SELECT SUM(income) FROM residents ORDER BY income", Q),
    ("ORDER BY a hidden column", "SELECT SUM(income) FROM residents ORDER BY person_id", Q),
    ("TABLESAMPLE", "SELECT SUM(income) FROM residents TABLESAMPLE (1 ROWS)", Q),
    ("time travel", "SELECT SUM(income) FROM residents AS OF TIMESTAMP '2020-01-01'", Q),
    ("alias renaming columns", "SELECT SUM(income) FROM residents AS r(a, b)", Q),
    ("FOR UPDATE", "SELECT SUM(income) FROM residents FOR UPDATE", Q),
    ("INTO OUTFILE", "SELECT SUM(income) FROM residents INTO OUTFILE '/tmp/x'", Q),
    ("bind placeholder", "SELECT SUM(income) FROM residents WHERE age > ?", Q),
    ("named placeholder", "SELECT SUM(income) FROM residents WHERE age > :x", Q),
    ("collation", "SELECT SUM(income) FROM residents WHERE township = 'Lingxi' COLLATE \"C\"", Q),
    ("fullwidth letter in the table", "SELECT COUNT(*) FROM \uff52esidents", Q),
    ("fullwidth letter in a function", "SELECT \uff23OUNT(*) FROM residents", Q),
    ("Cyrillic o in a column", "SELECT COUNT(*) FROM residents WHERE t\u043ewnship = 'Lingxi'", P),
    ("Greek semicolon", "SELECT COUNT(*) FROM residents WHERE township = 'Lingxi'\u037e SELECT 1", Q),
    ("quoted name in another case", "SELECT SUM(\"INCOME\") FROM residents", P),
    ("literal outside the categories", "SELECT COUNT(*) FROM residents WHERE township = 'Atlantis'", P),
    ("one literal outside the categories", "SELECT COUNT(*) FROM residents WHERE township IN ('Lingxi', 'X')", P),
    ("order on a category column", "SELECT SUM(income) FROM residents WHERE township > 'L'", P),
    ("wrong literal type", "SELECT SUM(income) FROM residents WHERE age > '18; DROP TABLE x'", P),
    ("integer beyond 64 bits", "SELECT SUM(income) FROM residents WHERE age < -99999999999999999999999", P),
    ("float beyond double", "SELECT COUNT(*) FROM residents WHERE income > '1e400'", P),
    ("NaN literal", "SELECT SUM(income) FROM residents WHERE income > 'NaN'", P),
    ("too many aggregates", "SELECT " + ", ".join(f"QUANTILE(income, 0.{i:02d})" for i in range(1, 18))
     + " FROM residents", Q),
    ("too many group keys", "SELECT COUNT(*) FROM residents GROUP BY township, sex, education, industry", Q),
    ("too many cells", "SELECT township, education, industry, COUNT(*) FROM residents "
     "GROUP BY township, education, industry", P),
    ("huge IN list", "SELECT COUNT(*) FROM residents WHERE age IN (" + ", ".join(map(str, range(101))) + ")", Q),
    ("deep parentheses", "SELECT COUNT(*) FROM residents WHERE " + "(" * 40 + "age > 1" + ")" * 40, Q),
    ("deep NOT", "SELECT COUNT(*) FROM residents WHERE " + "NOT " * 40 + "age > 1", Q),
    ("8 KiB of SQL", "SELECT COUNT(*) FROM residents WHERE age > 1" + " " * 8200, Q),
    ("long string literal", "SELECT COUNT(*) FROM residents WHERE township = '" + "L" * 300 + "'", Q),
    ("dataset mismatch", "SELECT COUNT(*) FROM vehicles", Q),
]

COUNT_ALL = {"aggregate": "count"}
PLAN_TRICKS: list[tuple[str, dict[str, Any], str]] = [  # (why, plan, expected code)
    ("extra top-level member", {"select": [COUNT_ALL], "privacy_unit": {"kind": "row"}}, Q),
    ("epsilon smuggled in the plan", {"select": [COUNT_ALL], "epsilon": 100}, Q),
    ("bounds on an aggregate", {"select": [{"aggregate": "sum", "column": "income", "bounds": [0, 1]}]}, Q),
    ("candidates on a quantile", {"select": [{"aggregate": "quantile", "column": "income", "q": 0.5,
                                              "candidates": [1, 2]}]}, Q),
    ("privacy id in select", {"select": [{"aggregate": "count", "column": "person_id"}]}, P),
    ("privacy id in group_by", {"select": [{"column": "person_id"}, COUNT_ALL], "group_by": ["person_id"]}, P),
    ("privacy id in where", {"select": [COUNT_ALL], "where": {"column": "person_id", "op": "=", "value": "x"}}, P),
    ("operator object", {"select": [COUNT_ALL], "where": {"column": "income", "op": "=", "value": {"$gt": 0}}}, Q),
    ("LIKE operator", {"select": [COUNT_ALL], "where": {"column": "township", "op": "LIKE", "value": "L%"}}, Q),
    ("raw SQL member", {"select": [COUNT_ALL], "where": {"sql": "1=1"}}, Q),
    ("unknown aggregate", {"select": [{"aggregate": "max", "column": "income"}]}, Q),
    ("quantile level 1", {"select": [{"aggregate": "quantile", "column": "income", "q": 1}]}, Q),
    ("other dataset", {"dataset": "vehicles", "select": [COUNT_ALL]}, Q),
    ("key outside group_by", {"select": [{"column": "township"}, COUNT_ALL]}, Q),
    ("category outside the list", {"select": [COUNT_ALL], "where": {"column": "township", "in": ["Atlantis"]}}, P),
    ("101 IN values", {"select": [COUNT_ALL], "where": {"column": "age", "in": list(range(101))}}, Q),
    ("integer beyond 64 bits", {"select": [COUNT_ALL], "where": {"column": "age", "op": "<", "value": 10**30}}, P),
]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("attacks-sql"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


def post(gw: Gateway, path: str, body: Any, client: str = BANK, headers: dict[str, str] | None = None) -> Reply:
    """One call; a 429 from the per-dataset rate limit is waited out, never counted as a refusal."""
    while True:
        reply = gw.api("POST", path, client, body, headers)
        if reply.status != 429:
            return reply
        time.sleep(float(reply.header("Retry-After") or 1))


def ledger_state(gw: Gateway) -> tuple[Any, int, str]:
    """What a refusal must leave untouched: budgets, usage records, ops' release counters."""
    budget = gw.api("GET", "/v1/budget", BANK).json
    usage = len(gw.api("GET", "/v1/usage", BANK).json["items"])
    metrics = gw.api("GET", "/metrics", "demo-ops").body.decode()
    releases = "\n".join(sorted(line for line in metrics.splitlines()
                                if re.match(r"gateway_(releases_total|epsilon_charged_total)\{", line)))
    return budget, usage, releases


def assert_refused(reply: Reply, code: str, why: str) -> None:
    assert reply.status in (400, 422) and reply.is_problem, (why, reply.status, reply.body[:300])
    assert reply.json["code"] == code, (why, reply.json)
    text = reply.body.decode()
    assert not any(leak in text for leak in INTERNALS), (why, text)


def test_sql_tricks_are_refused_before_any_spend(gw: Gateway) -> None:
    """R-IN-01..03, R-DP-09: each is refused with problem+json; nothing reserved, billed or run."""
    before = ledger_state(gw)
    for why, sql, code in SQL_TRICKS:
        for path in ("/v1/queries", "/v1/queries/preview"):
            reply = post(gw, path, {"dataset": "residents", "sql": sql, "epsilon": 0.1})
            assert_refused(reply, code, why)
    assert ledger_state(gw) == before


def test_json_plans_cannot_smuggle_fields_or_hidden_columns(gw: Gateway) -> None:
    """R-AU-08, R-DP-08: a plan is as strict as SQL; no bound, candidate or epsilon rides along."""
    before = ledger_state(gw)
    for why, plan, code in PLAN_TRICKS:
        reply = post(gw, "/v1/queries", {"dataset": "residents", "plan": plan, "epsilon": 0.1})
        assert_refused(reply, code, why)
    assert ledger_state(gw) == before


def test_errors_are_no_oracle_for_who_exists(gw: Gateway, demo_data: Path) -> None:
    """A real person's id and a made-up one get the same refusal, word for word (R-DP-03, R-DP-10)."""
    real = pl.read_parquet(demo_data / "residents.parquet", columns=["person_id"])["person_id"][0]
    replies = []
    for person in (real, "P9999999"):
        for sql in (f"SELECT COUNT(*) FROM residents WHERE person_id = '{person}'",
                    f"SELECT SUM(income) FROM residents WHERE township = 'Lingxi' OR person_id IN ('{person}')"):
            reply = post(gw, "/v1/queries", {"dataset": "residents", "sql": sql, "epsilon": 0.1})
            replies.append({k: v for k, v in reply.json.items() if k != "instance"})
    assert replies[:2] == replies[2:] and all(r["code"] == P for r in replies)
    assert real not in json.dumps(replies)


def test_a_refusal_does_not_depend_on_what_was_asked_before(gw: Gateway) -> None:
    """`age = TRUE` is refused; it stays refused after someone asked `age = 1` (TRUE == 1 in
    Python), so a requester cannot probe the gateway's caches for others' questions."""
    for literal, status in (("TRUE", 422), ("1", 200), ("TRUE", 422), ("FALSE", 422), ("0", 200), ("FALSE", 422)):
        sql = f"SELECT COUNT(*) AS n FROM residents WHERE age = {literal}"
        reply = post(gw, "/v1/queries", {"dataset": "residents", "sql": sql, "epsilon": 0.05})
        assert reply.status == status, (literal, reply.body[:200])


@pytest.mark.parametrize(("why", "body", "status"), [
    ("bounds in the body", {"dataset": "residents", "sql": "SELECT SUM(income) FROM residents", "epsilon": 0.1,
                            "bounds": [0, 1]}, 400),
    ("privacy unit in the body", {"dataset": "residents", "sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.1,
                                  "max_contributions": 1000}, 400),
    ("both sql and plan", {"dataset": "residents", "sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.1,
                           "plan": {"select": [COUNT_ALL]}}, 400),
    ("epsilon above the policy", {"dataset": "residents", "sql": "SELECT COUNT(*) FROM residents", "epsilon": 50}, 422),
    ("income above the important cap", {"dataset": "residents", "sql": "SELECT SUM(income) FROM residents",
                                        "epsilon": 1.5}, 422),
    ("epsilon overflowing", {"dataset": "residents", "sql": "SELECT COUNT(*) FROM residents",
                             "epsilon": "1e999999"}, 422),
    ("epsilon NaN", {"dataset": "residents", "sql": "SELECT COUNT(*) FROM residents", "epsilon": "NaN"}, 400),
    ("private keys where none are allowed", {"dataset": "residents", "epsilon": 0.1, "delta": 0.001,
                                             "sql": "SELECT township, COUNT(*) FROM residents GROUP BY township"}, 422),
    ("a path for a dataset", {"dataset": "../../etc/passwd", "sql": "SELECT COUNT(*) FROM residents",
                              "epsilon": 0.1}, 400),
])
def test_bodies_cannot_widen_what_the_policy_allows(gw: Gateway, why: str, body: dict[str, Any], status: int) -> None:
    before = ledger_state(gw)
    reply = post(gw, "/v1/queries", body)
    assert reply.status == status and reply.is_problem, (why, reply.status, reply.body[:300])
    assert ledger_state(gw) == before


def test_oversized_requests_are_cut_off_before_parsing(gw: Gateway) -> None:
    """R-IN-03: a 64 KiB body is 413, a header line over 8 KiB is 400; nothing runs."""
    before = ledger_state(gw)
    sql = "SELECT COUNT(*) FROM residents WHERE " + " OR ".join(["age = 1"] * 9000)
    big = post(gw, "/v1/queries", {"dataset": "residents", "sql": sql, "epsilon": 0.1})
    assert big.status == 413 and big.is_problem
    long_header = post(gw, "/v1/queries", {"dataset": "residents", "sql": "SELECT COUNT(*) FROM residents",
                                           "epsilon": 0.1}, headers={"X-Padding": "a" * 9000})
    assert long_header.status == 400
    assert ledger_state(gw) == before


@pytest.mark.parametrize(("why", "product", "params"), [
    ("below the declared minimum", "income-by-township", {"min_age": 5, "max_age": 30}),
    ("above the declared maximum", "income-by-township", {"min_age": 20, "max_age": 300}),
    ("a float for an integer", "income-by-township", {"min_age": 20.5, "max_age": 30}),
    ("a boolean for an integer", "income-by-township", {"min_age": True, "max_age": 30}),
    ("SQL for an integer", "income-by-township", {"min_age": "20 OR 1=1", "max_age": 30}),
    ("a list for an integer", "income-by-township", {"min_age": [20, 21], "max_age": 30}),
    ("an undeclared parameter", "income-by-township", {"min_age": 20, "max_age": 30, "person_id": "x"}),
    ("a missing parameter", "income-by-township", {"min_age": 20}),
    ("SQL in a string", "vehicle-values-by-type", {"township": "Lingxi' OR '1'='1"}),
    ("a UNION in a string", "vehicle-values-by-type", {"township": "Lingxi') UNION SELECT person_id FROM vehicles --"}),
    ("a slot marker in a string", "vehicle-values-by-type", {"township": "\x00param:township"}),
    ("a parameter name in a string", "vehicle-values-by-type", {"township": ":township"}),
    ("a value outside the categories", "vehicle-values-by-type", {"township": "Atlantis"}),
])
def test_product_parameters_are_typed_values_inside_their_domain(gw: Gateway, why: str, product: str,
                                                                   params: dict[str, Any]) -> None:
    """R-IN-05: out-of-domain or SQL-carrying values are refused 400; nothing is interpolated or spent."""
    client = "demo-insurer" if product.startswith("vehicle") else BANK
    spent = gw.api("GET", "/v1/budget", client).json
    reply = post(gw, f"/v1/products/{product}/invoke", {"params": params}, client)
    assert reply.status == 400 and reply.is_problem and reply.json["code"] == "invalid_request", (why, reply.body)
    assert gw.api("GET", "/v1/budget", client).json == spent


def test_a_product_string_is_bound_as_a_value(gw: Gateway) -> None:
    """The same product with an allowed value runs; its filter is exactly that one township."""
    good = post(gw, "/v1/products/vehicle-values-by-type/invoke", {"params": {"township": "Lingxi"}}, "demo-insurer")
    assert good.status == 200, good.body[:300]
    assert good.json["columns"] == ["vehicle_type", "vehicles", "mean_value"]
    assert [r[0] for r in good.json["rows"]] == ["car", "suv", "ev", "van", "truck", "motorcycle", "tricycle"]
    extra = post(gw, "/v1/products/vehicle-values-by-type/invoke",
                 {"params": {"township": "Lingxi"}, "price_minor": 0, "epsilon": 0.01}, "demo-insurer")
    assert extra.status == 400 and "unknown field" in extra.json["detail"]
