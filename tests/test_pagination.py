"""Every list that grows pages over real HTTP: `limit` and an opaque `cursor` in, `{"items", "next"}` and
a `Link` header out; a walk sees every item once, in order, even while new items are inserted (keyset
pages, not offsets); a bad limit or cursor is a located 400, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support import FAST_RATES, Gateway, demo_gateway

BANK, BUREAU = "demo-bank", "demo-bureau"
COUNT = "SELECT COUNT(*) AS n FROM enterprises WHERE employees >= {}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("pages"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


def query(gw: Gateway, i: int) -> None:
    """A billed call: a fresh release for a new `i`, a cached one (billed again) for a repeated one."""
    reply = gw.api("POST", "/v1/queries", BANK, {"dataset": "enterprises", "sql": COUNT.format(i), "epsilon": 0.01})
    assert reply.status == 200, reply.body[:300]


def walk(gw: Gateway, path: str, client: str, between: Any = None) -> tuple[list[dict[str, Any]], int]:
    """Follow `next` to the end; `between()` runs after each page. Returns the items and the page count."""
    seen: list[dict[str, Any]] = []
    pages = 0
    while True:
        reply = gw.api("GET", path, client)
        assert reply.status == 200, (path, reply.body[:300])
        pages += 1
        seen += reply.json["items"]
        nxt = reply.json["next"]
        link = reply.header("link")
        if nxt is None:
            assert link is None
            return seen, pages
        assert link == f'<{nxt}>; rel="next"' and nxt.startswith("/")
        if between is not None:
            between()
        path = nxt


def test_usage_pages_keep_the_period_and_cover_every_record_once(gw: Gateway) -> None:
    for i in range(3):
        query(gw, i)
        query(gw, i)
    whole = gw.api("GET", "/v1/usage?limit=1000", BANK).json
    assert len(whole["items"]) == 6 and whole["next"] is None
    first = gw.api("GET", f"/v1/usage?limit=4&period={whole['period']}", BANK)
    assert first.json["period"] == whole["period"] and len(first.json["items"]) == 4
    assert parse_qs(urlsplit(first.json["next"]).query)["period"] == [whole["period"]]
    seen, pages = walk(gw, "/v1/usage?limit=4", BANK)
    assert [u["usage_id"] for u in seen] == [u["usage_id"] for u in whole["items"]] and pages == 2


def test_a_walk_during_inserts_sees_every_earlier_record_once(gw: Gateway) -> None:
    before = [u["usage_id"] for u in gw.api("GET", "/v1/usage?limit=1000", BANK).json["items"]]
    counter = iter(range(100, 200))
    seen, _ = walk(gw, "/v1/usage?limit=2", BANK, between=lambda: query(gw, next(counter)))
    ids = [u["usage_id"] for u in seen]
    assert len(ids) == len(set(ids)), "a record came twice"
    assert ids[: len(before)] == before, "an earlier record was skipped or moved"
    after = [u["usage_id"] for u in gw.api("GET", "/v1/usage?limit=1000", BANK).json["items"]]
    assert ids == after[: len(ids)] and len(after) > len(before)


def test_every_growing_list_pages(gw: Gateway) -> None:
    for dataset in ("vehicles", "residents"):
        made = gw.api("POST", "/v1/applications", "demo-insurer",
                      {"dataset": dataset, "purpose": "Pricing motor insurance by township", "epsilon_per_period": 1})
        assert made.status == 201, made.body[:300]
    lists = [("/v1/applications", BUREAU, "id"), ("/v1/grants", BUREAU, "id"), ("/v1/products", BANK, "id"),
             ("/v1/requesters", BUREAU, "org_id"), ("/v1/products/income-by-township/versions", BUREAU, "version"),
             ("/v1/datasets/residents/snapshots", BUREAU, "id"), ("/v1/usage", BUREAU, "usage_id"),
             ("/v1/queries", BANK, "query_id")]
    for path, client, key in lists:
        whole = gw.api("GET", f"{path}?limit=1000", client).json
        assert whole["next"] is None and whole["items"], path
        seen, pages = walk(gw, f"{path}?limit=1", client)
        assert [i[key] for i in seen] == [i[key] for i in whole["items"]], path
        assert pages == len(whole["items"]), path  # the last page knows it is the last
    snapshots = gw.api("GET", "/v1/datasets/residents/snapshots", BUREAU).json
    assert snapshots["snapshots"] == snapshots["items"]


@pytest.mark.parametrize(("query_string", "words"), [
    ("limit=0", "limit must be"), ("limit=1001", "limit must be"), ("limit=many", "limit must be"),
    ("cursor=%%%", "cursor"), ("cursor=WzEsMiwzLDQsNV0", "cursor"),  # five parts
    ("cursor=WyJhIiwiYiJd", "cursor"),  # two parts, for a list keyed by one
])
def test_bad_limits_and_cursors_are_located_400s(gw: Gateway, query_string: str, words: str) -> None:
    reply = gw.api("GET", f"/v1/requesters?{query_string}", BUREAU)
    assert reply.status == 400 and reply.is_problem and words in reply.json["detail"], reply.body[:300]


def test_audit_entries_page_in_chain_order(gw: Gateway) -> None:
    seen, pages = walk(gw, "/v1/audit/entries?limit=7", BUREAU)
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 7 and pages == -(-len(seqs) // 7)
    verdict = gw.api("GET", "/v1/audit/verify", BUREAU).json
    assert verdict["ok"] and verdict["entries"] == len(seqs) and verdict["head"] == seen[-1]["hash"]


def test_invoices_list_the_closed_months_only(gw: Gateway) -> None:
    """The demo has no closed month yet: an empty page, not an error; the open month stays at its address."""
    listed = gw.api("GET", "/v1/invoices", BANK)
    assert listed.status == 200 and listed.json == {"items": [], "next": None}
    period = gw.api("GET", "/v1/budget", BANK).json["period"]
    assert gw.api("GET", f"/v1/invoices/{period}", BANK).json["status"] == "open"
