"""The demo county's people: one user per role, listed with their passwords in demo-credentials.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.auth.secrets import hash_secret, new_secret
from gateway.service.people import add_user_tx
from gateway.store import users as store_users
from gateway.store.db import Store, Tx

# (username, display name, organisation, role); the organisations are the demo clients'.
USERS: tuple[tuple[str, str, str, str], ...] = (
    ("bank-analyst", "李敏", "lingxi-rural-bank", "requester"),
    ("insurer-analyst", "陈静", "county-mutual-insurance", "requester"),
    ("bureau-admin", "王建国", "bureau", "bureau"),
    ("psb-officer", "张伟", "psb", "source"),
    ("merchant-dev", "刘洋", "datasmith", "merchant"),
    ("ops-viewer", "赵磊", "ops", "ops"),
)


def _known_passwords(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {u["username"]: u["password"] for u in data.get("users", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _seed(tx: Tx, passwords: dict[str, str], hashes: dict[str, str]) -> None:
    for username, display, org, role in USERS:
        if store_users.get_user(tx, username) is None:
            add_user_tx(tx, username, display, org, (role,), hashes[username], None, "system:demo")
        elif username in hashes:
            store_users.set_password(tx, username, hashes[username], "system:demo")


def ensure_demo_users(store: Store, credentials: Path) -> list[dict[str, Any]]:
    """Create the demo users once; their passwords stay those of the credentials file."""
    known = _known_passwords(credentials)
    passwords = {u: known.get(u) or new_secret()[:20] for u, *_ in USERS}
    fresh = {u: hash_secret(passwords[u]) for u, *_ in USERS if u not in known}
    store.run_sync(_seed, passwords, fresh)
    return [{"username": u, "password": passwords[u], "roles": [role], "org_id": org, "display_name": display}
            for u, display, org, role in USERS]


def announcement(base_url: str, credentials: Path) -> str:
    """What `make demo` prints: where the console is and where the demo users' passwords are."""
    names = ", ".join(u for u, *_ in USERS)
    return (f"console: {base_url}/console/ (sign in as {names}; their passwords are under "
            f'"users" in {credentials})')
