"""Vouchers, subscriptions, caps and the allowed-revenue carry in the store, on SQLite and PostgreSQL:
no fen redeemed twice under concurrency, and a year's disclosure that reconciles with its invoices."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.core.budget import NANO, from_nano
from gateway.core.pricing import Cap
from gateway.core.settlement import VoucherScope
from gateway.errors import PriceOverCap
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.service.billing import Billing
from gateway.service.report import report_tx
from gateway.settings import Settings
from gateway.store import audit, identity, ledger, settlement
from gateway.store import datasets as store_datasets
from gateway.store import invoices as store_invoices
from gateway.store import pricing as store_pricing
from gateway.store import vouchers as store_vouchers
from gateway.store.db import PostgresStore, Store, Tx
from gateway.store.schema import open_store
from tests.store_support import open_test_store

POLICY = load_policies(shipped_policies_dir())["residents"]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    with open_test_store(request.param, tmp_path, dsn) as s:
        s.run_sync(_seed)
        yield s


def _seed(tx: Tx) -> None:
    for org in ("bank", "insurer", "institute"):
        identity.ensure_org(tx, org, org, "requester")
    store_datasets.seed_policy(tx, "residents", POLICY.owner, POLICY.version, dict(POLICY.document), "test")


def _voucher(tx: Tx, voucher_id: str, amount: int, until: str = "2026-12-31", org: str = "bank") -> None:
    store_vouchers.issue(tx, voucher_id, org, amount, "CNY", "2020-01-01", until, VoucherScope(), "fund", "", "test")


def _doc(org: str, period: str, due: int) -> dict[str, Any]:
    return {"invoice_id": f"{org}/{period}", "org_id": org, "period": period, "status": "closed", "currency": "CNY",
            "total_minor": due, "lines": [
                {"line": 1, "kind": "usage", "dataset": "residents", "product_id": None, "usage_period": period,
                 "cached": False, "price_version": "policy:" + POLICY.version, "policy_version": POLICY.version,
                 "merchant": None, "quantity": 1, "unit_price_minor": due, "amount_minor": due, "currency": "CNY",
                 "reference": ""}]}


def test_concurrent_invoices_never_redeem_the_same_fen(store: Store) -> None:
    """40 invoices of one organisation settle at once against two vouchers (1,000 and 537 fen)."""
    store.run_sync(lambda tx: (_voucher(tx, "v-a", 1000, "2026-06-30"), _voucher(tx, "v-b", 537)))
    periods = [f"20{20 + n // 12}-{n % 12 + 1:02d}" for n in range(40)]

    def settle_one(period: str) -> dict[str, Any]:
        return store.run_sync(settlement.settled_closing, _doc("bank", period, 37 + len(period) % 5), "t")

    with ThreadPoolExecutor(16) as pool:
        docs = list(pool.map(settle_one, periods))
    applied = sum(d["vouchers_applied_minor"] for d in docs)
    rows = store.run_sync(lambda tx: tx.all("SELECT voucher_id, SUM(amount_minor) FROM voucher_redemptions "
                                            "GROUP BY voucher_id ORDER BY voucher_id"), write=False)
    left = {v["voucher_id"]: v["balance_minor"] for v in store.run_sync(store_vouchers.listing, "bank", None, 10,
                                                                         write=False)}
    assert applied == 1537 == sum(int(r[1]) for r in rows)
    assert dict((r[0], int(r[1])) for r in rows) == {"v-a": 1000, "v-b": 537} and left == {"v-a": 0, "v-b": 0}
    assert all(d["amount_due_minor"] == d["total_minor"] - d["vouchers_applied_minor"] >= 0 for d in docs)
    with pytest.raises(Exception):  # noqa: B017 - one redemption per voucher and invoice, whatever the store says
        store.run_sync(store_vouchers.redeem, "bank", periods[0], [("v-a", 1)], "t")
    with pytest.raises(Exception):  # noqa: B017 - and never below zero
        store.run_sync(lambda tx: tx.execute("UPDATE vouchers SET balance_minor = -1 WHERE voucher_id = 'v-a'"))


def test_two_replicas_closing_the_same_month_redeem_once(store: Store, tmp_path: Path) -> None:
    """Two stores on the same database (replicas) close the same period at the same moment."""
    period = "2026-10"
    store.run_sync(lambda tx: (_voucher(tx, "v-1", 700), [_usage(tx, f"u{n}", "bank", period, 500)
                                                         for n in range(3)]))
    dsn = store.pool.conninfo if isinstance(store, PostgresStore) else ""
    other = open_store(dsn, tmp_path)
    try:
        with ThreadPoolExecutor(2) as pool:
            closed = list(pool.map(lambda s: s.run_sync(store_invoices.close_through, period, Settings().zone,
                                                         "CNY", "t"), [store, other]))
    finally:
        other.close()
    assert sorted(len(c) for c in closed) == [0, 1]  # one closed it; the other found it closed
    body = json.loads(store.run_sync(store_invoices.stored_invoice, "bank", period, write=False))
    assert body["total_minor"] == 1500 and body["vouchers_applied_minor"] == 700 and body["amount_due_minor"] == 800
    assert store.run_sync(lambda tx: tx.one("SELECT COUNT(*), SUM(amount_minor) FROM voucher_redemptions"),
                          write=False) == (1, 700)
    assert store.run_sync(audit.verify, write=False).ok


def test_only_one_call_opens_a_subscription_month(store: Store) -> None:
    def open_month(n: int) -> bool:
        return store.run_sync(store_pricing.opens_month, "bank", "product:p", "2026-11", f"u{n}")

    with ThreadPoolExecutor(12) as pool:
        opened = list(pool.map(open_month, range(24)))
    assert opened.count(True) == 1
    assert store.run_sync(store_pricing.month_is_open, "bank", "product:p", "2026-11", write=False)
    assert not store.run_sync(store_pricing.month_is_open, "bank", "product:p", "2026-12", write=False)


def test_caps_are_acts_that_refuse_the_price_they_would_break(store: Store) -> None:
    with pytest.raises(PriceOverCap):
        store.run_sync(store_pricing.set_cap, "dataset:residents", Cap("per_call", 499, "CNY"), "too low", "b")
    made = store.run_sync(store_pricing.set_cap, "dataset:residents", Cap("per_call", 600, "CNY", "REG-9"), "ok", "b")
    assert made["dataset"] == "residents" and made["registration_code"] == "REG-9"
    dearer = dict(POLICY.document, pricing={"currency": "CNY", "per_call_minor": 700})
    with pytest.raises(PriceOverCap, match="exceeds the cap of 600"):
        store.run_sync(store_pricing.publish_policy_within_cap, "residents", POLICY.owner, "v-dear", dearer, "b")
    cheaper = dict(POLICY.document, pricing={"currency": "CNY", "per_call_minor": 550})
    assert store.run_sync(store_pricing.publish_policy_within_cap, "residents", POLICY.owner, "v-cheap", cheaper, "b")
    kinds = store.run_sync(lambda tx: [r[0] for r in tx.all("SELECT kind FROM audit_log ORDER BY seq")], write=False)
    assert kinds.count("price_cap.set") == 1 and "policy.published" in kinds
    with pytest.raises(Exception, match="immutable"):
        store.run_sync(lambda tx: tx.execute("UPDATE price_caps SET cap_minor = 1"))


# ---------------------------------------------------------------- a year, closed and disclosed


def _usage(tx: Tx, usage_id: str, org: str, period: str, price: int, purpose_class: str = "industry",
           day: int = 15) -> None:
    tx.execute("INSERT INTO usage_records (usage_id, query_id, org_id, client_id, dataset, product_id, period, "
               "cached, epsilon_nano, price_minor, currency, price_version, committed_at, purpose_class) "
               "VALUES (?, ?, ?, ?, 'residents', NULL, ?, 0, 0, ?, 'CNY', ?, ?, ?)",
               (usage_id, "q-" + usage_id, org, org + "-app", period, price, "policy:" + POLICY.version,
                f"{period}-{day:02d}T04:00:00.000000Z", purpose_class))


def _charge(tx: Tx, period: str, eps: Decimal) -> None:
    accounts = (ledger.Account("grant:bank:residents", 10 * NANO), ledger.Account("pool:people", 50 * NANO))
    r = ledger.Reservation(uuid.uuid4().hex, "bank", "bank-app", "residents", None, period, int(eps * NANO), accounts)
    ledger.reserve(tx, r)
    ledger.mark_executing(tx, r.query_id, "bank")
    ledger.spend_without_release(tx, r.query_id, "test")


def _year(tx: Tx) -> None:
    """2025: usage in October to December by two payers and a free public-interest institute."""
    for month, bank, insurer in (("2025-10", 7, 3), ("2025-11", 9, 4), ("2025-12", 5, 8)):
        for n in range(bank):
            _usage(tx, f"b-{month}-{n}", "bank", month, 500)
        for n in range(insurer):
            _usage(tx, f"i-{month}-{n}", "insurer", month, 333)
        _usage(tx, f"r-{month}", "institute", month, 0, "public_interest")
        _charge(tx, month, Decimal("0.25"))
    _voucher(tx, "v-bank", 1234, "2025-11-30")
    _voucher(tx, "v-ins", 999, "2026-06-30", org="insurer")
    store_pricing.set_allowed(tx, "2025", 6000, "CNY", "a small allowance", "test")


def test_a_year_closes_carries_its_excess_and_discloses_figures_that_reconcile(store: Store) -> None:
    settings = Settings()
    store.run_sync(_year)
    store.run_sync(store_invoices.close_through, "2026-01", settings.zone, "CNY", "t")
    read = lambda fn, *a: store.run_sync(fn, *a, write=False)  # noqa: E731
    stored = read(settlement.stored_documents, [f"2025-{m:02d}" for m in range(1, 13)] + ["2026-01"])
    year_docs = [d for p, by_org in stored.items() if p.startswith("2025") for d in by_org.values()]
    billed = sum(line["amount_minor"] for d in year_docs for line in d["lines"] if line["kind"] == "usage")
    vouchers = sum(d["vouchers_applied_minor"] for d in year_docs)
    assert billed == 21 * 500 + 15 * 333 and vouchers == 1234 + 999
    excess = billed - vouchers - 6000
    carries = read(settlement.carried, "2025")
    assert sum(carries.values()) == excess  # exact to the fen, once December closed
    january = stored["2026-01"]
    carry_lines = [ln for d in january.values() for ln in d["lines"] if ln["kind"] == "carry"]
    from_december = read(settlement.carried_from, ["2025-12"])["2025-12"]
    assert -sum(ln["amount_minor"] for ln in carry_lines) == from_december
    for month in ("2025-11", "2025-12"):  # carries of October and November landed in the next month
        lines = [ln for d in stored[month].values() for ln in d["lines"] if ln["kind"] == "carry"]
        assert -sum(ln["amount_minor"] for ln in lines) == read(settlement.carried_from, [_before(month)]).get(
            _before(month), 0)

    billing = Billing(settings, read, lambda fn, *a: store.run_sync(fn, *a))
    report = read(report_tx, settings, billing, "2025")
    assert report == read(report_tx, settings, billing, "2025")
    assert report["status"] == "final"
    inv = report["invoices"]
    assert inv["usage_minor"] == billed and inv["vouchers_applied_minor"] == vouchers
    assert inv["total_minor"] == sum(d["total_minor"] for d in year_docs)
    assert inv["amount_due_minor"] == sum(d["amount_due_minor"] for d in year_docs)
    assert sum(p["billed_minor"] for p in report["products"]) == billed
    assert sum(c["billed_minor"] for c in report["requester_classes"]) == billed
    assert sum(s["amount_minor"] for s in report["revenue_shares"]) == inv["total_minor"]
    assert sum(s["special_fund_minor"] for s in report["revenue_shares"]) == vouchers
    assert report["vouchers"]["redeemed_minor"] == vouchers == read(
        lambda tx: int(tx.one("SELECT SUM(amount_minor) FROM voucher_redemptions WHERE period LIKE '2025-%'")[0]))
    public = report["free_public_use"]
    assert public["calls"] == 3 and public["requesters"] == 1
    classes = {c["purpose_class"]: c for c in report["requester_classes"]}
    assert classes["public_interest"]["calls"] == 3 and classes["public_interest"]["billed_minor"] == 0
    allowed = report["allowed_revenue"]
    assert (allowed["net_minor"], allowed["excess_minor"], allowed["carried_minor"], allowed["pending_minor"],
            allowed["retained_minor"]) == (billed - vouchers, excess, excess, 0, 6000)
    pools = {p["pool"]: p for p in report["privacy"]["pools"]}
    spent = read(lambda tx: tx.all("SELECT period, spent_nano FROM budget_accounts WHERE account = 'pool:people' "
                                   "ORDER BY period"))
    assert [(p["period"], p["epsilon_spent"]) for p in pools["people"]["periods"]] == \
        [(r[0], str(from_nano(int(r[1])))) for r in spent]
    assert report["privacy"]["datasets"][0]["epsilon_spent"] == "0.75" == pools["people"]["epsilon_spent"]


def _before(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"
