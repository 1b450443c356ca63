"""`gateway store migrate|backup|restore`: move a SQLite store to PostgreSQL; back it up online and
restore it into an empty state folder (PostgreSQL: pg_dump, see docs/operations.md)."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Any

from gateway.auth.checkpoints import sign_checkpoint, verify_checkpoint
from gateway.auth.tokens import Keyring
from gateway.cli.args import settings_of, state_args
from gateway.store import audit
from gateway.store.backup import BackupError, Checkpointer, backup, restore
from gateway.store.db import SqliteStore
from gateway.store.schema import migrate


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from gateway.store.copy import StoreMigrationError, migrate_store

    settings = settings_of(args, state_dir=args.state_dir)
    try:
        report = migrate_store(settings.state_path, args.to)
    except StoreMigrationError as exc:
        print(f"gateway: not migrated: {exc}", file=sys.stderr)
        return 1
    for table, rows in report.rows.items():
        print(f"copied\t{table}\t{rows}")
    for period, (cap, spent, reserved) in report.budget_periods.items():
        print(f"budget\t{period}\tcap_nano={cap}\tspent_nano={spent}\treserved_nano={reserved}")
    print(f"ok: audit chain verified on the target: {report.audit_entries} entries, head {report.audit_head}")
    return 0


def _checkpointer() -> Checkpointer:
    def sign(keys: Path, seq: int, head: str) -> dict[str, Any]:
        found = Keyring(keys).signing_keys()
        if not found:
            raise BackupError(f"{keys} holds no signing key")
        return sign_checkpoint(found[-1], seq, head)

    def verify(keys: Path, checkpoint: dict[str, Any]) -> tuple[int, str]:
        return verify_checkpoint(checkpoint, Keyring(keys).signing_keys())

    def verify_chain(db: Path, expected: tuple[int, str]) -> tuple[bool, int, str]:
        store = SqliteStore(db)
        try:
            store.run_sync(migrate)  # a backup of an older release meets today's schema
            verdict = store.run_sync(audit.verify, expected, write=False)
        finally:
            store.close()
        return verdict.ok, verdict.entries, verdict.reason

    return Checkpointer(sign, verify, verify_chain)


def cmd_store_backup(args: argparse.Namespace) -> int:
    settings = settings_of(args, state_dir=args.state_dir)
    if settings.store_dsn:
        print("gateway: the store is PostgreSQL: back it up with pg_dump (docs/operations.md)", file=sys.stderr)
        return 1
    try:
        done = backup(settings.state_path, Path(args.to), _checkpointer(), with_data=not args.no_data)
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"gateway: not backed up: {exc}", file=sys.stderr)
        return 1
    print(f"ok: backup of {settings.state_path} -> {args.to}: {done['files']} files, "
          f"audit chain at entry {done['entries']} (head {done['head'][:16]}…), checkpoint signed")
    return 0


def cmd_store_restore(args: argparse.Namespace) -> int:
    target = Path(args.state_dir)
    try:
        done = restore(Path(args.file), target, _checkpointer())
    except (BackupError, OSError, sqlite3.Error) as exc:
        print(f"gateway: not restored: {exc}", file=sys.stderr)
        return 1
    print(f"ok: restored into {target}: {done['files']} files; the audit chain verifies against the signed "
          f"checkpoint ({done['entries']} entries, head {done['head'][:16]}…); serve it with --state-dir {target}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = sub.add_parser("store", help="the store").add_subparsers(dest="action", required=True)
    move = store.add_parser("migrate", help="copy STATE_DIR/gateway.db into an empty PostgreSQL store")
    state_args(move)
    move.add_argument("--to", required=True, metavar="DSN", help="the PostgreSQL DSN to fill")
    move.set_defaults(func=cmd_store_migrate)
    save = store.add_parser("backup", help="an online backup of STATE_DIR (store, keys, data) into one file")
    state_args(save)
    save.add_argument("--to", required=True, metavar="FILE", help="the backup file to write (mode 0600)")
    save.add_argument("--no-data", action="store_true", help="leave the dataset files and snapshots out")
    save.set_defaults(func=cmd_store_backup)
    back = store.add_parser("restore", help="restore a backup into an empty state folder, verifying it first")
    back.add_argument("file", help="the backup file")
    back.add_argument("--state-dir", required=True, help="the new (or empty) state folder")
    back.set_defaults(func=cmd_store_restore)
