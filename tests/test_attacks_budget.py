"""Requesters racing the privacy ledger, alone and together (R-DP-13, R-BU-01/02/07, R-ID-02).

Concurrent distinct queries at a small remaining budget never overspend; idempotent replays
never charge twice; a bank and an insurer whose grants cover the same people cannot add their
budgets up past the shared pool's cap, and the pool's refusal leaves no part of a reservation
behind on their grants; queries racing a suspension leave nothing reserved, and whatever
passed the point of no refund stays charged but unbilled.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support import FAST_RATES, Gateway, Reply, demo_gateway

BANK, INSURER = "demo-bank", "demo-insurer"
POOL = ("residents", "vehicles", "social_insurance")  # the datasets of the pool county_people
POOL_REFUSAL = re.compile(r"^The dataset's privacy budget for \d{4}-\d{2} is spent, for every requester; "
                          r"it renews on \d{4}-\d{2}-01 ")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    with demo_gateway(tmp_path_factory.mktemp("attacks-budget"), demo_data, env=FAST_RATES) as gateway:
        yield gateway


def ask(gw: Gateway, client: str, dataset: str, sql: str, eps: float, key: str | None = None) -> Reply:
    headers = {"Idempotency-Key": key} if key else None
    return gw.api("POST", "/v1/queries", client, {"dataset": dataset, "sql": sql, "epsilon": eps}, headers)


def budget(gw: Gateway, client: str) -> dict[str, dict[str, float]]:
    return {d["dataset"]: d for d in gw.api("GET", "/v1/budget", client).json["datasets"]}


def usage_count(gw: Gateway, client: str) -> int:
    return len(gw.api("GET", "/v1/usage", client).json["items"])


def distinct_count(dataset: str, column: str, i: int) -> str:
    """A different canonical query for each i, so none is answered from the cache. The literals
    are the bits of i + 1 (0 to 29), inside every column's bounds used here: a literal outside
    a column's declared bounds is refused (issue 11.8), so `column >= 900` would not do."""
    bits = ", ".join(str(b) for b in range(30) if (i + 1) >> b & 1)
    return f"SELECT COUNT(*) AS n FROM {dataset} WHERE {column} NOT IN ({bits})"


def in_parallel(calls: list[Any], workers: int = 16) -> list[Reply]:
    with cf.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda call: call(), calls))


def assert_nothing_left_reserved(gw: Gateway, client: str) -> None:
    """With nothing in flight, every line's remainder is its limit minus its spend: no
    reservation of a refused query stayed behind."""
    for line in budget(gw, client).values():
        expected = max(Decimal(str(line["epsilon_limit"])) - Decimal(str(line["epsilon_spent"])), Decimal(0))
        assert Decimal(str(line["epsilon_remaining"])) == expected, line


def set_pool_cap(gw: Gateway, cap: Decimal) -> None:
    """The bureau lowers social_insurance's global cap; the pool's cap is the smallest of its datasets'."""
    doc = gw.api("GET", "/v1/datasets/social_insurance/policy", "demo-bureau").json["document"]
    doc["budget"]["global_cap"] = str(cap)
    reply = gw.api("PUT", "/v1/datasets/social_insurance/policy", "demo-bureau", json.dumps(doc).encode())
    assert reply.status == 200 and reply.json["published"] is True, reply.body[:300]


def pool_spent(gw: Gateway) -> Decimal:
    """Everything charged to the pool this period: the two requesters are its only spenders here."""
    lines = [line for c in (BANK, INSURER) for d, line in budget(gw, c).items() if d in POOL]
    return sum((Decimal(str(line["epsilon_spent"])) for line in lines), Decimal(0))


def spend_down_to(gw: Gateway, client: str, dataset: str, column: str, left: Decimal) -> Decimal:
    """Spend a grant down to `left` with distinct queries at the policy's largest epsilon (2.0)."""
    to_spend = Decimal(str(budget(gw, client)[dataset]["epsilon_remaining"])) - left
    whole, rest = divmod(to_spend, 2)
    epsilons = [Decimal(2)] * int(whole) + ([rest] if rest else [])
    replies = in_parallel([lambda i=i, e=e: ask(gw, client, dataset, distinct_count(dataset, column, 200 + i), float(e))
                           for i, e in enumerate(epsilons)])
    assert all(r.status == 200 for r in replies), [r.body[:200] for r in replies]
    return to_spend


def test_the_same_question_from_two_requesters_is_charged_twice(gw: Gateway) -> None:
    """R-DP-05, R-DP-13: bank and insurer asking one question get independent noise, each paying
    from its own grant and both from the shared pool, so pooling answers is bounded by the pool."""
    sql = "SELECT sex, SUM(income) AS s FROM residents WHERE age >= 65 GROUP BY sex"
    pool_before = pool_spent(gw)
    replies = [ask(gw, client, "residents", sql, 0.5) for client in (BANK, INSURER)]
    assert all(r.status == 200 and r.json["cached"] is False and r.json["epsilon_spent"] == 0.5 for r in replies)
    assert replies[0].json["rows"] != replies[1].json["rows"], "noise derived from the question"
    assert pool_spent(gw) == pool_before + 1


def test_concurrent_distinct_queries_never_overspend(gw: Gateway) -> None:
    """R-BU-02: 16 different queries at once against 2.0 left: exactly six fit at 0.3."""
    start = budget(gw, BANK)["residents"]
    spent_first = spend_down_to(gw, BANK, "residents", "age", Decimal(2))
    usage_before = usage_count(gw, BANK)
    replies = in_parallel([lambda i=i: ask(gw, BANK, "residents", distinct_count("residents", "age", 50 + i), 0.3)
                           for i in range(16)])
    codes = sorted(r.status for r in replies)
    assert codes == [200] * 6 + [403] * 10, codes
    assert all(r.json["code"] == "budget_exhausted" for r in replies if r.status == 403)
    after = budget(gw, BANK)["residents"]
    assert Decimal(str(after["epsilon_spent"])) == Decimal(str(start["epsilon_spent"])) + spent_first + Decimal("1.8")
    assert after["epsilon_spent"] <= after["epsilon_limit"]
    assert usage_count(gw, BANK) == usage_before + 6
    assert_nothing_left_reserved(gw, BANK)


def test_idempotent_replays_never_charge(gw: Gateway) -> None:
    """R-ID-02: the same key and body sent eight times at once and three more: one charge, one
    usage record, one body byte for byte; the rest are replays or 409 while the first runs."""
    key, sql = str(uuid.uuid4()), "SELECT vehicle_type, COUNT(*) AS n FROM vehicles GROUP BY vehicle_type"
    before, usage_before = budget(gw, INSURER)["vehicles"]["epsilon_spent"], usage_count(gw, INSURER)
    burst = in_parallel([lambda: ask(gw, INSURER, "vehicles", sql, 0.5, key) for _ in range(8)], workers=8)
    later = [ask(gw, INSURER, "vehicles", sql, 0.5, key) for _ in range(3)]
    ok = [r for r in burst + later if r.status == 200]
    assert all(r.status == 409 and r.json["code"] == "idempotency_in_progress" for r in burst if r.status != 200)
    assert len({r.body for r in ok}) == 1 and len(ok) >= 4
    assert sum(r.header("Idempotent-Replayed") != "true" for r in ok) == 1
    assert budget(gw, INSURER)["vehicles"]["epsilon_spent"] == pytest.approx(before + 0.5)
    assert usage_count(gw, INSURER) == usage_before + 1


def test_colluding_requesters_cannot_pass_the_pools_cap(gw: Gateway) -> None:
    """R-DP-13: bank and insurer, over three datasets about the same people, 24 queries at once:
    their grants still have room, but the pool's cap stops them at exactly the cap."""
    spent_before = pool_spent(gw)
    set_pool_cap(gw, spent_before + 2)
    pairs = [(BANK, "social_insurance", "contribution_base"), (INSURER, "residents", "age"),
             (INSURER, "vehicles", "vehicle_age")]
    for client, dataset, _column in pairs:
        assert budget(gw, client)[dataset]["epsilon_remaining"] >= 2, "a grant, not the pool, would bind"
    try:
        replies = in_parallel([lambda c=c, d=d, col=col, i=i: ask(gw, c, d, distinct_count(d, col, 900 + i), 0.25)
                               for c, d, col in pairs for i in range(8)])
        assert sorted(r.status for r in replies) == [200] * 8 + [403] * 16, [r.body[:120] for r in replies]
        assert all(POOL_REFUSAL.match(r.json["detail"]) for r in replies if r.status == 403), replies[-1].body
        assert pool_spent(gw) == spent_before + 2, "the pool was overspent or a refusal was charged"
        for client in (BANK, INSURER):
            assert_nothing_left_reserved(gw, client)
        again = ask(gw, BANK, "residents", distinct_count("residents", "age", 999), 0.01)
        assert again.status == 403 and POOL_REFUSAL.match(again.json["detail"]), "a fourth dataset route around"
    finally:
        set_pool_cap(gw, Decimal(200))


def status_changes(gw: Gateway, dataset: str) -> list[tuple[int, str, str]]:
    """(seq, kind, subject) of releases and status changes of a dataset, from the audit chain."""
    db = sqlite3.connect(f"file:{gw.state_dir / 'gateway.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT seq, kind, subject, payload FROM audit_log WHERE kind LIKE 'dataset.%' "
                          "OR kind LIKE 'release.%' ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(seq, kind, subject) for seq, kind, subject, payload in rows
            if subject == dataset or json.loads(payload).get("dataset") == dataset]


@pytest.mark.slow
def test_a_suspension_mid_stream_neither_leaks_nor_loses_a_charge(gw: Gateway) -> None:
    """R-BU-01, R-BU-07: queries racing a suspension are answered, refused 409 or failed 500;
    spend equals exactly what was answered or failed, nothing stays reserved, and no release
    commits between the suspension and the resumption."""
    before, usage_before = budget(gw, BANK)["enterprises"]["epsilon_spent"], usage_count(gw, BANK)
    suspended = threading.Event()

    def suspend_then_resume() -> None:
        time.sleep(0.6)
        assert gw.api("POST", "/v1/datasets/enterprises/suspend", "demo-bureau").status == 200
        suspended.set()
        time.sleep(0.6)
        assert gw.api("POST", "/v1/datasets/enterprises/resume", "demo-bureau").status == 200

    switch = threading.Thread(target=suspend_then_resume)
    switch.start()
    replies = in_parallel([lambda i=i: ask(gw, BANK, "enterprises", distinct_count("enterprises", "employees", i), 0.1)
                           for i in range(40)], workers=6)
    switch.join()
    assert suspended.is_set()
    codes = [r.status for r in replies]
    assert set(codes) <= {200, 409, 500} and 409 in codes, codes
    assert all(r.json["code"] == "dataset_suspended" for r in replies if r.status == 409)
    failures = {json.dumps({k: v for k, v in r.json.items() if k != "instance"}) for r in replies if r.status == 500}
    assert len(failures) <= 1 and all('"code": "release_failed"' in f for f in failures), failures  # R-DP-11
    charged = sum(1 for c in codes if c in (200, 500))
    assert budget(gw, BANK)["enterprises"]["epsilon_spent"] == pytest.approx(before + 0.1 * charged)
    assert usage_count(gw, BANK) == usage_before + codes.count(200), "a failure was billed"
    assert_nothing_left_reserved(gw, BANK)
    events = status_changes(gw, "enterprises")
    down = next(seq for seq, kind, _ in events if kind == "dataset.suspended")
    up = next(seq for seq, kind, _ in events if kind == "dataset.resumed")
    assert not [e for e in events if e[1] == "release.committed" and down < e[0] < up]
