"""The allowed revenue of a year (最高准许收入): set by the bureau, measured on the invoices.

A year's figures come from its periods' invoices: the stored ones of closed periods and, for
the period now running, the open invoices as they stand (so the position is live). Ended
periods are closed first, as for invoices, so no figure rests on a draft of an ended month.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.billing import periods_between
from gateway.core.settlement import figures, position
from gateway.errors import InvalidRequest
from gateway.runtime.parts import Runtime
from gateway.service.billing import Billing, current_period
from gateway.settings import Settings
from gateway.store import pricing as store_pricing
from gateway.store import settlement as store_settlement
from gateway.store.db import Tx

YEAR = re.compile(r"^\d{4}$")

YearDocs = list[tuple[str, str, dict[str, dict[str, Any]]]]  # (period, status, org -> invoice document)


def check_year(year: str) -> str:
    if not YEAR.match(year) or not 2000 <= int(year) <= 2999:
        raise InvalidRequest("a year is written YYYY")
    return year


def year_periods(year: str, now: str) -> list[str]:
    """The periods of a year that have begun (none for a year to come)."""
    return periods_between(f"{year}-01", min(f"{year}-12", now))


def year_documents(tx: Tx, billing: Billing, year: str, now: str) -> YearDocs:
    """Every invoice of the year's periods that have begun; ended ones must be closed already."""
    periods = year_periods(year, now)
    stored = store_settlement.stored_documents(tx, [p for p in periods if p != now])
    out: YearDocs = [(p, "closed", stored.get(p, {})) for p in periods if p != now]
    if now in periods:
        out.append((now, "open", billing.open_documents(tx, now, None)))
    return out


def position_tx(tx: Tx, settings: Settings, billing: Billing, year: str) -> dict[str, Any]:
    now = current_period(settings)
    docs = year_documents(tx, billing, year, now)
    carried_out = store_settlement.carried_from(tx, [p for p, _s, _d in docs])
    rows = []
    for period, status, by_org in docs:
        f = [figures(d) for d in by_org.values()]
        rows.append({"period": period, "status": status, "invoices": len(f),
                     "billed_minor": sum(x.billed_minor for x in f), "vouchers_minor": sum(x.vouchers_minor for x in f),
                     "net_minor": sum(x.net_minor for x in f),
                     "carried_in_minor": -sum(x.carried_in_minor for x in f),
                     "carried_out_minor": carried_out.get(period, 0)})
    carried = sum(store_settlement.carried(tx, year).values())
    return position(year, store_pricing.allowed(tx, year), settings.currency, rows, carried)


def _billing(runtime: Runtime) -> Billing:
    return Billing(runtime.settings, runtime.store.read, runtime.store.write)


async def ready(runtime: Runtime, year: str) -> Billing:
    """The year checked and every ended period closed."""
    check_year(year)
    billing = _billing(runtime)
    await billing.close_ended()
    return billing


async def allowed_position(runtime: Runtime, year: str) -> dict[str, Any]:
    billing = await ready(runtime, year)
    found: dict[str, Any] = await runtime.store.read(position_tx, runtime.settings, billing, year)
    return found


async def set_allowed(runtime: Runtime, who: Principal, year: str, body: dict[str, Any]) -> dict[str, Any]:
    """The bureau's allowance for a year (audited); an excess already carried stays carried."""
    check_year(year)
    amount, reason = body.get("allowed_minor"), body.get("reason")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 10**15:
        raise InvalidRequest("allowed_minor must be a whole number of minor units, 0 or more")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidRequest("reason must be text of 1 to 500 characters")
    await runtime.store.write(store_pricing.set_allowed, year, amount, runtime.settings.currency, reason.strip(),
                              who.client_id)
    return await allowed_position(runtime, year)
