"""Datasets and their policy versions in the store: the source of truth for every replica."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.clock import utc_now_text
from gateway.core import status as dataset_status
from gateway.store import audit
from gateway.store.db import Tx

_STATUS_EVENT = {"active": "dataset.resumed", "suspended": "dataset.suspended",
                 "withdrawn": "dataset.withdrawn"}


@dataclass(frozen=True)
class DatasetRow:
    dataset: str
    owner: str
    status: str
    policy_version: str
    document: dict[str, Any]


def seed_policy(tx: Tx, dataset: str, owner: str, version: str, document: dict[str, Any], actor: str) -> bool:
    """Insert the dataset with this policy if the store does not know the dataset yet."""
    if tx.one("SELECT 1 FROM datasets WHERE dataset = ?", (dataset,)) is not None:
        return False
    _insert_version(tx, dataset, version, document, actor)
    tx.execute("INSERT INTO datasets (dataset, owner, policy_version, updated_at) VALUES (?, ?, ?, ?)",
               (dataset, owner, version, utc_now_text()))
    audit.append(tx, "policy.seeded", actor, dataset, {"version": version})
    return True


def _insert_version(tx: Tx, dataset: str, version: str, document: dict[str, Any], actor: str) -> None:
    # Declared order kept, so the catalog lists columns as the policy does; the version is
    # the content hash of the sorted form, so a policy's identity does not depend on it.
    tx.execute("INSERT INTO policy_versions (version, dataset, document, created_at, created_by) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING",
               (version, dataset, json.dumps(document, ensure_ascii=False), utc_now_text(), actor))


def publish_policy(tx: Tx, dataset: str, owner: str, version: str, document: dict[str, Any], actor: str) -> None:
    """A new current version; old versions stay for the record."""
    _insert_version(tx, dataset, version, document, actor)
    if tx.execute("UPDATE datasets SET policy_version = ?, owner = ?, updated_at = ? WHERE dataset = ?",
                  (version, owner, utc_now_text(), dataset)) == 0:
        tx.execute("INSERT INTO datasets (dataset, owner, policy_version, updated_at) VALUES (?, ?, ?, ?)",
                   (dataset, owner, version, utc_now_text()))
    audit.append(tx, "policy.published", actor, dataset, {"version": version})


def all_datasets(tx: Tx) -> list[DatasetRow]:
    rows = tx.all("SELECT d.dataset, d.owner, d.status, d.policy_version, p.document FROM datasets d "
                  "JOIN policy_versions p ON p.version = d.policy_version ORDER BY d.dataset")
    return [DatasetRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]


def statuses(tx: Tx) -> dict[str, tuple[str, str]]:
    """dataset -> (status, policy_version): the cheap poll every replica runs."""
    return {r[0]: (r[1], r[2]) for r in tx.all("SELECT dataset, status, policy_version FROM datasets")}


def set_status(tx: Tx, dataset: str, status: str, actor: str) -> str:
    """Suspend, resume or withdraw; withdrawal is final. Returns the status now in force."""
    row = tx.one("SELECT status FROM datasets WHERE dataset = ?" + (" FOR UPDATE" if tx.dialect == "postgres" else ""),
                 (dataset,))
    assert row is not None
    current = row[0]
    if dataset_status.is_withdrawn(current) or current == status:
        return str(current)
    tx.execute("UPDATE datasets SET status = ?, updated_at = ? WHERE dataset = ?", (status, utc_now_text(), dataset))
    audit.append(tx, _STATUS_EVENT[status], actor, dataset, {"from": current, "to": status})
    return status
