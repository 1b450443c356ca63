"""Suspending, resuming and withdrawing datasets, and publishing new policy versions.

Both write the store, which every replica polls; this replica's registry is refreshed before
the call returns, and the ledger re-reads the dataset's status in the transaction that stores a
release, so a release in flight when a suspension commits is neither stored nor sent (R-BU-07).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.derived import base_of, derived_from, inheritance_problems
from gateway.core.policy import DatasetPolicy
from gateway.core.policy_parse import parse_policy
from gateway.core.policydiff import policy_diff
from gateway.core.pricing import plan_of_policy
from gateway.errors import Located, NotFound, PolicyInvalid, Unprocessable
from gateway.policyfiles import located, policy_schema
from gateway.runtime.parts import Runtime
from gateway.service.pools import pool_change_problem
from gateway.store import circulation as store_circulation
from gateway.store import pricing as store_pricing
from gateway.store.db import Store


def may_manage(runtime: Runtime, who: Principal, dataset: str) -> DatasetPolicy:
    """The bureau manages every dataset, a source department its own (R-AU-07); else 404."""
    policy = runtime.registry.policies.get(dataset)
    if policy is None or not (who.has("bureau") or (who.has("source") and policy.owner == who.org_id)):
        raise NotFound(f"no dataset {dataset!r}")
    return policy


async def change_status(runtime: Runtime, who: Principal, dataset: str, action: str) -> dict[str, Any]:
    may_manage(runtime, who, dataset)
    result = await runtime.store.write(store_circulation.change_status, dataset, action, who.client_id,
                                       derived_from(runtime.registry.policies, dataset))
    await runtime.refresh()  # this replica at once; the others at their next poll
    return result


async def current_policy(runtime: Runtime, who: Principal, dataset: str) -> dict[str, Any]:
    may_manage(runtime, who, dataset)

    def read(tx: Any) -> dict[str, Any]:
        found = store_circulation.current_policy(tx, dataset)
        assert found is not None
        owner, version, document = found
        return {"dataset": dataset, "owner": owner, "version": version, "document": document,
                "versions": store_circulation.policy_versions(tx, dataset)}
    return await runtime.store.read(read)


def validate(text: str, dataset: str, filename: str,
             known: Mapping[str, DatasetPolicy] | None = None) -> DatasetPolicy:
    """Parse and validate; the document must be about the dataset it is published for, and a
    view must not contradict its base as `known` has it (R-DP-18)."""
    policy = parse_policy(text, filename, policy_schema())
    if policy.dataset != dataset:
        raise PolicyInvalid([Located(filename, 1, 1, f"the policy is for {policy.dataset!r}, not {dataset!r}")])
    base = base_of(policy)
    if known is not None and base is not None and base in known:
        wrong = inheritance_problems(policy, known[base])
        if wrong:
            raise PolicyInvalid(located(text, filename, wrong))
    return policy


def problems_of(exc: PolicyInvalid) -> list[dict[str, Any]]:
    return [{"line": p.line, "column": p.column, "message": p.message} for p in exc.problems]


async def publish_policy(runtime: Runtime, who: Principal, dataset: str, text: str,
                         dry_run: bool) -> dict[str, Any]:
    """The bureau's new policy version: refused with every located problem, audited either way."""
    if dataset not in runtime.registry.policies:
        raise NotFound(f"no dataset {dataset!r}")
    try:
        policy = validate(text, dataset, "<request body>", runtime.registry.policies)
    except PolicyInvalid as exc:
        problems = problems_of(exc)
        await runtime.store.write(store_circulation.record_policy_rejection, dataset, who.client_id,
                                  [str(p) for p in exc.problems])
        raise Unprocessable("the policy does not validate", extra={"problems": problems}) from None
    found = await runtime.store.read(store_circulation.current_policy, dataset)
    problem = await runtime.store.read(pool_change_problem, found[2] if found else {}, policy, text, "<request body>")
    if problem is not None:
        await runtime.store.write(store_circulation.record_policy_rejection, dataset, who.client_id, [str(problem)])
        raise Unprocessable("the policy does not validate", extra={"problems": problems_of(PolicyInvalid([problem]))})
    result = _outcome(dataset, found, policy)
    plan = plan_of_policy(policy.document["pricing"])
    await runtime.store.read(store_pricing.check_price, f"dataset:{dataset}", plan)  # a dry run says so too
    if not dry_run and result["changes"]:
        await runtime.store.write(store_pricing.publish_policy_within_cap, dataset, policy.owner, policy.version,
                                  dict(policy.document), who.client_id)
        await runtime.refresh()
        result["published"] = True
    return result


def _outcome(dataset: str, found: tuple[str, str, dict[str, Any]] | None, policy: DatasetPolicy) -> dict[str, Any]:
    old_version, old_doc = (found[1], found[2]) if found else (None, {})
    return {"dataset": dataset, "previous_version": old_version, "version": policy.version,
            "changes": policy_diff(old_doc, dict(policy.document)), "published": False}


def apply_policy_file(store: Store, path: Path, actor: str, dry_run: bool) -> dict[str, Any]:
    """`gateway policy apply FILE`: the same checks, diff and audit as the API, on the store."""
    text = path.read_text(encoding="utf-8")
    try:
        policy = parse_policy(text, str(path), policy_schema())
    except PolicyInvalid as exc:
        dataset = path.stem
        store.run_sync(store_circulation.record_policy_rejection, dataset, actor, [str(p) for p in exc.problems])
        raise
    found = store.run_sync(store_circulation.current_policy, policy.dataset, write=False)
    problem = store.run_sync(pool_change_problem, found[2] if found else {}, policy, text, str(path), write=False)
    if problem is not None:
        store.run_sync(store_circulation.record_policy_rejection, policy.dataset, actor, [str(problem)])
        raise PolicyInvalid([problem])
    result = _outcome(policy.dataset, found, policy)
    store.run_sync(store_pricing.check_price, f"dataset:{policy.dataset}", plan_of_policy(policy.document["pricing"]),
                   write=False)
    if not dry_run and result["changes"]:
        store.run_sync(store_pricing.publish_policy_within_cap, policy.dataset, policy.owner, policy.version,
                       dict(policy.document), actor)
        result["published"] = True
    return result
