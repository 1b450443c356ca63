"""The Python client (clients/python) against the real gateway over HTTP: every method of both
clients, answers as data frames, and the error tree on real refusals."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest

from tests.client_support import BY_TOWNSHIP, SKIP_REASON, TOWNSHIPS, client, creds, spent
from tests.support import Gateway

gc = pytest.importorskip("gateway_client", reason=SKIP_REASON)
Client, AsyncClient = gc.Client, gc.AsyncClient


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


# -- spending: the client tests' gateway ------------------------------------------------------------------

def test_query_answer_release_and_frames(client_gateway: Gateway) -> None:
    with client(client_gateway) as gw:
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


def test_to_pandas(client_gateway: Gateway) -> None:
    pytest.importorskip("pandas", reason="pandas is an optional extra of the client and is not installed")
    with client(client_gateway) as gw:
        answer = gw.query("residents", BY_TOWNSHIP.format(age=22), epsilon=0.5)
    frame = answer.to_pandas(intervals="halfwidth")
    assert list(frame.columns) == ["township", "n", "n_halfwidth", "mean_income", "mean_income_halfwidth"]
    assert len(frame) == TOWNSHIPS and frame["n"].tolist() == [row[1] for row in answer.rows]


def test_medians_have_no_interval(client_gateway: Gateway) -> None:
    with client(client_gateway) as gw:
        answer = gw.query("residents", "SELECT township, MEDIAN(income) AS median_income FROM residents "
                                       "WHERE age >= 23 GROUP BY township", epsilon=0.5)
    assert answer.halfwidths == {"median_income": None}
    frame = answer.to_polars(intervals="bounds")
    assert frame["median_income_lo"].null_count() == TOWNSHIPS and frame["median_income"].null_count() == 0


def test_repeat_is_cached_and_key_replays(client_gateway: Gateway) -> None:
    sql = BY_TOWNSHIP.format(age=24)
    with client(client_gateway) as gw:
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


def test_refusals_spend_nothing(client_gateway: Gateway) -> None:
    with client(client_gateway) as gw:
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


def test_json_plan_and_products(client_gateway: Gateway) -> None:
    with client(client_gateway) as gw:
        plan = {"select": [{"column": "sex"}, {"aggregate": "count", "as": "n"}], "group_by": ["sex"]}
        found = gw.preview("residents", plan=plan, epsilon=0.3)
        assert found["accuracy"]["columns"]["n"] > 0
        invoked = gw.invoke("income-by-township", {"min_age": 30, "max_age": 50})
        assert invoked.columns == ["township", "residents", "mean_income"] and invoked.epsilon_spent == 0.5
        with pytest.raises(gc.NotFound):
            gw.invoke("no-such-product", {})
        with pytest.raises(gc.InvalidRequest):
            gw.invoke("income-by-township", {"min_age": "thirty"})


def test_usage_and_invoice(client_gateway: Gateway) -> None:
    with client(client_gateway) as gw:
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


def test_async_client_every_method(client_gateway: Gateway) -> None:
    async def walk() -> dict[str, Any]:
        async with AsyncClient.from_credentials_file(creds(client_gateway), "demo-bank") as gw:
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


# -- budget and dataset state ----------------------------------------------------------------------------

def test_budget_exhausted(client_gateway: Gateway) -> None:
    with client(client_gateway) as gw:  # 5 epsilon a month on social_insurance, at most 1 a query
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
