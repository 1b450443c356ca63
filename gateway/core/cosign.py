"""What a source department's co-signature covers, and when an approval needs a new one.

A co-signature is given over terms: the budget per period, the expiry, the purpose and what is
asked for (a dataset or a product). An approval within them (a smaller budget, an earlier
expiry) stands on it; an approval past them (a later or no expiry, a larger budget) is not what
the department signed, so it needs a new co-signature (issue 19 point 7). Whether a
co-signature (and the automatic approval) is needed at all is decided when the grant would be
made, against the policy then in force, never copied at filing (point 6).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import Decimal

AUTO_APPROVER = "policy:auto-approve"  # the bureau's stand-in when the policy approves small requests


@dataclass(frozen=True)
class Terms:
    epsilon_nano: int
    valid_until: str | None  # UTC text; None: no expiry
    purpose: str
    subject: str  # "dataset:<id>" or "product:<id>"

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Terms:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Rules:
    """The policy in force, as it bears on making a grant now."""

    needs_cosign: bool
    auto_approval_holds: bool


def widenings(approved: Terms, cosigned: Terms) -> list[str]:
    """How `approved` goes past what was co-signed; empty when it stays within."""
    out = []
    if approved.epsilon_nano > cosigned.epsilon_nano:
        out.append("a larger budget")
    if cosigned.valid_until is not None and (approved.valid_until is None
                                             or approved.valid_until > cosigned.valid_until):
        out.append("a later expiry")
    if approved.purpose != cosigned.purpose or approved.subject != cosigned.subject:
        out.append("another purpose or subject")
    return out


def auto_approval_holds(auto_approve_epsilon: Decimal | None, epsilon: Decimal) -> bool:
    """The policy's automatic approval still covers this budget (decided when the grant is made)."""
    return auto_approve_epsilon is not None and epsilon <= auto_approve_epsilon
