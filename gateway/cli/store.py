"""`gateway store migrate --to DSN`: copy a SQLite state folder's store into an empty PostgreSQL."""

from __future__ import annotations

import argparse
import sys

from gateway.cli.args import settings_of, state_args


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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = sub.add_parser("store", help="the store").add_subparsers(dest="action", required=True)
    move = store.add_parser("migrate", help="copy STATE_DIR/gateway.db into an empty PostgreSQL store")
    state_args(move)
    move.add_argument("--to", required=True, metavar="DSN", help="the PostgreSQL DSN to fill")
    move.set_defaults(func=cmd_store_migrate)
