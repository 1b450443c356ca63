"""Credit notes (issue 19 point 8): the bureau corrects invoiced usage, on the invoice now open.

A note names what it corrects — `usage_ids`, or `invoice` `{"period", "line"}` of a closed invoice
— and credits at most what that usage was billed net of earlier credits (`amount_minor` may be
left out: all that is left). It takes the usage's dataset, product, month, currency, policy
version and merchant, so revenue shares split it as they split that usage. With an
`Idempotency-Key` a retried POST answers the first note byte for byte and credits nothing more;
the key is claimed in the transaction that issues the note, so a refused request leaves it free.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from gateway.auth.tokens import Principal
from gateway.core.billing import CreditItem
from gateway.core.credits import allocate, creditable
from gateway.errors import InvalidRequest, NotFound
from gateway.runtime.parts import Runtime
from gateway.service.billing import check_period, current_period
from gateway.store import credits as store_credits
from gateway.store import idempotency
from gateway.store.db import Tx

FIELDS = ("org_id", "usage_ids", "invoice", "amount_minor", "reason", "dataset", "product_id", "refers_to_period")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
MAX_USAGE_IDS = 1000


@dataclass(frozen=True)
class Issued:
    status: int
    body: bytes
    replayed: bool


@dataclass(frozen=True)
class _Request:
    org_id: str
    usage_ids: tuple[str, ...] | None
    invoice: tuple[str, int] | None
    amount: int | None
    reason: str
    expect: dict[str, Any]  # dataset, product_id, refers_to_period when given: must match the usage


def _parse(body: dict[str, Any]) -> _Request:
    org_id, reason, amount = body.get("org_id"), body.get("reason"), body.get("amount_minor")
    if not isinstance(org_id, str) or not _ID.match(org_id):
        raise InvalidRequest("org_id must be an organisation id")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidRequest("reason must be text of 1 to 500 characters")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 10**12):
        raise InvalidRequest("amount_minor must be a positive whole number of minor units")
    if ("usage_ids" in body) == ("invoice" in body):
        raise InvalidRequest("name what the note corrects: usage_ids, or invoice {period, line}")
    usage_ids, invoice = None, None
    if "usage_ids" in body:
        ids = body["usage_ids"]
        if not isinstance(ids, list) or not 0 < len(ids) <= MAX_USAGE_IDS or \
                not all(isinstance(i, str) and _ID.match(i) for i in ids):
            raise InvalidRequest(f"usage_ids must be a list of 1 to {MAX_USAGE_IDS} usage ids")
        usage_ids = tuple(ids)
    else:
        ref = body["invoice"]
        if not isinstance(ref, dict) or set(ref) != {"period", "line"} or not isinstance(ref["period"], str) \
                or isinstance(ref["line"], bool) or not isinstance(ref["line"], int):
            raise InvalidRequest("invoice must be {\"period\": \"YYYY-MM\", \"line\": n}")
        invoice = (check_period(ref["period"]), ref["line"])
    expect = {k: body[k] for k in ("dataset", "product_id", "refers_to_period") if body.get(k) is not None}
    return _Request(org_id, usage_ids, invoice, amount, reason.strip(), expect)


async def issue_credit(runtime: Runtime, who: Principal, body: dict[str, Any], idem_key: str | None,
                       fingerprint: str) -> Issued:
    request = _parse(body)
    now = current_period(runtime.settings)
    return await runtime.store.write(_issue, request, who, idem_key, fingerprint,
                                     runtime.settings.idempotency_ttl_hours, now)


def _issue(tx: Tx, request: _Request, who: Principal, idem_key: str | None, fingerprint: str, ttl_hours: int,
           open_period: str) -> Issued:
    if idem_key:
        replay = idempotency.claim(tx, who.org_id, "credit-note:" + idem_key, fingerprint, ttl_hours)
        if replay is not None:
            return Issued(replay.status, replay.body.encode(), True)
    if not store_credits.org_exists(tx, request.org_id):
        raise NotFound("no such organisation")
    if request.usage_ids is not None:
        usage = store_credits.invoiced_usage(tx, request.org_id, request.usage_ids)
    else:
        assert request.invoice is not None
        usage = store_credits.line_usage(tx, request.org_id, *request.invoice)
    before = store_credits.credited(tx, [u.usage_id for u in usage])
    allocations = allocate(usage, before, request.amount)
    first = usage[0]
    facts = {"dataset": first.dataset, "product_id": first.product_id, "refers_to_period": first.usage_period}
    wrong = sorted(k for k, v in request.expect.items() if facts[k] != v)
    if wrong:
        raise InvalidRequest(f"{', '.join(wrong)} do not match the usage named", extra={"fields": wrong})
    note = CreditItem("cn-" + uuid.uuid4().hex[:16], request.org_id, first.dataset, first.product_id,
                      first.usage_period, sum(allocations.values()), first.currency, first.policy_version,
                      first.merchant_org, request.reason)
    created = store_credits.issue(tx, note, allocations, who.client_id)
    after = {**before, **{k: before.get(k, 0) + v for k, v in allocations.items()}}
    answer = {"id": note.credit_id, "org_id": note.org_id, "dataset": note.dataset, "product_id": note.product_id,
              "refers_to_period": note.refers_to_period, "usage_ids": sorted(allocations),
              "amount_minor": note.amount_minor, "currency": note.currency, "policy_version": note.policy_version,
              "merchant": note.merchant_org, "reason": note.reason, "created_at": created,
              "invoice_period": open_period, "creditable_minor": creditable(usage, after)}
    text = json.dumps(answer, ensure_ascii=False)
    if idem_key:
        idempotency.complete(tx, who.org_id, "credit-note:" + idem_key, 201, text)
    return Issued(201, text.encode(), False)
