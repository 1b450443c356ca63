"""Snapshots in the store: each accepted load, the pointer to the one serving, the audit trail."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.pages import Page, PageRequest
from gateway.store import audit
from gateway.store.db import Row, Tx
from gateway.store.pages import read_page

_COLUMNS = ("s.dataset, s.snapshot_id, s.origin, s.row_count, s.size_bytes, s.policy_version, "
            "s.inputs, s.loaded_by, s.loaded_at")


@dataclass(frozen=True)
class SnapshotRecord:
    """One accepted load. `rows` is data-derived: only the bureau and the owner may see it."""

    dataset: str
    snapshot_id: str
    origin: str
    rows: int
    size: int
    policy_version: str
    loaded_by: str
    loaded_at: str = ""
    inputs: Mapping[str, str] = field(default_factory=dict)

    def view(self, *, current: bool, with_rows: bool) -> dict[str, Any]:
        """The API shape; rows only when the caller may see counts (invariant 1)."""
        out: dict[str, Any] = {"id": self.snapshot_id, "loaded_at": self.loaded_at,
                               "loaded_by": self.loaded_by, "origin": self.origin,
                               "policy_version": self.policy_version, "current": current}
        if self.inputs:
            out["inputs"] = dict(self.inputs)
        if with_rows:
            out["rows"] = self.rows
            out["bytes"] = self.size
        return out


def _record(row: Row) -> SnapshotRecord:
    return SnapshotRecord(dataset=row[0], snapshot_id=row[1], origin=row[2], rows=int(row[3]),
                          size=int(row[4]), policy_version=row[5], inputs=json.loads(row[6]),
                          loaded_by=row[7], loaded_at=row[8])


def _for_update(tx: Tx) -> str:
    return " FOR UPDATE" if tx.dialect == "postgres" else ""


def record_loaded(tx: Tx, record: SnapshotRecord, warnings: Sequence[str] = ()) -> tuple[SnapshotRecord, bool]:
    """Make `record` the dataset's current snapshot; (the stored record, whether it is new).

    Reloading content already known keeps its first load's time and loader; the pointer and
    the audit entry move only when the serving snapshot changes.
    """
    created = tx.execute(
        "INSERT INTO snapshots (dataset, snapshot_id, origin, row_count, size_bytes, policy_version, "
        "inputs, loaded_by, loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (dataset, snapshot_id) DO NOTHING",
        (record.dataset, record.snapshot_id, record.origin, record.rows, record.size,
         record.policy_version, json.dumps(dict(record.inputs), sort_keys=True), record.loaded_by,
         utc_now_text())) == 1
    stored = get(tx, record.dataset, record.snapshot_id)
    assert stored is not None
    pointer = tx.one("SELECT snapshot_id FROM dataset_snapshots WHERE dataset = ?" + _for_update(tx),
                     (record.dataset,))
    previous = pointer[0] if pointer else None
    if previous == record.snapshot_id:
        return stored, created
    tx.execute("INSERT INTO dataset_snapshots (dataset, snapshot_id, updated_at) VALUES (?, ?, ?) "
               "ON CONFLICT (dataset) DO UPDATE SET snapshot_id = excluded.snapshot_id, "
               "updated_at = excluded.updated_at", (record.dataset, record.snapshot_id, utc_now_text()))
    audit.append(tx, "snapshot.loaded", record.loaded_by, record.dataset, {
        "snapshot_id": record.snapshot_id, "previous": previous, "origin": record.origin,
        "rows": record.rows, "policy_version": record.policy_version, "inputs": dict(record.inputs),
        "known_before": not created, "warnings": list(warnings)})
    return stored, created


def retire_current(tx: Tx, dataset: str, snapshot_id: str, actor: str, reason: str) -> bool:
    """The dataset has no current snapshot any more, if `snapshot_id` still is it; audited."""
    if tx.execute("DELETE FROM dataset_snapshots WHERE dataset = ? AND snapshot_id = ?",
                  (dataset, snapshot_id)) == 0:
        return False
    audit.append(tx, "snapshot.retired", actor, dataset, {"snapshot_id": snapshot_id, "reason": reason})
    return True


def record_refused(tx: Tx, dataset: str, actor: str, origin: str,
                   problems: Sequence[Mapping[str, Any]]) -> None:
    """The refusal, by problem code and column: values stay out of the audit log."""
    audit.append(tx, "snapshot.refused", actor, dataset, {
        "origin": origin,
        "problems": [{"code": p["code"], "column": p.get("column")} for p in problems]})


def get(tx: Tx, dataset: str, snapshot_id: str) -> SnapshotRecord | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM snapshots s WHERE s.dataset = ? AND s.snapshot_id = ?",
                 (dataset, snapshot_id))
    return _record(row) if row else None


def current(tx: Tx, dataset: str) -> SnapshotRecord | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM dataset_snapshots d JOIN snapshots s "
                 "ON s.dataset = d.dataset AND s.snapshot_id = d.snapshot_id WHERE d.dataset = ?",
                 (dataset,))
    return _record(row) if row else None


def current_ids(tx: Tx) -> dict[str, str]:
    """dataset -> serving snapshot id: the cheap poll that lets replicas follow each other."""
    return {r[0]: r[1] for r in tx.all("SELECT dataset, snapshot_id FROM dataset_snapshots")}


def history_page(tx: Tx, dataset: str, page: PageRequest) -> Page[SnapshotRecord]:
    """A dataset's snapshots, newest first."""
    return read_page(tx, _COLUMNS, "snapshots s", "s.dataset = ?", (dataset,), ("s.loaded_at", "s.snapshot_id"),
                     page, _record, descending=True)


def history(tx: Tx, dataset: str, limit: int = 100) -> list[SnapshotRecord]:
    """Newest first."""
    rows = tx.all(f"SELECT {_COLUMNS} FROM snapshots s WHERE s.dataset = ? "
                  "ORDER BY s.loaded_at DESC, s.snapshot_id LIMIT ?", (dataset, limit))
    return [_record(r) for r in rows]
