"""Answers as sent: the JSON body of a release, fresh or from the cache, spliced for speed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gateway.core.accuracy import accuracy_view
from gateway.core.budget import atto_to_float, budget_line, nano_to_float
from gateway.core.plan import Plan, render
from gateway.service.admission import Admitted
from gateway.store import ledger
from gateway.store.db import Tx

ALPHA = 0.05
REPLAYED = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True)
class QueryReply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    log: dict[str, Any] = field(default_factory=dict)  # outcome, epsilon... for the access log


MAX_VIEWS = 8  # distinct phrasings of one stored release kept rendered


def cached_view(ctx: Admitted, found: ledger.StoredRelease) -> str:
    """A stored release renders the same for the same checked plan: render and encode it once
    (measured: render + json of the rows were ~10% of a cached call, in the writer thread).
    Keyed by the CheckedPlan's identity, holding it, so the id cannot be reused meanwhile."""
    memo = found.views.get(id(ctx.checked))
    if memo is not None and memo[0] is ctx.checked:
        return memo[1]
    view = result_view(ctx.plan, found.result, found.accuracy)
    if len(found.views) >= MAX_VIEWS:
        found.views.clear()
    found.views[id(ctx.checked)] = (ctx.checked, view)
    return view


def result_view(plan: Plan, result: dict[str, Any], accuracy: dict[str, Any]) -> str:
    """`"columns": ..., "rows": ..., "accuracy": ...` of an answer, as json.dumps writes them."""
    columns, rows = render(plan, result["columns"], result["rows"])
    part = {"columns": list(columns), "rows": [list(r) for r in rows],
            "accuracy": accuracy_view(plan, result["columns"], result["rows"], accuracy, ALPHA)}
    return json.dumps(part, ensure_ascii=False)[1:-1]


def grant_figures(tx: Tx, ctx: Admitted) -> ledger.Figures:
    """The requester's grant account this period, as charged (its caps before the first charge)."""
    grant = ctx.accounts[0]
    return ledger.account_figures(tx, [grant.name], ctx.period).get(
        grant.name, ledger.Figures(grant.cap_nano, 0, 0, grant.delta_cap_atto))


def grant_line(ctx: Admitted, f: ledger.Figures) -> dict[str, object]:
    return budget_line(ctx.plan.dataset, ctx.period, f.cap_nano, f.spent_nano, f.reserved_nano,
                       (f.delta_cap_atto, f.delta_spent_atto, f.delta_reserved_atto))


def answer_body(tx: Tx, ctx: Admitted, query_id: str, view: str, *,
                 cached: bool, usage: ledger.Usage, snapshot_id: str) -> str:
    """The answer's JSON: its fixed middle (`view`) spliced between what changes per call,
    byte for byte what json.dumps of the whole object writes."""
    head = {"query_id": query_id, "dataset": ctx.plan.dataset}
    tail = {
        "epsilon_spent": 0.0 if cached else nano_to_float(ctx.epsilon_nano),
        "delta_spent": 0.0 if cached else atto_to_float(ctx.delta_atto), "cached": cached,
        "budget": grant_line(ctx, grant_figures(tx, ctx)),
        "usage": {"usage_id": usage.usage_id, "price_minor": usage.price_minor, "currency": usage.currency},
        "policy_version": ctx.policy.version, "snapshot_id": snapshot_id,
    }
    return (json.dumps(head, ensure_ascii=False)[:-1] + ", " + view + ", "
            + json.dumps(tail, ensure_ascii=False)[1:])
