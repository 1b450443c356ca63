"""Money for calls: invoices from committed usage, revenue split by largest remainder, rendering.

Money is integer minor units everywhere (R-BI-01). Each usage record carries the price fixed
when its release committed (R-BI-05); an invoice groups a requester's records into lines and
adds credit notes, so it is a pure function of what it is given and renders to the same bytes
every time (R-BI-02). Each line is split among the parties of the policy it ran under by the
largest-remainder method, so the shares of a line always sum to the line (R-BI-03). The
policy's `merchant` share goes to the product's merchant, and to the bureau for ad-hoc queries.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.core.canonical import canonical_bytes

BUREAU = "bureau"
MERCHANT = "merchant"
CSV_COLUMNS = ("line", "kind", "dataset", "product_id", "usage_period", "cached", "price_version",
               "quantity", "unit_price_minor", "amount_minor", "currency", "reference", "registration_code")


@dataclass(frozen=True)
class UsageItem:
    """One billed call, as the ledger committed it."""

    usage_id: str
    org_id: str
    dataset: str
    product_id: str | None
    usage_period: str
    cached: bool
    price_minor: int
    currency: str
    price_version: str
    policy_version: str
    merchant_org: str | None
    committed_at: str


@dataclass(frozen=True)
class CreditItem:
    """A correction issued by the bureau: `amount_minor` > 0 is credited to the requester."""

    credit_id: str
    org_id: str
    dataset: str
    product_id: str | None
    refers_to_period: str
    amount_minor: int
    currency: str
    policy_version: str
    merchant_org: str | None
    reason: str


@dataclass(frozen=True)
class InvoiceLine:
    kind: Literal["usage", "credit"]
    dataset: str
    product_id: str | None
    usage_period: str
    cached: bool
    price_version: str
    policy_version: str
    merchant_org: str | None
    currency: str
    quantity: int
    unit_price_minor: int | None
    amount_minor: int
    reference: str = ""
    registration_code: str | None = None  # the product's (else the dataset's) code when the invoice was made

    def as_dict(self, number: int) -> dict[str, Any]:
        return {"line": number, "kind": self.kind, "dataset": self.dataset, "product_id": self.product_id,
                "usage_period": self.usage_period, "cached": self.cached, "price_version": self.price_version,
                "policy_version": self.policy_version, "merchant": self.merchant_org,
                "quantity": self.quantity, "unit_price_minor": self.unit_price_minor,
                "amount_minor": self.amount_minor, "currency": self.currency, "reference": self.reference,
                "registration_code": self.registration_code}


@dataclass(frozen=True)
class Invoice:
    org_id: str
    period: str
    status: Literal["open", "closed"]
    currency: str
    lines: tuple[InvoiceLine, ...]

    @property
    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.lines:
            out[line.currency] = out.get(line.currency, 0) + line.amount_minor
        return out

    @property
    def total_minor(self) -> int:
        return self.totals.get(self.currency, 0)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "invoice_id": f"{self.org_id}/{self.period}", "org_id": self.org_id, "period": self.period,
            "status": self.status, "currency": self.currency,
            "lines": [line.as_dict(n) for n, line in enumerate(self.lines, start=1)],
            "total_minor": self.total_minor,
        }
        if set(self.totals) - {self.currency}:
            body["totals"] = dict(sorted(self.totals.items()))
        return body


# ---------------------------------------------------------------- periods


def next_period(period: str) -> str:
    """The calendar month after a "YYYY-MM" period."""
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def periods_between(first: str, last: str) -> list[str]:
    """Every period from `first` to `last`, both included (empty when first > last)."""
    out, cur = [], first
    while cur <= last:
        out.append(cur)
        cur = next_period(cur)
    return out


# ---------------------------------------------------------------- invoices


def _usage_key(u: UsageItem) -> tuple[Any, ...]:
    return (u.dataset, u.product_id or "", u.usage_period, u.cached, u.price_version, u.policy_version,
            u.merchant_org or "", u.currency, u.price_minor)


def invoice_lines(usage: Iterable[UsageItem], credits: Iterable[CreditItem] = (),
                  codes: Mapping[str, str] | None = None) -> tuple[InvoiceLine, ...]:
    """Usage grouped by what sets its price and its split, then one line per credit note; sorted.
    `codes`: registration codes by subject (`product:<id>`, `dataset:<id>`), carried on each line."""
    groups: dict[tuple[Any, ...], list[UsageItem]] = {}
    for item in usage:
        groups.setdefault(_usage_key(item), []).append(item)
    lines = [InvoiceLine("usage", items[0].dataset, items[0].product_id, items[0].usage_period, items[0].cached,
                         items[0].price_version, items[0].policy_version, items[0].merchant_org,
                         items[0].currency, len(items), items[0].price_minor, sum(i.price_minor for i in items),
                         registration_code=_code(codes, items[0].dataset, items[0].product_id))
             for _key, items in sorted(groups.items(), key=lambda kv: kv[0])]
    notes = sorted(credits, key=lambda c: c.credit_id)
    lines += [InvoiceLine("credit", c.dataset, c.product_id, c.refers_to_period, False, "credit-note",
                          c.policy_version, c.merchant_org, c.currency, 1, None, -c.amount_minor,
                          f"{c.credit_id}: {c.reason}", _code(codes, c.dataset, c.product_id)) for c in notes]
    return tuple(lines)


def _code(codes: Mapping[str, str] | None, dataset: str, product_id: str | None) -> str | None:
    return (codes or {}).get(f"product:{product_id}" if product_id else f"dataset:{dataset}")


def line_from_dict(item: Mapping[str, Any]) -> InvoiceLine:
    """A line back from a stored invoice document, for revenue statements of closed periods."""
    return InvoiceLine(item["kind"], item["dataset"], item["product_id"], item["usage_period"], item["cached"],
                       item["price_version"], item["policy_version"], item["merchant"], item["currency"],
                       item["quantity"], item["unit_price_minor"], item["amount_minor"], item["reference"],
                       item.get("registration_code"))


def build_invoice(org_id: str, period: str, status: Literal["open", "closed"], currency: str,
                  usage: Iterable[UsageItem], credits: Iterable[CreditItem] = (),
                  codes: Mapping[str, str] | None = None) -> Invoice:
    return Invoice(org_id, period, status, currency, invoice_lines(usage, credits, codes))


def invoice_json(invoice: Invoice) -> bytes:
    """Canonical JSON: sorted keys, no spaces; the same invoice gives the same bytes."""
    return canonical_bytes(invoice.as_dict())


def invoice_csv(invoice: Mapping[str, Any]) -> bytes:
    """An invoice document (as from `invoice_json`) as RFC 4180 CSV, with a closing total row per currency."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in invoice["lines"]:
        writer.writerow([_csv_cell(line.get(col)) for col in CSV_COLUMNS])
    # One closing row per currency: a product priced in another currency keeps its own total.
    totals = invoice.get("totals") or {invoice["currency"]: invoice["total_minor"]}
    for currency, amount in sorted(totals.items(), key=lambda kv: (kv[0] != invoice["currency"], kv[0])):
        writer.writerow([_csv_cell(v) for v in ("total", "", "", "", "", "", "", "", "", amount, currency, "", "")])
    return out.getvalue().encode()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- revenue shares


def split_amount(amount_minor: int, weights: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """`amount_minor` among parties by weight, largest remainder first; sums to the amount exactly.

    Ties on the remainder go to the larger weight, then to the party name in alphabetical
    order, so the split never depends on the order the weights came in. A negative amount (a
    credit) is split as its absolute value and negated.
    """
    total_weight = sum(w for _p, w in weights)
    if total_weight <= 0 or any(w < 0 for _p, w in weights):
        raise ValueError("revenue weights must be non-negative with a positive sum")
    sign, amount = (-1, -amount_minor) if amount_minor < 0 else (1, amount_minor)
    floors = {party: amount * w // total_weight for party, w in weights}
    remainders = {party: amount * w % total_weight for party, w in weights}
    weight_of = dict(weights)
    left = amount - sum(floors.values())
    order = sorted(floors, key=lambda p: (-remainders[p], -weight_of[p], p))
    for party in order[:left]:
        floors[party] += 1
    return tuple((party, sign * floors[party]) for party in sorted(floors))


def resolve_parties(shares: Sequence[tuple[str, int]], merchant_org: str | None,
                    bureau: str = BUREAU) -> tuple[tuple[str, int], ...]:
    """Policy shares with `merchant` and `bureau` named as organisations, merged by party."""
    merged: dict[str, int] = {}
    for party, points in shares:
        name = (merchant_org or bureau) if party == MERCHANT else bureau if party == BUREAU else party
        merged[name] = merged.get(name, 0) + points
    return tuple(sorted((p, w) for p, w in merged.items() if w > 0))


def line_split(line: InvoiceLine, rules: Mapping[str, Sequence[tuple[str, int]]],
               bureau: str = BUREAU) -> tuple[tuple[str, int], ...]:
    """A line's amount by party, per the revenue shares of the policy version it ran under.

    A line whose policy version is unknown goes to the bureau whole, so nothing is lost.
    """
    shares = rules.get(line.policy_version) or ((BUREAU, 1),)
    return split_amount(line.amount_minor, resolve_parties(shares, line.merchant_org, bureau))


@dataclass(frozen=True)
class StatementLine:
    party: str
    dataset: str
    product_id: str | None
    currency: str
    calls: int
    amount_minor: int

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "product_id": self.product_id, "currency": self.currency,
                "calls": self.calls, "amount_minor": self.amount_minor}


def revenue_statements(lines: Iterable[InvoiceLine], rules: Mapping[str, Sequence[tuple[str, int]]],
                       bureau: str = BUREAU) -> dict[str, tuple[StatementLine, ...]]:
    """party -> its share of every line, summed per dataset, product and currency."""
    acc: dict[tuple[str, str, str, str], list[int]] = {}
    for line in lines:
        calls = line.quantity if line.kind == "usage" else 0
        for party, amount in line_split(line, rules, bureau):
            key = (party, line.dataset, line.product_id or "", line.currency)
            slot = acc.setdefault(key, [0, 0])
            slot[0] += calls
            slot[1] += amount
    out: dict[str, list[StatementLine]] = {}
    for (party, dataset, product, currency), (calls, amount) in sorted(acc.items()):
        out.setdefault(party, []).append(StatementLine(party, dataset, product or None, currency, calls, amount))
    return {party: tuple(items) for party, items in out.items()}


def statement_document(party: str, period: str, status: str, currency: str,
                       items: Sequence[StatementLine]) -> dict[str, Any]:
    """One party's statement; `total_minor` is in `currency`, other currencies under `totals`."""
    totals: dict[str, int] = {}
    for item in items:
        totals[item.currency] = totals.get(item.currency, 0) + item.amount_minor
    body: dict[str, Any] = {"party": party, "period": period, "status": status, "currency": currency,
                            "lines": [i.as_dict() for i in items], "total_minor": totals.get(currency, 0)}
    if set(totals) - {currency}:
        body["totals"] = dict(sorted(totals.items()))
    return body
