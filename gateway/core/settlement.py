"""What an invoice's lines come to: allowed-revenue credits carried in, then data vouchers (pure).

Order on an invoice: its lines (usage, credit notes), then the credit lines that return an
earlier excess over the allowed revenue (`kind: "carry"`), then vouchers on what is still due.
Negative lines reduce every positive line of the invoice's currency in proportion; vouchers,
oldest expiring first, pay the lines within their scope in proportion to what each still owes.
Every split is by largest remainder (`split_amount`), so each figure is exact to the fen: a
voucher never pays more than its balance nor a line more than it owes, and the amounts a
voucher pays sum to what it redeems.

Allowed revenue: a year's billed revenue net of vouchers (carry lines left out: they belong to
the year they return) above the year's allowance is the excess. Whenever a period closes, the
part of the excess not yet carried is credited on the next period's invoices, among the
organisations that paid in the closing period in proportion to what each paid.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.core.billing import BUREAU, invoice_csv, line_from_dict, line_split, split_amount
from gateway.core.pricing import subject_key

CARRY = "carry"


@dataclass(frozen=True)
class VoucherScope:
    """Empty: every line. Otherwise a line on one of the datasets or products, or priced by a
    subject the bureau registered under the scenario."""

    datasets: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    scenario: str | None = None

    def covers(self, line: Mapping[str, Any], scenarios: Mapping[str, frozenset[str]]) -> bool:
        if not (self.datasets or self.products or self.scenario):
            return True
        subject = subject_key(line["dataset"], line.get("product_id"))
        return (line["dataset"] in self.datasets or (line.get("product_id") or "") in self.products
                or (self.scenario is not None and self.scenario in scenarios.get(subject, frozenset())))

    def as_dict(self) -> dict[str, Any]:
        return {"datasets": list(self.datasets), "products": list(self.products), "scenario": self.scenario}


@dataclass(frozen=True)
class Voucher:
    voucher_id: str
    balance_minor: int
    valid_from: str  # YYYY-MM-DD, both days included
    valid_until: str
    scope: VoucherScope = VoucherScope()

    def serves(self, period: str) -> bool:
        """Valid on some day of the period ("YYYY-MM"); days compare as text."""
        return self.valid_from <= f"{period}-31" and self.valid_until >= f"{period}-01"


@dataclass(frozen=True)
class Carry:
    """A credit returning part of a year's excess over the allowed revenue."""

    carry_id: str
    year: str
    from_period: str
    amount_minor: int
    currency: str


def redemption_order(vouchers: Sequence[Voucher]) -> list[Voucher]:
    return sorted(vouchers, key=lambda v: (v.valid_until, v.valid_from, v.voucher_id))


def _proportional(amount: int, weights: Sequence[int]) -> list[int]:
    """`amount` over positions by weight (largest remainder), never more than a weight when
    amount <= sum(weights); all zeros when nothing weighs."""
    keyed = [(f"{i:08d}", w) for i, w in enumerate(weights) if w > 0]
    out = [0] * len(weights)
    if amount <= 0 or not keyed:
        return out
    for name, share in split_amount(amount, keyed):
        out[int(name)] = share
    return out


def carry_line(carry: Carry) -> dict[str, Any]:
    return {"kind": CARRY, "dataset": "", "product_id": None, "usage_period": carry.from_period, "cached": False,
            "price_version": "allowed-revenue", "policy_version": "", "merchant": None, "quantity": 1,
            "unit_price_minor": None, "amount_minor": -carry.amount_minor, "currency": carry.currency,
            "reference": f"{carry.carry_id}: revenue above the allowed revenue of {carry.year} returned"}


def settle(doc: Mapping[str, Any], carries: Sequence[Carry], vouchers: Sequence[Voucher],
           scenarios: Mapping[str, frozenset[str]]) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
    """The invoice document with carry lines, vouchers applied and the amount due; and what
    each voucher redeems, (voucher_id, amount) in redemption order, amounts > 0."""
    currency = doc["currency"]
    lines = [dict(line) for line in doc["lines"]] + [carry_line(c) for c in sorted(carries, key=lambda c: c.carry_id)]
    due = _due_after_reductions(lines, currency)
    paid = [0] * len(lines)
    redeemed: list[tuple[str, int]] = []
    for voucher in redemption_order([v for v in vouchers if v.serves(doc["period"])]):
        eligible = [d if voucher.scope.covers(lines[i], scenarios) else 0 for i, d in enumerate(due)]
        take = min(voucher.balance_minor, sum(eligible))
        if take <= 0:
            continue
        for i, share in enumerate(_proportional(take, eligible)):
            due[i] -= share
            paid[i] += share
        redeemed.append((voucher.voucher_id, take))
    for number, (line, voucher_part) in enumerate(zip(lines, paid, strict=True), start=1):
        line["line"] = number
        line["vouchers_minor"] = voucher_part
    out = dict(doc)
    out["lines"] = lines
    totals: dict[str, int] = {}
    for line in lines:
        totals[line["currency"]] = totals.get(line["currency"], 0) + line["amount_minor"]
    out["total_minor"] = totals.get(currency, 0)
    if set(totals) - {currency}:
        out["totals"] = dict(sorted(totals.items()))
    applied = sum(amount for _v, amount in redeemed)
    out["vouchers"] = [{"voucher_id": v, "amount_minor": a} for v, a in redeemed]
    out["vouchers_applied_minor"] = applied
    out["amount_due_minor"] = out["total_minor"] - applied
    return out, tuple(redeemed)


def _due_after_reductions(lines: Sequence[Mapping[str, Any]], currency: str) -> list[int]:
    """What each positive line still owes once the negative lines are spread over them."""
    charges = [line["amount_minor"] if line["currency"] == currency and line["amount_minor"] > 0 else 0
               for line in lines]
    reductions = -sum(line["amount_minor"] for line in lines
                      if line["currency"] == currency and line["amount_minor"] < 0)
    if reductions >= sum(charges):
        return [0] * len(lines)
    cut = _proportional(reductions, charges)
    return [c - r for c, r in zip(charges, cut, strict=True)]


# ---------------------------------------------------------------- figures of settled invoices


@dataclass(frozen=True)
class InvoiceFigures:
    billed_minor: int  # usage and credit-note lines in the invoice's currency
    carried_in_minor: int  # carry lines (negative)
    vouchers_minor: int

    @property
    def net_minor(self) -> int:
        """Billed revenue net of vouchers: what counts against the allowed revenue."""
        return self.billed_minor - self.vouchers_minor


def figures(doc: Mapping[str, Any]) -> InvoiceFigures:
    currency = doc["currency"]
    mine = [line for line in doc["lines"] if line["currency"] == currency]
    return InvoiceFigures(sum(line["amount_minor"] for line in mine if line["kind"] != CARRY),
                          sum(line["amount_minor"] for line in mine if line["kind"] == CARRY),
                          int(doc.get("vouchers_applied_minor", 0)))


# ---------------------------------------------------------------- allowed revenue


def excess(allowed_minor: int | None, net_minor: int) -> int:
    return 0 if allowed_minor is None else max(0, net_minor - allowed_minor)


def carry_split(allowed_minor: int | None, year_net: Mapping[str, int], period_net: Mapping[str, int],
                carried: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """(org, amount) to credit on the next period's invoices after a period closes.

    `year_net`: each organisation's net revenue of the year so far (closing period included);
    `period_net`: of the closing period; `carried`: credited for this year already, per org.
    The excess not yet carried goes back to those who paid in the closing period, in
    proportion; if they paid less than that (the allowance was lowered), to those who paid in
    the year, in proportion to what they paid and have not had back.
    """
    increment = excess(allowed_minor, sum(year_net.values())) - sum(carried.values())
    if increment <= 0:
        return ()
    weights = {org: max(0, n) for org, n in period_net.items()}
    if sum(weights.values()) < increment:
        weights = {org: max(0, n - carried.get(org, 0)) for org, n in year_net.items()}
    ranked = sorted((org, w) for org, w in weights.items() if w > 0)
    if not ranked:
        return ()
    return tuple((org, amount) for org, amount in split_amount(increment, ranked) if amount > 0)


def position(year: str, allowed_minor: int | None, currency: str,
             periods: Sequence[Mapping[str, Any]], carried_minor: int) -> dict[str, Any]:
    """The year against its allowed revenue; `periods` rows carry billed, vouchers and net."""
    net = sum(p["net_minor"] for p in periods)
    over = excess(allowed_minor, net)
    return {"year": year, "currency": currency, "allowed_minor": allowed_minor,
            "billed_minor": sum(p["billed_minor"] for p in periods),
            "vouchers_minor": sum(p["vouchers_minor"] for p in periods), "net_minor": net,
            "excess_minor": over, "carried_minor": carried_minor, "pending_minor": max(0, over - carried_minor),
            "retained_minor": net - carried_minor,
            "headroom_minor": None if allowed_minor is None else max(0, allowed_minor - net),
            "periods": list(periods)}


# ---------------------------------------------------------------- what the special fund paid


def special_fund(docs: Sequence[Mapping[str, Any]], rules: Mapping[str, Sequence[tuple[str, int]]],
                 bureau: str = BUREAU) -> dict[str, dict[tuple[str, str], int]]:
    """party -> (dataset, product) -> the part of its revenue that vouchers paid.

    Each line's voucher part is split by the revenue shares of the line, like the line itself,
    so the parties' figures sum to the vouchers applied on the invoices."""
    out: dict[str, dict[tuple[str, str], int]] = {}
    for doc in docs:
        for item in doc["lines"]:
            part = int(item.get("vouchers_minor", 0))
            if part <= 0:
                continue
            line = replace(line_from_dict(item), amount_minor=part)
            for party, amount in line_split(line, rules, bureau):
                slot = out.setdefault(party, {})
                key = (line.dataset, line.product_id or "")
                slot[key] = slot.get(key, 0) + amount
    return out


def add_special_fund(statements: dict[str, dict[str, Any]], paid: Mapping[str, Mapping[tuple[str, str], int]]) -> None:
    """Each statement line gets `special_fund_minor`, each statement its total (in place)."""
    for party, doc in statements.items():
        mine = paid.get(party, {})
        for line in doc["lines"]:
            line["special_fund_minor"] = mine.get((line["dataset"], line["product_id"] or ""), 0)
        doc["special_fund_minor"] = sum(mine.values())


def settled_csv(doc: Mapping[str, Any]) -> bytes:
    """The invoice CSV with two columns more: each line's `vouchers_minor`, and on the closing
    total row of the invoice's currency the vouchers applied and the `amount_due_minor` (vouchers
    pay that currency only). Earlier columns and the closing rows keep their places."""
    if "amount_due_minor" not in doc:
        return invoice_csv(doc)
    rows = list(csv.reader(io.StringIO(invoice_csv(doc).decode())))
    count = len(doc["lines"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*rows[0], "vouchers_minor", "amount_due_minor"])
    for row, line in zip(rows[1:1 + count], doc["lines"], strict=True):
        writer.writerow([*row, str(line.get("vouchers_minor", 0)), ""])
    for n, row in enumerate(rows[1 + count:]):  # the invoice's own currency comes first
        due = [str(doc["vouchers_applied_minor"]), str(doc["amount_due_minor"])] if n == 0 else ["", ""]
        writer.writerow([*row, *due])
    return out.getvalue().encode()
