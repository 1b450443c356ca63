"""`gateway store migrate --to DSN`: a county moves from SQLite to PostgreSQL with nothing lost.

A demo gateway answers queries on SQLite and stops; the command copies its store into a fresh
PostgreSQL schema; a gateway on that DSN and the same state folder then shows the same budgets,
usage and audit chain (docs/operations.md, "Moving a county from SQLite to PostgreSQL").
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store_support import postgres_schema
from tests.support import BIN, Gateway, seed_demo_data

pytestmark = pytest.mark.postgres
COUNT = "SELECT COUNT(*) AS n FROM residents WHERE age >= 18"
BY_TOWNSHIP = "SELECT township, COUNT(*) AS n FROM residents GROUP BY township"


def migrate(state: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "gateway"), "store", "migrate", "--state-dir", str(state), "--to", dsn],
                          capture_output=True, text=True, timeout=120)


def audit_cli(state: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(BIN / "gateway"), "audit", "verify", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def ledger_view(gw: Gateway) -> dict[str, Any]:
    """What the requesters and the bureau see of budgets, usage and the audit chain."""
    view: dict[str, Any] = {}
    for client in ("demo-bank", "demo-insurer"):
        budget = gw.api("GET", "/v1/budget", client)
        assert budget.status == 200, budget.body
        view[f"budget:{client}"] = budget.json
    usage = gw.api("GET", "/v1/usage", "demo-bureau")
    assert usage.status == 200, usage.body
    view["usage"] = sorted(usage.json["items"], key=lambda item: str(sorted(item.items())))
    audit = gw.api("GET", "/v1/audit/verify", "demo-bureau")
    assert audit.status == 200 and audit.json["ok"] is True, audit.body
    view["audit"] = audit.json
    return view


@pytest.fixture
def target(postgres_dsn: str) -> Iterator[str]:
    with postgres_schema(postgres_dsn) as dsn:
        yield dsn


@pytest.mark.slow  # about 55 s: a county served, copied to PostgreSQL, served again (make test-slow)
def test_a_county_moves_to_postgres_with_budgets_usage_and_audit_intact(
        tmp_path: Path, demo_data: Path, target: str) -> None:
    seed_demo_data(tmp_path, demo_data)
    gw = Gateway(tmp_path).start()
    try:
        answers = [gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "sql": sql, "epsilon": eps},
                          {"Idempotency-Key": str(uuid.uuid4())})
                   for sql, eps in ((COUNT, 0.2), (BY_TOWNSHIP, 0.3), (COUNT, 0.2))]
        answers.append(gw.api("POST", "/v1/queries", "demo-insurer",
                              {"dataset": "vehicles", "sql": "SELECT COUNT(*) AS n FROM vehicles", "epsilon": 0.5}))
        assert [a.status for a in answers] == [200, 200, 200, 200], [a.body[:200] for a in answers]
        assert answers[2].json["cached"] is True
        before = ledger_view(gw)
    finally:
        assert gw.stop() == 0
    head_before = audit_cli(tmp_path)

    moved = migrate(tmp_path, target)
    assert moved.returncode == 0, moved.stderr
    assert "ok: audit chain verified" in moved.stdout and before["audit"]["head"] in moved.stdout
    assert audit_cli(tmp_path, env=_env(GATEWAY_STORE_DSN=target)) == head_before

    pg = Gateway(tmp_path, env={"GATEWAY_STORE_DSN": target}).start()
    try:
        pg.tokens.update(gw.tokens)  # tokens from before the move verify (keys moved too) and
        after = ledger_view(pg)      # issuing none keeps the audit chain exactly as it was
        assert after == before
        # The moved county keeps working: the cached answer is still free on PostgreSQL.
        again = pg.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "sql": COUNT, "epsilon": 0.2})
        assert again.status == 200 and again.json["cached"] is True, again.body
        assert again.json["query_id"] == answers[0].json["query_id"]
    finally:
        assert pg.stop() == 0


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _sqlite_county(state: Path) -> None:
    """A store with the demo county's clients and grants, without starting a server."""
    from gateway.cli.demo import ensure_demo_county
    from gateway.store.schema import open_store

    store = open_store("", state)
    try:
        ensure_demo_county(store, state, "http://127.0.0.1:1")
    finally:
        store.close()


def test_a_target_that_holds_data_is_refused_and_left_alone(tmp_path: Path, target: str) -> None:
    _sqlite_county(tmp_path)
    first = migrate(tmp_path, target)
    assert first.returncode == 0, first.stderr
    second = migrate(tmp_path, target)
    assert second.returncode == 1
    assert "already holds data" in second.stderr
    assert audit_cli(tmp_path, env=_env(GATEWAY_STORE_DSN=target)) == audit_cli(tmp_path)


def test_unfinished_queries_are_refused_and_nothing_is_copied(tmp_path: Path, target: str) -> None:
    _sqlite_county(tmp_path)
    with sqlite3.connect(tmp_path / "gateway.db") as db:  # what a killed gateway leaves behind
        db.execute("INSERT INTO queries (query_id, org_id, client_id, dataset, period, epsilon_nano, accounts, "
                   "state, created_at, updated_at) VALUES ('q1', 'lingxi-rural-bank', 'demo-bank', 'residents', "
                   "'2026-01', 1000, '[]', 'executing', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
    refused = migrate(tmp_path, target)
    assert refused.returncode == 1 and "unfinished" in refused.stderr
    import psycopg

    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT COUNT(*) FROM organisations").fetchone() == (0,)


def test_a_missing_store_or_an_unreachable_target_names_no_secret(tmp_path: Path) -> None:
    missing = migrate(tmp_path, "postgresql://gateway:s3cret-pw@127.0.0.1:1/none")
    assert missing.returncode == 1 and "no SQLite store" in missing.stderr
    _sqlite_county(tmp_path)
    unreachable = migrate(tmp_path, "postgresql://gateway:s3cret-pw@127.0.0.1:1/none")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert "s3cret-pw" not in unreachable.stdout + unreachable.stderr
