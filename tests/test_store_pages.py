"""Keyset pages on both stores: every row exactly once across pages, in key order, and a row inserted
between two page reads neither repeats an earlier row nor pushes a later one off its page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.pages import Page, PageRequest
from gateway.errors import InvalidRequest
from gateway.store import identity, requesters
from gateway.store.db import Store, Tx
from gateway.store.pages import read_page
from tests.store_support import STORE_KINDS, param_store

KINDS = ("requester", "merchant")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path) as s:
        yield s


def _add(store: Store, *org_ids: str) -> None:
    def write(tx: Tx) -> None:
        for org in org_ids:
            identity.ensure_org(tx, org, org.title(), "requester")
    store.run_sync(write)


def _walk(store: Store, limit: int, between: list[str] | None = None) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page: Page[requesters.Org] = store.run_sync(requesters.orgs_page, KINDS, PageRequest(limit, after),
                                                    write=False)
        seen += [o.org_id for o in page.items]
        if between:
            _add(store, between.pop())
        if page.next_after is None:
            return seen
        after = page.next_after


def test_pages_cover_every_row_once_in_key_order(store: Store) -> None:
    names = [f"org-{i:02d}" for i in range(11)]
    _add(store, *reversed(names))
    for limit in (1, 2, 3, 10, 11, 12, 1000):
        assert _walk(store, limit) == names, limit


def test_rows_inserted_meanwhile_neither_repeat_nor_push_rows_off(store: Store) -> None:
    names = [f"org-{i:02d}" for i in range(0, 20, 2)]  # even numbers: gaps for the newcomers
    _add(store, *names)
    newcomers = ["org-01", "org-09", "org-15", "org-99", "org-00a"]
    seen = _walk(store, 3, between=list(newcomers))
    assert len(seen) == len(set(seen))
    assert [n for n in seen if n in names] == names  # every row there at the start, once, in order
    assert seen == sorted(seen)


def test_a_cursor_of_another_width_is_a_400(store: Store) -> None:
    def read(tx: Tx) -> None:
        read_page(tx, "name", "organisations", "", (), ("org_id",), PageRequest(5, ("a", "b")), lambda r: r)
    with pytest.raises(InvalidRequest, match="cursor"):
        store.run_sync(read, write=False)


def test_invoices_page_newest_month_first_for_one_organisation(store: Store) -> None:
    from gateway.store import invoices

    def write(tx: Tx) -> None:
        for org, month in [("bank", m) for m in (1, 2, 3, 4, 5)] + [("other", 3)]:
            tx.execute("INSERT INTO invoices (org_id, period, body, sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                       (org, f"2026-0{month}", json.dumps({"org": org}), "0" * 64, "2026-06-01T00:00:00Z"))
    store.run_sync(write)
    seen: list[tuple[str, bytes]] = []
    after = None
    while True:
        page = store.run_sync(invoices.stored_invoices_page, "bank", PageRequest(2, after), write=False)
        seen += page.items
        if page.next_after is None:
            break
        after = page.next_after
    assert [period for period, _ in seen] == ["2026-05", "2026-04", "2026-03", "2026-02", "2026-01"]
    assert {json.loads(body)["org"] for _, body in seen} == {"bank"}
