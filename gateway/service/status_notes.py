"""Dataset status changes with the reason given, and that reason for the people it stops.

The change itself is `circulation`'s (same access rule, same store function, same audit
entry); the reason is written in the same transaction, so a requester refused by a suspension
can read why.
"""

from __future__ import annotations

from typing import Any

from gateway.auth.tokens import Principal
from gateway.errors import InvalidRequest
from gateway.runtime.parts import Runtime
from gateway.service.circulation import may_manage
from gateway.store import circulation as store_circulation
from gateway.store import status_notes as store_notes
from gateway.store.db import Tx

ACTIONS = ("suspend", "resume", "withdraw")


async def change_status(runtime: Runtime, who: Principal, dataset: str, action: str, reason: Any) -> dict[str, Any]:
    if action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
        raise InvalidRequest("reason must be text of 1 to 2000 characters")
    may_manage(runtime, who, dataset)
    result = await runtime.store.write(_change, dataset, action, who.client_id, reason.strip())
    await runtime.refresh()  # this replica at once; the others at their next poll
    return result


def _change(tx: Tx, dataset: str, action: str, actor: str, reason: str) -> dict[str, Any]:
    result = store_circulation.change_status(tx, dataset, action, actor)
    store_notes.record(tx, dataset, result["status"], reason, actor)
    return result


async def status_note(runtime: Runtime, dataset: str) -> dict[str, str] | None:
    """Why the dataset is in its present status, if that was said when it changed."""
    note = await runtime.store.read(store_notes.get, dataset)
    if note is None or note["status"] != runtime.registry.status.get(dataset, "active"):
        return None
    return note
