"""Grants: a requester organisation's budget per period on a dataset (or product)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import utc_now_text
from gateway.store import audit
from gateway.store.db import Tx


@dataclass(frozen=True)
class Grant:
    grant_id: str
    org_id: str
    dataset: str
    product_id: str | None
    epsilon_limit_nano: int
    valid_from: str
    valid_until: str | None
    status: str
    purpose_class: str = "industry"
    agreement_id: str | None = None  # the authorisation agreement it stands on (None: made before them)


_COLUMNS = ("grant_id, org_id, dataset, product_id, epsilon_limit_nano, valid_from, valid_until, status, "
            "purpose_class, agreement_id")
# A grant holds while the agreement it stands on is in force (ended, or its last day passed: it ends too).
IN_FORCE = ("(agreement_id IS NULL OR EXISTS (SELECT 1 FROM agreements a WHERE a.agreement_id = grants.agreement_id "
            "AND a.status = 'active' AND a.ends_at > ?))")


def create_grant(tx: Tx, grant_id: str, org_id: str, dataset: str, epsilon_limit_nano: int, actor: str, *,
                 product_id: str | None = None, valid_until: str | None = None,
                 purpose_class: str = "industry", agreement_id: str | None = None) -> Grant:
    now = utc_now_text()
    tx.execute(f"INSERT INTO grants ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
               (grant_id, org_id, dataset, product_id, epsilon_limit_nano, now, valid_until, purpose_class,
                agreement_id, now))
    audit.append(tx, "grant.created", actor, grant_id,
                 {"org": org_id, "dataset": dataset, "product": product_id,
                  "epsilon_limit_nano": epsilon_limit_nano, "valid_until": valid_until,
                  "purpose_class": purpose_class, "agreement": agreement_id})
    return Grant(grant_id, org_id, dataset, product_id, epsilon_limit_nano, now, valid_until, "active",
                 purpose_class, agreement_id)


def active_grants(tx: Tx, org_id: str, now: str) -> list[Grant]:
    rows = tx.all(f"SELECT {_COLUMNS} FROM grants WHERE org_id = ? AND status = 'active' "
                  f"AND valid_from <= ? AND (valid_until IS NULL OR valid_until > ?) AND {IN_FORCE} "
                  "ORDER BY grant_id", (org_id, now, now, now))
    return [Grant(*r) for r in rows]


_STANDS_ON = {"dataset": "dataset", "agreement": "agreement_id"}  # what access can end with -> its column


def end_access(tx: Tx, kind: str, subject: str, actor: str, reason: str) -> tuple[int, int]:
    """The one rule for what stands on something that ends (a withdrawn dataset, an ended
    agreement): its active grants end and its pending applications close, each audited.
    Returns (grants ended, applications closed)."""
    column = _STANDS_ON[kind]
    grants = [r[0] for r in tx.all(f"SELECT grant_id FROM grants WHERE {column} = ? AND status = 'active' "
                                   "ORDER BY grant_id", (subject,))]
    for grant_id in grants:
        tx.execute("UPDATE grants SET status = 'ended' WHERE grant_id = ?", (grant_id,))
        audit.append(tx, "grant.ended", actor, grant_id, {kind: subject, "reason": reason})
    pending = [r[0] for r in tx.all(f"SELECT application_id FROM applications WHERE {column} = ? AND "
                                    "status = 'pending' ORDER BY application_id", (subject,))]
    now = utc_now_text()
    for application_id in pending:
        tx.execute("UPDATE applications SET status = 'closed', decided_reason = ?, "
                   "updated_at = ? WHERE application_id = ?", (reason, now, application_id))
        audit.append(tx, "application.closed", actor, application_id, {"reason": reason})
    return len(grants), len(pending)
