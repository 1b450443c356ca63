"""`gateway report annual --year YYYY`: the yearly disclosure as JSON, CSV or printable HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.args import existing_store, settings_of, state_args
from gateway.core.annual_render import RENDERERS
from gateway.errors import GatewayError
from gateway.service.report import annual_for_cli
from gateway.settings import Settings


def annual(settings: Settings, year: str, fmt: str) -> bytes:
    """The same bytes as `GET /v1/reports/annual/{year}` (ended periods are closed first)."""
    store = existing_store(settings)
    try:
        return annual_for_cli(store, settings, year, fmt)
    finally:
        store.close()


def cmd_report_annual(args: argparse.Namespace) -> int:
    try:
        body = annual(settings_of(args, state_dir=args.state_dir), args.year, args.format)
    except GatewayError as exc:
        print(f"gateway: {exc.detail}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_bytes(body)
    else:
        sys.stdout.buffer.write(body)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="disclosures").add_subparsers(dest="report", required=True)
    annual_cmd = report.add_parser("annual", help="the yearly disclosure (closing ended months first)")
    state_args(annual_cmd)
    annual_cmd.add_argument("--year", required=True, metavar="YYYY")
    annual_cmd.add_argument("--format", choices=sorted(RENDERERS), default="json")
    annual_cmd.add_argument("--out", help="write to this file instead of standard output")
    annual_cmd.set_defaults(func=cmd_report_annual)
