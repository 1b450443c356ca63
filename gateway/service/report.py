"""The yearly disclosure: the facts of a year gathered in one read transaction, then the pure
report (core/annual.py) and its renderings. Served to the bureau over HTTP and printed by
`gateway report annual`; both close the ended periods first and give the same bytes."""

from __future__ import annotations

from typing import Any

from gateway.clock import utc_text
from gateway.core.annual import UsageFact, YearFacts, annual_report
from gateway.core.annual_render import RENDERERS
from gateway.core.budget import period_bounds
from gateway.core.pricing import plan_of_policy, plan_of_product
from gateway.errors import InvalidRequest, NotFound
from gateway.runtime.parts import Runtime
from gateway.service.billing import Billing, billing_for_cli, current_period
from gateway.service.revenue import check_year, position_tx, ready, year_documents
from gateway.settings import Settings
from gateway.store import disclosure
from gateway.store import invoices as store_invoices
from gateway.store import pricing as store_pricing
from gateway.store import vouchers as store_vouchers
from gateway.store.db import Store, Tx

PRICE_EVENTS = ("policy.seeded", "policy.published", "product.published")
DATASET_EVENTS = ("dataset.suspended", "dataset.resumed", "dataset.withdrawn")


def _usage(tx: Tx, docs: list[tuple[str, str, dict[str, dict[str, Any]]]]) -> list[UsageFact]:
    closed = [p for p, status, _d in docs if status == "closed"]
    facts = [UsageFact(*row) for row in disclosure.invoiced_usage(tx, closed)]
    open_period = [p for p, status, _d in docs if status == "open"]
    if open_period:
        items, _credits = store_invoices.open_items(tx, None)
        classes = disclosure.purpose_classes(tx, [u.usage_id for u in items])
        facts += [UsageFact(open_period[0], u.org_id, u.dataset, u.product_id, classes.get(u.usage_id, "industry"),
                            u.price_minor, u.currency) for u in sorted(items, key=lambda u: u.usage_id)]
    return facts


def _prices(tx: Tx, until: str) -> tuple[list[tuple[str, str, dict[str, Any]]], dict[str, str]]:
    """(at, subject, price) of every price publication before `until`, and each subject's title."""
    found = disclosure.events(tx, PRICE_EVENTS, until)
    versions = {p["version"] for _a, k, _s, p in found if k != "product.published"}
    policies = disclosure.policy_documents(tx, sorted(versions))
    published = {(s.rsplit("@", 1)[0], int(s.rsplit("@", 1)[1])) for _a, k, s, _p in found if k == "product.published"}
    products = disclosure.product_definitions(tx, sorted(published))
    prices, titles = [], {}
    for at, kind, subject, payload in found:
        if kind == "product.published":
            product_id, version = subject.rsplit("@", 1)
            definition = products.get((product_id, int(version)))
            if definition is not None:
                prices.append((at, f"product:{product_id}", plan_of_product(definition).as_dict()))
                titles[f"product:{product_id}"] = definition["title"]
        elif payload["version"] in policies:
            document = policies[payload["version"]]
            prices.append((at, f"dataset:{subject}", plan_of_policy(document["pricing"]).as_dict()))
            titles[f"dataset:{subject}"] = document["title"]
    return prices, titles


def report_tx(tx: Tx, settings: Settings, billing: Billing, year: str) -> dict[str, Any]:
    now = current_period(settings)
    docs = year_documents(tx, billing, year, now)
    start = utc_text(period_bounds(f"{year}-01", settings.zone)[0])
    end = utc_text(period_bounds(f"{year}-12", settings.zone)[1])
    versions = sorted({line["policy_version"] for _p, _s, by_org in docs for d in by_org.values()
                       for line in d["lines"]})
    prices, titles = _prices(tx, end)
    events = [(at, kind, subject) for at, kind, subject, _p in disclosure.events(tx, DATASET_EVENTS, end)
              if at >= start]
    facts = YearFacts(
        year=year, currency=settings.currency, documents=docs, usage=_usage(tx, docs),
        rules=store_invoices.revenue_rules(tx, versions), titles=titles, prices=prices,
        caps=store_pricing.cap_history(tx, until=end), year_start=start,
        vouchers_issued=store_vouchers.issued_between(tx, start, end),
        allowed=position_tx(tx, settings, billing, year),
        spent=disclosure.spent_by_query(tx, f"{year}-01", f"{year}-12"),
        pools=disclosure.pool_accounts(tx, f"{year}-01", f"{year}-12"), events=events)
    return annual_report(facts)


def render(report: dict[str, Any], fmt: str) -> tuple[str, bytes]:
    if fmt not in RENDERERS:
        raise InvalidRequest(f"format must be one of {', '.join(RENDERERS)}")
    content_type, renderer = RENDERERS[fmt]
    return content_type, renderer(report)


async def annual(runtime: Runtime, year: str, fmt: str) -> tuple[str, bytes]:
    """(content type, bytes) of the year's disclosure; 404 for a year that has not begun."""
    if check_year(year) > current_period(runtime.settings)[:4]:
        raise NotFound("there is no report for a year that has not begun")
    billing = await ready(runtime, year)
    report = await runtime.store.read(report_tx, runtime.settings, billing, year)
    return render(report, fmt)


def annual_for_cli(store: Store, settings: Settings, year: str, fmt: str) -> bytes:
    """The same bytes for `gateway report annual`, closing ended periods first."""
    if check_year(year) > current_period(settings)[:4]:
        raise NotFound("there is no report for a year that has not begun")
    billing = billing_for_cli(store, settings)
    return render(store.run_sync(report_tx, settings, billing, year, write=False), fmt)[1]
