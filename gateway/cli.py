"""The `gateway` command: serve, demo data, policy check, keys, audit, store migration."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from gateway.errors import PolicyInvalid
from gateway.settings import Settings, SettingsError, load_settings


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return load_settings(getattr(args, "config", None), environ=os.environ, values=values)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import serve

    settings = _settings(args, host=args.host, port=args.port, state_dir=args.state_dir)
    logging.basicConfig(level=settings.log_level.upper(), format="%(message)s", stream=sys.stderr)
    return _run_loop(serve(settings, demo=args.demo))


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where installed (a faster event loop, same semantics); asyncio's own otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from gateway.data.demo import DEFAULT_SEED, generate

    seed = DEFAULT_SEED if args.seed is None else args.seed
    paths = generate(Path(args.out), seed=seed, scale=args.scale)
    for dataset, path in sorted(paths.items()):
        print(f"{dataset}\t{path}")
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.policyfiles import load_policies

    try:
        policies = load_policies(Path(args.path))
    except PolicyInvalid as exc:
        for problem in sorted(exc.problems, key=lambda p: (p.file, p.line, p.column)):
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    for dataset, policy in sorted(policies.items()):
        print(f"ok\t{dataset}\t{policy.version[:16]}")
    return 0


def cmd_policy_apply(args: argparse.Namespace) -> int:
    from gateway.circulationcli import apply_policy

    return apply_policy(_settings(args, state_dir=args.state_dir), Path(args.file), args.dry_run)


def cmd_invoice(args: argparse.Namespace) -> int:
    from gateway.circulationcli import print_invoices

    return print_invoices(_settings(args, state_dir=args.state_dir), args.period, args.org, args.csv)


def cmd_client_add(args: argparse.Namespace) -> int:
    from gateway.clientcli import add_client

    secret = add_client(_settings(args, state_dir=args.state_dir), args.org, args.org_name or args.org,
                        args.role, args.client_id)
    print(f"client {args.client_id} ({args.role} of {args.org}); its secret, shown once:\n{secret}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from gateway.keys import rotate_keys

    kid = rotate_keys(_settings(args, state_dir=args.state_dir))
    print(f"new signing key {kid}; older keys verify until their tokens expire")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.auditcli import verify_audit

    verdict = verify_audit(_settings(args, state_dir=args.state_dir), args.checkpoint)
    if verdict.ok:
        print(f"ok: {verdict.entries} entries, head {verdict.head}")
        return 0
    print(f"BROKEN at entry {verdict.first_bad_seq}: {verdict.reason}", file=sys.stderr)
    return 1


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    from gateway.auditcli import write_checkpoint

    seq, head = write_checkpoint(_settings(args, state_dir=args.state_dir), Path(args.out))
    print(f"checkpoint at entry {seq}, head {head} -> {args.out}")
    return 0


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from gateway.storemigrate import StoreMigrationError, migrate_store

    settings = _settings(args, state_dir=args.state_dir)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", help="TOML settings file")
    serve.add_argument("--demo", action="store_true", help="serve the demo county")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--state-dir")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo-data", help="write the demo county's Parquet datasets")
    demo.add_argument("--out", required=True)
    demo.add_argument("--seed", type=int, default=None, help="default: the demo seed")
    demo.add_argument("--scale", type=float, default=1.0)
    demo.set_defaults(func=cmd_demo_data)

    policy = sub.add_parser("policy", help="dataset policies").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", help="validate policy files, reporting every located error")
    check.add_argument("path")
    check.set_defaults(func=cmd_policy_check)
    apply = policy.add_parser("apply", help="publish a policy file as the dataset's new version (diff shown)")
    _state_args(apply)
    apply.add_argument("file")
    apply.add_argument("--dry-run", action="store_true", help="validate and show the difference only")
    apply.set_defaults(func=cmd_policy_apply)

    invoice = sub.add_parser("invoice", help="requesters' invoices for a month (closing ended months)")
    _state_args(invoice)
    invoice.add_argument("--period", required=True, metavar="YYYY-MM")
    invoice.add_argument("--org", help="one requester organisation only")
    invoice.add_argument("--csv", action="store_true", help="CSV instead of one JSON document per line")
    invoice.set_defaults(func=cmd_invoice)

    client = sub.add_parser("client", help="clients").add_subparsers(dest="action", required=True)
    add = client.add_parser("add", help="register a client (and its organisation); print its secret once")
    _state_args(add)
    add.add_argument("--org", required=True, help="organisation id")
    add.add_argument("--org-name", help="organisation name (default: the id)")
    add.add_argument("--role", required=True, help="requester, bureau, source, merchant or ops")
    add.add_argument("client_id")
    add.set_defaults(func=cmd_client_add)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(dest="action", required=True)
    rotate = keys.add_parser("rotate", help="add a new signing key; old ones keep verifying")
    _state_args(rotate)
    rotate.set_defaults(func=cmd_keys_rotate)

    audit = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    verify = audit.add_parser("verify", help="walk the hash chain; name the first bad entry")
    _state_args(verify)
    verify.add_argument("--checkpoint", help="a signed checkpoint file to check against")
    verify.set_defaults(func=cmd_audit_verify)
    cp = audit.add_parser("checkpoint", help="write a signed head of the chain to a file")
    _state_args(cp)
    cp.add_argument("--out", required=True)
    cp.set_defaults(func=cmd_audit_checkpoint)

    store = sub.add_parser("store", help="the store").add_subparsers(dest="action", required=True)
    move = store.add_parser("migrate", help="copy STATE_DIR/gateway.db into an empty PostgreSQL store")
    _state_args(move)
    move.add_argument("--to", required=True, metavar="DSN", help="the PostgreSQL DSN to fill")
    move.set_defaults(func=cmd_store_migrate)
    return parser


def _state_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--state-dir")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return int(args.func(args))
    except (SettingsError, ValueError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except PolicyInvalid as exc:
        print("gateway: refusing to start, a policy is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
