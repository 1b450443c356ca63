"""`gateway audit verify|checkpoint`: walk the chain; sign its head to a file kept elsewhere."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from gateway.auth.tokens import Keyring
from gateway.cli.args import settings_of, state_args
from gateway.clock import utc_now_text
from gateway.core.canonical import canonical_bytes
from gateway.settings import Settings
from gateway.store import audit
from gateway.store.schema import open_store


def _signed_body(seq: int, head: str, at: str) -> bytes:
    return canonical_bytes({"seq": seq, "head": head, "at": at})


def write_checkpoint(settings: Settings, out: Path) -> tuple[int, str]:
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2)
    try:
        seq, head = store.run_sync(audit.head, write=False)
    finally:
        store.close()
    key = Keyring(settings.state_path / "keys").current()
    at = utc_now_text()
    signature = key.private.sign(_signed_body(seq, head, at))
    out.write_text(json.dumps({"seq": seq, "head": head, "at": at, "kid": key.kid,
                               "signature": base64.b64encode(signature).decode()}, indent=2))
    return seq, head


def read_checkpoint(settings: Settings, path: Path) -> tuple[int, str]:
    """The (seq, head) of a checkpoint whose signature holds under one of our keys."""
    data = json.loads(path.read_text())
    body = _signed_body(int(data["seq"]), str(data["head"]), str(data["at"]))
    for key in Keyring(settings.state_path / "keys").signing_keys():
        if key.kid == data.get("kid"):
            try:
                key.private.public_key().verify(base64.b64decode(data["signature"]), body)
            except InvalidSignature:
                break
            return int(data["seq"]), str(data["head"])
    raise ValueError("the checkpoint's signature does not verify")


def verify_audit(settings: Settings, checkpoint: str | None = None) -> audit.Verdict:
    expected = read_checkpoint(settings, Path(checkpoint)) if checkpoint else None
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2)
    try:
        return store.run_sync(audit.verify, expected, write=False)
    finally:
        store.close()


def cmd_audit_verify(args: argparse.Namespace) -> int:
    verdict = verify_audit(settings_of(args, state_dir=args.state_dir), args.checkpoint)
    if verdict.ok:
        print(f"ok: {verdict.entries} entries, head {verdict.head}")
        return 0
    print(f"BROKEN at entry {verdict.first_bad_seq}: {verdict.reason}", file=sys.stderr)
    return 1


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    seq, head = write_checkpoint(settings_of(args, state_dir=args.state_dir), Path(args.out))
    print(f"checkpoint at entry {seq}, head {head} -> {args.out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    verify = audit.add_parser("verify", help="walk the hash chain; name the first bad entry")
    state_args(verify)
    verify.add_argument("--checkpoint", help="a signed checkpoint file to check against")
    verify.set_defaults(func=cmd_audit_verify)
    cp = audit.add_parser("checkpoint", help="write a signed head of the chain to a file")
    state_args(cp)
    cp.add_argument("--out", required=True)
    cp.set_defaults(func=cmd_audit_checkpoint)
