"""`gateway client add|suspend|resume|rotate`: clients on the store, without a server.

`add` makes the first clients of a real county (the bureau's, say): the organisation is
registered when new; its kind is the client's role. `suspend`, `resume` and `rotate` reach any
client of any kind — the way to stop a leaked bureau credential when no second bureau client is
at hand (issue 19 point 4). A running server sees a suspension at its next poll
(`suspension_poll_seconds`); a rotated secret stops at once. Secrets are printed once and kept
only as scrypt hashes; every step is audited (actor `cli`).
"""

from __future__ import annotations

import argparse

from gateway.auth.secrets import hash_secret, new_secret
from gateway.cli.args import settings_of, state_args
from gateway.settings import Settings
from gateway.statefolder import require_folder
from gateway.store import requesters
from gateway.store.db import Store, Tx
from gateway.store.identity import ROLES
from gateway.store.schema import open_store


def add_client(settings: Settings, org_id: str, org_name: str, role: str, client_id: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    secret = new_secret()
    # The first clients of a county may come before its first start: the store may be new, but
    # the state folder must exist (made on purpose, not by a mistyped --state-dir).
    require_folder(settings.state_path)
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


CLI_ACTOR = "cli"


def _existing_store(settings: Settings) -> Store:
    """The store of a state folder that has one; a maintenance command creates none."""
    if not settings.store_dsn and not (settings.state_path / "gateway.db").is_file():
        raise ValueError(f"no gateway store in {settings.state_path}")
    return open_store(settings.store_dsn, settings.state_path, pool_size=2)


def set_status(settings: Settings, client_id: str, status: str, reason: str) -> bool:
    """Suspend or resume a client; False if it was already so. ValueError if unknown."""
    store = _existing_store(settings)
    try:
        return bool(store.run_sync(_set_status, client_id, status, reason))
    finally:
        store.close()


def _set_status(tx: Tx, client_id: str, status: str, reason: str) -> bool:
    if requesters.get_client_row(tx, client_id) is None:
        raise ValueError(f"no client {client_id!r}")
    return requesters.set_client_status(tx, client_id, status, CLI_ACTOR, reason)


def rotate(settings: Settings, client_id: str) -> str:
    """A new secret for the client (the old one stops at once); returned to print once."""
    secret = new_secret()
    store = _existing_store(settings)
    try:
        if not store.run_sync(requesters.rotate_secret, client_id, hash_secret(secret), CLI_ACTOR):
            raise ValueError(f"no client {client_id!r}")
    finally:
        store.close()
    return secret


def cmd_client_add(args: argparse.Namespace) -> int:
    secret = add_client(settings_of(args, state_dir=args.state_dir), args.org, args.org_name or args.org,
                        args.role, args.client_id)
    print(f"client {args.client_id} ({args.role} of {args.org}); its secret, shown once:\n{secret}")
    return 0


def cmd_client_status(args: argparse.Namespace) -> int:
    status = "suspended" if args.action == "suspend" else "active"
    changed = set_status(settings_of(args, state_dir=args.state_dir), args.client_id, status, args.reason or "")
    print(f"client {args.client_id} {'is now' if changed else 'was already'} {status}")
    return 0


def cmd_client_rotate(args: argparse.Namespace) -> int:
    secret = rotate(settings_of(args, state_dir=args.state_dir), args.client_id)
    print(f"client {args.client_id}: the old secret no longer works; the new one, shown once:\n{secret}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    client = sub.add_parser("client", help="clients").add_subparsers(dest="action", required=True)
    add = client.add_parser("add", help="register a client (and its organisation); print its secret once")
    state_args(add)
    add.add_argument("--org", required=True, help="organisation id")
    add.add_argument("--org-name", help="organisation name (default: the id)")
    add.add_argument("--role", required=True, help="requester, bureau, source, merchant or ops")
    add.add_argument("client_id")
    add.set_defaults(func=cmd_client_add)
    for action, text in (("suspend", "refuse the client from its next request (any kind, the bureau's too)"),
                         ("resume", "let a suspended client in again")):
        cmd = client.add_parser(action, help=text)
        state_args(cmd)
        cmd.add_argument("--reason", help="why, for the audit log")
        cmd.add_argument("client_id")
        cmd.set_defaults(func=cmd_client_status)
    rot = client.add_parser("rotate", help="give a client a new secret (printed once); the old one stops")
    state_args(rot)
    rot.add_argument("client_id")
    rot.set_defaults(func=cmd_client_rotate)
