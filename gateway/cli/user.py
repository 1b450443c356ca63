"""`gateway user add`: a county's first console user, without a server (logic in console/usercli)."""

from __future__ import annotations

import argparse
import sys

from gateway.cli.args import settings_of, state_args
from gateway.errors import GatewayError
from gateway.statefolder import require_folder


def cmd_user_add(args: argparse.Namespace) -> int:
    from gateway.console.usercli import add_user

    settings = settings_of(args, state_dir=args.state_dir)
    require_folder(settings.state_path)  # a new county's store, yes; a mistyped --state-dir, no
    given = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    try:
        user, password = add_user(settings, args.username,
                                  args.name or args.username, args.org, args.org_name or args.org, args.role, given)
    except GatewayError as exc:
        print(f"gateway: no user added: {exc.detail}", file=sys.stderr)
        return 1
    shown = "" if given is not None else f"; its password, shown once:\n{password}"
    print(f"user {user.username} ({args.role} of {user.org_id}) can sign in at /console/login{shown}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="people of the console").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="create a console user (and its organisation); print its password once")
    state_args(add)
    add.add_argument("--org", required=True, help="organisation id")
    add.add_argument("--org-name", help="organisation name, if it is new (default: the id)")
    add.add_argument("--role", required=True, help="requester, bureau, source, merchant or ops")
    add.add_argument("--name", help="display name (default: the username)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.add_argument("username")
    add.set_defaults(func=cmd_user_add)
