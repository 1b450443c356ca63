"""Authorisation agreements: recorded by the bureau, ended by it or by their term; each change audited.

An agreement's end ends what stands on it by the one rule a dataset withdrawal uses
(`grants.end_access`): its grants end, its pending applications close; the products it
covers stop selling (their sale state reads the agreement, store/product_status.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import utc_now_text, utc_text
from gateway.core.agreements import Agreement, Terms, day_start, term_problem
from gateway.core.pages import Page, PageRequest
from gateway.errors import Conflict
from gateway.store import audit
from gateway.store.db import Tx
from gateway.store.grants import end_access
from gateway.store.pages import read_page

_COLUMNS = ("agreement_id, authorising_body, operator, starts_on, ends_on, starts_at, ends_at, duties, exit_terms, "
            "document_sha256, status, created_by, created_at, ended_by, ended_at, end_reason")


def _scope_of(tx: Tx, ids: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """agreement id -> (datasets, products), each sorted."""
    scope: dict[str, tuple[list[str], list[str]]] = {i: ([], []) for i in ids}
    if not ids:
        return scope
    marks = ", ".join("?" for _ in ids)
    for agreement_id, kind, subject in tx.all(f"SELECT agreement_id, kind, subject FROM agreement_scope WHERE "
                                              f"agreement_id IN ({marks}) ORDER BY subject", tuple(ids)):
        scope[agreement_id][0 if kind == "dataset" else 1].append(subject)
    return scope


def _agreements(tx: Tx, rows: list[tuple[Any, ...]]) -> list[Agreement]:
    scope = _scope_of(tx, [r[0] for r in rows])
    return [Agreement(r[0], r[1], r[2], tuple(scope[r[0]][0]), tuple(scope[r[0]][1]), *r[3:]) for r in rows]


def create(tx: Tx, terms: Terms, zone: ZoneInfo, actor: str, agreement_id: str | None = None) -> Agreement:
    agreement_id = agreement_id or "agr-" + uuid.uuid4().hex[:16]
    now = utc_now_text()
    starts_at = utc_text(day_start(terms.starts_on, zone))
    ends_at = utc_text(day_start(terms.ends_on + timedelta(days=1), zone))
    tx.execute(f"INSERT INTO agreements ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, "
               "NULL, NULL, NULL)",
               (agreement_id, terms.authorising_body, terms.operator, terms.starts_on.isoformat(),
                terms.ends_on.isoformat(), starts_at, ends_at, terms.duties, terms.exit_terms,
                terms.document_sha256, actor, now))
    for kind, subjects in (("dataset", terms.datasets), ("product", terms.product_ids)):
        for subject in subjects:
            tx.execute("INSERT INTO agreement_scope (agreement_id, kind, subject) VALUES (?, ?, ?)",
                       (agreement_id, kind, subject))
    audit.append(tx, "agreement.created", actor, agreement_id,
                 {"authorising_body": terms.authorising_body, "operator": terms.operator,
                  "datasets": list(terms.datasets), "products": list(terms.product_ids),
                  "starts_on": terms.starts_on.isoformat(), "ends_on": terms.ends_on.isoformat(),
                  "document_sha256": terms.document_sha256})
    found = get(tx, agreement_id)
    assert found is not None
    return found


def get(tx: Tx, agreement_id: str, *, lock: bool = False) -> Agreement | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM agreements WHERE agreement_id = ?"
                 + (" FOR UPDATE" if lock and tx.dialect == "postgres" else ""), (agreement_id,))
    return _agreements(tx, [row])[0] if row else None


def page(tx: Tx, datasets: tuple[str, ...] | None, request: PageRequest) -> Page[Agreement]:
    """All agreements (datasets None), or those covering any of `datasets`; oldest first."""
    where = "1 = 1"
    params: tuple[str, ...] = ()
    if datasets is not None:
        if not datasets:
            return Page([])
        where = (f"agreement_id IN (SELECT agreement_id FROM agreement_scope WHERE kind = 'dataset' AND subject IN "
                 f"({', '.join('?' for _ in datasets)}))")
        params = datasets
    found = read_page(tx, _COLUMNS, "agreements", where, params, ("created_at", "agreement_id"), request,
                      tuple)
    return Page(_agreements(tx, found.items), found.next_after)


def covering(tx: Tx, dataset: str) -> list[Agreement]:
    """The active agreements with `dataset` in scope (whether in force now is the caller's question)."""
    rows = tx.all(f"SELECT {_COLUMNS} FROM agreements WHERE status = 'active' AND agreement_id IN "
                  "(SELECT agreement_id FROM agreement_scope WHERE kind = 'dataset' AND subject = ?) "
                  "ORDER BY agreement_id", (dataset,))
    return _agreements(tx, rows)


def hold_to(tx: Tx, agreement_id: str, dataset: str, product_id: str | None, valid_until: str | None) -> Agreement:
    """The agreement as the store has it now, locked: in force, covering, long enough; else 409."""
    found = get(tx, agreement_id, lock=True)
    now = utc_now_text()
    if found is None or not found.in_force(now):
        raise Conflict(f"agreement {agreement_id!r} is not in force"
                       + (f" ({found.state(now)})" if found is not None else ""))
    if not found.covers(dataset, product_id):
        raise Conflict(f"{'product ' + repr(product_id) if product_id else 'dataset ' + repr(dataset)} is outside "
                       f"the scope of agreement {agreement_id!r}")
    problem = term_problem(found, valid_until)
    if problem is not None:
        raise Conflict(problem)
    return found


def end(tx: Tx, agreement_id: str, actor: str, reason: str) -> dict[str, Any]:
    """End an agreement for good, and with it what stands on it; audited with what it stopped."""
    found = get(tx, agreement_id, lock=True)
    if found is None:
        raise Conflict("the agreement is gone")
    if found.status == "ended":
        raise Conflict(f"agreement {agreement_id!r} has already ended")
    now = utc_now_text()
    tx.execute("UPDATE agreements SET status = 'ended', ended_by = ?, ended_at = ?, end_reason = ? "
               "WHERE agreement_id = ? AND status = 'active'", (actor, now, reason, agreement_id))
    grants_ended, applications_closed = end_access(tx, "agreement", agreement_id, actor,
                                                   f"agreement {agreement_id} ended: {reason}")
    products = [r[0] for r in tx.all("SELECT product_id FROM products WHERE agreement_id = ? ORDER BY product_id",
                                     (agreement_id,))]
    audit.append(tx, "agreement.ended", actor, agreement_id,
                 {"reason": reason, "grants_ended": grants_ended, "applications_closed": applications_closed,
                  "products_stopped": products})
    return {"grants_ended": grants_ended, "applications_closed": applications_closed, "products_stopped": products}


def end_lapsed(tx: Tx, actor: str = "system:agreement-term") -> list[str]:
    """End every active agreement whose last day has passed (the scheduled sweep; idempotent)."""
    now = utc_now_text()
    lapsed = [r[0] for r in tx.all("SELECT agreement_id FROM agreements WHERE status = 'active' AND ends_at <= ? "
                                   "ORDER BY agreement_id", (now,))]
    for agreement_id in lapsed:
        end(tx, agreement_id, actor, "its term has passed")
    return lapsed


def set_product_agreement(tx: Tx, product_id: str, agreement_id: str, actor: str) -> None:
    """The agreement a product's published version stands on (set when the bureau publishes)."""
    tx.execute("UPDATE products SET agreement_id = ? WHERE product_id = ?", (agreement_id, product_id))
    audit.append(tx, "product.agreement", actor, product_id, {"agreement": agreement_id})


def ended_under(tx: Tx, org_id: str, dataset: str, product_id: str | None) -> tuple[str, Agreement] | None:
    """(grant id, agreement) of the organisation's latest grant for the call that an agreement's end
    ended: what a refused call is told instead of a bare 'no grant'."""
    now = utc_now_text()
    rows = tx.all("SELECT g.grant_id, g.agreement_id FROM grants g JOIN agreements a ON a.agreement_id = "
                  "g.agreement_id WHERE g.org_id = ? AND g.dataset = ? AND (g.product_id IS NULL OR g.product_id = ?) "
                  "AND (a.status = 'ended' OR a.ends_at <= ?) ORDER BY g.created_at DESC, g.grant_id LIMIT 1",
                  (org_id, dataset, product_id, now))
    if not rows:
        return None
    found = get(tx, rows[0][1])
    return (rows[0][0], found) if found is not None else None
