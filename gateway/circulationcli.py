"""`gateway invoice --period` and `gateway policy apply FILE`: the bureau's tools on the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.core.billing import invoice_csv
from gateway.core.policydiff import render_diff
from gateway.errors import GatewayError, PolicyInvalid
from gateway.service.billing import invoices_for_cli
from gateway.service.circulation import apply_policy_file
from gateway.settings import Settings
from gateway.store.db import open_store

CLI_ACTOR = "cli:bureau"


def print_invoices(settings: Settings, period: str, org_id: str | None, as_csv: bool) -> int:
    """Every requester's invoice for a period (ended periods are closed first), one per line."""
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2)
    try:
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
            sys.stdout.write(invoice_csv(doc).decode())
        else:
            sys.stdout.write(body.decode() + "\n")
    print(f"{len(found)} invoice(s) for {period}, total {grand_total} minor units ({settings.currency})",
          file=sys.stderr)
    return 0


def apply_policy(settings: Settings, path: Path, dry_run: bool) -> int:
    """Validate (every problem located), show the difference, publish unless a dry run; audited."""
    store = open_store(settings.store_dsn, settings.state_path, pool_size=2)
    try:
        result = apply_policy_file(store, path, CLI_ACTOR, dry_run)
    except PolicyInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found; nothing published", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(render_diff(result["changes"]))
    if result["published"]:
        print(f"published {result['dataset']} version {result['version']} "
              f"(was {result['previous_version']}); replicas serve it from their next poll")
    elif not result["changes"]:
        print(f"{result['dataset']}: already at version {result['version']}; nothing published")
    else:
        print(f"dry run: {result['dataset']} version {result['version']} not published")
    return 0
