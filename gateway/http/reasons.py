"""The optional `{"reason": ...}` body every status change takes (its schema bounds the text)."""

from __future__ import annotations

from typing import Any

REASON: dict[str, Any] = {"body": "Reason", "body_optional": True}  # spread into a @route declaration


def reason_of(body: dict[str, Any]) -> str:
    """The reason, or "" when the body was empty."""
    return str(body.get("reason", ""))
