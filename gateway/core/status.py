"""A dataset's status and what each one answers: the one place the three states are decided.

active     answers queries and product calls;
suspended  refuses them with 409 dataset_suspended until resumed (by the bureau or the owner);
withdrawn  refuses them with 410 dataset_withdrawn for good: grants end, products stop, and no
           action brings it back.
"""

from __future__ import annotations

from typing import Final

from gateway.errors import DatasetSuspended, DatasetWithdrawn, GatewayError

ACTIVE: Final = "active"
SUSPENDED: Final = "suspended"
WITHDRAWN: Final = "withdrawn"
STATUSES: Final = (ACTIVE, SUSPENDED, WITHDRAWN)
STATUS_OF_ACTION: Final = {"suspend": SUSPENDED, "resume": ACTIVE, "withdraw": WITHDRAWN}


def refusal(dataset: str, status: str | None) -> GatewayError | None:
    """The error a query on a dataset in `status` gets, or None when it may answer.

    An unknown status (a dataset the store no longer has) is treated as withdrawn.
    """
    if status == ACTIVE:
        return None
    if status == SUSPENDED:
        return DatasetSuspended(f"dataset {dataset!r} is suspended")
    return DatasetWithdrawn(f"dataset {dataset!r} has been withdrawn")


def is_withdrawn(status: str | None) -> bool:
    return status == WITHDRAWN


def may_change(current: str, action: str) -> bool:
    """Withdrawal is final: only a repeated withdrawal is accepted after it."""
    return current != WITHDRAWN or action == "withdraw"


def worst(statuses: list[str | None]) -> str:
    """The status of something that answers to several datasets (a view and its inputs): the
    least available of them; an unknown one counts as withdrawn."""
    return max((s if s in STATUSES else WITHDRAWN for s in statuses), key=STATUSES.index, default=ACTIVE)
