"""The latest reason given for a dataset's status, kept beside the change it explains."""

from __future__ import annotations

from gateway.clock import utc_now_text
from gateway.store import audit
from gateway.store.db import Tx


def record(tx: Tx, dataset: str, status: str, reason: str, actor: str) -> None:
    tx.execute("DELETE FROM dataset_status_notes WHERE dataset = ?", (dataset,))
    tx.execute("INSERT INTO dataset_status_notes (dataset, status, reason, actor, at) VALUES (?, ?, ?, ?, ?)",
               (dataset, status, reason, actor, utc_now_text()))
    audit.append(tx, "dataset.status_reason", actor, dataset, {"status": status, "reason": reason})


def get(tx: Tx, dataset: str) -> dict[str, str] | None:
    row = tx.one("SELECT status, reason, at FROM dataset_status_notes WHERE dataset = ?", (dataset,))
    return {"status": str(row[0]), "reason": str(row[1]), "at": str(row[2])} if row else None
