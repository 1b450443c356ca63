"""Organisations, clients and the public signing keys, in the store."""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.clock import utc_now_text
from gateway.store.db import Tx

ROLES = ("requester", "bureau", "source", "merchant", "ops")


@dataclass(frozen=True)
class Client:
    client_id: str
    org_id: str
    roles: tuple[str, ...]
    secret_hash: str
    status: str
    org_status: str

    @property
    def active(self) -> bool:
        return self.status == "active" and self.org_status == "active"


def ensure_org(tx: Tx, org_id: str, name: str, kind: str) -> None:
    tx.execute("INSERT INTO organisations (org_id, name, kind, created_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (org_id) DO NOTHING", (org_id, name, kind, utc_now_text()))


def create_client(tx: Tx, client_id: str, org_id: str, roles: tuple[str, ...], secret_hash: str) -> None:
    tx.execute("INSERT INTO clients (client_id, org_id, secret_hash, roles, created_at) VALUES (?, ?, ?, ?, ?)",
               (client_id, org_id, secret_hash, json.dumps(list(roles)), utc_now_text()))


def set_client_secret(tx: Tx, client_id: str, secret_hash: str) -> bool:
    return tx.execute("UPDATE clients SET secret_hash = ? WHERE client_id = ?", (secret_hash, client_id)) == 1


def get_client(tx: Tx, client_id: str) -> Client | None:
    row = tx.one("SELECT c.client_id, c.org_id, c.roles, c.secret_hash, c.status, o.status "
                 "FROM clients c JOIN organisations o ON o.org_id = c.org_id WHERE c.client_id = ?",
                 (client_id,))
    if row is None:
        return None
    return Client(row[0], row[1], tuple(json.loads(row[2])), row[3], row[4], row[5])


def client_statuses(tx: Tx) -> dict[str, bool]:
    """client_id -> active, for the per-request status check (R-AU-05)."""
    rows = tx.all("SELECT c.client_id, c.status, o.status FROM clients c "
                  "JOIN organisations o ON o.org_id = c.org_id")
    return {r[0]: r[1] == "active" and r[2] == "active" for r in rows}


def add_public_key(tx: Tx, kid: str, public_jwk: dict[str, str]) -> None:
    tx.execute("INSERT INTO signing_keys (kid, public_jwk, created_at) VALUES (?, ?, ?) "
               "ON CONFLICT (kid) DO NOTHING", (kid, json.dumps(public_jwk, sort_keys=True), utc_now_text()))


def retire_keys_except(tx: Tx, keep_kid: str, retire_at: str, only: tuple[str, ...]) -> None:
    for kid in only:
        if kid != keep_kid:
            tx.execute("UPDATE signing_keys SET retire_at = ? WHERE kid = ? AND retire_at IS NULL",
                       (retire_at, kid))


def retired_keys(tx: Tx, now: str) -> list[dict[str, object]]:
    """The public halves of keys retired by now: they verify no token, but still the receipts they
    signed, so they stay published (flagged) beside the JWKS's `keys`."""
    rows = tx.all("SELECT public_jwk FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at <= ? "
                  "ORDER BY created_at", (now,))
    return [{**json.loads(r[0]), "retired": True} for r in rows]


def public_keys(tx: Tx, now: str) -> dict[str, dict[str, str]]:
    """kid -> JWK for every key still verifying (not retired, or retiring later than now)."""
    rows = tx.all("SELECT kid, public_jwk FROM signing_keys WHERE retire_at IS NULL OR retire_at > ? "
                  "ORDER BY created_at", (now,))
    return {r[0]: json.loads(r[1]) for r in rows}
