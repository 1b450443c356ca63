"""Reading policy files from disk: the I/O edge of `core.policy`."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from gateway.core.derived import base_of, effective_policies, inheritance_problems
from gateway.core.policy import DatasetPolicy
from gateway.core.policy_parse import parse_policy
from gateway.core.policy_yaml import Problems, compose_strict
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
    where: dict[str, Path] = {}
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
        where[policy.dataset] = file
    if not problems:
        problems = derived_problems(policies, lambda dataset: where[dataset])
    if problems:
        raise PolicyInvalid(problems)
    return policies


def derived_problems(policies: dict[str, DatasetPolicy], file_of: Callable[[str], Path | str]) -> list[Located]:
    """Views whose declaration contradicts their base (core.derived), located in the view's file;
    a view whose base is not among `policies` is checked where the base is known (publishing)."""
    enforced = effective_policies(policies)
    found: list[Located] = []
    for name, policy in sorted(policies.items()):
        base = base_of(policy)
        if base is None or base not in enforced:
            continue
        wrong = inheritance_problems(policy, enforced[base])
        if wrong:
            file = file_of(name)
            found.extend(located(Path(file).read_text(encoding="utf-8"), str(file), wrong))
    return found


def located(text: str, filename: str, wrong: list[tuple[tuple[str, ...], str]]) -> list[Located]:
    """Problems found by path in a policy document, at their line and column in its text."""
    problems = Problems(filename, compose_strict(text))
    for at, message in wrong:
        problems.add(at, message)
    return problems.items
