"""Invoices and revenue shares as pure functions: exact sums, deterministic bytes (R-BI-01..05)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.billing import (
    CreditItem,
    UsageItem,
    build_invoice,
    invoice_csv,
    invoice_json,
    line_split,
    resolve_parties,
    revenue_statements,
    split_amount,
    statement_document,
)
from gateway.policyfiles import load_policies, shipped_policies_dir
from gateway.service.billing import Billing, current_period
from gateway.settings import Settings
from gateway.store import audit, identity
from gateway.store import credits as store_credits
from gateway.store import datasets as store_datasets
from gateway.store.db import Store, Tx
from tests.store_support import open_test_store

RULES = {"v1": (("bureau", 3000), ("merchant", 1000), ("psb", 6000)),
         "v2": (("bureau", 3500), ("hrss", 6500))}


def usage(n: int, *, dataset: str = "residents", product: str | None = None, price: int = 500,
          cached: bool = False, policy: str = "v1", merchant: str | None = None, org: str = "bank") -> UsageItem:
    return UsageItem(f"u{n:04d}", org, dataset, product, "2026-11", cached, price, "CNY",
                     f"product:{product}@1" if product else f"policy:{policy}", policy, merchant,
                     f"2026-11-0{1 + n % 9}T00:00:{n % 60:02d}.000000Z")


weights = st.lists(st.tuples(st.text("abcdefgh", min_size=1, max_size=3), st.integers(0, 10_000)),
                   min_size=1, max_size=6, unique_by=lambda t: t[0]).filter(lambda ws: sum(w for _p, w in ws) > 0)


@settings(deadline=None)
@given(st.integers(-10**12, 10**12), weights)
def test_split_sums_exactly_and_each_share_is_within_one_of_its_quota(amount: int, ws: list[tuple[str, int]]) -> None:
    parts = dict(split_amount(amount, ws))
    assert sum(parts.values()) == amount  # R-BI-03
    total = sum(w for _p, w in ws)
    for party, w in ws:
        quota = Fraction(amount * w, total)
        assert abs(parts[party] - quota) < 1


@settings(deadline=None)
@given(st.integers(0, 10**9), weights, st.randoms())
def test_split_does_not_depend_on_the_order_of_the_weights(amount: int, ws: list[tuple[str, int]],
                                                            rnd: random.Random) -> None:
    shuffled = list(ws)
    rnd.shuffle(shuffled)
    assert split_amount(amount, ws) == split_amount(amount, shuffled)


def test_tie_break_is_larger_weight_then_name() -> None:
    # 1 minor unit over three equal weights: the alphabetically first party gets it.
    assert split_amount(1, [("c", 1), ("b", 1), ("a", 1)]) == (("a", 1), ("b", 0), ("c", 0))
    # 10 over 60/30/10 percent of 7: quotas 4.2, 2.1, 0.7 -> the largest remainder (0.7) wins.
    assert dict(split_amount(7, [("psb", 6000), ("bureau", 3000), ("merchant", 1000)])) == \
        {"psb": 4, "bureau": 2, "merchant": 1}
    # Equal remainders (0.5 each): the larger weight wins before the name.
    assert dict(split_amount(1, [("a", 1), ("z", 3)])) == {"a": 0, "z": 1}


def test_credit_is_split_as_a_negative_mirror() -> None:
    ws = [("psb", 6000), ("bureau", 3000), ("merchant", 1000)]
    assert split_amount(-7, ws) == tuple((p, -a) for p, a in split_amount(7, ws))


def test_split_refuses_empty_or_negative_weights() -> None:
    with pytest.raises(ValueError):
        split_amount(10, [("a", 0)])
    with pytest.raises(ValueError):
        split_amount(10, [("a", 5), ("b", -1)])


def test_merchant_share_goes_to_the_bureau_for_ad_hoc_queries() -> None:
    assert resolve_parties(RULES["v1"], None) == (("bureau", 4000), ("psb", 6000))
    assert resolve_parties(RULES["v1"], "datasmith") == (("bureau", 3000), ("datasmith", 1000), ("psb", 6000))


def test_invoice_groups_by_price_and_sums_lines_to_total() -> None:
    items = [usage(i) for i in range(5)] + [usage(10 + i, cached=True, price=100) for i in range(3)] + \
        [usage(20, product="income-band", price=800, merchant="datasmith")]
    inv = build_invoice("bank", "2026-11", "open", "CNY", items)
    body = inv.as_dict()
    assert [(ln["quantity"], ln["amount_minor"]) for ln in body["lines"]] == [(5, 2500), (3, 300), (1, 800)]
    assert body["total_minor"] == sum(ln["amount_minor"] for ln in body["lines"]) == 3600


def test_invoice_bytes_do_not_depend_on_record_order() -> None:
    items = [usage(i, price=500 if i % 3 else 0, cached=i % 4 == 0) for i in range(40)]
    shuffled = list(items)
    random.Random(7).shuffle(shuffled)
    a = invoice_json(build_invoice("bank", "2026-11", "open", "CNY", items))
    b = invoice_json(build_invoice("bank", "2026-11", "open", "CNY", shuffled))
    assert a == b
    assert invoice_csv(json.loads(a)) == invoice_csv(json.loads(b))


def test_credit_note_is_a_negative_line_in_the_later_period() -> None:
    note = CreditItem("cn-1", "bank", "residents", None, "2026-10", 1500, "CNY", "v1", None, "double billed")
    inv = build_invoice("bank", "2026-11", "open", "CNY", [usage(1)], [note])
    body = inv.as_dict()
    credit = body["lines"][-1]
    assert credit["kind"] == "credit" and credit["amount_minor"] == -1500 and credit["usage_period"] == "2026-10"
    assert body["total_minor"] == 500 - 1500


def test_csv_has_a_header_every_line_and_the_total() -> None:
    inv = json.loads(invoice_json(build_invoice("bank", "2026-11", "closed", "CNY", [usage(i) for i in range(3)])))
    rows = list(csv.reader(io.StringIO(invoice_csv(inv).decode())))
    assert rows[0][0] == "line" and rows[1][9] == "1500" and rows[-1][0] == "total" and rows[-1][9] == "1500"


def test_statements_sum_exactly_to_the_invoices() -> None:
    items = [usage(i, price=333) for i in range(7)] + \
        [usage(100 + i, dataset="social_insurance", policy="v2", price=801, org="insurer") for i in range(3)] + \
        [usage(200 + i, product="income-band", price=799, merchant="datasmith") for i in range(11)]
    invoices = [build_invoice(org, "2026-11", "open", "CNY", [i for i in items if i.org_id == org])
                for org in ("bank", "insurer")]
    lines = [line for inv in invoices for line in inv.lines]
    statements = revenue_statements(lines, RULES)
    party_total = sum(s.amount_minor for items_ in statements.values() for s in items_)
    assert party_total == sum(inv.total_minor for inv in invoices)
    assert set(statements) == {"bureau", "datasmith", "hrss", "psb"}
    for line in lines:
        assert sum(a for _p, a in line_split(line, RULES)) == line.amount_minor
    doc = statement_document("psb", "2026-11", "open", "CNY", statements["psb"])
    assert doc["total_minor"] == sum(ln["amount_minor"] for ln in doc["lines"])


def test_unknown_policy_version_goes_to_the_bureau_whole() -> None:
    line = build_invoice("bank", "2026-11", "open", "CNY", [usage(1, policy="gone")]).lines[0]
    assert line_split(line, RULES) == (("bureau", 500),)


# ---------------------------------------------------------------- closed periods in the store


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    with open_test_store(request.param, tmp_path, dsn) as s:
        yield s


def _previous(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _add_usage(tx: Tx, usage_id: str, org: str, period: str, price: int, policy_version: str,
               cached: bool = False, day: int = 15) -> None:
    tx.execute("INSERT INTO usage_records (usage_id, query_id, org_id, client_id, dataset, product_id, period, "
               "cached, epsilon_nano, price_minor, currency, price_version, committed_at) "
               "VALUES (?, ?, ?, ?, 'residents', NULL, ?, ?, 0, ?, 'CNY', ?, ?)",
               (usage_id, "q-" + usage_id, org, org + "-app", period, int(cached), price,
                "policy:" + policy_version, f"{period}-{day:02d}T12:00:00.000000Z"))


def test_closed_periods_keep_their_bytes_and_late_usage_moves_on(store: Store) -> None:
    """R-BI-02 (stored hash, same bytes), R-BI-04 (closed never changes; late to the next period)."""
    config = Settings()
    policy = load_policies(shipped_policies_dir())["residents"]
    store.run_sync(store_datasets.seed_policy, "residents", policy.owner, policy.version, dict(policy.document),
                   "test")
    now = current_period(config)
    p2 = _previous(now)
    p1 = _previous(p2)

    def seed(tx: Tx) -> None:
        for org in ("bank", "insurer"):
            identity.ensure_org(tx, org, org, "requester")
        for n in range(3):
            _add_usage(tx, f"b1-{n}", "bank", p1, 500, policy.version)
        for n in range(2):
            _add_usage(tx, f"b2-{n}", "bank", p2, 500, policy.version)
        _add_usage(tx, "i2-0", "insurer", p2, 500, policy.version)
        _add_usage(tx, "b3-0", "bank", now, 100, policy.version, cached=True, day=1)
    store.run_sync(seed)
    billing = Billing(config, lambda fn, *a: store.run_sync(fn, *a, write=False),
                      lambda fn, *a: store.run_sync(fn, *a))
    assert billing.close_ended() == [p1, p2]
    assert billing.close_ended() == []
    read = lambda fn, *a: store.run_sync(fn, *a, write=False)  # noqa: E731
    first = {p: read(billing.invoice_tx, "bank", p) for p in (p1, p2)}
    assert json.loads(first[p1])["total_minor"] == 1500 and json.loads(first[p2])["total_minor"] == 1000
    assert json.loads(first[p1])["status"] == "closed"

    # A release that committed with a time inside p2 after p2 closed, and a credit for p1.
    store.run_sync(_add_usage, "late-0", "bank", p2, 500, policy.version)
    note = CreditItem("cn-1", "bank", "residents", None, p1, 200, "CNY", policy.version, None, "refund")
    store.run_sync(store_credits.issue, note, {}, "test")
    assert {p: read(billing.invoice_tx, "bank", p) for p in (p1, p2)} == first
    current = json.loads(read(billing.invoice_tx, "bank", now))
    assert current["status"] == "open"
    assert [(ln["usage_period"], ln["amount_minor"]) for ln in current["lines"]] == [(p2, 500), (now, 100), (p1, -200)]
    assert current["total_minor"] == 400

    statements = read(billing.statements_tx, p2)
    assert statements["invoices_total_minor"] == 1500
    assert sum(s["total_minor"] for s in statements["statements"].values()) == 1500
    assert statements["statements"]["psb"]["total_minor"] == 900

    entries = read(lambda tx: tx.all("SELECT subject, payload FROM audit_log WHERE kind = 'invoice.period_closed' "
                                     "ORDER BY seq"))
    hashes = json.loads(entries[1][1])["invoices"]
    assert entries[1][0] == p2 and hashes["bank"] == hashlib.sha256(first[p2]).hexdigest()
    assert read(audit.verify).ok
    with pytest.raises(Exception, match="immutable"):
        store.run_sync(lambda tx: tx.execute("UPDATE invoices SET body = '{}' WHERE org_id = 'bank'"))
