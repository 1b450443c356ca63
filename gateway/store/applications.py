"""Applications for grants and the grants they become: every step one transaction, audited.

An application waits for the bureau's approval and, where the dataset's policy asks, its
source department's co-signature, in either order; the step that completes the pair creates
the grant in the same transaction. Row locks on PostgreSQL keep two approvers from both
completing it.

Each step is held against the policy in force when it is taken (`Rules`), not the one at filing:
a co-signature newly required is awaited, an automatic approval the policy no longer gives
lapses. A co-signature records the terms it covers; an approval past them voids it
(`application.cosign_voided`) and a new one is awaited (issue 19 points 6 and 7).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.budget import nano_to_float
from gateway.core.cosign import AUTO_APPROVER, Rules, Terms, widenings
from gateway.core.pages import Page, PageRequest, collect
from gateway.errors import Conflict
from gateway.store import agreements as store_agreements
from gateway.store import audit
from gateway.store import grants as store_grants
from gateway.store.db import Tx
from gateway.store.pages import read_page


@dataclass(frozen=True)
class Application:
    application_id: str
    org_id: str
    client_id: str
    dataset: str
    product_id: str | None
    purpose: str
    epsilon_requested_nano: int
    valid_until_requested: str | None
    status: str
    needs_cosign: bool
    bureau_by: str | None = None
    bureau_at: str | None = None
    epsilon_approved_nano: int | None = None
    valid_until: str | None = None
    cosign_by: str | None = None
    cosign_at: str | None = None
    decided_reason: str | None = None
    grant_id: str | None = None
    created_at: str = ""
    updated_at: str = ""
    cosign_terms: str | None = None  # canonical JSON of the Terms co-signed
    purpose_class: str = "industry"  # as the application states it
    purpose_class_approved: str | None = None  # as the bureau approved (or corrected) it
    agreement_id: str | None = None  # the agreement the bureau approved it under; its grant stands on it

    @property
    def terms(self) -> Terms:
        """The terms as they stand: the bureau's approval where given, else the request."""
        subject = f"product:{self.product_id}" if self.product_id else f"dataset:{self.dataset}"
        if self.bureau_at is not None and self.epsilon_approved_nano is not None:
            return Terms(self.epsilon_approved_nano, self.valid_until, self.purpose, subject)
        return Terms(self.epsilon_requested_nano, self.valid_until_requested, self.purpose, subject)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.application_id, "org_id": self.org_id, "client_id": self.client_id,
            "dataset": self.dataset, "product_id": self.product_id, "purpose": self.purpose,
            "epsilon_per_period": nano_to_float(self.epsilon_requested_nano),
            "valid_until_requested": self.valid_until_requested, "status": self.status,
            "approvals": {
                "bureau": {"by": self.bureau_by, "at": self.bureau_at} if self.bureau_at else None,
                "source": ({"by": self.cosign_by, "at": self.cosign_at, "terms": _terms_view(self.cosign_terms)}
                           if self.cosign_at else None) if self.needs_cosign else "not required",
            },
            "epsilon_approved": nano_to_float(self.epsilon_approved_nano) if self.epsilon_approved_nano else None,
            "valid_until": self.valid_until, "reason": self.decided_reason, "grant_id": self.grant_id,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "purpose_class": self.purpose_class, "purpose_class_approved": self.purpose_class_approved,
            "agreement_id": self.agreement_id,
        }


def _terms_view(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    terms = Terms.from_json(text)
    return {"epsilon_per_period": nano_to_float(terms.epsilon_nano), "valid_until": terms.valid_until}


_COLUMNS = ", ".join(f.name for f in fields(Application))


def _from_row(row: tuple[Any, ...]) -> Application:
    app = Application(*row)
    return replace(app, needs_cosign=bool(app.needs_cosign),
                   epsilon_requested_nano=int(app.epsilon_requested_nano),
                   epsilon_approved_nano=int(app.epsilon_approved_nano) if app.epsilon_approved_nano else None)


def _lock(tx: Tx) -> str:
    return " FOR UPDATE" if tx.dialect == "postgres" else ""


def create_application(tx: Tx, app: Application) -> Application:
    now = utc_now_text()
    app = replace(app, created_at=now, updated_at=now)
    values = [getattr(app, f.name) for f in fields(Application)]
    values[_index("needs_cosign")] = int(app.needs_cosign)
    tx.execute(f"INSERT INTO applications ({_COLUMNS}) VALUES ({', '.join('?' for _ in values)})", values)
    audit.append(tx, "application.submitted", app.client_id, app.application_id,
                 {"org": app.org_id, "dataset": app.dataset, "product": app.product_id,
                  "epsilon_nano": app.epsilon_requested_nano, "purpose": app.purpose,
                  "purpose_class": app.purpose_class})
    return app


def _index(name: str) -> int:
    return [f.name for f in fields(Application)].index(name)


def get_application(tx: Tx, application_id: str, *, lock: bool = False) -> Application | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM applications WHERE application_id = ?" + (_lock(tx) if lock else ""),
                 (application_id,))
    return _from_row(row) if row else None


def list_applications(tx: Tx, org_id: str | None, datasets: tuple[str, ...] | None) -> list[Application]:
    return collect(lambda page: applications_page(tx, org_id, datasets, page))


def applications_page(tx: Tx, org_id: str | None, datasets: tuple[str, ...] | None,
                      page: PageRequest) -> Page[Application]:
    """All (org_id and datasets None), one requester's, or those on some datasets: oldest first."""
    scope = _scope(org_id, datasets)
    if scope is None:
        return Page([])
    where, params = scope
    return read_page(tx, _COLUMNS, "applications", where, params, ("created_at", "application_id"), page,
                     _from_row)


def _scope(org_id: str | None, datasets: tuple[str, ...] | None) -> tuple[str, list[str]] | None:
    """The WHERE clause of a listing scoped to one requester and/or some datasets; None when
    the dataset scope is empty (nothing can match)."""
    where, params = ["1 = 1"], []
    if org_id is not None:
        where.append("org_id = ?")
        params.append(org_id)
    if datasets is not None:
        if not datasets:
            return None
        where.append(f"dataset IN ({', '.join('?' for _ in datasets)})")
        params.extend(datasets)
    return " AND ".join(where), params


def _pending(tx: Tx, application_id: str) -> Application:
    app = get_application(tx, application_id, lock=True)
    if app is None:
        raise Conflict("the application is gone")
    if app.status != "pending":
        raise Conflict(f"the application is already {app.status}")
    return app


def approve(tx: Tx, application_id: str, actor: str, epsilon_nano: int, valid_until: str | None,
            auto: bool = False, rules: Rules | None = None, purpose_class: str | None = None,
            agreement_id: str | None = None) -> Application:
    """The bureau's approval (or the policy's automatic one), with the purpose class as stated or
    as the bureau corrects it; a grant if nothing else is awaited."""
    app = _pending(tx, application_id)
    if app.bureau_at is not None:
        raise Conflict("the bureau has already approved this application")
    now = utc_now_text()
    approved_class = purpose_class or app.purpose_class
    tx.execute("UPDATE applications SET bureau_by = ?, bureau_at = ?, epsilon_approved_nano = ?, valid_until = ?, "
               "purpose_class_approved = ?, agreement_id = ?, updated_at = ? WHERE application_id = ?",
               (actor, now, epsilon_nano, valid_until, approved_class, agreement_id, now, application_id))
    audit.append(tx, "application.auto_approved" if auto else "application.approved", actor, application_id,
                 {"epsilon_nano": epsilon_nano, "valid_until": valid_until, "purpose_class": approved_class,
                  "purpose_class_stated": app.purpose_class, "agreement": agreement_id})
    approved = get_application(tx, application_id)
    assert approved is not None
    if approved.cosign_at is not None and approved.cosign_terms:
        widened = widenings(approved.terms, Terms.from_json(approved.cosign_terms))
        if widened:  # not what the department signed: its signature no longer stands
            tx.execute("UPDATE applications SET cosign_by = NULL, cosign_at = NULL, cosign_terms = NULL "
                       "WHERE application_id = ?", (application_id,))
            audit.append(tx, "application.cosign_voided", actor, application_id,
                         {"because": widened, "cosigned_by": approved.cosign_by})
    return _grant_when_complete(tx, application_id, actor, rules)


def cosign(tx: Tx, application_id: str, actor: str, rules: Rules | None = None) -> Application:
    """The source department's co-signature over the terms as they stand now."""
    app = _pending(tx, application_id)
    needed = rules.needs_cosign if rules is not None else app.needs_cosign
    if not needed or app.cosign_at is not None:
        raise Conflict("this application awaits no co-signature")
    now = utc_now_text()
    terms = app.terms
    tx.execute("UPDATE applications SET cosign_by = ?, cosign_at = ?, cosign_terms = ?, needs_cosign = 1, "
               "updated_at = ? WHERE application_id = ?", (actor, now, terms.as_json(), now, application_id))
    audit.append(tx, "application.cosigned", actor, application_id,
                 {"dataset": app.dataset, "epsilon_nano": terms.epsilon_nano, "valid_until": terms.valid_until})
    return _grant_when_complete(tx, application_id, actor, rules)


def _grant_when_complete(tx: Tx, application_id: str, actor: str, rules: Rules | None = None) -> Application:
    app = get_application(tx, application_id)
    assert app is not None
    if rules is not None:
        app = _hold_to(tx, app, rules, actor)
    if app.bureau_at is None or (app.needs_cosign and app.cosign_at is None):
        return app
    assert app.epsilon_approved_nano is not None
    if app.agreement_id is not None:  # still in force, as the store has it now
        store_agreements.hold_to(tx, app.agreement_id, app.dataset, app.product_id, app.valid_until)
    grant_id = "grant-" + uuid.uuid4().hex[:16]
    store_grants.create_grant(tx, grant_id, app.org_id, app.dataset, app.epsilon_approved_nano, actor,
                              product_id=app.product_id, valid_until=app.valid_until,
                              purpose_class=app.purpose_class_approved or app.purpose_class,
                              agreement_id=app.agreement_id)
    now = utc_now_text()
    tx.execute("UPDATE applications SET status = 'approved', grant_id = ?, updated_at = ? WHERE application_id = ?",
               (grant_id, now, application_id))
    audit.append(tx, "application.granted", actor, application_id, {"grant": grant_id})
    return replace(app, status="approved", grant_id=grant_id, updated_at=now)


def _hold_to(tx: Tx, app: Application, rules: Rules, actor: str) -> Application:
    """The application under the policy in force now: whether a co-signature is needed, and
    whether an automatic approval still stands (else it lapses and the bureau is awaited)."""
    if bool(app.needs_cosign) != rules.needs_cosign:
        tx.execute("UPDATE applications SET needs_cosign = ? WHERE application_id = ?",
                   (int(rules.needs_cosign), app.application_id))
        app = replace(app, needs_cosign=rules.needs_cosign)
    if app.bureau_by == AUTO_APPROVER and not rules.auto_approval_holds:
        tx.execute("UPDATE applications SET bureau_by = NULL, bureau_at = NULL, epsilon_approved_nano = NULL, "
                   "valid_until = NULL WHERE application_id = ?", (app.application_id,))
        audit.append(tx, "application.auto_approval_lapsed", actor, app.application_id,
                     {"reason": "the policy in force no longer approves it automatically"})
        app = replace(app, bureau_by=None, bureau_at=None, epsilon_approved_nano=None, valid_until=None)
    return app


def reject(tx: Tx, application_id: str, actor: str, reason: str) -> Application:
    app = _pending(tx, application_id)
    now = utc_now_text()
    tx.execute("UPDATE applications SET status = 'rejected', decided_reason = ?, updated_at = ? "
               "WHERE application_id = ?", (reason, now, application_id))
    audit.append(tx, "application.rejected", actor, application_id, {"reason": reason})
    return replace(app, status="rejected", decided_reason=reason, updated_at=now)


# ---------------------------------------------------------------- grants


@dataclass(frozen=True)
class GrantView:
    grant: store_grants.Grant
    created_at: str

    def as_dict(self, now: str) -> dict[str, Any]:
        g = self.grant
        status = "expired" if g.status == "active" and g.valid_until and g.valid_until <= now else g.status
        return {"id": g.grant_id, "grant_id": g.grant_id, "org_id": g.org_id, "dataset": g.dataset,
                "product_id": g.product_id,
                "epsilon_per_period": nano_to_float(g.epsilon_limit_nano), "valid_from": g.valid_from,
                "valid_until": g.valid_until, "status": status, "created_at": self.created_at,
                "purpose_class": g.purpose_class, "agreement_id": g.agreement_id}


_GRANT_COLUMNS = ("grant_id, org_id, dataset, product_id, epsilon_limit_nano, valid_from, valid_until, status, "
                  "purpose_class, agreement_id")


def _grant_view(row: tuple[Any, ...]) -> GrantView:
    g = store_grants.Grant(row[0], row[1], row[2], row[3], int(row[4]), row[5], row[6], row[7], row[8], row[9])
    return GrantView(g, row[10])


def list_grants(tx: Tx, org_id: str | None, datasets: tuple[str, ...] | None) -> list[GrantView]:
    return collect(lambda page: grants_page(tx, org_id, datasets, page))


def grants_page(tx: Tx, org_id: str | None, datasets: tuple[str, ...] | None,
                page: PageRequest) -> Page[GrantView]:
    scope = _scope(org_id, datasets)
    if scope is None:
        return Page([])
    where, params = scope
    return read_page(tx, f"{_GRANT_COLUMNS}, created_at", "grants", where, params, ("created_at", "grant_id"),
                     page, _grant_view)


def get_grant(tx: Tx, grant_id: str) -> GrantView | None:
    row = tx.one(f"SELECT {_GRANT_COLUMNS}, created_at FROM grants WHERE grant_id = ?", (grant_id,))
    return _grant_view(row) if row else None


def revoke_grant(tx: Tx, grant_id: str, actor: str, reason: str) -> bool:
    """Effective for the next request: the ledger reads active grants per request."""
    if tx.execute("UPDATE grants SET status = 'revoked' WHERE grant_id = ? AND status = 'active'", (grant_id,)) != 1:
        return False
    audit.append(tx, "grant.revoked", actor, grant_id, {"reason": reason})
    return True


def end_dataset_access(tx: Tx, dataset: str, actor: str, reason: str = "dataset withdrawn") -> tuple[int, int]:
    """A withdrawn dataset (or one built on it): its grants end and its pending applications
    close, each audited."""
    return store_grants.end_access(tx, "dataset", dataset, actor, reason)


def end_derived_grants(tx: Tx, org_id: str, base: str, derived: Sequence[str], actor: str) -> int:
    """An organisation's grants on views of `base` end once it holds no active grant on `base`
    itself (R-DP-18): what is derived from a grant ends with it. Audited per grant."""
    if not derived or tx.one("SELECT 1 FROM grants WHERE org_id = ? AND dataset = ? AND status = 'active' "
                             "AND (valid_until IS NULL OR valid_until > ?)", (org_id, base, utc_now_text())):
        return 0
    marks = ", ".join("?" for _ in derived)
    ended = [r[0] for r in tx.all(f"SELECT grant_id FROM grants WHERE org_id = ? AND status = 'active' AND "
                                  f"dataset IN ({marks}) ORDER BY grant_id", (org_id, *derived))]
    for grant_id in ended:
        tx.execute("UPDATE grants SET status = 'ended' WHERE grant_id = ?", (grant_id,))
        audit.append(tx, "grant.ended", actor, grant_id, {"base": base, "reason": "base grant ended"})
    return len(ended)
