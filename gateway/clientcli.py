"""`gateway client add`: the first clients of a real county (the bureau's, say), without a server.

The organisation is registered when new; its kind is the client's role. The secret is printed
once and kept only as a scrypt hash; both steps are audited.
"""

from __future__ import annotations

from gateway.secrets import hash_secret, new_secret
from gateway.settings import Settings
from gateway.store import requesters
from gateway.store.db import Tx, open_store
from gateway.store.identity import ROLES


def add_client(settings: Settings, org_id: str, org_name: str, role: str, client_id: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    secret = new_secret()
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2)
    try:
        store.run_sync(_add, org_id, org_name, role, client_id, hash_secret(secret))
    finally:
        store.close()
    return secret


def _add(tx: Tx, org_id: str, org_name: str, role: str, client_id: str, secret_hash: str) -> None:
    org = requesters.get_org(tx, org_id) or requesters.register_org(tx, org_id, org_name, role, "cli")
    if org.kind != role:
        raise ValueError(f"organisation {org_id!r} is a {org.kind}, not a {role}")
    requesters.add_client(tx, client_id, org, secret_hash, "cli")
