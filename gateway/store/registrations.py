"""Registration codes in the store: the bureau's act in force per dataset or product, audited."""

from __future__ import annotations

from typing import Any

from gateway.clock import utc_now_text
from gateway.core.registration import Registration
from gateway.errors import Conflict
from gateway.store import audit
from gateway.store.db import Tx

_COLUMNS = "subject, code, status, registered_version, fingerprint, recorded_by, recorded_at, note"


def _registration(row: tuple[Any, ...]) -> Registration:
    return Registration(row[0], row[1], row[2], int(row[3]) if row[3] is not None else None, row[4], row[5],
                        row[6], row[7])


def get(tx: Tx, subject: str) -> Registration | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM registrations WHERE subject = ?", (subject,))
    return _registration(row) if row else None


def current(tx: Tx) -> dict[str, Registration]:
    """subject -> its registration in force."""
    return {r[0]: _registration(r) for r in tx.all(f"SELECT {_COLUMNS} FROM registrations")}


def record(tx: Tx, reg: Registration) -> Registration:
    """The bureau's act: a code (new, renewed or revoked) on a subject; 409 if another subject has
    the code. The act before it stays in the audit log."""
    other = tx.one("SELECT subject FROM registrations WHERE code = ? AND subject <> ?", (reg.code, reg.subject))
    if other is not None:
        raise Conflict(f"the registration code {reg.code} is recorded for another dataset or product")
    previous = get(tx, reg.subject)
    now = utc_now_text()
    tx.execute(f"INSERT INTO registrations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject) "
               "DO UPDATE SET code = excluded.code, status = excluded.status, "
               "registered_version = excluded.registered_version, fingerprint = excluded.fingerprint, "
               "recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at, note = excluded.note",
               (reg.subject, reg.code, reg.status, reg.version, reg.fingerprint, reg.recorded_by, now, reg.note))
    kind = "registration.revoked" if reg.status == "revoked" else "registration.recorded"
    audit.append(tx, kind, reg.recorded_by, reg.subject,
                 {"code": reg.code, "status": reg.status, "version": reg.version, "fingerprint": reg.fingerprint,
                  "note": reg.note, "previous_code": previous.code if previous else None,
                  "previous_status": previous.status if previous else None,
                  "previous_version": previous.version if previous else None})
    found = get(tx, reg.subject)
    assert found is not None
    return found
