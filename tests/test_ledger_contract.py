"""The store contract, run on SQLite and on PostgreSQL: budgets, states, idempotency, recovery."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import utc_now_text
from gateway.errors import (
    BudgetExhausted,
    DatasetSuspended,
    DatasetWithdrawn,
    IdempotencyInProgress,
    IdempotencyKeyReused,
)
from gateway.store import audit, datasets, idempotency, ledger
from gateway.store.db import Store, Tx
from tests.store_support import STORE_KINDS, bank_and_dataset, param_store

NANO = 10**9


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path, bank_and_dataset("residents")) as s:
        yield s


def _reservation(eps_nano: int, cap: int = 10 * NANO, pool_cap: int = 100 * NANO, qid: str | None = None
                 ) -> ledger.Reservation:
    return ledger.Reservation(qid or uuid.uuid4().hex, "bank", "bank-client", "residents", None, "2026-11",
                              eps_nano, (ledger.Account("grant:bank:residents", cap),
                                         ledger.Account("pool:people", pool_cap)))


def _commit(r: ledger.Reservation) -> ledger.Commit:
    return ledger.Commit(
        query_id=r.query_id, org_id="bank", client_id="bank-client", actor="bank-client", dataset="residents",
        product_id=None, cache_key="k-" + r.query_id, plan_fingerprint="fp", policy_version="v1",
        snapshot_id="s1", period=r.period, epsilon_nano=r.epsilon_nano, result={"columns": ["n"], "rows": [[1]]},
        accuracy={"count(*)": 2.0}, release_hash="h",
        usage=ledger.Usage(uuid.uuid4().hex, 500, "CNY", "policy:v1"))


def _accounts(store: Store) -> dict[str, tuple[int, int, int]]:
    return store.run_sync(ledger.account_usage, ["grant:bank:residents", "pool:people"], "2026-11", write=False)


def test_reserve_commit_moves_reserved_to_spent(store: Store) -> None:
    r = _reservation(NANO)
    store.run_sync(ledger.reserve, r)
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, 0, NANO)
    store.run_sync(ledger.mark_executing, r.query_id, "bank")
    store.run_sync(ledger.commit_release, _commit(r))
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, NANO, 0)
    assert _accounts(store)["pool:people"] == (100 * NANO, NANO, 0)
    found = store.run_sync(ledger.find_release, "k-" + r.query_id, write=False)
    assert found is not None and found.result == {"columns": ["n"], "rows": [[1]]}


def test_a_charge_cannot_pass_either_cap(store: Store) -> None:
    store.run_sync(ledger.reserve, _reservation(6 * NANO))
    with pytest.raises(BudgetExhausted):
        store.run_sync(ledger.reserve, _reservation(5 * NANO))
    store.run_sync(ledger.reserve, _reservation(4 * NANO))  # exactly to the cap
    with pytest.raises(BudgetExhausted):
        store.run_sync(ledger.reserve, _reservation(1))
    with pytest.raises(BudgetExhausted, match="dataset"):
        store.run_sync(ledger.reserve, _reservation(NANO, cap=100 * NANO, pool_cap=10 * NANO))
    # A refused charge left nothing behind, on neither account.
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, 0, 10 * NANO)


def test_the_check_constraint_backs_the_conditional_update(store: Store) -> None:
    store.run_sync(ledger.reserve, _reservation(NANO))

    def overspend(tx: Tx) -> None:
        tx.execute("UPDATE budget_accounts SET spent_nano = cap_nano + 1 WHERE account = 'grant:bank:residents'")

    with pytest.raises(Exception, match=r"(?i)check"):
        store.run_sync(overspend)


def test_failure_before_data_returns_after_data_keeps(store: Store) -> None:
    before, after = _reservation(2 * NANO), _reservation(3 * NANO)
    store.run_sync(ledger.reserve, before)
    store.run_sync(ledger.reserve, after)
    assert store.run_sync(ledger.return_reservation, before.query_id)
    store.run_sync(ledger.mark_executing, after.query_id, "bank")
    assert not store.run_sync(ledger.return_reservation, after.query_id), "refund after data was touched"
    assert store.run_sync(ledger.spend_without_release, after.query_id, "test")
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, 3 * NANO, 0)


def test_suspension_blocks_reserve_executing_and_commit(store: Store) -> None:
    r = _reservation(NANO)
    store.run_sync(ledger.reserve, r)
    store.run_sync(datasets.set_status, "residents", "suspended", "bureau")
    with pytest.raises(DatasetSuspended):
        store.run_sync(ledger.mark_executing, r.query_id, "bank")
    with pytest.raises(DatasetSuspended):
        store.run_sync(ledger.reserve, _reservation(NANO))
    store.run_sync(datasets.set_status, "residents", "active", "bureau")
    store.run_sync(ledger.mark_executing, r.query_id, "bank")
    store.run_sync(datasets.set_status, "residents", "withdrawn", "bureau")
    with pytest.raises(DatasetWithdrawn):
        store.run_sync(ledger.commit_release, _commit(r))
    assert store.run_sync(datasets.set_status, "residents", "active", "bureau") == "withdrawn", "withdrawal is final"


def test_concurrent_charges_never_overspend(store: Store) -> None:
    """64 threads race for a budget that fits exactly 10 charges (R-BU-02)."""
    wins, losses = [], []

    def one() -> None:
        try:
            store.run_sync(ledger.reserve, _reservation(NANO))
            wins.append(1)
        except BudgetExhausted:
            losses.append(1)

    threads = [threading.Thread(target=one) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 10 and len(losses) == 54
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, 0, 10 * NANO)


def test_recovery_returns_stale_reservations_and_keeps_executions(store: Store) -> None:
    reserved, executing = _reservation(NANO), _reservation(2 * NANO)
    store.run_sync(ledger.reserve, reserved)
    store.run_sync(ledger.reserve, executing)
    store.run_sync(ledger.mark_executing, executing.query_id, "bank")
    assert store.run_sync(ledger.recover, "2000-01-01T00:00:00.000000Z") == (0, 0), "fresh ones are left alone"
    assert store.run_sync(ledger.recover, "9999-01-01T00:00:00.000000Z") == (1, 1)
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, 2 * NANO, 0)


def test_idempotency_claim_replay_mismatch_in_progress(store: Store) -> None:
    assert store.run_sync(idempotency.claim, "bank", "k1", "fp1", 24) is None
    with pytest.raises(IdempotencyInProgress):
        store.run_sync(idempotency.claim, "bank", "k1", "fp1", 24)
    with pytest.raises(IdempotencyKeyReused):
        store.run_sync(idempotency.claim, "bank", "k1", "fp2", 24)
    store.run_sync(idempotency.complete, "bank", "k1", 200, '{"a": 1}')
    replay = store.run_sync(idempotency.claim, "bank", "k1", "fp1", 24)
    assert replay == idempotency.Replay(200, '{"a": 1}')
    assert store.run_sync(idempotency.claim, "other-org", "k1", "fp9", 24) is None, "keys are per requester"


def test_cached_answer_bills_without_charging(store: Store) -> None:
    r = _reservation(NANO)
    store.run_sync(ledger.reserve, r)
    store.run_sync(ledger.mark_executing, r.query_id, "bank")
    store.run_sync(ledger.commit_release, _commit(r))
    usage = ledger.Usage(uuid.uuid4().hex, 100, "CNY", "policy:v1")
    found = store.run_sync(ledger.serve_cached, "k-" + r.query_id, "bank", "c", usage, "2026-11", None)
    assert found is not None and found.query_id == r.query_id
    assert _accounts(store)["grant:bank:residents"] == (10 * NANO, NANO, 0)
    assert store.run_sync(ledger.billable_calls, "bank", "residents", "2026-11", write=False) == 2
    store.run_sync(datasets.set_status, "residents", "withdrawn", "bureau")
    with pytest.raises(DatasetWithdrawn):
        store.run_sync(ledger.serve_cached, "k-" + r.query_id, "bank", "c", usage, "2026-11", None)


def test_every_release_is_in_the_verified_audit_chain(store: Store) -> None:
    for _ in range(3):
        r = _reservation(NANO)
        store.run_sync(ledger.reserve, r)
        store.run_sync(ledger.mark_executing, r.query_id, "bank")
        store.run_sync(ledger.commit_release, _commit(r))
    verdict = store.run_sync(audit.verify, None, write=False)
    assert verdict.ok and verdict.entries >= 3

    def kinds(tx: Tx) -> list[str]:
        return [r[0] for r in tx.all("SELECT kind FROM audit_log ORDER BY seq")]

    assert store.run_sync(kinds, write=False).count("release.committed") == 3
    assert utc_now_text()


def test_a_lifetime_account_does_not_renew_with_the_period(store: Store) -> None:
    """Monthly caps renew; a pool's lifetime cap spans every period (docs/security.md)."""
    lifetime = ledger.Account("pool-lifetime:people", 3 * NANO, ledger.LIFETIME)

    def reservation(period: str) -> ledger.Reservation:
        return ledger.Reservation(uuid.uuid4().hex, "bank", "bank-client", "residents", None, period, 2 * NANO,
                                  (ledger.Account("grant:bank:residents", 10 * NANO), lifetime))

    first = reservation("2026-11")
    store.run_sync(ledger.reserve, first)
    store.run_sync(ledger.mark_executing, first.query_id, "bank")
    store.run_sync(ledger.commit_release, _commit(first))
    with pytest.raises(BudgetExhausted, match="for good"):
        store.run_sync(ledger.reserve, reservation("2026-12"))  # a new month, the same people
    used = store.run_sync(ledger.account_usage, ["pool-lifetime:people"], ledger.LIFETIME, write=False)
    assert used["pool-lifetime:people"] == (3 * NANO, 2 * NANO, 0)
    december = store.run_sync(ledger.account_usage, ["grant:bank:residents"], "2026-12", write=False)
    assert december == {}, "the refused charge left a December row behind"
    returned = reservation("2026-12")
    lifetime_small = ledger.Reservation(returned.query_id, "bank", "bank-client", "residents", None, "2026-12",
                                        NANO, returned.accounts)
    store.run_sync(ledger.reserve, lifetime_small)
    assert store.run_sync(ledger.return_reservation, lifetime_small.query_id)
    assert store.run_sync(ledger.account_usage, ["pool-lifetime:people"], ledger.LIFETIME,
                          write=False)["pool-lifetime:people"] == (3 * NANO, 2 * NANO, 0)
