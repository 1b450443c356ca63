"""The `gateway` command: serve, demo data, policy check, keys, audit, store migration."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from gateway.cli import audit, client, demo, invoice, keys, policy, receipt, report, serve, store, user
from gateway.cli.args import CommandFailed
from gateway.errors import GatewayError, PolicyInvalid
from gateway.settings import SettingsError
from gateway.statefolder import StateFolderBusy, StateMissing
from gateway.store.schema import StoreMissing

GROUPS = (serve, demo, policy, invoice, report, client, user, keys, audit, store, receipt)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, ValueError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except (CommandFailed, StateMissing, StoreMissing, StateFolderBusy) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except GatewayError as exc:  # a refusal of the store's own rules (an existing client id...)
        print(f"gateway: {exc.detail}", file=sys.stderr)
        return 1
    except OSError as exc:  # a missing --config or input file, a port already bound
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"gateway: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except PolicyInvalid as exc:
        print("gateway: refusing to start, a policy is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2


def run() -> None:
    """The installed `gateway` command: `main`, dying quietly of SIGPIPE when its reader goes
    (`gateway ... | head`). Only here: in a longer-lived caller (the tests) the default action
    would make any later write to a closed socket kill that whole process."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    run()
