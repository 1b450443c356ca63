"""Keyset pages: a list read `limit` items at a time after the last key seen, never by offset, so that
items inserted meanwhile neither repeat nor push others off a page."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.errors import InvalidRequest

T = TypeVar("T")
U = TypeVar("U")
Key = tuple[str | int, ...]


@dataclass(frozen=True)
class PageRequest:
    """`limit` items after `after` (the sort key of the last item already seen; None: from the start)."""

    limit: int
    after: Key | None = None

    def key_of_width(self, width: int) -> Key | None:
        """`after`, checked against the list's key: a cursor made for another list is a 400, not a 500."""
        if self.after is not None and len(self.after) != width:
            raise InvalidRequest("cursor is not valid for this list")
        return self.after


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page, and the key to ask for after it (None on the last page)."""

    items: list[T]
    next_after: Key | None = None

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        return Page([convert(i) for i in self.items], self.next_after)


def collect(read: Callable[[PageRequest], Page[T]], size: int = 500) -> list[T]:
    """Every item of a paged list, page by page: for callers that show a whole list at once."""
    items: list[T] = []
    after: Key | None = None
    while True:
        page = read(PageRequest(size, after))
        items += page.items
        if page.next_after is None:
            return items
        after = page.next_after


def page_of(rows: Sequence[T], request: PageRequest, key: Callable[[T], Key]) -> Page[T]:
    """Rows read with `limit + 1` -> the page, with a next key only if that extra row came back."""
    items = list(rows[: request.limit])
    more = len(rows) > request.limit
    return Page(items, key(items[-1]) if more and items else None)
