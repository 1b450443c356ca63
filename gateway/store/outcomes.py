"""What an earlier attempt left behind, read when its acknowledgement was lost with the store.

A commit whose connection broke after COMMIT was sent may or may not have happened; the retry
asks here before committing again, so a release is never committed (nor billed) twice.
"""

from __future__ import annotations

from gateway.store.db import Tx
from gateway.store.ledger import Usage


def committed_usage(tx: Tx, query_id: str) -> Usage | None:
    """The usage record of a query's fresh release, once it committed; None before."""
    state = tx.one("SELECT state FROM queries WHERE query_id = ?", (query_id,))
    if state is None or state[0] != "committed":
        return None
    row = tx.one("SELECT usage_id, price_minor, currency, price_version FROM usage_records "
                 "WHERE query_id = ? AND cached = 0", (query_id,))
    return Usage(str(row[0]), int(row[1]), str(row[2]), str(row[3])) if row else None


def stored_answer(tx: Tx, org_id: str, idem_key: str) -> str | None:
    """The body stored under a completed Idempotency-Key, or None."""
    row = tx.one("SELECT body FROM idempotency_keys WHERE org_id = ? AND idem_key = ? AND state = 'done' "
                 "AND status = 200", (org_id, idem_key))
    return str(row[0]) if row else None


def stored_view(tx: Tx, query_id: str) -> str:
    """The columns, rows and accuracy of a committed release as they were sent (JSON members)."""
    row = tx.one("SELECT answer FROM releases WHERE query_id = ?", (query_id,))
    assert row is not None and row[0], "a committed release keeps its answer"
    return str(row[0])[1:-1]
