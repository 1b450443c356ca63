"""A view's release checks its base's status in the same transactions as its own, on SQLite and
PostgreSQL (issue 11.3, R-DP-18 with R-BU-07): a base suspended or withdrawn before the view's
reservation, its point of no refund or its commit stops the view's release there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import DatasetSuspended, DatasetWithdrawn
from gateway.store import datasets, identity, ledger
from gateway.store.db import Store, Tx
from tests.store_support import STORE_KINDS, param_store

NANO = 10**9
INPUTS = ("residents", "township_geo")


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path, _seed) as s:
        yield s


def _seed(tx: Tx) -> None:
    identity.ensure_org(tx, "bank", "Bank", "requester")
    for name, owner in (("residents", "psb"), ("township_geo", "geodata"), ("residents_geo", "psb")):
        datasets.seed_policy(tx, name, owner, "v-" + name, {"dataset": name}, "test")


def reservation() -> ledger.Reservation:
    return ledger.Reservation(uuid.uuid4().hex, "bank", "bank-client", "residents_geo", None, "2026-11", NANO,
                              (ledger.Account("grant:bank:residents_geo", 10 * NANO),), inputs=INPUTS)


def commit(r: ledger.Reservation) -> ledger.Commit:
    return ledger.Commit(
        query_id=r.query_id, org_id="bank", client_id="bank-client", actor="bank-client", dataset="residents_geo",
        product_id=None, cache_key="k-" + r.query_id, plan_fingerprint="fp", policy_version="v1",
        snapshot_id="s1", period=r.period, epsilon_nano=r.epsilon_nano, result={"columns": ["n"], "rows": [[1]]},
        accuracy={}, release_hash="h", usage=ledger.Usage(uuid.uuid4().hex, 100, "CNY", "policy:v1"),
        inputs=INPUTS)


def test_the_bases_status_stops_the_view_at_every_step(store: Store) -> None:
    first, second = reservation(), reservation()
    store.run_sync(ledger.reserve, first)
    store.run_sync(ledger.reserve, second)
    store.run_sync(datasets.set_status, "residents", "suspended", "bureau")
    with pytest.raises(DatasetSuspended, match="residents_geo"):
        store.run_sync(ledger.reserve, reservation())
    with pytest.raises(DatasetSuspended):
        store.run_sync(ledger.mark_executing, first.query_id, "bank", INPUTS)
    store.run_sync(datasets.set_status, "residents", "active", "bureau")
    store.run_sync(ledger.mark_executing, first.query_id, "bank", INPUTS)
    store.run_sync(datasets.set_status, "township_geo", "withdrawn", "bureau")  # the join input counts too
    with pytest.raises(DatasetWithdrawn):
        store.run_sync(ledger.commit_release, commit(first))
    with pytest.raises(DatasetWithdrawn):
        store.run_sync(ledger.mark_executing, second.query_id, "bank", INPUTS)
    # Without its inputs named, the view's own row alone would have let all of this through.
    store.run_sync(ledger.mark_executing, second.query_id, "bank")
