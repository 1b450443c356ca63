"""Read-only views of the ledger: budget, usage, stored releases and the audit verdict."""

from __future__ import annotations

import json
from typing import Any

from gateway.auth.tokens import Principal
from gateway.clock import utc_now_text
from gateway.core.budget import atto_to_float, budget_line, grant_account, nano_to_float, to_atto
from gateway.core.pages import Page, PageRequest, collect
from gateway.runtime.parts import Runtime
from gateway.service import audit_archive
from gateway.service.admission import may_ask_again, usable_grants
from gateway.store import audit, ledger
from gateway.store import grants as store_grants
from gateway.store.db import Row, Tx
from gateway.store.pages import read_page


async def budget(runtime: Runtime, org_id: str, period: str) -> list[dict[str, Any]]:
    """One line per dataset the requester may query: the limit its usable grants give an ad-hoc
    query (the rule admission applies), what is spent and what remains."""
    grants = await runtime.store.read(store_grants.active_grants, org_id, utc_now_text())
    limits: dict[str, int] = {}
    for dataset in sorted({g.dataset for g in grants}):
        usable = usable_grants(grants, dataset, None)
        if usable:
            limits[dataset] = max(g.epsilon_limit_nano for g in usable)
    accounts = {grant_account(org_id, d): d for d in limits}
    used = await runtime.store.read(ledger.account_figures, sorted(accounts), period)
    lines = []
    for account, dataset in sorted(accounts.items(), key=lambda kv: kv[1]):
        f = used.get(account, ledger.Figures(0, 0, 0))
        policy = runtime.registry.policies.get(dataset)
        delta_cap = to_atto(policy.delta_per_grant) if policy is not None else 0
        # The grant's limits now; the stored caps catch up at the next charge.
        line = budget_line(dataset, period, limits[dataset], f.spent_nano, f.reserved_nano,
                           (delta_cap, f.delta_spent_atto, f.delta_reserved_atto))
        del line["period"]
        lines.append(line)
    return lines


_USAGE_KEYS = ("usage_id", "query_id", "org_id", "client_id", "dataset", "product_id", "period", "cached",
               "epsilon_nano", "price_minor", "currency", "price_version", "committed_at", "purpose_class",
               "delta_atto")


def _usage_item(row: Row) -> dict[str, Any]:
    item = dict(zip(_USAGE_KEYS, row, strict=True))
    item["cached"] = bool(item["cached"])
    item["epsilon"] = nano_to_float(int(item.pop("epsilon_nano")))
    item["delta"] = atto_to_float(int(item.pop("delta_atto")))
    item["price_minor"] = int(item["price_minor"])
    return item


def _usage_page(tx: Tx, org_id: str | None, period: str, page: PageRequest) -> Page[dict[str, Any]]:
    where, params = ("period = ?", (period,)) if org_id is None else ("period = ? AND org_id = ?", (period, org_id))
    return read_page(tx, ", ".join(_USAGE_KEYS), "usage_records", where, params, ("committed_at", "usage_id"), page,
                     _usage_item)


async def usage(runtime: Runtime, org_id: str | None, period: str) -> list[dict[str, Any]]:
    """Requesters see their own records; the bureau sees all (org_id None). In commit order."""
    return await runtime.store.read(lambda tx: collect(lambda page: _usage_page(tx, org_id, period, page)))


async def usage_page(runtime: Runtime, org_id: str | None, period: str, page: PageRequest) -> Page[dict[str, Any]]:
    """One page of `usage`."""
    return await runtime.store.read(_usage_page, org_id, period, page)


async def audit_entries_page(runtime: Runtime, page: PageRequest) -> Page[dict[str, Any]]:
    """The audit log in chain order, a page at a time (the bureau's)."""
    return await runtime.store.read(audit.entries_page, page)


def _release_summary(row: Row) -> dict[str, Any]:
    query_id, dataset, product_id, epsilon_nano, policy_version, snapshot_id, created_at = row
    return {"query_id": query_id, "dataset": dataset, "product_id": product_id,
            "epsilon_spent": nano_to_float(int(epsilon_nano)), "policy_version": policy_version,
            "snapshot_id": snapshot_id, "created_at": created_at}


def _releases_page(tx: Tx, org_id: str, page: PageRequest) -> Page[dict[str, Any]]:
    return read_page(tx, "query_id, dataset, product_id, epsilon_nano, policy_version, snapshot_id, created_at",
                     "releases", "org_id = ?", (org_id,), ("created_at", "query_id"), page, _release_summary)


async def releases_page(runtime: Runtime, org_id: str, page: PageRequest) -> Page[dict[str, Any]]:
    """A requester's own stored releases, oldest first: what was answered, not the answers."""
    return await runtime.store.read(_releases_page, org_id, page)


async def verify_audit(runtime: Runtime) -> dict[str, Any]:
    """The whole chain, through the archive files into the live store."""
    verdict = await audit_archive.verify_runtime(runtime)
    return verdict.as_dict()


def _release(tx: Tx, org_id: str, query_id: str) -> tuple[str | None, dict[str, Any]] | None:
    """(product id, the body) of a requester's own release: the answer as it was first sent."""
    row = tx.one("SELECT query_id, dataset, result, accuracy, epsilon_nano, policy_version, snapshot_id, created_at, "
                 "product_id, answer, delta_atto FROM releases WHERE query_id = ? AND org_id = ?", (query_id, org_id))
    if row is None:
        return None
    if row[9] is not None:
        sent = json.loads(row[9])  # columns, rows and accuracy as answered: no helper, LIMIT applied
        shown: dict[str, Any] = {**sent, "release": {"columns": sent["columns"], "rows": sent["rows"]}}
    else:  # stored before answers were kept (migration 0007): the canonical release
        shown = {"release": json.loads(row[2]), "accuracy": json.loads(row[3])}
    return row[8], {"query_id": row[0], "dataset": row[1], **shown, "epsilon_spent": nano_to_float(int(row[4])),
                    "delta_spent": atto_to_float(int(row[10])), "policy_version": row[5], "snapshot_id": row[6],
                    "created_at": row[7]}


async def release(runtime: Runtime, who: Principal, query_id: str) -> dict[str, Any] | None:
    """A requester's own stored release, while asking it again would be allowed (R-AU-10);
    another's answers exactly like a missing one."""
    found = await runtime.store.read(_release, who.org_id, query_id)
    if found is None:
        return None
    product_id, body = found
    await may_ask_again(runtime, who, body["dataset"], product_id)
    return body
