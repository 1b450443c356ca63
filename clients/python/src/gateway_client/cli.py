"""`gateway-client`: the requester's command line (catalog, preview, query, budget, usage, invoice).

Credentials, each from the first place that has it: a flag (`--url`, `--client-id`,
`--client-secret`), the environment (`GATEWAY_URL`, `GATEWAY_CLIENT_ID`,
`GATEWAY_CLIENT_SECRET`), or a credentials file (`--credentials-file` or
`GATEWAY_CREDENTIALS_FILE`, shaped like the demo's `demo-credentials.json`).

Output: an aligned table when stdout is a terminal, CSV otherwise; `--table`, `--csv` or
`--json` choose. Exit status: 0 done, 1 the gateway refused or could not be reached, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from gateway_client import _output as out
from gateway_client._base import credentials_from_file
from gateway_client.answer import Answer
from gateway_client.client import Client
from gateway_client.errors import GatewayError, PolicyViolation

Rendered = tuple[list[str], list[list[Any]], Any]  # columns, rows, the object --json prints
USAGE_COLUMNS = ("committed_at", "dataset", "product_id", "query_id", "cached", "epsilon", "price_minor", "currency")
LINE_COLUMNS = ("line", "kind", "dataset", "product_id", "cached", "quantity", "unit_price_minor", "amount_minor",
                "currency")


class UsageError(Exception):
    """Bad arguments the parser could not catch (missing credentials, an unreadable plan)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with connect(args) as gateway:
            rendered = args.run(gateway, args)
    except UsageError as exc:
        print(f"gateway-client: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"gateway-client: {exc}", file=sys.stderr)
        for reason in exc.reasons if isinstance(exc, PolicyViolation) else ():
            print(f"  - {reason}", file=sys.stderr)
        return 1
    emit(rendered, args, sys.stdout)
    return 0


def connect(args: argparse.Namespace) -> Client:
    env = os.environ
    url = args.url or env.get("GATEWAY_URL")
    client_id = args.client_id or env.get("GATEWAY_CLIENT_ID")
    secret = args.client_secret or env.get("GATEWAY_CLIENT_SECRET")
    path = args.credentials_file or env.get("GATEWAY_CREDENTIALS_FILE")
    if not client_id:
        raise UsageError("no client id: give --client-id or set GATEWAY_CLIENT_ID")
    if path and (not url or not secret):
        try:
            file_url, file_secret = credentials_from_file(path, client_id)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot use the credentials file {path}: {exc}") from None
        url, secret = url or file_url, secret or file_secret
    if not url or not secret:
        raise UsageError("no gateway URL or client secret: give --credentials-file, flags or GATEWAY_* variables")
    return Client(url, client_id, secret)


def emit(rendered: Rendered, args: argparse.Namespace, stream: TextIO) -> None:
    columns, rows, raw = rendered
    fmt = args.format or ("table" if stream.isatty() else "csv")
    if fmt == "json":
        stream.write(out.json_text(raw))
    elif fmt == "csv":
        stream.write(raw if isinstance(raw, str) and args.command == "invoice" else out.csv_table(columns, rows))
    else:
        stream.write(out.text_table(columns, rows))
        for note in getattr(args, "notes", []):
            stream.write(note + "\n")


# -- commands: each returns columns, rows and the JSON form ---------------------------------------

def run_catalog(gw: Client, args: argparse.Namespace) -> Rendered:
    if args.dataset:
        entry = gw.dataset(args.dataset)
        rows = [[c.get("name"), c.get("type"), c.get("group_by"), c.get("aggregate"), c.get("filter"), _domain(c)]
                for c in entry.get("columns", [])]
        return ["column", "type", "group_by", "aggregate", "filter", "categories or bounds"], rows, entry
    items = gw.catalog()
    rows = [[d.get("id"), d.get("status"), d.get("source_department"), d.get("title")] for d in items]
    return ["dataset", "status", "source", "title"], rows, items


def _domain(column: dict[str, Any]) -> str:
    if "categories" in column:
        return ", ".join(str(c) for c in column["categories"])
    bounds = column.get("bounds")
    return f"[{bounds[0]}, {bounds[1]}]" if isinstance(bounds, list) and len(bounds) == 2 else ""


def run_preview(gw: Client, args: argparse.Namespace) -> Rendered:
    sql, plan = _question(args)
    found = gw.preview(args.dataset, sql, plan, epsilon=args.epsilon, delta=args.delta)
    accuracy = found.get("accuracy") or {}
    budget, price = found.get("budget") or {}, found.get("price") or {}
    rows: list[list[Any]] = [
        ["epsilon", found.get("epsilon")], ["delta", found.get("delta")],
        ["price_minor", price.get("price_minor")], ["currency", price.get("currency")],
        ["would_fit", found.get("would_fit")], ["epsilon_remaining", budget.get("epsilon_remaining")],
        ["alpha", accuracy.get("alpha")],
        *([f"halfwidth {col}", width] for col, width in (accuracy.get("columns") or {}).items())]
    return ["field", "value"], rows, found


def run_query(gw: Client, args: argparse.Namespace) -> Rendered:
    sql, plan = _question(args)
    answer = gw.query(args.dataset, sql, plan, epsilon=args.epsilon, delta=args.delta,
                      idempotency_key=args.idempotency_key)
    columns, rows = answer.table(args.intervals)
    args.notes = answer_notes(answer)
    return columns, rows, answer.raw


def answer_notes(answer: Answer) -> list[str]:
    """The lines under a table on a terminal: what the answer cost and how sure it is."""
    budget, usage = answer.budget or {}, answer.usage or {}
    alpha = answer.alpha
    widths = ", ".join(f"{c} ±{out.cell(w)}" if w is not None else f"{c} (no bound)"
                       for c, w in answer.halfwidths.items())
    level = f"{(1 - alpha) * 100:g}%" if alpha is not None else "interval"
    return [
        f"\n{level} half-widths: {widths}",
        f"epsilon spent {answer.epsilon_spent:g}{' (cached answer)' if answer.cached else ''}; "
        f"{budget.get('epsilon_remaining', '?')} of {budget.get('epsilon_limit', '?')} left on "
        f"{answer.dataset} in {budget.get('period', 'this period')}",
        f"price {usage.get('price_minor', '?')} {usage.get('currency', '')} (minor units); "
        f"query_id {answer.query_id}; idempotency key {answer.idempotency_key}",
    ]


def _question(args: argparse.Namespace) -> tuple[str | None, dict[str, Any] | None]:
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    if args.plan is None:
        return sql, None
    try:
        text = sys.stdin.read() if args.plan == "-" else open(args.plan, encoding="utf-8").read()  # noqa: SIM115
        plan = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the plan {args.plan}: {exc}") from None
    if not isinstance(plan, dict):
        raise UsageError("the plan must be a JSON object")
    return sql, plan


def run_budget(gw: Client, args: argparse.Namespace) -> Rendered:
    found = gw.budget()
    columns, rows = out.records_table(found.get("datasets", []),
                                      ("dataset", "epsilon_limit", "epsilon_spent", "epsilon_remaining"))
    args.notes = [f"\nperiod {found.get('period')}"]
    return columns, rows, found


def run_usage(gw: Client, args: argparse.Namespace) -> Rendered:
    items = gw.usage(args.period)
    columns, rows = out.records_table(items, USAGE_COLUMNS)
    return columns, rows, items


def run_invoice(gw: Client, args: argparse.Namespace) -> Rendered:
    if args.format == "csv" or (args.format is None and not sys.stdout.isatty()):
        text = gw.invoice(args.period, format="csv")
        return [], [], text
    found = gw.invoice(args.period)
    columns, rows = out.records_table(found.get("lines", []), LINE_COLUMNS)
    args.notes = [f"\ntotal {found.get('total_minor')} {found.get('currency')} (minor units); "
                  f"invoice {found.get('invoice_id')}, {found.get('status')}"]
    return columns, rows, found


# -- the parser ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    who = common.add_argument_group("credentials (else GATEWAY_URL, GATEWAY_CLIENT_ID, GATEWAY_CLIENT_SECRET)")
    who.add_argument("--url", help="the gateway's base URL")
    who.add_argument("--client-id", help="your client id")
    who.add_argument("--client-secret", help="your client secret (prefer the environment or a file)")
    who.add_argument("--credentials-file", help="a demo-credentials.json-shaped file (or GATEWAY_CREDENTIALS_FILE)")
    shape = common.add_argument_group("output (default: a table on a terminal, CSV otherwise)")
    kinds = shape.add_mutually_exclusive_group()
    for kind in ("table", "csv", "json"):
        kinds.add_argument(f"--{kind}", dest="format", action="store_const", const=kind)

    parser = argparse.ArgumentParser(prog="gateway-client", description=__doc__.split("\n")[0].split(": ", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _command(commands, common, "catalog", run_catalog, "datasets you may query, or one dataset's columns") \
        .add_argument("dataset", nargs="?", help="show this dataset's columns")
    for name, run, what in (("preview", run_preview, "what a query would cost and how accurate; spends nothing"),
                            ("query", run_query, "run a DP query: spends epsilon unless cached")):
        sub = _command(commands, common, name, run, what)
        sub.add_argument("dataset")
        sub.add_argument("sql", nargs="?", help="the SQL, or - to read it from stdin")
        sub.add_argument("--plan", help="a JSON plan file instead of SQL (- for stdin)")
        sub.add_argument("--epsilon", "-e", required=True, help="privacy cost to spend, e.g. 0.5")
        sub.add_argument("--delta", default="0", help="delta (default 0)")
        if name == "query":
            sub.add_argument("--idempotency-key", help="reuse a key to replay an answer instead of paying twice")
            sub.add_argument("--intervals", choices=("halfwidth", "bounds"),
                             help="add each column's interval beside it")
    _command(commands, common, "budget", run_budget, "epsilon limit, spent and remaining per dataset")
    _command(commands, common, "usage", run_usage, "usage records of a month (every page)") \
        .add_argument("--period", help="YYYY-MM (default: this month)")
    _command(commands, common, "invoice", run_invoice, "your invoice for a month") \
        .add_argument("period", help="YYYY-MM")
    return parser


def _command(commands: Any, common: argparse.ArgumentParser, name: str,
             run: Callable[[Client, argparse.Namespace], Rendered], what: str) -> argparse.ArgumentParser:
    sub: argparse.ArgumentParser = commands.add_parser(name, parents=[common], help=what, description=what)
    sub.set_defaults(run=run, notes=[])
    return sub


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
