"""Dataset status changes and policy versions, with their consequences, in one transaction each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.core import status as dataset_status
from gateway.errors import DatasetWithdrawn, NotFound
from gateway.store import audit
from gateway.store import datasets as store_datasets
from gateway.store.applications import end_dataset_access
from gateway.store.db import Tx


def change_status(tx: Tx, dataset: str, action: str, actor: str, derived: Sequence[str] = ()) -> dict[str, Any]:
    """Suspend, resume or withdraw; a withdrawal also ends the grants and pending applications,
    on the dataset and on the views built on it (`derived`; they answer to its status anyway).

    Withdrawal is final: resuming or suspending a withdrawn dataset answers 410.
    """
    row = tx.one("SELECT status FROM datasets WHERE dataset = ?", (dataset,))
    if row is None:
        raise NotFound(f"no dataset {dataset!r}")
    if not dataset_status.may_change(row[0], action):
        raise DatasetWithdrawn(f"dataset {dataset!r} has been withdrawn for good")
    status = store_datasets.set_status(tx, dataset, dataset_status.STATUS_OF_ACTION[action], actor)
    grants_ended = applications_closed = 0
    if dataset_status.is_withdrawn(status):
        grants_ended, applications_closed = end_dataset_access(tx, dataset, actor)
        for view in derived:
            end_dataset_access(tx, view, actor, "base dataset withdrawn")
    return {"dataset": dataset, "status": status, "previous_status": row[0],
            "grants_ended": grants_ended, "applications_closed": applications_closed}


def current_policy(tx: Tx, dataset: str) -> tuple[str, str, dict[str, Any]] | None:
    """(owner, version, document) of a dataset's policy in force."""
    for row in store_datasets.all_datasets(tx):
        if row.dataset == dataset:
            return row.owner, row.policy_version, row.document
    return None


def policy_versions(tx: Tx, dataset: str) -> list[dict[str, Any]]:
    rows = tx.all("SELECT version, created_at, created_by FROM policy_versions WHERE dataset = ? "
                  "ORDER BY created_at, version", (dataset,))
    return [{"version": r[0], "created_at": r[1], "created_by": r[2]} for r in rows]


def publish_policy(tx: Tx, dataset: str, owner: str, version: str, document: dict[str, Any],
                   actor: str) -> bool:
    """A new current version (old ones stay, audited); False when that version is already current."""
    current = current_policy(tx, dataset)
    if current is not None and current[1] == version:
        return False
    store_datasets.publish_policy(tx, dataset, owner, version, document, actor)
    return True


def record_policy_rejection(tx: Tx, dataset: str, actor: str, problems: list[str]) -> None:
    """Refused policy changes are audited too (R-AD-06)."""
    audit.append(tx, "policy.rejected", actor, dataset, {"problems": problems[:50]})
