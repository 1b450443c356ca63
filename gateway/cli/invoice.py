"""`gateway invoice --period`: requesters' invoices for a month, as JSON lines or CSV."""

from __future__ import annotations

import argparse
import json
import sys

from gateway.cli.args import CommandFailed, existing_store, settings_of, state_args
from gateway.core.settlement import settled_csv
from gateway.errors import GatewayError
from gateway.service.billing import invoices_for_cli
from gateway.settings import Settings
from gateway.store import requesters
from gateway.store.db import Store

CLI_ACTOR = "cli:bureau"


def print_invoices(settings: Settings, period: str, org_id: str | None, as_csv: bool) -> int:
    """Every requester's invoice for a period (ended periods are closed first), one per line."""
    store = existing_store(settings)
    try:
        if org_id is not None:
            _require_requester(store, org_id)
        found = invoices_for_cli(store, settings, period, org_id)
    except GatewayError as exc:
        print(f"gateway: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        store.close()
    grand_total = 0
    for org, body in sorted(found.items()):
        doc = json.loads(body)
        grand_total += doc["total_minor"]
        if as_csv:
            sys.stdout.write(f"# {org}\n" if org_id is None else "")
            sys.stdout.write(settled_csv(doc).decode())
        else:
            sys.stdout.write(body.decode() + "\n")
    print(f"{len(found)} invoice(s) for {period}, total {grand_total} minor units ({settings.currency})",
          file=sys.stderr)
    return 0


def _require_requester(store: Store, org_id: str) -> None:
    org = store.run_sync(requesters.get_org, org_id, write=False)
    if org is None:
        raise CommandFailed(f"no organisation {org_id!r} in this installation")
    if org.kind != "requester":
        raise CommandFailed(f"{org_id!r} is a {org.kind}, not a requester: only requesters are invoiced")


def cmd_invoice(args: argparse.Namespace) -> int:
    return print_invoices(settings_of(args, state_dir=args.state_dir), args.period, args.org, args.csv)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    invoice = sub.add_parser("invoice", help="requesters' invoices for a month (closing ended months)")
    state_args(invoice)
    invoice.add_argument("--period", required=True, metavar="YYYY-MM")
    invoice.add_argument("--org", help="one requester organisation only")
    invoice.add_argument("--csv", action="store_true", help="CSV instead of one JSON document per line")
    invoice.set_defaults(func=cmd_invoice)
