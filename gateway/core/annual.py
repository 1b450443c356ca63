"""The yearly disclosure (年度运营报告) as a pure function of what the store holds about a year.

Money comes from the year's invoices only (the stored bytes of closed periods, the open invoice
of the period now running), so every money figure reconciles with them exactly: products' and
classes' revenue sum to the invoices' usage lines, the parties' shares to the invoices' totals,
vouchers redeemed to the vouchers applied. Privacy loss comes from the ledger: each charge that
stayed spent, by dataset and by the pool accounts it was charged to, against their caps.
Nothing here reads a clock: the same facts give the same report, byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.core.billing import line_from_dict, revenue_statements
from gateway.core.budget import from_nano
from gateway.core.pricing import PUBLIC_CLASSES, PURPOSE_CLASSES
from gateway.core.settlement import CARRY, figures, special_fund

DATASET_EVENTS = {"dataset.suspended": "suspended", "dataset.resumed": "resumed", "dataset.withdrawn": "withdrawn"}


@dataclass(frozen=True)
class UsageFact:
    period: str  # of the invoice that holds it
    org_id: str
    dataset: str
    product_id: str | None
    purpose_class: str
    price_minor: int
    currency: str


@dataclass(frozen=True)
class YearFacts:
    year: str
    currency: str
    documents: Sequence[tuple[str, str, Mapping[str, Mapping[str, Any]]]]  # (period, status, org -> invoice)
    usage: Sequence[UsageFact]
    rules: Mapping[str, Sequence[tuple[str, int]]]  # policy version -> revenue shares
    titles: Mapping[str, str]  # subject -> title
    prices: Sequence[tuple[str, str, Mapping[str, Any]]]  # (at, subject, price plan as a dict), in order
    caps: Sequence[Mapping[str, Any]]  # cap acts, in order
    year_start: str  # UTC text
    vouchers_issued: Sequence[Mapping[str, Any]]
    allowed: Mapping[str, Any]
    spent: Sequence[tuple[str, str, int, Sequence[str]]]  # (dataset, period, epsilon_nano, pool accounts)
    pools: Sequence[tuple[str, str, int, int]]  # (pool account, period, cap_nano, spent_nano)
    events: Sequence[tuple[str, str, str]] = field(default_factory=tuple)  # (at, kind, dataset)


def _subject(dataset: str, product_id: str | None) -> tuple[str, str]:
    return ("product", product_id) if product_id else ("dataset", dataset)


def _key(subject: tuple[str, str]) -> dict[str, str]:
    return {("product_id" if subject[0] == "product" else "dataset"): subject[1]}


def _history(events: Sequence[tuple[str, Mapping[str, Any]]], start: str) -> list[dict[str, Any]]:
    """The entry in force when the year began, then every change within it."""
    before = [e for e in events if e[0] < start]
    kept = before[-1:] + [e for e in events if e[0] >= start]
    return [{"since": at, **values} for at, values in kept]


def _products(facts: YearFacts, lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    sums: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        slot = sums.setdefault(_subject(line["dataset"], line["product_id"]), [0, 0])
        slot[0] += line["quantity"]
        slot[1] += line["amount_minor"]
    by_class: dict[tuple[str, str], dict[str, int]] = {}
    for u in facts.usage:
        counts = by_class.setdefault(_subject(u.dataset, u.product_id), {})
        counts[u.purpose_class] = counts.get(u.purpose_class, 0) + 1
    prices: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
    for at, named, plan in facts.prices:
        kind, _, ident = named.partition(":")
        prices.setdefault((kind, ident), []).append((at, plan))
    caps: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
    for cap in facts.caps:
        capped = ("product", cap["product_id"]) if "product_id" in cap else ("dataset", cap["dataset"])
        caps.setdefault(capped, []).append((cap["set_at"], {k: cap[k] for k in (
            "model", "cap_minor", "currency", "registration_code", "scenario")}))
    out = []
    for subject in sorted(set(sums) | set(prices) | set(caps)):
        calls, billed = sums.get(subject, [0, 0])
        history = _history(prices.get(subject, []), facts.year_start)
        out.append({**_key(subject), "title": facts.titles.get(f"{subject[0]}:{subject[1]}", ""),
                    "model": history[-1]["model"] if history else None, "calls": calls, "billed_minor": billed,
                    "calls_by_class": {c: by_class.get(subject, {}).get(c, 0) for c in PURPOSE_CLASSES},
                    "prices": history, "caps": _history(caps.get(subject, []), facts.year_start)})
    return out


def _classes(facts: YearFacts) -> list[dict[str, Any]]:
    out = []
    for cls in PURPOSE_CLASSES:
        mine = [u for u in facts.usage if u.purpose_class == cls]
        out.append({"purpose_class": cls, "calls": len(mine),
                    "billed_minor": sum(u.price_minor for u in mine if u.currency == facts.currency),
                    "requesters": len({u.org_id for u in mine})})
    return out


def _free_public_use(facts: YearFacts) -> dict[str, Any]:
    public = [u for u in facts.usage if u.purpose_class in PUBLIC_CLASSES]
    counts: dict[tuple[str, str, str], int] = {}
    for u in public:
        key = (*_subject(u.dataset, u.product_id), u.purpose_class)
        counts[key] = counts.get(key, 0) + 1
    items = [{**_key((kind, ident)), "purpose_class": cls, "calls": n}
             for (kind, ident, cls), n in sorted(counts.items())]
    return {"calls": len(public), "requesters": len({u.org_id for u in public}), "items": items}


def _shares(docs: Sequence[Mapping[str, Any]], facts: YearFacts) -> list[dict[str, Any]]:
    lines = [line_from_dict(item) for doc in docs for item in doc["lines"] if item["currency"] == facts.currency]
    amounts: dict[str, int] = {}
    for party, items in revenue_statements(lines, facts.rules).items():
        amounts[party] = sum(i.amount_minor for i in items)
    fund = {party: sum(v.values()) for party, v in special_fund(docs, facts.rules).items()}
    return [{"party": p, "amount_minor": amounts.get(p, 0), "special_fund_minor": fund.get(p, 0)}
            for p in sorted(set(amounts) | set(fund))]


def _vouchers(docs: Sequence[Mapping[str, Any]], facts: YearFacts) -> dict[str, Any]:
    redeemed: dict[str, int] = {}
    for doc in docs:
        for v in doc.get("vouchers", []):
            redeemed[v["voucher_id"]] = redeemed.get(v["voucher_id"], 0) + v["amount_minor"]
    issued = [{k: v[k] for k in ("voucher_id", "org_id", "amount_minor", "valid_from", "valid_until", "scope",
                                 "fund")} for v in sorted(facts.vouchers_issued, key=lambda v: v["voucher_id"])]
    return {"issued": issued, "issued_count": len(issued), "issued_minor": sum(v["amount_minor"] for v in issued),
            "redeemed_minor": sum(redeemed.values()),
            "redeemed": [{"voucher_id": k, "amount_minor": redeemed[k]} for k in sorted(redeemed)]}


def _privacy(facts: YearFacts) -> dict[str, Any]:
    datasets: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    for dataset, period, eps, _pools in facts.spent:
        per = datasets.setdefault(dataset, {})
        per[period] = per.get(period, 0) + eps
        counts[dataset] = counts.get(dataset, 0) + 1
    pools: dict[str, list[tuple[str, int, int]]] = {}
    for account, period, cap, spent in facts.pools:
        pools.setdefault(account.removeprefix("pool:"), []).append((period, cap, spent))
    return {
        "datasets": [{"dataset": d, "charges": counts[d], "epsilon_spent": str(from_nano(sum(per.values()))),
                      "periods": [{"period": p, "epsilon_spent": str(from_nano(n))} for p, n in sorted(per.items())]}
                     for d, per in sorted(datasets.items())],
        "pools": [{"pool": pool, "epsilon_spent": str(from_nano(sum(s for _p, _c, s in rows))),
                   "periods": [{"period": p, "epsilon_cap": str(from_nano(c)), "epsilon_spent": str(from_nano(s))}
                               for p, c, s in rows]} for pool, rows in sorted(pools.items())],
    }


def annual_report(facts: YearFacts) -> dict[str, Any]:
    docs = [doc for _p, _s, by_org in facts.documents for _o, doc in sorted(by_org.items())]
    lines = [line for doc in docs for line in doc["lines"]
             if line["kind"] == "usage" and line["currency"] == facts.currency]
    totals = [figures(doc) for doc in docs]
    invoices = {"count": len(docs), "usage_minor": sum(line["amount_minor"] for line in lines),
                "credits_minor": sum(line["amount_minor"] for doc in docs for line in doc["lines"]
                                     if line["kind"] not in ("usage", CARRY) and line["currency"] == facts.currency),
                "carried_in_minor": sum(t.carried_in_minor for t in totals),
                "total_minor": sum(doc["total_minor"] for doc in docs),
                "vouchers_applied_minor": sum(t.vouchers_minor for t in totals),
                "amount_due_minor": sum(doc.get("amount_due_minor", doc["total_minor"]) for doc in docs)}
    statuses = [status for _p, status, _d in facts.documents]
    return {
        "year": facts.year, "currency": facts.currency,
        "status": "final" if len(statuses) == 12 and set(statuses) == {"closed"} else "provisional",
        "periods": [{"period": p, "status": s, "invoices": len(d)} for p, s, d in facts.documents],
        "invoices": invoices, "products": _products(facts, lines), "requester_classes": _classes(facts),
        "free_public_use": _free_public_use(facts), "revenue_shares": _shares(docs, facts),
        "vouchers": _vouchers(docs, facts), "allowed_revenue": dict(facts.allowed), "privacy": _privacy(facts),
        "dataset_events": [{"at": at, "dataset": ds, "event": DATASET_EVENTS.get(kind, kind)}
                           for at, kind, ds in facts.events],
    }
