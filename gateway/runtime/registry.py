"""This replica's view of the store's statuses: dataset policies and statuses, and which clients are active."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core import status as dataset_status
from gateway.core.derived import effective_policies, inputs_of
from gateway.core.policy import DatasetPolicy
from gateway.core.policy_parse import parse_policy
from gateway.errors import NotFound
from gateway.policyfiles import policy_schema
from gateway.store import datasets as store_datasets
from gateway.store.db import Tx


@dataclass
class DatasetRegistry:
    """`policies` are the policies as enforced: a view's is inherited from its base (core.derived)."""

    policies: dict[str, DatasetPolicy] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    clients: dict[str, bool] = field(default_factory=dict)  # client id -> active (R-AU-05)
    declared: dict[str, DatasetPolicy] = field(default_factory=dict)  # as published
    _versions: dict[str, str] = field(default_factory=dict)
    _enforced: dict[str, str] = field(default_factory=dict)

    def refresh(self, tx: Tx) -> bool:
        """Re-read statuses; re-parse a policy only when its version changed. True if anything did."""
        current = store_datasets.statuses(tx)
        changed = any(self._versions.get(d) != v for d, (_s, v) in current.items())
        new_status = {d: s for d, (s, _v) in current.items()}
        if changed:
            for row in store_datasets.all_datasets(tx):
                if self._versions.get(row.dataset) != row.policy_version:
                    self.declared[row.dataset] = stored_policy(row.document)
                    self._versions[row.dataset] = row.policy_version
            for name, policy in effective_policies(self.declared).items():
                if self._enforced.get(name) != policy.version:  # a view follows its base's changes
                    self.policies[name] = policy
                    self._enforced[name] = policy.version
        moved = new_status != self.status
        self.status = new_status
        return changed or moved

    def get(self, dataset: str) -> DatasetPolicy:
        policy = self.policies.get(dataset)
        if policy is None:
            raise NotFound(f"no dataset {dataset!r}")
        return policy

    def usable(self, dataset: str) -> DatasetPolicy:
        """The policy of a dataset that may answer queries now, or the error that says why not."""
        policy = self.get(dataset)
        refused = dataset_status.refusal(dataset, self.status_of(dataset))
        if refused is not None:
            raise refused
        return policy

    def status_of(self, dataset: str) -> str:
        """The dataset's status as last polled (a dataset seeded but not yet polled is active); a
        view's is its inputs' where worse: a view of a suspended base is suspended (R-DP-18)."""
        policy = self.policies.get(dataset)
        inputs = inputs_of(policy) if policy is not None else ()
        return dataset_status.worst([self.status.get(dataset, dataset_status.ACTIVE),
                                     *(self.status.get(d) for d in inputs)])

    def withdrawn(self, dataset: str) -> bool:
        return dataset_status.is_withdrawn(self.status_of(dataset))


def stored_policy(document: dict[str, object]) -> DatasetPolicy:
    """A policy document the store holds. It was validated when published; parsing again keeps
    one code path, without the rules added since (a rule refuses new documents, it does not
    unpublish old ones)."""
    import yaml

    return parse_policy(yaml.safe_dump(document, sort_keys=False), "<store>", policy_schema(), stored=True)
