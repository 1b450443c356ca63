"""`gateway user add`: a county's first console user (the bureau's, say), without a server.

The organisation is registered when new, its kind being the user's role; the password is
generated and printed once (or read from standard input), and kept only as a scrypt hash.
Both steps are audited, as `cli`.
"""

from __future__ import annotations

from gateway.auth.secrets import hash_secret, new_secret
from gateway.service.people import add_user_tx, check_new_user
from gateway.settings import Settings
from gateway.store import requesters
from gateway.store.db import Tx
from gateway.store.schema import open_store
from gateway.store.users import User


def add_user(settings: Settings, username: str, display_name: str, org_id: str, org_name: str, role: str,
             password: str | None = None) -> tuple[User, str]:
    """Create the user; returns it and its password (the one given, or a new one)."""
    chosen = password if password is not None else new_secret()[:20]
    roles = check_new_user(username, display_name, [role], chosen)
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2)
    try:
        user = store.run_sync(_add, username, display_name, org_id, org_name, roles, hash_secret(chosen))
    finally:
        store.close()
    return user, chosen


def _add(tx: Tx, username: str, display_name: str, org_id: str, org_name: str, roles: tuple[str, ...],
         password_hash: str) -> User:
    if requesters.get_org(tx, org_id) is None:
        requesters.register_org(tx, org_id, org_name, roles[0], "cli")
    return add_user_tx(tx, username, display_name, org_id, roles, password_hash, None, "cli")
