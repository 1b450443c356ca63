"""`gateway client add`: the first clients of a real county (the bureau's, say), without a server.

The organisation is registered when new; its kind is the client's role. The secret is printed
once and kept only as a scrypt hash; both steps are audited.
"""

from __future__ import annotations

import argparse

from gateway.auth.secrets import hash_secret, new_secret
from gateway.cli.args import settings_of, state_args
from gateway.settings import Settings
from gateway.statefolder import require_folder
from gateway.store import requesters
from gateway.store.db import Tx
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


def cmd_client_add(args: argparse.Namespace) -> int:
    secret = add_client(settings_of(args, state_dir=args.state_dir), args.org, args.org_name or args.org,
                        args.role, args.client_id)
    print(f"client {args.client_id} ({args.role} of {args.org}); its secret, shown once:\n{secret}")
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
