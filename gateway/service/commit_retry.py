"""The commit of a drawn answer, carried through a short store outage.

Once the sandbox has drawn an answer its privacy cost is spent whatever happens next (R-DP-11).
If the store is unavailable at that moment (the database restarting, a network cut, a full
disk), the commit is tried again for up to `commit_retry_seconds`: a client that waits a few
seconds then gets its answer, instead of a charge with nothing to show for it. A retry first
asks whether an earlier attempt committed after all (its acknowledgement lost with the
connection) and answers from what that attempt stored, so nothing is committed or billed twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gateway.dp.outcome import Release
from gateway.errors import Unavailable
from gateway.runtime.parts import Runtime
from gateway.service.admission import Admitted
from gateway.service.answers import answer_body
from gateway.store import outcomes
from gateway.store.db import Tx
from gateway.store.ledger import Usage

Commit = Callable[..., tuple[str, Usage]]  # (tx, ctx, query_id, release, *more) -> (body, usage)
_FIRST_PAUSE, _LONGEST_PAUSE = 0.1, 1.0


async def commit_drawn(runtime: Runtime, commit: Commit, ctx: Admitted, query_id: str, release: Release,
                       *more: Any) -> tuple[str, Usage]:
    """`commit` in one transaction; while the store is unavailable, again until the deadline."""
    deadline = time.monotonic() + runtime.settings.commit_retry_seconds
    try:
        return await runtime.store.write(commit, ctx, query_id, release, *more, op="commit_release")
    except Unavailable:
        if time.monotonic() >= deadline:
            raise
    pause = _FIRST_PAUSE
    while True:
        await asyncio.sleep(max(0.0, min(pause, deadline - time.monotonic())))
        pause = min(pause * 2, _LONGEST_PAUSE)
        try:
            return await runtime.store.write(_commit_once, commit, ctx, query_id, release, *more,
                                             op="commit_release")
        except Unavailable:
            if time.monotonic() >= deadline:
                raise


def _commit_once(tx: Tx, commit: Commit, ctx: Admitted, query_id: str, release: Release,
                 *more: Any) -> tuple[str, Usage]:
    usage = outcomes.committed_usage(tx, query_id)
    if usage is None:
        return commit(tx, ctx, query_id, release, *more)
    stored = outcomes.stored_answer(tx, ctx.who.org_id, ctx.idem_key) if ctx.idem_key else None
    if stored is None:  # no key to find the body by: the same answer, its budget line as of now
        stored = answer_body(tx, ctx, query_id, outcomes.stored_view(tx, query_id), cached=False, usage=usage,
                             snapshot_id=release.snapshot_id)
    return stored, usage
