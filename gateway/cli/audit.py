"""`gateway audit verify|checkpoint`: walk the chain; sign its head to a file kept elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gateway.auth.checkpoints import sign_checkpoint, verify_checkpoint
from gateway.auth.tokens import Keyring
from gateway.cli.args import CommandFailed, existing_store, settings_of, state_args
from gateway.settings import Settings
from gateway.store import audit


def write_checkpoint(settings: Settings, out: Path) -> tuple[int, str]:
    store = existing_store(settings)
    try:
        seq, head = store.run_sync(audit.head, write=False)
    finally:
        store.close()
    key = Keyring(settings.state_path / "keys").current()
    out.write_text(json.dumps(sign_checkpoint(key, seq, head), indent=2))
    return seq, head


def read_checkpoint(settings: Settings, path: Path) -> tuple[int, str]:
    """The (seq, head) of a checkpoint whose signature holds under one of our keys."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CommandFailed(f"cannot read the checkpoint {path}: {exc.strerror}") from None
    except ValueError:
        raise CommandFailed(f"{path} is not an audit checkpoint written by `gateway audit checkpoint`") from None
    try:
        keys = Keyring(settings.state_path / "keys").signing_keys()
        return verify_checkpoint(data if isinstance(data, dict) else {}, keys)
    except ValueError as exc:
        raise CommandFailed(f"{path}: {exc}") from None


def verify_audit(settings: Settings, checkpoint: str | None = None) -> audit.Verdict:
    store = existing_store(settings)
    try:
        expected = read_checkpoint(settings, Path(checkpoint)) if checkpoint else None
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
