"""Delta kept beside epsilon on every account, on SQLite and PostgreSQL (issue 11.2, R-DP-17).

Private-key group-bys are (epsilon, delta)-DP: each charge reserves its delta on the grant, the
pool and the pool's lifetime account in the same conditional update as its epsilon, in exact
atto-units (10^-18), and a charge that would pass either figure's cap is refused whole.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core.budget import ATTO, to_atto
from gateway.errors import BudgetExhausted
from gateway.store import ledger
from gateway.store.db import Store, Tx
from tests.store_support import STORE_KINDS, bank_and_dataset, param_store

NANO = 10**9
PERIOD = "2026-11"
GRANT, POOL, LIFETIME = "grant:bank:vehicles", "pool:people", "pool-lifetime:people"


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path, bank_and_dataset("vehicles")) as s:
        yield s


def accounts(grant_delta: int = 5 * to_atto("1e-8"), pool_delta: int = 10 * to_atto("1e-8"),
             lifetime_delta: int = 20 * to_atto("1e-8")) -> tuple[ledger.Account, ...]:
    return (ledger.Account(GRANT, 10 * NANO, delta_cap_atto=grant_delta),
            ledger.Account(POOL, 100 * NANO, delta_cap_atto=pool_delta),
            ledger.Account(LIFETIME, 1000 * NANO, ledger.LIFETIME, delta_cap_atto=lifetime_delta))


def reservation(delta: str = "1e-8", eps_nano: int = NANO // 10, period: str = PERIOD,
                caps: tuple[ledger.Account, ...] | None = None) -> ledger.Reservation:
    return ledger.Reservation(uuid.uuid4().hex, "bank", "bank-client", "vehicles", None, period, eps_nano,
                              caps or accounts(), delta_atto=to_atto(delta))


def commit(r: ledger.Reservation) -> ledger.Commit:
    return ledger.Commit(
        query_id=r.query_id, org_id="bank", client_id="bank-client", actor="bank-client", dataset="vehicles",
        product_id=None, cache_key="k-" + r.query_id, plan_fingerprint="fp", policy_version="v1",
        snapshot_id="s1", period=r.period, epsilon_nano=r.epsilon_nano, result={"columns": ["n"], "rows": [[1]]},
        accuracy={}, release_hash="h", usage=ledger.Usage(uuid.uuid4().hex, 100, "CNY", "policy:v1"),
        delta_atto=r.delta_atto)


def figures(store: Store, account: str, period: str = PERIOD) -> ledger.Figures:
    found = store.run_sync(ledger.account_figures, [account], period, write=False)
    return found[account]


def release(store: Store, r: ledger.Reservation) -> None:
    store.run_sync(ledger.reserve, r)
    store.run_sync(ledger.mark_executing, r.query_id, "bank")
    store.run_sync(ledger.commit_release, commit(r))


def test_one_atto_is_exact_and_a_delta_rounds_up() -> None:
    assert to_atto("1e-8") == 10**10 and to_atto("1e-12") == 10**6 and to_atto("1") == ATTO
    assert to_atto("1.0000000000000000001e-8") == 10**10 + 1  # never charged less than asked


def test_delta_is_reserved_then_spent_on_every_account(store: Store) -> None:
    r = reservation("1e-8")
    store.run_sync(ledger.reserve, r)
    for name in (GRANT, POOL):
        assert figures(store, name).delta_reserved_atto == to_atto("1e-8")
    assert figures(store, LIFETIME, ledger.LIFETIME).delta_reserved_atto == to_atto("1e-8")
    store.run_sync(ledger.mark_executing, r.query_id, "bank")
    store.run_sync(ledger.commit_release, commit(r))
    grant = figures(store, GRANT)
    assert (grant.delta_cap_atto, grant.delta_spent_atto, grant.delta_reserved_atto) == (5 * 10**10, 10**10, 0)
    assert (grant.cap_nano, grant.spent_nano, grant.reserved_nano) == (10 * NANO, NANO // 10, 0)
    assert figures(store, LIFETIME, ledger.LIFETIME).delta_spent_atto == 10**10
    usage = store.run_sync(lambda tx: tx.one("SELECT delta_atto FROM usage_records"), write=False)
    stored = store.run_sync(lambda tx: tx.one("SELECT delta_atto FROM releases"), write=False)
    assert usage[0] == stored[0] == 10**10


@pytest.mark.parametrize(("caps", "detail"), [
    (accounts(grant_delta=2 * 10**10), r"your delta budget for \d{4}-\d{2}; it renews on"),
    (accounts(pool_delta=2 * 10**10), r"dataset's delta budget for \d{4}-\d{2} is spent, for every requester"),
    (accounts(lifetime_delta=2 * 10**10), "delta budget of the people in this dataset is spent for good"),
])
def test_a_charge_passing_any_delta_cap_is_refused_whole(store: Store, caps: tuple[ledger.Account, ...],
                                                         detail: str) -> None:
    release(store, reservation("1e-8", caps=caps))
    store.run_sync(ledger.reserve, reservation("1e-8", caps=caps))  # exactly to the cap
    with pytest.raises(BudgetExhausted, match=detail) as refused:
        store.run_sync(ledger.reserve, reservation("1e-12", caps=caps))
    assert refused.value.extra["delta_remaining"] == pytest.approx(
        max(caps[0].delta_cap_atto - 2 * 10**10, 0) / ATTO)
    # Nothing of the refused charge stayed, on any account, in either figure.
    grant = figures(store, GRANT)
    assert grant.reserved_nano == NANO // 10 and grant.delta_reserved_atto == 10**10
    assert grant.spent_nano == NANO // 10 and grant.delta_spent_atto == 10**10
    # A query that spends no delta is not held up by a delta cap reached.
    store.run_sync(ledger.reserve, reservation("0", caps=caps))


def test_a_lowered_delta_cap_refuses_delta_but_not_epsilon_only_queries(store: Store) -> None:
    release(store, reservation("1e-8"))
    lowered = accounts(grant_delta=5 * 10**9)  # below what is already spent
    store.run_sync(ledger.reserve, reservation("0", caps=lowered))
    with pytest.raises(BudgetExhausted, match="delta"):
        store.run_sync(ledger.reserve, reservation("1e-12", caps=lowered))


def test_returned_and_kept_charges_settle_delta_like_epsilon(store: Store) -> None:
    before, after = reservation("1e-8"), reservation("2e-8")
    store.run_sync(ledger.reserve, before)
    store.run_sync(ledger.reserve, after)
    assert store.run_sync(ledger.return_reservation, before.query_id)
    store.run_sync(ledger.mark_executing, after.query_id, "bank")
    assert store.run_sync(ledger.spend_without_release, after.query_id, "test")
    grant = figures(store, GRANT)
    assert (grant.delta_spent_atto, grant.delta_reserved_atto) == (2 * 10**10, 0)


def test_the_check_constraint_backs_the_delta_update(store: Store) -> None:
    store.run_sync(ledger.reserve, reservation("1e-8"))

    def overspend(tx: Tx) -> None:
        tx.execute("UPDATE budget_accounts SET delta_spent_atto = delta_cap_atto + 1 WHERE account = ?", (GRANT,))

    with pytest.raises(Exception, match=r"(?i)check"):
        store.run_sync(overspend)


def test_concurrent_delta_charges_never_overspend(store: Store) -> None:
    """32 threads race for a grant whose delta fits exactly 5 charges (its epsilon fits 100)."""
    wins, losses = [], []

    def one() -> None:
        try:
            store.run_sync(ledger.reserve, reservation("1e-8"))
            wins.append(1)
        except BudgetExhausted:
            losses.append(1)

    threads = [threading.Thread(target=one) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 5 and len(losses) == 27
    assert figures(store, GRANT).delta_reserved_atto == 5 * 10**10


def test_a_policy_stored_before_delta_caps_still_loads_and_spends_no_delta() -> None:
    """Stricter rules refuse new documents, not those already published: a vehicles policy
    stored before `budget.delta` existed (private keys allowed, no delta caps) still loads in the
    registry, with delta caps of 0, so private keys are refused until the bureau publishes caps."""
    import yaml

    from gateway.core.policy_parse import parse_policy
    from gateway.errors import PolicyInvalid
    from gateway.policyfiles import policy_schema, shipped_policies_dir
    from gateway.runtime.registry import stored_policy

    old = yaml.safe_load((shipped_policies_dir() / "vehicles.yaml").read_text(encoding="utf-8"))
    del old["budget"]["delta"]
    old["private_keys"]["delta"] = "1e-7"
    with pytest.raises(PolicyInvalid, match=r"budget\.delta"):
        parse_policy(yaml.safe_dump(old), "vehicles.yaml", policy_schema())  # refused if published now
    policy = stored_policy(old)
    assert policy.private_keys_allowed and policy.delta_per_grant == 0 and policy.delta_global_cap is None
