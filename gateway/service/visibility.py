"""Who may see what: another party's object answers exactly like a missing one (404), never 403.

A 403 or a different message for "exists, but not yours" would let anyone probe for the ids of
other organisations' applications, grants, clients, products and releases (an existence oracle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from gateway.errors import NotFound

T = TypeVar("T")


def visible(found: T | None, may_see: Callable[[T], bool], what: str) -> T:
    """`found` when the caller may see it; otherwise the same 404 as when there is none."""
    if found is None or not may_see(found):
        raise NotFound(f"no such {what}")
    return found
