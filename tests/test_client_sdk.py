"""The Python client (clients/python) against the real gateway over HTTP: every method, both
clients, the error tree, retries, idempotent replays, paging, data frames, the CLI, the example."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client_proxy import FrontProxy
from tests.support import BIN, Gateway, free_port, seed_demo_data

gc = pytest.importorskip("gateway_client", reason="the client is not installed: pip install -e clients/python[polars]")
Client, AsyncClient, RetryPolicy = gc.Client, gc.AsyncClient, gc.RetryPolicy

ROOT = Path(__file__).resolve().parent.parent
BY_TOWNSHIP = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= {age} " \
              "GROUP BY township"
TOWNSHIPS = 20
# Hundreds of cells with two quantiles each: a release that takes a few hundred milliseconds.
SLOW_RELEASE = "SELECT township, education, sex, MEDIAN(income) AS m, QUANTILE(income, 0.9) AS q " \
               "FROM residents WHERE age >= 30 GROUP BY township, education, sex"


@pytest.fixture(scope="module")
def sdk_gateway(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    """One gateway for this module's spending tests (each asks its own question: no cache shared)."""
    state = tmp_path_factory.mktemp("sdk-gw")
    seed_demo_data(state, demo_data)
    gw = Gateway(state).start()
    yield gw
    gw.stop()


def creds(gw: Gateway) -> Path:
    return gw.state_dir / "demo-credentials.json"


def client(gw: Gateway, client_id: str = "demo-bank", **options: Any) -> Any:
    return Client.from_credentials_file(creds(gw), client_id, **options)


def spent(gw_client: Any, dataset: str) -> float:
    return next(line["epsilon_spent"] for line in gw_client.budget()["datasets"] if line["dataset"] == dataset)


class Sleeps:
    """The client's waits, recorded, then really waited (a retry must honour Retry-After)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


# -- reading: the shared session gateway (no budget spent) -------------------------------------------

def test_catalog_dataset_products_and_budget(gateway: Gateway) -> None:
    with client(gateway) as gw:
        catalog = gw.catalog()
        assert {d["id"] for d in catalog} >= {"residents", "enterprises", "vehicles", "social_insurance"}
        assert catalog == gateway.api("GET", "/v1/datasets", "demo-bank").json["datasets"]
        residents = gw.dataset("residents")
        assert residents["id"] == "residents" and "income" in {c["name"] for c in residents["columns"]}
        products = gw.products()
        assert {"income-by-township", "vehicle-values-by-type"} <= {p["id"] for p in products}
        budget = gw.budget()
        assert {line["dataset"] for line in budget["datasets"]} >= {"residents", "enterprises"}
        assert budget == gateway.api("GET", "/v1/budget", "demo-bank").json


def test_preview_spends_nothing(gateway: Gateway) -> None:
    with client(gateway) as gw:
        before = gw.budget()
        found = gw.preview("residents", BY_TOWNSHIP.format(age=18), epsilon=0.5)
        assert found["would_fit"] is True and found["epsilon"] == 0.5
        assert found["accuracy"]["columns"]["n"] > 0 and found["price"]["price_minor"] > 0
        assert gw.budget() == before


def test_error_answers_map_to_the_tree(gateway: Gateway) -> None:
    with client(gateway) as gw:
        with pytest.raises(gc.NotFound) as nf:
            gw.dataset("no-such-dataset")
        assert (nf.value.status, nf.value.code) == (404, "not_found")
        assert nf.value.problem["status"] == 404 and nf.value.request_id
        assert isinstance(nf.value, gc.GatewayError)
        with pytest.raises(gc.NotFound):
            gw.release("0" * 32)
        with pytest.raises(gc.InvalidRequest) as bad_period:
            gw.usage("2026-13")
        assert bad_period.value.code == "invalid_request"
    with client(gateway, "demo-ops") as ops, pytest.raises(gc.Forbidden) as forbidden:
        ops.budget()
    assert forbidden.value.status == 403 and type(forbidden.value) is gc.Forbidden
    with Client(gateway.base, "demo-bank", "not-the-secret") as wrong, pytest.raises(gc.Unauthorized) as unauth:
        wrong.catalog()
    assert unauth.value.status == 401


# -- spending: this module's gateway ------------------------------------------------------------------

def test_query_answer_release_and_frames(sdk_gateway: Gateway) -> None:
    with client(sdk_gateway) as gw:
        answer = gw.query("residents", BY_TOWNSHIP.format(age=21), epsilon=0.5)
        assert answer.columns == ["township", "n", "mean_income"] and len(answer.rows) == TOWNSHIPS
        assert answer.epsilon_spent == 0.5 and answer.cached is False and answer.replayed is False
        assert answer.accuracy["alpha"] == 0.05 and set(answer.halfwidths) == {"n", "mean_income"}
        assert answer.budget["dataset"] == "residents" and answer.usage["price_minor"] > 0
        assert len(answer.query_id) >= 16 and answer.idempotency_key
        assert answer.records()[0].keys() == {"township", "n", "mean_income"}

        stored = gw.release(answer.query_id)
        assert stored.query_id == answer.query_id and stored.rows == answer.rows

        frame = answer.to_polars(intervals="bounds")
        assert frame.columns == ["township", "n", "n_lo", "n_hi", "mean_income", "mean_income_lo", "mean_income_hi"]
        assert frame.height == TOWNSHIPS
        assert (frame["n_lo"] < frame["n"]).all() and (frame["n"] < frame["n_hi"]).all()
        widths = answer.to_polars(intervals="halfwidth")
        assert widths["n_halfwidth"].to_list() == [answer.halfwidths["n"]] * TOWNSHIPS
        assert answer.to_polars().columns == answer.columns


def test_to_pandas(sdk_gateway: Gateway) -> None:
    pytest.importorskip("pandas", reason="pandas is an optional extra of the client and is not installed")
    with client(sdk_gateway) as gw:
        answer = gw.query("residents", BY_TOWNSHIP.format(age=22), epsilon=0.5)
    frame = answer.to_pandas(intervals="halfwidth")
    assert list(frame.columns) == ["township", "n", "n_halfwidth", "mean_income", "mean_income_halfwidth"]
    assert len(frame) == TOWNSHIPS and frame["n"].tolist() == [row[1] for row in answer.rows]


def test_medians_have_no_interval(sdk_gateway: Gateway) -> None:
    with client(sdk_gateway) as gw:
        answer = gw.query("residents", "SELECT township, MEDIAN(income) AS median_income FROM residents "
                                       "WHERE age >= 23 GROUP BY township", epsilon=0.5)
    assert answer.halfwidths == {"median_income": None}
    frame = answer.to_polars(intervals="bounds")
    assert frame["median_income_lo"].null_count() == TOWNSHIPS and frame["median_income"].null_count() == 0


def test_repeat_is_cached_and_key_replays(sdk_gateway: Gateway) -> None:
    sql = BY_TOWNSHIP.format(age=24)
    with client(sdk_gateway) as gw:
        first = gw.query("residents", sql, epsilon=0.5, idempotency_key="sdk-replay-1")
        after_first = spent(gw, "residents")
        replay = gw.query("residents", sql, epsilon=0.5, idempotency_key="sdk-replay-1")
        assert replay.replayed is True and replay.raw == first.raw
        again = gw.query("residents", sql, epsilon=0.5)  # a new key: the stored release, at no epsilon
        assert again.cached is True and again.epsilon_spent == 0 and again.rows == first.rows
        assert spent(gw, "residents") == after_first
        with pytest.raises(gc.IdempotencyKeyReused) as reused:
            gw.query("residents", BY_TOWNSHIP.format(age=25), epsilon=0.5, idempotency_key="sdk-replay-1")
        assert reused.value.status == 422 and reused.value.idempotency_key == "sdk-replay-1"
        assert spent(gw, "residents") == after_first


def test_refusals_spend_nothing(sdk_gateway: Gateway) -> None:
    with client(sdk_gateway) as gw:
        before = spent(gw, "residents")
        with pytest.raises(gc.PolicyViolation) as refused:
            gw.query("residents", "SELECT age, COUNT(*) AS n FROM residents GROUP BY age", epsilon=5)
        assert refused.value.status == 422 and len(refused.value.reasons) == 2
        assert any("GROUP BY" in r for r in refused.value.reasons)
        assert any("epsilon" in r for r in refused.value.reasons)
        with pytest.raises(gc.InvalidQuery) as bad_sql:
            gw.query("residents", "SELECT person_id FROM residents", epsilon=0.5)
        assert bad_sql.value.position == {"line": 1, "column": 8}
        assert isinstance(bad_sql.value, gc.InvalidRequest)
        with pytest.raises(gc.InvalidRequest):
            gw.query("residents", "SELECT COUNT(*) AS n FROM residents")  # no epsilon
        with pytest.raises(gc.Forbidden):
            gw.query("vehicles", "SELECT COUNT(*) AS n FROM vehicles", epsilon=0.5)  # the bank holds no grant
        assert spent(gw, "residents") == before


def test_json_plan_and_products(sdk_gateway: Gateway) -> None:
    with client(sdk_gateway) as gw:
        plan = {"select": [{"column": "sex"}, {"aggregate": "count", "as": "n"}], "group_by": ["sex"]}
        found = gw.preview("residents", plan=plan, epsilon=0.3)
        assert found["accuracy"]["columns"]["n"] > 0
        invoked = gw.invoke("income-by-township", {"min_age": 30, "max_age": 50})
        assert invoked.columns == ["township", "residents", "mean_income"] and invoked.epsilon_spent == 0.5
        with pytest.raises(gc.NotFound):
            gw.invoke("no-such-product", {})
        with pytest.raises(gc.InvalidRequest):
            gw.invoke("income-by-township", {"min_age": "thirty"})


def test_usage_and_invoice(sdk_gateway: Gateway) -> None:
    with client(sdk_gateway) as gw:
        answer = gw.query("residents", BY_TOWNSHIP.format(age=26), epsilon=0.5)
        period = answer.budget["period"]
        usage = gw.usage()
        assert usage == gw.usage(period) and answer.query_id in {u["query_id"] for u in usage}
        invoice = gw.invoice(period)
        assert invoice["period"] == period and invoice["total_minor"] == sum(u["price_minor"] for u in usage)
        text = gw.invoice(period, format="csv")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][0] == "line" and rows[-1][0] == "total"
        assert rows[-1][rows[0].index("amount_minor")] == str(invoice["total_minor"])
        with pytest.raises(ValueError):
            gw.invoice(period, format="xml")


def test_async_client_every_method(sdk_gateway: Gateway) -> None:
    async def walk() -> dict[str, Any]:
        async with AsyncClient.from_credentials_file(creds(sdk_gateway), "demo-bank") as gw:
            sql = BY_TOWNSHIP.format(age=27)
            answer = await gw.query("residents", sql, epsilon=0.5)
            together = await asyncio.gather(gw.catalog(), gw.dataset("residents"), gw.products(), gw.budget(),
                                            gw.preview("residents", sql, epsilon=0.5), gw.usage(),
                                            gw.release(answer.query_id), gw.invoice(answer.budget["period"]),
                                            gw.invoice(answer.budget["period"], format="csv"))
            invoked = await gw.invoke("income-by-township", {"min_age": 31, "max_age": 49})
            with pytest.raises(gc.PolicyViolation):
                await gw.query("residents", "SELECT age, COUNT(*) AS n FROM residents GROUP BY age", epsilon=0.5)
            return {"answer": answer, "together": together, "invoked": invoked}

    got = asyncio.run(walk())
    catalog, dataset, products, budget, preview, usage, stored, invoice, invoice_csv = got["together"]
    answer = got["answer"]
    assert len(answer.rows) == TOWNSHIPS and stored.rows == answer.rows
    assert "residents" in {d["id"] for d in catalog} and dataset["id"] == "residents"
    assert products and budget["datasets"] and preview["would_fit"] is True
    assert answer.query_id in {u["query_id"] for u in usage}
    assert invoice["total_minor"] > 0 and invoice_csv.startswith("line,")
    assert got["invoked"].columns == ["township", "residents", "mean_income"]


# -- retries, idempotency across them, tokens, paging (through a front proxy) -------------------------

def test_lost_answer_is_retried_with_the_same_key_and_spends_once(sdk_gateway: Gateway) -> None:
    with FrontProxy(sdk_gateway.base) as proxy, client(sdk_gateway, base_url=proxy.base) as gw:
        before = spent(gw, "residents")
        proxy.fault("POST", "/v1/queries", "lose")  # the gateway answers; the answer never arrives
        answer = gw.query("residents", BY_TOWNSHIP.format(age=28), epsilon=0.5)
        posts = proxy.requests("POST", "/v1/queries")
        assert len(posts) == 2
        assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"] == answer.idempotency_key
        assert answer.replayed is True and answer.epsilon_spent == 0.5
        assert spent(gw, "residents") == pytest.approx(before + 0.5)


def test_retry_while_the_first_try_still_runs_waits_for_its_answer(sdk_gateway: Gateway) -> None:
    """A 409 `idempotency_in_progress` is retried only after a try of the same call went unanswered
    (`test_client_units` pins that decision; here a slow release keeps the first try running)."""
    waits = Sleeps()
    with FrontProxy(sdk_gateway.base) as proxy, \
            client(sdk_gateway, base_url=proxy.base, retry=RetryPolicy(attempts=8, backoff=0.05), sleep=waits) as gw:
        before = spent(gw, "residents")
        proxy.fault("POST", "/v1/queries", "cut")  # the connection drops; the gateway goes on working
        answer = gw.query("residents", SLOW_RELEASE, epsilon=0.3)
        posts = proxy.requests("POST", "/v1/queries")
        assert {s.headers["Idempotency-Key"] for s in posts} == {answer.idempotency_key}
        # the retry found the first try still running (409), waited, and then got the first's answer
        statuses = [s.status for s in posts[1:]]
        assert statuses == [409] * (len(statuses) - 1) + [200] and len(statuses) >= 2
        assert answer.replayed is True and len(waits.waits) == len(posts) - 1
        assert spent(gw, "residents") == pytest.approx(before + 0.3)


def test_503_is_retried_after_its_retry_after_and_4xx_never(sdk_gateway: Gateway) -> None:
    waits = Sleeps()
    with FrontProxy(sdk_gateway.base) as proxy, client(sdk_gateway, base_url=proxy.base, sleep=waits) as gw:
        proxy.fault("GET", "/v1/budget", "unavailable", retry_after=1)
        assert gw.budget()["datasets"]
        assert len(waits.waits) == 1 and waits.waits[0] >= 1
        assert len(proxy.requests("GET", "/v1/budget")) == 2
        for call in (lambda: gw.dataset("nope"),
                     lambda: gw.query("residents", "SELECT age, COUNT(*) FROM residents GROUP BY age", epsilon=1)):
            seen = len(proxy.seen)
            with pytest.raises(gc.GatewayError) as refused:
                call()
            assert 400 <= refused.value.status < 500 and len(proxy.seen) == seen + 1
        assert len(waits.waits) == 1


def test_503_past_the_last_try_is_raised(sdk_gateway: Gateway) -> None:
    waits = Sleeps()
    with FrontProxy(sdk_gateway.base) as proxy, \
            client(sdk_gateway, base_url=proxy.base, sleep=waits, retry=RetryPolicy(attempts=2)) as gw:
        gw.catalog()  # the token first
        for _ in range(2):
            proxy.fault("GET", "/v1/budget", "unavailable", retry_after=1)
        with pytest.raises(gc.Unavailable) as unavailable:
            gw.budget()
        assert unavailable.value.retry_after == 1 and unavailable.value.status == 503
        assert len(waits.waits) == 1


def test_no_gateway_at_all(tmp_path: Path) -> None:
    waits = Sleeps()
    with Client(f"http://127.0.0.1:{free_port()}", "demo-bank", "x", sleep=waits,
                retry=RetryPolicy(attempts=3, backoff=0.01)) as gw, pytest.raises(gc.ConnectionFailed) as failed:
        gw.catalog()
    assert len(waits.waits) == 2 and failed.value.status is None


def test_tokens_are_reused_and_renewed_after_a_401(sdk_gateway: Gateway) -> None:
    with FrontProxy(sdk_gateway.base) as proxy, client(sdk_gateway, base_url=proxy.base) as gw:
        gw.catalog()
        gw.budget()
        gw.products()
        assert len(proxy.requests("POST", "/oauth/token")) == 1
        gw.tokens.token = gw.tokens.token[:-4] + "AAAA"  # as after a key rotation: the gateway refuses it
        assert gw.budget()["datasets"]
        assert len(proxy.requests("POST", "/oauth/token")) == 2
        assert [s.path for s in proxy.seen[-3:]] == ["/v1/budget", "/oauth/token", "/v1/budget"]


@pytest.mark.parametrize("shape", [{}, {"link_only": True}, {"absolute": True}])
def test_usage_follows_every_page(sdk_gateway: Gateway, shape: dict[str, bool]) -> None:
    with client(sdk_gateway) as direct:
        for age in (32, 33, 34):
            direct.query("residents", BY_TOWNSHIP.format(age=age), epsilon=0.5)
        whole = direct.usage()
    assert len(whole) >= 3
    with FrontProxy(sdk_gateway.base) as proxy, client(sdk_gateway, base_url=proxy.base) as gw:
        proxy.paginate("/v1/usage", 2, **shape)
        assert gw.usage() == whole
        assert len(proxy.requests("GET", "/v1/usage")) == (len(whole) + 1) // 2
        assert all("cursor=" in s.path for s in proxy.requests("GET", "/v1/usage")[1:])


def test_usage_without_pages_is_one_request(sdk_gateway: Gateway) -> None:
    """Today's gateway answers `{"period", "items"}` with no `next`: one request, every item."""
    with FrontProxy(sdk_gateway.base) as proxy, client(sdk_gateway, base_url=proxy.base) as gw:
        items = gw.usage(page_size=1)
        answered = sdk_gateway.api("GET", "/v1/usage?limit=1", "demo-bank").json
        if answered.get("next") is None:
            assert len(proxy.requests("GET", "/v1/usage")) == 1
        assert items == sdk_gateway.api("GET", "/v1/usage", "demo-bank").json["items"]


# -- limits and state changes ----------------------------------------------------------------------------

def test_budget_exhausted(sdk_gateway: Gateway) -> None:
    with client(sdk_gateway) as gw:  # 5 epsilon a month on social_insurance, at most 1 a query
        months = [f"2025-{m:02d}" for m in range(1, 7)]
        for month in months[:5]:
            gw.query("social_insurance", f"SELECT COUNT(*) AS n FROM social_insurance WHERE month = '{month}'",
                     epsilon=1)
        with pytest.raises(gc.BudgetExhausted) as exhausted:
            gw.query("social_insurance", f"SELECT COUNT(*) AS n FROM social_insurance WHERE month = '{months[5]}'",
                     epsilon=1)
        assert exhausted.value.status == 403 and exhausted.value.code == "budget_exhausted"
        assert isinstance(exhausted.value, gc.Forbidden) and exhausted.value.epsilon_remaining == 0
        assert spent(gw, "social_insurance") == pytest.approx(5.0)


def test_suspended_and_withdrawn_datasets(fresh_gateway: Gateway) -> None:
    with client(fresh_gateway) as gw, client(fresh_gateway, "demo-bureau") as bureau:
        sql = "SELECT township, COUNT(*) AS n FROM enterprises GROUP BY township"
        assert fresh_gateway.api("POST", "/v1/datasets/enterprises/suspend", "demo-bureau").status == 200
        with pytest.raises(gc.DatasetSuspended) as suspended:
            gw.query("enterprises", sql, epsilon=0.5)
        assert (suspended.value.status, suspended.value.code) == (409, "dataset_suspended")
        assert {d["id"]: d["status"] for d in bureau.catalog()}["enterprises"] == "suspended"
        assert spent(gw, "enterprises") == 0
        assert fresh_gateway.api("POST", "/v1/datasets/enterprises/withdraw", "demo-bureau").status == 200
        with pytest.raises(gc.DatasetWithdrawn) as withdrawn:
            gw.query("enterprises", sql, epsilon=0.5)
        assert withdrawn.value.status == 410


def test_rate_limit_is_waited_out(tmp_path: Path, demo_data: Path) -> None:
    seed_demo_data(tmp_path, demo_data)
    gw_proc = Gateway(tmp_path, env={"GATEWAY_RATE_LIMIT_PER_SECOND": "0.5", "GATEWAY_RATE_LIMIT_BURST": "1"}).start()
    try:
        waits = Sleeps()
        with client(gw_proc, sleep=waits) as gw:
            gw.catalog()  # takes the one token in the bucket
            assert gw.budget()["datasets"]  # refused with 429, waited out, answered
            assert waits.waits and min(waits.waits) >= 1
        with client(gw_proc, retry=RetryPolicy(attempts=1)) as impatient:
            with pytest.raises(gc.RateLimited) as limited:
                impatient.catalog()
                impatient.catalog()
            assert limited.value.status == 429 and limited.value.retry_after is not None
            assert limited.value.retry_after >= 1
    finally:
        gw_proc.stop()


# -- the command line and the example -----------------------------------------------------------------

def cli(gw: Gateway, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run([str(BIN / "gateway-client"), *args], capture_output=True, text=True, timeout=180,
                          env={**base_env, **(env or {})}, input=stdin)


def test_cli_commands(sdk_gateway: Gateway) -> None:
    by_file = ["--credentials-file", str(creds(sdk_gateway)), "--client-id", "demo-bank"]
    catalog = cli(sdk_gateway, "catalog", *by_file, "--json")
    assert catalog.returncode == 0, catalog.stderr
    assert "residents" in {d["id"] for d in json.loads(catalog.stdout)}
    columns = cli(sdk_gateway, "catalog", "residents", *by_file, "--table")
    assert columns.returncode == 0 and "income" in columns.stdout and "Chengguan" in columns.stdout

    sql = BY_TOWNSHIP.format(age=35)
    preview = cli(sdk_gateway, "preview", "residents", sql, "-e", "0.5", *by_file, "--json")
    assert preview.returncode == 0 and json.loads(preview.stdout)["would_fit"] is True

    secret = sdk_gateway.credentials["demo-bank"]["client_secret"]
    env = {"GATEWAY_URL": sdk_gateway.base, "GATEWAY_CLIENT_ID": "demo-bank", "GATEWAY_CLIENT_SECRET": secret}
    as_csv = cli(sdk_gateway, "query", "residents", "-", "--epsilon", "0.5", "--intervals", "halfwidth", env=env,
                 stdin=sql)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["township", "n", "n_halfwidth", "mean_income", "mean_income_halfwidth"]
    assert len(rows) == 1 + TOWNSHIPS
    as_json = cli(sdk_gateway, "query", "residents", sql, "-e", "0.5", "--json", env=env)
    assert json.loads(as_json.stdout)["cached"] is True  # the same question again: the stored release
    table = cli(sdk_gateway, "query", "residents", sql, "-e", "0.5", "--table", "--url", sdk_gateway.base,
                "--client-id", "demo-bank", "--client-secret", secret)
    assert table.returncode == 0 and "Chengguan" in table.stdout and "half-widths" in table.stdout

    budget = cli(sdk_gateway, "budget", *by_file)
    assert budget.returncode == 0 and budget.stdout.startswith("dataset,epsilon_limit")
    usage = cli(sdk_gateway, "usage", *by_file, "--json")
    period = json.loads(usage.stdout)[0]["period"]
    invoice = cli(sdk_gateway, "invoice", period, *by_file, "--csv")
    assert invoice.returncode == 0 and invoice.stdout.startswith("line,") and "total" in invoice.stdout
    invoice_table = cli(sdk_gateway, "invoice", period, *by_file, "--table")
    assert invoice_table.returncode == 0 and "total" in invoice_table.stdout


def test_cli_errors(sdk_gateway: Gateway) -> None:
    by_file = ["--credentials-file", str(creds(sdk_gateway)), "--client-id", "demo-bank"]
    refused = cli(sdk_gateway, "query", "residents", "SELECT age, COUNT(*) FROM residents GROUP BY age",
                  "-e", "5", *by_file)
    assert refused.returncode == 1 and "policy_violation" in refused.stderr
    assert refused.stderr.count("\n  - ") == 2 and refused.stdout == ""
    missing = cli(sdk_gateway, "budget")
    assert missing.returncode == 2 and "client id" in missing.stderr
    unknown = cli(sdk_gateway, "budget", "--credentials-file", str(creds(sdk_gateway)), "--client-id", "nobody")
    assert unknown.returncode == 2 and "nobody" in unknown.stderr


def test_example_credit_risk_by_township(sdk_gateway: Gateway) -> None:
    env = {**os.environ, "GATEWAY_CREDENTIALS_FILE": str(creds(sdk_gateway))}
    env.pop("GATEWAY_CLIENT_ID", None)

    def example() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "examples" / "credit_risk_by_township.py")],
                              capture_output=True, text=True, timeout=300, env=env)

    run = example()
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    rows = [line for line in lines if line.split()[:1] and line.split()[0] in TOWNSHIP_NAMES]
    assert len(rows) == TOWNSHIPS
    for row in rows:
        intervals = re.findall(r"(\S+) \[(\S+), (\S+)\]", row)
        assert len(intervals) == 4
        assert all(float(lo) <= float(value) <= float(hi) for value, lo, hi in intervals)
    header = next(line.split() for line in lines if line.split()[:1] == ["township"])
    assert header == ["township", "adults", "mean_income", "median_income", "unemployed_pct", "vehicles_per_100",
                      "mean_vehicle_value"]
    with client(sdk_gateway, "demo-insurer") as gw:
        before = gw.budget()
        assert spent(gw, "residents") == 1.5 and spent(gw, "vehicles") == 0.5
        again = example()  # the same questions in the same month: the stored releases, no epsilon
        assert again.returncode == 0 and again.stderr.count("(cached)") == 3
        assert gw.budget() == before


TOWNSHIP_NAMES = {"Chengguan", "Lingxi", "Baishi", "Qiaotou", "Dongfeng", "Xinhe", "Shuangquan", "Yangliu",
                  "Gaoping", "Longtan", "Shiban", "Huanggang", "Nanshan", "Beiling", "Hetang", "Zhuyuan",
                  "Fengshu", "Meilin", "Tianxin", "Guanyin"}


@pytest.mark.slow
def test_the_client_installs_on_its_own(tmp_path: Path) -> None:
    """`pip install clients/python` needs nothing of the gateway: the wheel holds the package, its
    types and the command, depends on httpx alone, and imports from the wheel by itself."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                            str(ROOT / "clients" / "python")], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        pytest.skip(f"cannot build the wheel here (the build backend comes from the package index): {built.stderr}")
    wheel = next(tmp_path.glob("county_gateway_client-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith("/METADATA"))).decode()
        entry_points = zf.read(next(n for n in names if n.endswith("/entry_points.txt"))).decode()
    assert {"gateway_client/py.typed", "gateway_client/client.py", "gateway_client/aio.py"} <= names
    assert not any(n.startswith("gateway/") for n in names)
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == ["Requires-Dist: httpx<1,>=0.27"]
    assert "gateway-client = gateway_client.cli:main" in entry_points
    probe = ("import sys, gateway_client, gateway_client.cli; "
             "assert gateway_client.__file__.startswith(sys.argv[1]); "
             "assert not [m for m in sys.modules if m == 'gateway' or m.startswith('gateway.')]")
    imported = subprocess.run([sys.executable, "-c", probe, str(wheel)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(wheel)}, cwd=tmp_path, timeout=60)
    assert imported.returncode == 0, imported.stderr
