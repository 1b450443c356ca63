"""The pure pricing rules: classes, models, trials, caps, voucher allocation, the allowed-revenue carry."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.billing import build_invoice
from gateway.core.pricing import (
    Cap,
    PricePlan,
    billable_cells,
    board_item,
    call_class,
    call_price,
    over_cap,
    plan_of_policy,
    plan_of_product,
    policy_pricing_problems,
    product_pricing,
)
from gateway.core.settlement import (
    Carry,
    Voucher,
    VoucherScope,
    add_special_fund,
    carry_split,
    figures,
    position,
    settle,
    settled_csv,
    special_fund,
)
from gateway.errors import InvalidRequest
from tests.test_billing import RULES, usage

PLAN = PricePlan("per_call", 500, 100, "CNY", 300, "2026-12-31")


def price(plan: PricePlan = PLAN, **kw: Any) -> int:
    args: dict[str, Any] = {"purpose_class": "industry", "day": "2026-11-15", "cached": False, "cells": 1,
                            "opens_month": False, "free": False}
    return call_price(plan, **{**args, **kw})


# ---------------------------------------------------------------- classes, models, trials


def test_public_classes_are_free_whatever_the_model() -> None:
    for model in ("per_call", "per_month", "per_cell"):
        plan = PricePlan(model, 900, 900, "CNY")
        for cls in ("public_governance", "public_interest"):
            assert price(plan, purpose_class=cls, opens_month=True, cells=40) == 0
        assert price(plan, opens_month=True, cells=40) > 0


def test_a_call_is_industry_if_any_grant_allowing_it_is() -> None:
    assert call_class([]) == "industry"
    assert call_class(["public_interest", "industry"]) == "industry"
    assert call_class(["public_interest"]) == "public_interest"
    assert call_class(["public_interest", "public_governance"]) == "public_governance"


def test_trial_price_runs_to_its_last_day_inclusive() -> None:
    assert price(day="2026-12-31") == 300 and price(day="2027-01-01") == 500


def test_a_cached_answer_keeps_its_own_lower_price_also_in_a_trial() -> None:
    assert price(cached=True, day="2027-01-01") == 100
    cheap_trial = PricePlan("per_call", 500, 400, "CNY", 50, "2026-12-31")
    assert price(cheap_trial, cached=True) == 50  # never above the fresh price in force


def test_per_month_charges_the_call_that_opens_the_month_only() -> None:
    plan = PricePlan("per_month", 20_000, 20_000, "CNY")
    assert price(plan, opens_month=True) == 20_000
    assert price(plan, opens_month=False) == 0
    assert price(plan, opens_month=True, cached=True) == 20_000


def test_per_cell_charges_the_cells_the_plan_can_release() -> None:
    plan = PricePlan("per_cell", 3, 1, "CNY")
    assert price(plan, cells=billable_cells(20, 1000, None, 2)) == 120
    assert price(plan, cached=True, cells=40) == 40
    assert billable_cells(None, 1000, 10, 3) == 30  # private keys: the policy's bound, cut by LIMIT
    assert billable_cells(None, 500, None, 0) == 500


def test_free_calls_are_per_call_only_and_before_the_price() -> None:
    assert price(free=True) == 0
    assert price(PricePlan("per_cell", 2, 2, "CNY"), free=True, cells=5) == 10


def test_policy_pricing_lint() -> None:
    assert policy_pricing_problems({"per_call_minor": 500, "cached_call_minor": 100}) == []
    assert policy_pricing_problems({"price_minor": 5, "per_call_minor": 5})[0][1].startswith("pricing needs exactly")
    assert policy_pricing_problems({})[0][0] == ("pricing",)
    messages = [m for _p, m in policy_pricing_problems({"price_minor": 5, "cached_call_minor": 9,
                                                        "trial_price_minor": 7, "model": "per_month",
                                                        "free_calls_per_period": 3})]
    assert any("cached" in m for m in messages) and any("trial needs both" in m for m in messages)
    assert any("free calls" in m for m in messages)
    assert [m for _p, m in policy_pricing_problems({"price_minor": 5, "trial_price_minor": 9,
                                                    "trial_until": "2026-02-30"})] == [
        "a trial price cannot exceed the regular price", "trial_until is a day, YYYY-MM-DD"]


def test_plans_from_policies_and_products() -> None:
    assert plan_of_policy({"per_call_minor": 500, "cached_call_minor": 100}) == PricePlan("per_call", 500, 100, "CNY")
    assert plan_of_policy({"price_minor": 9, "model": "per_cell"}).cached_price_minor == 9
    old = {"price_minor": 800, "currency": "CNY"}
    assert plan_of_product(old) == PricePlan("per_call", 800, 800, "CNY")
    assert product_pricing({"price_model": "per_month"}, 100) == {"price_model": "per_month"}
    with pytest.raises(InvalidRequest, match="price_model"):
        product_pricing({"price_model": "per_year"}, 100)
    with pytest.raises(InvalidRequest, match="cached_price_minor"):
        product_pricing({"cached_price_minor": 200}, 100)
    with pytest.raises(InvalidRequest, match="trial needs both"):
        product_pricing({"trial_price_minor": 50}, 100)


# ---------------------------------------------------------------- caps and the board


def test_caps_refuse_a_price_or_trial_above_them_and_another_model() -> None:
    assert over_cap(PLAN, None) == []
    assert over_cap(PLAN, Cap("per_call", 500, "CNY")) == []
    assert over_cap(PLAN, Cap("per_call", 499, "CNY")) == ["the price of 500 exceeds the cap of 499 set by the bureau"]
    assert len(over_cap(PricePlan("per_call", 100, 100, "CNY", 200, "2026-12-31"), Cap("per_call", 150, "CNY"))) == 1
    assert "model" in over_cap(PLAN, Cap("per_month", 10_000, "CNY"))[0]
    assert "CNY" in over_cap(PLAN, Cap("per_call", 10_000, "USD"))[0]


def test_the_board_shows_the_price_in_force_and_the_trial_end_while_it_runs() -> None:
    cap = Cap("per_call", 800, "CNY", "REG-1")
    item = board_item(("product", "p"), "P", PLAN, cap, "2026-12-01")
    assert item == {"product_id": "p", "title": "P", "model": "per_call", "price_minor": 300, "cap_minor": 800,
                    "trial_until": "2026-12-31", "registration_code": "REG-1"}
    after = board_item(("dataset", "d"), "D", PLAN, None, "2027-01-01")
    assert after["price_minor"] == 500 and after["trial_until"] is None and after["cap_minor"] is None
    assert "product_id" not in after and after["dataset"] == "d"


# ---------------------------------------------------------------- vouchers on an invoice


def invoice(*prices: int, org: str = "bank", products: tuple[str | None, ...] = ()) -> dict[str, Any]:
    items = [usage(n, price=p, product=products[n] if n < len(products) else None, merchant="m")
             for n, p in enumerate(prices)]
    return build_invoice(org, "2026-11", "open", "CNY", items).as_dict()


def test_vouchers_redeem_oldest_expiring_first_and_never_past_their_balance() -> None:
    doc = invoice(500, 500)
    late = Voucher("v-late", 800, "2026-01-01", "2027-06-30")
    soon = Voucher("v-soon", 300, "2026-06-01", "2026-11-30")
    out, taken = settle(doc, (), [late, soon], {})
    assert taken == (("v-soon", 300), ("v-late", 700))
    assert out["vouchers_applied_minor"] == 1000 and out["amount_due_minor"] == 0
    assert sum(line["vouchers_minor"] for line in out["lines"]) == 1000


def test_a_voucher_outside_its_days_or_scope_pays_nothing() -> None:
    doc = invoice(500, 800, products=(None, "prod-x"))
    expired = Voucher("v-old", 1000, "2026-01-01", "2026-10-31")
    not_yet = Voucher("v-new", 1000, "2026-12-01", "2026-12-31")
    scoped = Voucher("v-prod", 1000, "2026-11-30", "2026-11-30", VoucherScope(products=("prod-x",)))
    out, taken = settle(doc, (), [expired, not_yet, scoped], {})
    assert taken == (("v-prod", 800),)
    by_product = {line["product_id"]: line["vouchers_minor"] for line in out["lines"]}
    assert by_product == {None: 0, "prod-x": 800}
    scenario = Voucher("v-sc", 1000, "2026-01-01", "2026-12-31", VoucherScope(scenario="inclusive-finance"))
    _out, taken = settle(doc, (), [scenario], {"dataset:residents": frozenset({"inclusive-finance"})})
    assert taken == (("v-sc", 500),)


def test_carried_excess_comes_before_vouchers_and_vouchers_never_pay_a_credit() -> None:
    doc = invoice(500, 300)
    out, taken = settle(doc, [Carry("carry-2026-10-bank", "2026", "2026-10", 600, "CNY")],
                        [Voucher("v", 10_000, "2026-01-01", "2026-12-31")], {})
    assert [line["kind"] for line in out["lines"]] == ["usage", "usage", "carry"]
    assert out["lines"][-1]["amount_minor"] == -600 and out["lines"][-1]["line"] == 3
    assert out["total_minor"] == 200 and taken == (("v", 200),) and out["amount_due_minor"] == 0
    big = settle(doc, [Carry("c", "2026", "2026-10", 5000, "CNY")], [Voucher("v", 100, "2026-01-01", "2026-12-31")],
                 {})[0]
    assert big["vouchers_applied_minor"] == 0 and big["amount_due_minor"] == -4200  # owed back to the requester


amounts = st.lists(st.integers(0, 5000), min_size=0, max_size=6)
balances = st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(["2026-11-30", "2026-12-31", "2027-01-31"]),
                              st.booleans()), max_size=4)


@settings(deadline=None, max_examples=300)
@given(amounts, balances, st.integers(0, 3000))
def test_every_fen_of_a_settlement_is_accounted_for(prices: list[int], vs: list[tuple[int, str, bool]],
                                                    carried: int) -> None:
    doc = invoice(*prices, products=tuple("p" if n % 2 else None for n in range(len(prices))))
    vouchers = [Voucher(f"v{n}", b, "2026-01-01", until, VoucherScope(products=("p",)) if scoped else VoucherScope())
                for n, (b, until, scoped) in enumerate(vs)]
    carries = [Carry("c", "2026", "2026-10", carried, "CNY")] if carried else []
    out, taken = settle(doc, carries, vouchers, {})
    balance = {v.voucher_id: v.balance_minor for v in vouchers}
    assert all(0 < amount <= balance[v] for v, amount in taken)  # a voucher never goes below zero
    assert len({v for v, _a in taken}) == len(taken)
    applied = sum(a for _v, a in taken)
    assert applied == out["vouchers_applied_minor"] == sum(line["vouchers_minor"] for line in out["lines"])
    assert 0 <= applied <= max(0, out["total_minor"])
    assert out["amount_due_minor"] == out["total_minor"] - applied
    assert out["total_minor"] == sum(prices) - carried
    for line in out["lines"]:
        assert 0 <= line["vouchers_minor"] <= max(0, line["amount_minor"])
    if out["total_minor"] > 0 and applied < out["total_minor"]:
        # what is left unpaid is out of every voucher's scope, or the vouchers are spent
        left = {v: balance[v] - dict(taken).get(v, 0) for v in balance}
        assert all(left[v.voucher_id] == 0 or v.scope.products for v in vouchers)


def test_figures_separate_billing_carries_and_vouchers() -> None:
    out, _ = settle(invoice(500, 300), [Carry("c", "2026", "2026-10", 100, "CNY")],
                    [Voucher("v", 50, "2026-01-01", "2026-12-31")], {})
    f = figures(out)
    assert (f.billed_minor, f.carried_in_minor, f.vouchers_minor, f.net_minor) == (800, -100, 50, 750)


def test_special_fund_shares_sum_to_the_vouchers_applied() -> None:
    out, _ = settle(invoice(500, 333, 7, products=(None, "p", None)), (), [Voucher("v", 601, "2026-01-01",
                                                                                  "2026-12-31")], {})
    paid = special_fund([out], RULES)
    assert sum(sum(v.values()) for v in paid.values()) == 601
    statements = {"psb": {"lines": [{"dataset": "residents", "product_id": None}]}}
    add_special_fund(statements, paid)
    assert statements["psb"]["special_fund_minor"] == sum(paid["psb"].values())


def test_settled_csv_adds_vouchers_and_the_amount_due_as_columns() -> None:
    out, _ = settle(invoice(500), (), [Voucher("v", 120, "2026-01-01", "2026-12-31")], {})
    rows = list(csv.reader(io.StringIO(settled_csv(out).decode())))
    assert rows[0][-2:] == ["vouchers_minor", "amount_due_minor"] and rows[1][-2:] == ["120", ""]
    assert rows[-1][0] == "total" and rows[-1][9] == "500" and rows[-1][-2:] == ["120", "380"]
    assert {len(r) for r in rows} == {15}  # the invoice's 13 columns (registration_code last), then two


# ---------------------------------------------------------------- allowed revenue


def test_no_carry_without_an_allowance_or_below_it() -> None:
    assert carry_split(None, {"a": 10**9}, {"a": 10**9}, {}) == ()
    assert carry_split(1000, {"a": 600, "b": 400}, {"a": 600, "b": 400}, {}) == ()


def test_the_excess_goes_back_to_those_who_paid_in_the_closing_period_exactly() -> None:
    split = carry_split(1000, {"a": 900, "b": 400}, {"a": 200, "b": 101}, {})
    assert sum(a for _o, a in split) == 300
    assert dict(split) == {"a": 199, "b": 101} or dict(split) == {"a": 200, "b": 100}
    # already carried 300: a later period adds only its own excess
    again = carry_split(1000, {"a": 1000, "b": 400}, {"a": 100}, dict(split))
    assert again == (("a", 100),)


def test_a_lowered_allowance_falls_back_to_the_year_s_payers() -> None:
    split = carry_split(100, {"a": 600, "b": 400}, {"a": 10}, {})
    assert sum(a for _o, a in split) == 900 and dict(split) == {"a": 540, "b": 360}


@settings(deadline=None, max_examples=300)
@given(st.integers(0, 10_000), st.dictionaries(st.sampled_from("abcde"), st.integers(-500, 5000), min_size=1),
       st.dictionaries(st.sampled_from("abcde"), st.integers(0, 3000)))
def test_carries_are_exact_and_never_exceed_the_excess(allowed: int, year: dict[str, int],
                                                        period: dict[str, int]) -> None:
    already: dict[str, int] = {}
    first = carry_split(allowed, year, period, already)
    excess = max(0, sum(year.values()) - allowed)
    assert sum(a for _o, a in first) == excess
    assert all(a > 0 for _o, a in first)
    carried = dict(first)
    assert carry_split(allowed, year, period, carried) == ()  # nothing twice


def test_position_of_a_year() -> None:
    rows = [{"billed_minor": 900, "vouchers_minor": 100, "net_minor": 800},
            {"billed_minor": 500, "vouchers_minor": 0, "net_minor": 500}]
    p = position("2026", 1000, "CNY", rows, 200)
    assert (p["net_minor"], p["excess_minor"], p["pending_minor"], p["retained_minor"], p["headroom_minor"]) == \
        (1300, 300, 100, 1100, 0)
    assert position("2026", None, "CNY", rows, 0)["excess_minor"] == 0
