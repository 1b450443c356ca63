"""Authorisation agreements: the bureau records and ends them; grants and products stand on them.

Who sees what (R-AU-07): the bureau every agreement; a source department those with one of its
datasets in scope; anyone else nothing (the route table admits neither requesters nor merchants).
An agreement another party may not see answers 404 like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.auth.tokens import Principal
from gateway.clock import utc_now, utc_now_text
from gateway.core.agreements import Agreement, parse_terms, stands_on, term_problem
from gateway.core.pages import Page, PageRequest, collect
from gateway.errors import Conflict, InvalidRequest
from gateway.runtime.parts import Runtime
from gateway.service.admission import AdmissionState
from gateway.service.visibility import visible
from gateway.store import agreements as store_agreements
from gateway.store.db import Tx


def _owned(runtime: Runtime, who: Principal) -> tuple[str, ...] | None:
    """The datasets whose agreements the caller may see; None: all of them (the bureau)."""
    if who.has("bureau"):
        return None
    return tuple(sorted(d for d, p in runtime.registry.policies.items() if p.owner == who.org_id))


def _may_see(runtime: Runtime, who: Principal, agreement: Agreement) -> bool:
    owned = _owned(runtime, who)
    return owned is None or bool(set(owned) & set(agreement.datasets))


def _today(runtime: Runtime) -> datetime:
    return utc_now().astimezone(runtime.settings.zone)


async def create(runtime: Runtime, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """Record an agreement; every field checked before anything is written."""
    terms = parse_terms(body, runtime.registry.policies, _today(runtime).date())
    made = await runtime.store.write(store_agreements.create, terms, runtime.settings.zone, who.client_id)
    return made.as_dict(utc_now_text())


async def agreements_page(runtime: Runtime, who: Principal, page: PageRequest) -> Page[dict[str, Any]]:
    """The agreements the caller may see, oldest first."""
    found = await runtime.store.read(store_agreements.page, _owned(runtime, who), page)
    now = utc_now_text()
    return found.map(lambda a: a.as_dict(now))


async def list_agreements(runtime: Runtime, who: Principal) -> list[dict[str, Any]]:
    """Every agreement the caller may see (the console's whole list), oldest first."""
    owned, now = _owned(runtime, who), utc_now_text()

    def read(tx: Tx) -> list[Agreement]:
        return collect(lambda page: store_agreements.page(tx, owned, page))
    return [a.as_dict(now) for a in await runtime.store.read(read)]


async def visible_agreement(runtime: Runtime, who: Principal, agreement_id: str) -> Agreement:
    found = await runtime.store.read(store_agreements.get, agreement_id)
    return visible(found, lambda a: _may_see(runtime, who, a), "agreement")


async def get(runtime: Runtime, who: Principal, agreement_id: str) -> dict[str, Any]:
    return (await visible_agreement(runtime, who, agreement_id)).as_dict(utc_now_text())


async def end(runtime: Runtime, who: Principal, agreement_id: str, reason: Any) -> dict[str, Any]:
    """The bureau ends an agreement: its grants end, its pending applications close and its
    products stop, from the next request (this replica at once, the others within a poll)."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise InvalidRequest("reason must be text of 1 to 2000 characters", extra={"field": "reason"})
    await visible_agreement(runtime, who, agreement_id)
    outcome = await runtime.store.write(store_agreements.end, agreement_id, who.client_id, reason.strip())
    forget_grants(runtime)
    return {**await get(runtime, who, agreement_id), **outcome}


def forget_grants(runtime: Runtime) -> None:
    """Admission re-reads grants at once on this replica (other replicas within one poll)."""
    runtime.owned(AdmissionState).grants.clear()


async def end_lapsed(runtime: Runtime) -> list[str]:
    """End the agreements whose term has passed (and what stands on them); the scheduled sweep."""
    ended = await runtime.store.write(store_agreements.end_lapsed)
    if ended:
        forget_grants(runtime)
    return ended


async def standing(runtime: Runtime, named: Any, dataset: str, product_id: str | None,
                   valid_until: str | None) -> Agreement:
    """The agreement a new grant (or product version) would stand on: the one named, or else the
    one in force covering it; refused (409) outside its scope or term, or when there is none."""
    if named is not None and not isinstance(named, str):
        raise InvalidRequest("agreement_id must be a string", extra={"field": "agreement_id"})
    if named is not None:
        found = await runtime.store.read(store_agreements.get, named)
        candidates = [found] if found is not None else []
    else:
        candidates = await runtime.store.read(store_agreements.covering, dataset)
    agreement = stands_on(candidates, dataset, product_id, utc_now_text(), named)
    problem = term_problem(agreement, valid_until)
    if problem is not None:
        raise Conflict(problem, extra={"field": "valid_until"})
    return agreement


async def maybe_standing(runtime: Runtime, dataset: str, product_id: str | None,
                         valid_until: str | None) -> Agreement | None:
    """`standing` for an automatic approval: None where the bureau would be told no."""
    try:
        return await standing(runtime, None, dataset, product_id, valid_until)
    except Conflict:
        return None
