"""Signing-key rotation: a new key signs; the old ones verify until their tokens expire."""

from __future__ import annotations

import argparse
from datetime import timedelta

from gateway.auth.tokens import Keyring
from gateway.cli.args import settings_of, state_args
from gateway.clock import utc_now, utc_text
from gateway.settings import Settings
from gateway.statefolder import require_folder
from gateway.store import audit, identity
from gateway.store.db import Tx
from gateway.store.schema import open_store


def rotate_keys(settings: Settings) -> str:
    """A new key in the keyring of an installation that exists. A SQLite one must have its store;
    a PostgreSQL one may be new: its first key is made this way, in a folder made for it."""
    require_folder(settings.state_path)
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2, create=bool(settings.store_dsn))
    keyring = Keyring(settings.state_path / "keys")
    older = tuple(k.kid for k in keyring.signing_keys())
    key = keyring.add()
    # Tokens signed a moment ago live token_ttl more; allow the leeway on top.
    retire_at = utc_text(utc_now() + timedelta(seconds=settings.token_ttl_seconds + settings.jwt_leeway_seconds))
    try:
        store.run_sync(_publish, key.kid, key.jwk, retire_at, older)
    finally:
        store.close()
    return key.kid


def _publish(tx: Tx, kid: str, jwk: dict[str, str], retire_at: str, older: tuple[str, ...]) -> None:
    identity.add_public_key(tx, kid, jwk)
    identity.retire_keys_except(tx, kid, retire_at, older)
    audit.append(tx, "key.rotated", "cli", kid, {"retiring": list(older), "retire_at": retire_at})


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    kid = rotate_keys(settings_of(args, state_dir=args.state_dir))
    print(f"new signing key {kid}; older keys verify until their tokens expire")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    rotate = keys.add_parser("rotate", help="add a new signing key; old ones keep verifying")
    state_args(rotate)
    rotate.set_defaults(func=cmd_keys_rotate)
