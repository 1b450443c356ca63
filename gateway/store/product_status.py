"""The bureau's hold on a product, and its merchant's standing: whether a product may sell now.

A product sells while a version is published, the bureau has neither suspended nor retired it,
and its merchant organisation is active. Each change is audited in its own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import utc_now_text
from gateway.errors import Conflict
from gateway.store import audit
from gateway.store.db import Tx

BUREAU_STATUSES = ("active", "suspended", "retired")
_AUDIT_KIND = {"active": "product.resumed", "suspended": "product.suspended", "retired": "product.retired"}


@dataclass(frozen=True)
class SaleState:
    bureau_status: str  # active, suspended or retired
    merchant_status: str  # the merchant organisation's: active or suspended
    agreement_ended: bool = False  # the agreement it stands on has ended (or its term passed): it has stopped

    @property
    def status(self) -> str:
        """What a requester sees: `retired` (by the bureau, or its agreement ended: a new version
        published under an agreement in force sells again), `suspended` (by the bureau or with its
        merchant), or `published`."""
        if self.bureau_status == "retired" or self.agreement_ended:
            return "retired"
        if self.bureau_status == "suspended" or self.merchant_status != "active":
            return "suspended"
        return "published"


_STATE = ("SELECT p.product_id, p.bureau_status, o.status, CASE WHEN p.agreement_id IS NULL THEN 0 "
          "WHEN a.status = 'active' AND a.ends_at > ? THEN 0 ELSE 1 END FROM products p "
          "JOIN organisations o ON o.org_id = p.merchant_org LEFT JOIN agreements a ON a.agreement_id = p.agreement_id")


def sale_state(tx: Tx, product_id: str) -> SaleState | None:
    row = tx.one(_STATE + " WHERE p.product_id = ?", (utc_now_text(), product_id))
    return SaleState(row[1], row[2], bool(row[3])) if row else None


def sale_states(tx: Tx) -> dict[str, SaleState]:
    return {r[0]: SaleState(r[1], r[2], bool(r[3])) for r in tx.all(_STATE, (utc_now_text(),))}


def set_bureau_status(tx: Tx, product_id: str, status: str, actor: str, reason: str) -> bool:
    """Suspend, resume or retire a product's published version; False if it was already so."""
    if status not in BUREAU_STATUSES:
        raise ValueError(f"unknown product status {status!r}")
    row = tx.one("SELECT bureau_status, published_version FROM products WHERE product_id = ?"
                 + (" FOR UPDATE" if tx.dialect == "postgres" else ""), (product_id,))
    if row is None or row[1] is None:
        raise Conflict("the product has no published version")
    if row[0] == status:
        return False
    if row[0] == "retired":
        raise Conflict("a retired product sells again only when the bureau publishes a new version")
    tx.execute("UPDATE products SET bureau_status = ?, updated_at = ? WHERE product_id = ?",
               (status, utc_now_text(), product_id))
    audit.append(tx, _AUDIT_KIND[status], actor, f"{product_id}@{row[1]}", {"reason": reason})
    return True


def reopen_on_publish(tx: Tx, product_id: str) -> None:
    """Publishing a new version lifts a retirement (of the version before); a suspension stays."""
    tx.execute("UPDATE products SET bureau_status = 'active' WHERE product_id = ? AND bureau_status = 'retired'",
               (product_id,))
