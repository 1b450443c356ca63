"""`gateway audit verify|checkpoint|archive`: walk the chain (through its archive files); sign its
head to a file kept elsewhere; move entries past their retention period into signed archive files."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from gateway.auth.checkpoints import sign_checkpoint, verify_checkpoint
from gateway.auth.tokens import Keyring
from gateway.cli.args import CommandFailed, existing_store, settings_of, state_args
from gateway.service import audit_archive
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


def verify_audit(settings: Settings, checkpoint: str | None = None, archive: str | None = None) -> audit.Verdict:
    """The whole chain: the archive files (ARCHIVE, else audit_archive_dir), then the live store."""
    store = existing_store(settings)
    try:
        expected = read_checkpoint(settings, Path(checkpoint)) if checkpoint else None
        folder = Path(archive) if archive else settings.audit_archive_path
        return audit_archive.verify(store, folder, audit_archive.sealer(settings.state_path / "keys"), expected)
    finally:
        store.close()


def cmd_audit_verify(args: argparse.Namespace) -> int:
    verdict = verify_audit(settings_of(args, state_dir=args.state_dir), args.checkpoint, args.archive)
    if verdict.ok:
        moved = f" ({verdict.archived} of them in archive files)" if verdict.archived else ""
        print(f"ok: {verdict.entries} entries{moved}, head {verdict.head}")
        return 0
    print(f"BROKEN at entry {verdict.first_bad_seq}: {verdict.reason}", file=sys.stderr)
    return 1


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    seq, head = write_checkpoint(settings_of(args, state_dir=args.state_dir), Path(args.out))
    print(f"checkpoint at entry {seq}, head {head} -> {args.out}")
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def cmd_audit_archive(args: argparse.Namespace) -> int:
    settings = settings_of(args, state_dir=args.state_dir)
    folder = Path(args.out) if args.out else settings.audit_archive_path
    store = existing_store(settings)
    try:
        before = audit_archive.cutoff(args.before, settings.log_retention_days, settings.zone)
        report = audit_archive.archive(store, folder, before, audit_archive.sealer(settings.state_path / "keys"))
    except audit_archive.ArchiveRefused as exc:
        raise CommandFailed(str(exc)) from None
    finally:
        store.close()
    if report.finished:
        print(f"finished a stopped run: the entries of {report.finished} are now only in the archive")
    if not report.files:
        print(f"nothing to archive before {before}: the store keeps entries from {report.floor + 1} on")
        return 0
    print(f"archived {report.entries} entries (up to entry {report.floor}, appended before {before}) "
          f"into {', '.join(report.files)} in {folder}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    verify = audit.add_parser("verify", help="walk the hash chain; name the first bad entry")
    state_args(verify)
    verify.add_argument("--checkpoint", help="a signed checkpoint file to check against")
    verify.add_argument("--archive", help="the folder of audit archive files (default: audit_archive_dir)")
    verify.set_defaults(func=cmd_audit_verify)
    cp = audit.add_parser("checkpoint", help="write a signed head of the chain to a file")
    state_args(cp)
    cp.add_argument("--out", required=True)
    cp.set_defaults(func=cmd_audit_checkpoint)
    arc = audit.add_parser("archive", help="move entries past their retention period into signed archive files")
    state_args(arc)
    arc.add_argument("--before", type=_day, help="move only entries appended before this day (county time), "
                     "which must lie outside log_retention_days; default: the retention period's start")
    arc.add_argument("--out", help="the archive folder (default: audit_archive_dir)")
    arc.set_defaults(func=cmd_audit_archive)
