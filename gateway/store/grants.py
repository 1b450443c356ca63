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
