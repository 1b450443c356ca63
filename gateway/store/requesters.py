"""Registered organisations and their clients: create, list, rotate secrets, suspend, reinstate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.pages import Page, PageRequest, collect
from gateway.errors import Conflict
from gateway.store import audit, identity
from gateway.store.db import Tx
from gateway.store.pages import read_page


@dataclass(frozen=True)
class Org:
    org_id: str
    name: str
    kind: str
    status: str
    created_at: str


@dataclass(frozen=True)
class ClientRow:
    client_id: str
    org_id: str
    roles: tuple[str, ...]
    status: str
    created_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "org_id": self.org_id, "roles": list(self.roles),
                "status": self.status, "created_at": self.created_at}


def register_org(tx: Tx, org_id: str, name: str, kind: str, actor: str) -> Org:
    if get_org(tx, org_id) is not None:
        raise Conflict(f"organisation {org_id!r} already exists")
    now = utc_now_text()
    tx.execute("INSERT INTO organisations (org_id, name, kind, created_at) VALUES (?, ?, ?, ?)",
               (org_id, name, kind, now))
    audit.append(tx, "org.registered", actor, org_id, {"name": name, "kind": kind})
    return Org(org_id, name, kind, "active", now)


def get_org(tx: Tx, org_id: str) -> Org | None:
    row = tx.one("SELECT org_id, name, kind, status, created_at FROM organisations WHERE org_id = ?", (org_id,))
    return Org(*row) if row else None


def list_orgs(tx: Tx, kinds: tuple[str, ...]) -> list[Org]:
    return collect(lambda page: orgs_page(tx, kinds, page))


def orgs_page(tx: Tx, kinds: tuple[str, ...], page: PageRequest) -> Page[Org]:
    """Organisations of some kinds, by id."""
    marks = ", ".join("?" for _ in kinds)
    return read_page(tx, "org_id, name, kind, status, created_at", "organisations", f"kind IN ({marks})", kinds,
                     ("org_id",), page, lambda r: Org(*r))


def clients_of(tx: Tx, org_id: str) -> list[ClientRow]:
    rows = tx.all("SELECT client_id, org_id, roles, status, created_at FROM clients WHERE org_id = ? "
                  "ORDER BY client_id", (org_id,))
    return [ClientRow(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4]) for r in rows]


def get_client_row(tx: Tx, client_id: str) -> ClientRow | None:
    row = tx.one("SELECT client_id, org_id, roles, status, created_at FROM clients WHERE client_id = ?",
                 (client_id,))
    return ClientRow(row[0], row[1], tuple(json.loads(row[2])), row[3], row[4]) if row else None


def add_client(tx: Tx, client_id: str, org: Org, secret_hash: str, actor: str) -> ClientRow:
    if identity.get_client(tx, client_id) is not None:
        raise Conflict(f"client {client_id!r} already exists")
    roles = (org.kind,)
    identity.create_client(tx, client_id, org.org_id, roles, secret_hash)
    audit.append(tx, "client.created", actor, client_id, {"org": org.org_id, "roles": list(roles)})
    row = get_client_row(tx, client_id)
    assert row is not None
    return row


def rotate_secret(tx: Tx, client_id: str, secret_hash: str, actor: str) -> bool:
    """A new secret; the old one stops working at once (tokens already issued run out)."""
    if not identity.set_client_secret(tx, client_id, secret_hash):
        return False
    audit.append(tx, "client.secret_rotated", actor, client_id, {})
    return True


def set_org_status(tx: Tx, org_id: str, status: str, actor: str, reason: str) -> bool:
    """Suspend or reinstate an organisation; every client of it follows. False if unchanged."""
    changed = tx.execute("UPDATE organisations SET status = ? WHERE org_id = ? AND status <> ?",
                         (status, org_id, status)) == 1
    if changed:
        kind = "org.suspended" if status == "suspended" else "org.reinstated"
        audit.append(tx, kind, actor, org_id, {"reason": reason})
    return changed


def set_client_status(tx: Tx, client_id: str, status: str, actor: str, reason: str) -> bool:
    changed = tx.execute("UPDATE clients SET status = ? WHERE client_id = ? AND status <> ?",
                         (status, client_id, status)) == 1
    if changed:
        kind = "client.suspended" if status == "suspended" else "client.reinstated"
        audit.append(tx, kind, actor, client_id, {"reason": reason})
    return changed
