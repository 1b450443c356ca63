"""Budget charges of one key charged together (store/pg_group.py, store/ledger_many.py; issue 18
point 3): concurrent grouped charges never pass a cap, a refused one is refused as it would be
alone, and a group that does not fit whole leaves nothing behind."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import BudgetExhausted
from gateway.store import ledger, ledger_many
from gateway.store.db import Store, Tx
from tests.store_support import STORE_KINDS, bank_and_dataset, param_store

NANO = 10**9


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path, bank_and_dataset("residents")) as s:
        yield s


def _reservation(eps_nano: int, cap: int) -> ledger.Reservation:
    return ledger.Reservation(uuid.uuid4().hex, "bank", "bank-client", "residents", None, "2026-11", eps_nano,
                              (ledger.Account("grant:bank:residents", cap), ledger.Account("pool:people", 100 * NANO)))


def _many(tx: Tx, calls: list[tuple[Any, ...]]) -> list[None]:
    ledger_many.reserve_many(tx, [r for (r,) in calls])
    return [None] * len(calls)


def _grouped(store: Store, r: ledger.Reservation) -> None:
    store.run_sync(ledger.reserve, r, group=(ledger_many.charge_key(r), _many))


def _queries(tx: Tx) -> int:
    row = tx.one("SELECT COUNT(*) FROM queries")
    assert row is not None
    return int(row[0])


def test_concurrent_grouped_charges_never_overspend(store: Store) -> None:
    """96 threads race, grouped, for a cap that fits exactly 40 charges."""
    wins, losses, others = [], [], []

    def one() -> None:
        try:
            _grouped(store, _reservation(NANO // 4, 10 * NANO))
            wins.append(1)
        except BudgetExhausted as exc:
            losses.append(exc.extra["epsilon_remaining"])
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            others.append(exc)

    threads = [threading.Thread(target=one) for _ in range(96)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert others == [] and len(wins) == 40 and len(losses) == 56
    usage = store.run_sync(ledger.account_usage, ["grant:bank:residents"], "2026-11", write=False)
    assert usage["grant:bank:residents"] == (10 * NANO, 0, 10 * NANO)
    assert store.run_sync(_queries, write=False) == 40  # refused charges left no query behind


def test_a_group_that_does_not_fit_whole_is_refused_and_leaves_nothing(store: Store) -> None:
    group = [_reservation(3 * NANO, 10 * NANO) for _ in range(4)]  # 12 > 10: not as a whole
    with pytest.raises(ledger_many.GroupRefused):
        store.run_sync(ledger_many.reserve_many, group)
    assert store.run_sync(_queries, write=False) == 0
    usage = store.run_sync(ledger.account_usage, ["grant:bank:residents"], "2026-11", write=False)
    assert usage.get("grant:bank:residents", (10 * NANO, 0, 0))[2] == 0
    store.run_sync(ledger_many.reserve_many, group[:3])  # 9 <= 10: the three together
    assert store.run_sync(_queries, write=False) == 3


def test_the_key_tells_apart_accounts_periods_and_caps() -> None:
    a, b = _reservation(NANO, 10 * NANO), _reservation(2 * NANO, 10 * NANO)
    assert ledger_many.charge_key(a) == ledger_many.charge_key(b)
    assert ledger_many.charge_key(a) != ledger_many.charge_key(_reservation(NANO, 11 * NANO))
    later = ledger.Reservation(**{**a.__dict__, "period": "2026-12"})
    assert ledger_many.charge_key(a) != ledger_many.charge_key(later)
