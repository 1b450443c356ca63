"""`gateway policy check PATH` and `gateway policy apply FILE`: validate, diff and publish policies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli.args import CommandFailed, existing_store, settings_of, state_args
from gateway.core.policydiff import render_diff
from gateway.errors import PolicyInvalid
from gateway.service.circulation import apply_policy_file
from gateway.settings import Settings

CLI_ACTOR = "cli:bureau"


def apply_policy(settings: Settings, path: Path, dry_run: bool) -> int:
    """Validate (every problem located), show the difference, publish unless a dry run; audited."""
    if not path.is_file():
        raise CommandFailed(f"no policy file at {path}")
    store = existing_store(settings)
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
    return apply_policy(settings_of(args, state_dir=args.state_dir), Path(args.file), args.dry_run)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="dataset policies").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", help="validate policy files, reporting every located error")
    check.add_argument("path")
    check.set_defaults(func=cmd_policy_check)
    apply = policy.add_parser("apply", help="publish a policy file as the dataset's new version (diff shown)")
    state_args(apply)
    apply.add_argument("file")
    apply.add_argument("--dry-run", action="store_true", help="validate and show the difference only")
    apply.set_defaults(func=cmd_policy_apply)
