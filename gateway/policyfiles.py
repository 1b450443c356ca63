"""Reading policy files from disk: the I/O edge of `core.policy`."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from gateway.core.policy import DatasetPolicy
from gateway.core.policy_parse import parse_policy
from gateway.errors import Located, PolicyInvalid

_HERE = Path(__file__).resolve().parent


def shipped_policies_dir() -> Path:
    """The demo county's policies: beside the package in a checkout, inside it in a wheel."""
    for candidate in (_HERE.parent / "policies", _HERE / "_policies"):
        if (candidate / "policy.schema.json").is_file():
            return candidate
    raise FileNotFoundError("the shipped policies folder is missing")


@cache
def policy_schema() -> dict[str, Any]:
    with open(shipped_policies_dir() / "policy.schema.json", encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def policy_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    return [path]


def load_policy_file(path: Path) -> DatasetPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyInvalid([Located(str(path), 1, 1, f"cannot read: {exc}")]) from None
    return parse_policy(text, str(path), policy_schema())


def load_policies(path: Path) -> dict[str, DatasetPolicy]:
    """Every policy under `path`, or PolicyInvalid with the problems of all files."""
    problems: list[Located] = []
    policies: dict[str, DatasetPolicy] = {}
    files = policy_files(path)
    if not files:
        raise PolicyInvalid([Located(str(path), 1, 1, "no policy files (*.yaml) found")])
    for file in files:
        try:
            policy = load_policy_file(file)
        except PolicyInvalid as exc:
            problems.extend(exc.problems)
            continue
        if policy.dataset in policies:
            problems.append(Located(str(file), 1, 1, f"dataset {policy.dataset!r} is declared twice"))
        policies[policy.dataset] = policy
    if problems:
        raise PolicyInvalid(problems)
    return policies
