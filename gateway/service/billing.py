"""Invoices, revenue statements and credit notes, over HTTP and for `gateway invoice`.

The period now running is open: its invoice is computed from the usage no invoice holds yet.
Any earlier period is closed on first use (all requesters at once, in one transaction) and
served from the stored bytes from then on, so a closed invoice never changes (R-BI-04).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.auth.tokens import Principal
from gateway.clock import utc_now, utc_now_text
from gateway.core.billing import (
    Invoice,
    InvoiceLine,
    build_invoice,
    line_from_dict,
    revenue_statements,
    statement_document,
)
from gateway.core.budget import period_of
from gateway.core.canonical import canonical_bytes
from gateway.core.pages import Page, PageRequest
from gateway.core.registration import codes_of
from gateway.core.settlement import add_special_fund, settle, special_fund
from gateway.errors import InvalidRequest, NotFound
from gateway.runtime.cache import Cache
from gateway.runtime.parts import Runtime
from gateway.settings import Settings
from gateway.store import invoices as store_invoices
from gateway.store import registrations as store_registrations
from gateway.store import settlement as store_settlement
from gateway.store.db import Store, Tx

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
SYSTEM = "system:billing"
BUREAU_ONLY = ("statements", "invoices_total_minor", "vouchers_applied_minor")  # the county's totals
T = TypeVar("T")


def check_period(period: str) -> str:
    if not PERIOD.match(period):
        raise InvalidRequest("a period is written YYYY-MM")
    return period


def current_period(settings: Settings) -> str:
    return period_of(utc_now(), settings.zone)


def _previous(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def _needs_closing(tx: Tx, last_ended: str) -> bool:
    done = store_invoices.closed_periods(tx)
    return not done or done[-1] < last_ended


class Billing:
    """The billing use cases over a store, for the server (async) and the CLI (sync) alike."""

    def __init__(self, settings: Settings, read: Callable[..., Any], write: Callable[..., Any]) -> None:
        self.settings, self._read, self._write = settings, read, write

    def close_ended(self, actor: str = SYSTEM) -> Any:
        """Close every period that has ended; a no-op read once they are."""
        return self._write(store_invoices.close_through, _previous(current_period(self.settings)),
                           self.settings.zone, self.settings.currency, actor)

    def open_invoices(self, tx: Tx, period: str, org_id: str | None) -> dict[str, Invoice]:
        usage, credits = store_invoices.open_items(tx, org_id)
        orgs = sorted({u.org_id for u in usage} | {c.org_id for c in credits} | ({org_id} if org_id else set()))
        codes = codes_of(store_registrations.current(tx))
        return {org: build_invoice(org, period, "open", self.settings.currency,
                                   [u for u in usage if u.org_id == org], [c for c in credits if c.org_id == org],
                                   codes)
                for org in orgs}

    def open_documents(self, tx: Tx, period: str, org_id: str | None) -> dict[str, dict[str, Any]]:
        """The open invoices settled as they stand: carried excess and vouchers (not yet redeemed)."""
        found = self.open_invoices(tx, period, org_id)
        for org in store_settlement.carries_to(tx, period, org_id):
            found.setdefault(org, build_invoice(org, period, "open", self.settings.currency, []))
        return {org: store_settlement.settled_open(tx, inv.as_dict()) for org, inv in sorted(found.items())}

    def invoice_tx(self, tx: Tx, org_id: str, period: str) -> bytes:
        """The invoice bytes of an organisation for a period (closed periods from the store)."""
        if period == current_period(self.settings):
            return canonical_bytes(self.open_documents(tx, period, org_id)[org_id])
        stored = store_invoices.stored_invoice(tx, org_id, period)
        if stored is not None:
            return stored
        empty = build_invoice(org_id, period, "closed", self.settings.currency, []).as_dict()
        return canonical_bytes(settle(empty, (), (), {})[0])

    def statements_tx(self, tx: Tx, period: str) -> dict[str, Any]:
        """Every party's statement for a period, from the same lines as the invoices."""
        status = "open" if period == current_period(self.settings) else "closed"
        if status == "open":
            invoices = list(self.open_documents(tx, period, None).values())
        else:
            invoices = [json.loads(b) for b in store_invoices.stored_invoices(tx, period).values()]
        lines: list[InvoiceLine] = [line_from_dict(item) for inv in invoices for item in inv["lines"]]
        rules = store_invoices.revenue_rules(tx, [ln.policy_version for ln in lines])
        by_party = revenue_statements(lines, rules)
        currency = self.settings.currency
        statements = {party: statement_document(party, period, status, currency, items)
                      for party, items in by_party.items()}
        add_special_fund(statements, special_fund(invoices, rules))  # what the vouchers paid of each share
        return {"period": period, "status": status, "currency": currency,
                "invoices_total_minor": sum(inv["total_minor"] for inv in invoices),
                "vouchers_applied_minor": sum(inv.get("vouchers_applied_minor", 0) for inv in invoices),
                "statements": statements}


def _billing(runtime: Runtime) -> Billing:
    return Billing(runtime.settings, runtime.store.read, runtime.store.write)


async def _ready(runtime: Runtime, period: str) -> None:
    """Refuse future periods; close ended ones first, so no draft holds an ended period's usage."""
    now = current_period(runtime.settings)
    if check_period(period) > now:
        raise NotFound("there is no invoice for a period that has not begun")
    if await runtime.store.read(_needs_closing, _previous(now)):
        await _billing(runtime).close_ended()


async def invoice(runtime: Runtime, org_id: str, period: str) -> bytes:
    await _ready(runtime, period)
    billing = _billing(runtime)
    return await runtime.store.read(billing.invoice_tx, org_id, period)


class OpenStatements:
    """The open month's statements, built from every organisation's open usage at most once per
    `revenue_refresh_seconds` on this replica, by one request while the others wait for it: a
    department asking again and again no longer rebuilds them on the store's reader threads."""

    def __init__(self, runtime: Runtime) -> None:
        self.built: Cache[str, dict[str, Any]] = Cache(2, ttl=runtime.settings.revenue_refresh_seconds)
        self.building = asyncio.Lock()


def _invoice_summary(found: tuple[str, bytes]) -> dict[str, Any]:
    period, body = found
    doc = json.loads(body)
    return {"period": period, "invoice_id": doc.get("invoice_id"), "status": doc.get("status", "closed"),
            "currency": doc.get("currency"), "total_minor": doc.get("total_minor"), "lines": len(doc.get("lines", []))}


async def invoices_page(runtime: Runtime, org_id: str, page: PageRequest) -> Page[dict[str, Any]]:
    """An organisation's invoices of closed months, newest first (the open month's is always at its
    period's address)."""
    await _ready(runtime, current_period(runtime.settings))
    found = await runtime.store.read(store_invoices.stored_invoices_page, org_id, page)
    return found.map(_invoice_summary)


async def _statements_of(runtime: Runtime, period: str) -> dict[str, Any]:
    billing = _billing(runtime)
    if period != current_period(runtime.settings):
        found: dict[str, Any] = await runtime.store.read(billing.statements_tx, period)
        return found
    state = runtime.owned(OpenStatements)
    async with state.building:
        doc = state.built.get(period)
        if doc is None:
            doc = await runtime.store.read(billing.statements_tx, period)
            doc["as_of"] = utc_now_text()
            state.built.put(period, doc)
    return doc


async def statements(runtime: Runtime, who: Principal, period: str) -> dict[str, Any]:
    """The bureau sees every party; a source department or merchant its own statement only.
    The open month's are as of `as_of` (at most `revenue_refresh_seconds` old)."""
    await _ready(runtime, period)
    doc = dict(await _statements_of(runtime, period))  # the cached document is shared: copied
    parties: dict[str, Any] = doc["statements"]
    if not who.has("bureau"):
        mine = parties.get(who.org_id) or statement_document(who.org_id, period, doc["status"], doc["currency"], ())
        mine.setdefault("special_fund_minor", 0)
        doc = {k: v for k, v in doc.items() if k not in BUREAU_ONLY}
        parties = {who.org_id: mine}
    doc["statements"] = [parties[p] for p in sorted(parties)]
    return doc


# ---------------------------------------------------------------- the CLI's entry


def billing_for_cli(store: Store, settings: Settings) -> Billing:
    """Billing over the store's synchronous calls (a command, no event loop), with every ended
    period closed first, as the server's own sweep would have."""

    def write(fn: Callable[..., T], *args: Any) -> T:
        return store.run_sync(fn, *args)

    def read(fn: Callable[..., T], *args: Any) -> T:
        return store.run_sync(fn, *args, write=False)

    billing = Billing(settings, read, write)
    billing.close_ended("cli")
    return billing


def invoices_for_cli(store: Store, settings: Settings, period: str, org_id: str | None) -> dict[str, bytes]:
    """org -> invoice bytes for a period, closing ended periods first (the bureau's view)."""
    now = current_period(settings)
    if check_period(period) > now:
        raise NotFound("there is no invoice for a period that has not begun")
    billing = billing_for_cli(store, settings)

    def collect(tx: Tx) -> dict[str, bytes]:
        if org_id is not None:
            return {org_id: billing.invoice_tx(tx, org_id, period)}
        if period == now:
            return {org: canonical_bytes(doc) for org, doc in billing.open_documents(tx, period, None).items()}
        return store_invoices.stored_invoices(tx, period)

    return store.run_sync(collect, write=False)
