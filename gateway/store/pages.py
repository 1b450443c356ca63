"""Keyset pagination in SQL: `WHERE (k1, k2) > (?, ?) ORDER BY k1, k2 LIMIT n + 1` on a unique key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gateway.core.pages import Key, Page, PageRequest, page_of
from gateway.store.db import Row, Tx

T = TypeVar("T")


def read_page(tx: Tx, columns: str, source: str, where: str, params: Sequence[Any], key_columns: Sequence[str],
              request: PageRequest, convert: Callable[[Row], T], *, descending: bool = False) -> Page[T]:
    """`SELECT columns FROM source WHERE where`, ordered by `key_columns` (unique together): one page.

    The key columns are selected ahead of `columns`, and the next key is read from the last row
    itself, so it is exactly the key the next page starts after; `convert` sees `columns` only.
    """
    after = request.key_of_width(len(key_columns))
    keys = ", ".join(key_columns)
    clauses, args = [f"({where})" if where else "1 = 1"], list(params)
    if after is not None:
        marks = ", ".join("?" for _ in after)
        clauses.append(f"({keys}) {'<' if descending else '>'} ({marks})")
        args.extend(after)
    order = ", ".join(f"{c} {'DESC' if descending else 'ASC'}" for c in key_columns)
    rows = tx.all(f"SELECT {keys}, {columns} FROM {source} WHERE {' AND '.join(clauses)} "
                  f"ORDER BY {order} LIMIT ?", (*args, request.limit + 1))
    width = len(key_columns)
    found = page_of(rows, request, key=lambda r: _key(r[:width]))
    return Page([convert(r[width:]) for r in found.items], found.next_after)


def _key(values: Sequence[Any]) -> Key:
    return tuple(v if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in values)
