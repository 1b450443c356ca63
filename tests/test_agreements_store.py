"""Authorisation agreements in the store, on SQLite and PostgreSQL: the term's end ends what stands on it.

The sweep (`gateway.runtime.tasks.end_lapsed_agreements`) ends every agreement whose last day has
passed, by the rule an explicit end uses; until it runs, a grant on such an agreement already
stops (active grants read the agreement's term).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.clock import utc_now_text
from gateway.core.agreements import Terms
from gateway.core.pages import PageRequest
from gateway.errors import Conflict
from gateway.store import agreements, audit, grants, identity
from gateway.store.db import Store
from tests.store_support import STORE_KINDS, param_store

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path, lambda tx: identity.ensure_org(tx, "bank", "Bank", "requester")) as s:
        yield s


def terms(datasets: tuple[str, ...], first: date, last: date) -> Terms:
    return Terms("County government", "datasmith", datasets, (), first, last, "duties", "exit", "a" * 64)


def test_a_lapsed_agreement_stops_its_grants_and_the_sweep_ends_them(store: Store) -> None:
    lapsed = store.run_sync(agreements.create, terms(("residents",), date(2020, 1, 1), date(2020, 12, 31)), ZONE,
                            "demo-bureau")
    current = store.run_sync(agreements.create, terms(("residents", "vehicles"), date(2025, 1, 1),
                                                      date(2040, 12, 31)), ZONE, "demo-bureau")
    assert lapsed.state(utc_now_text()) == "expired" and current.state(utc_now_text()) == "active"
    assert lapsed.ends_at.startswith("2020-12-31T16:00:00")  # the end of the last day, county time
    for grant_id, dataset, agreement in (("g-old", "residents", lapsed), ("g-new", "vehicles", current)):
        store.run_sync(lambda tx, g=grant_id, d=dataset, a=agreement.agreement_id:
                       grants.create_grant(tx, g, "bank", d, 10**9, "t", agreement_id=a))
    held = store.run_sync(grants.active_grants, "bank", utc_now_text(), write=False)
    assert [g.grant_id for g in held] == ["g-new"]  # stopped before any sweep
    with pytest.raises(Conflict, match="not in force"):
        store.run_sync(agreements.hold_to, lapsed.agreement_id, "residents", None, None)
    with pytest.raises(Conflict, match="outside the scope"):
        store.run_sync(agreements.hold_to, current.agreement_id, "enterprises", None, None)
    with pytest.raises(Conflict, match="past the end"):
        store.run_sync(agreements.hold_to, current.agreement_id, "vehicles", None, "2041-06-01T00:00:00.000000Z")

    assert store.run_sync(agreements.end_lapsed) == [lapsed.agreement_id]
    assert store.run_sync(agreements.end_lapsed) == []
    ended = store.run_sync(agreements.get, lapsed.agreement_id, write=False)
    assert ended is not None and ended.status == "ended" and ended.end_reason == "its term has passed"
    statuses = dict(store.run_sync(lambda tx: tx.all("SELECT grant_id, status FROM grants"), write=False))
    assert statuses == {"g-old": "ended", "g-new": "active"}
    found = store.run_sync(agreements.ended_under, "bank", "residents", None, write=False)
    assert found is not None and found[0] == "g-old" and found[1].agreement_id == lapsed.agreement_id
    assert store.run_sync(agreements.ended_under, "bank", "vehicles", None, write=False) is None
    assert [a.agreement_id for a in store.run_sync(agreements.covering, "residents", write=False)] == \
        [current.agreement_id]
    page = store.run_sync(agreements.page, ("vehicles",), PageRequest(10, None), write=False)
    assert [a.agreement_id for a in page.items] == [current.agreement_id]
    assert page.items[0].datasets == ("residents", "vehicles")
    assert store.run_sync(agreements.page, (), PageRequest(10, None), write=False).items == []
    assert store.run_sync(audit.verify, write=False).ok
