"""The audit chain on SQLite and PostgreSQL: appended, verified, attacked, checkpointed.

R-AD-01 (hash chain, gapless), R-AD-02 (no forks under concurrent writers), R-AD-03 (triggers
refuse UPDATE/DELETE), R-AD-04/05 (signed checkpoints; `audit verify` names the first bad seq).
The attacks drop the triggers first, as someone with the database owner's rights would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.store import audit
from gateway.store.db import Store, Tx
from tests.store_support import open_test_store

ENTRIES = 600
BATCH = 200
GATEWAY = str(Path(sys.executable).parent / "gateway")
KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    with open_test_store(kind, tmp_path, dsn) as opened:
        yield opened


def append_many(store: Store, count: int = ENTRIES) -> int:
    """`count` entries in transactions of BATCH; returns the head seq after."""
    def batch(tx: Tx, first: int, size: int) -> None:
        for n in range(first, first + size):
            audit.append(tx, "test.event", f"actor-{n % 7}", f"subject-{n}", {"n": n, "note": "灵溪"})

    for first in range(0, count, BATCH):
        store.run_sync(batch, first, min(BATCH, count - first))
    return store.run_sync(audit.head, write=False)[0]


def verify(store: Store, checkpoint: tuple[int, str] | None = None) -> audit.Verdict:
    return store.run_sync(audit.verify, checkpoint, write=False)


def row(store: Store, seq: int) -> tuple[object, ...]:
    found = store.run_sync(lambda tx: tx.one(
        "SELECT seq, at, kind, actor, subject, payload, prev_hash, hash FROM audit_log WHERE seq = ?",
        (seq,)), write=False)
    assert found is not None
    return found


def drop_triggers(store: Store) -> None:
    def drop(tx: Tx) -> None:
        if tx.dialect == "postgres":
            tx.execute("DROP TRIGGER audit_log_no_update ON audit_log")
        else:
            tx.execute("DROP TRIGGER audit_log_no_update")
            tx.execute("DROP TRIGGER audit_log_no_delete")
    store.run_sync(drop)


def execute(store: Store, sql: str, params: tuple[object, ...] = ()) -> int:
    return store.run_sync(lambda tx: tx.execute(sql, params))


def set_head(store: Store, seq: int) -> None:
    """What a careful attacker does after cutting the tail: point the head at the new last entry."""
    digest = "0" * 64 if seq == 0 else str(row(store, seq)[7])
    execute(store, "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))


def rewrite_tail(store: Store, start: int) -> None:
    """Rewrite every entry from `start` with consistent hashes: undetectable without a checkpoint."""
    last = store.run_sync(audit.head, write=False)[0]
    prev = str(row(store, start - 1)[7]) if start > 1 else audit.GENESIS
    for seq in range(start, last + 1):
        _s, at, kind, actor, subject, _payload, _p, _h = row(store, seq)
        payload = audit.canonical_json({"forged": seq})
        digest = audit.entry_hash(prev, seq, str(at), str(kind), str(actor), str(subject), payload)
        execute(store, "UPDATE audit_log SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (payload, prev, digest, seq))
        prev = digest
    execute(store, "UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))


# ---------------------------------------------------------------- an honest chain


def test_a_long_chain_verifies(store: Store) -> None:
    last = append_many(store)
    verdict = verify(store)
    assert verdict.ok and verdict.entries == last >= ENTRIES
    assert verdict.head == store.run_sync(audit.head, write=False)[1] == row(store, last)[7]
    assert json.loads(str(row(store, last)[5])) == {"n": ENTRIES - 1, "note": "灵溪"}


def test_concurrent_writers_never_fork_the_chain(store: Store) -> None:
    async def many() -> None:
        def one(tx: Tx, n: int) -> None:
            for i in range(10):
                audit.append(tx, "test.concurrent", "writer", f"{n}-{i}", {})
        await asyncio.gather(*(store.write(one, n) for n in range(16)))

    before = store.run_sync(audit.head, write=False)[0]
    asyncio.run(many())
    verdict = verify(store)
    assert verdict.ok and verdict.entries == before + 160


def test_triggers_refuse_update_and_delete(store: Store) -> None:
    last = append_many(store, 20)
    with pytest.raises(Exception, match="append-only"):
        execute(store, "UPDATE audit_log SET payload = '{}' WHERE seq = ?", (last,))
    with pytest.raises(Exception, match="append-only"):
        execute(store, "DELETE FROM audit_log WHERE seq = ?", (last,))
    with pytest.raises(Exception, match="append-only"):
        execute(store, "DELETE FROM audit_log")
    assert verify(store).ok and verify(store).entries == last


# ---------------------------------------------------------------- attacks, located


def edit_payload(store: Store, k: int) -> int:
    execute(store, "UPDATE audit_log SET payload = ? WHERE seq = ?", ('{"n":-1}', k))
    return k


def delete_row(store: Store, k: int) -> int:
    execute(store, "DELETE FROM audit_log WHERE seq = ?", (k,))
    return k


def forge_wrong_prev(store: Store, k: int) -> int:
    """A row whose hash is right for its own fields, but whose prev is not the entry before."""
    _s, at, kind, actor, subject, _payload, _prev, _hash = row(store, k)
    wrong_prev, payload = str(row(store, k - 2)[7]), audit.canonical_json({"forged": True})
    digest = audit.entry_hash(wrong_prev, k, str(at), str(kind), str(actor), str(subject), payload)
    execute(store, "UPDATE audit_log SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (payload, wrong_prev, digest, k))
    return k


def forge_right_prev(store: Store, k: int) -> int:
    """A rewritten row consistent with its predecessor: the next row's link breaks instead."""
    _s, at, kind, actor, subject, _payload, prev, _hash = row(store, k)
    payload = audit.canonical_json({"forged": True})
    digest = audit.entry_hash(str(prev), k, str(at), str(kind), str(actor), str(subject), payload)
    execute(store, "UPDATE audit_log SET payload = ?, hash = ? WHERE seq = ?", (payload, digest, k))
    return k + 1


def truncate_tail(store: Store, k: int) -> int:
    execute(store, "DELETE FROM audit_log WHERE seq >= ?", (k,))
    return k


def swap_order(store: Store, k: int) -> int:
    a, b = row(store, k), row(store, k + 1)
    execute(store, "UPDATE audit_log SET kind = ?, payload = ? WHERE seq = ?", (b[2], b[5], k))
    execute(store, "UPDATE audit_log SET kind = ?, payload = ? WHERE seq = ?", (a[2], a[5], k + 1))
    return k


ATTACKS: list[Callable[[Store, int], int]] = [
    edit_payload, delete_row, forge_wrong_prev, forge_right_prev, truncate_tail, swap_order]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.__name__)
def test_verify_names_the_first_bad_entry(store: Store, attack: Callable[[Store, int], int]) -> None:
    append_many(store, 200)
    drop_triggers(store)
    assert verify(store).ok
    first_bad = attack(store, 123)
    verdict = verify(store)
    assert not verdict.ok
    assert verdict.first_bad_seq == first_bad, verdict.reason


def test_a_careful_truncation_needs_a_checkpoint_to_be_seen(store: Store) -> None:
    last = append_many(store, 200)
    checkpoint = store.run_sync(audit.head, write=False)
    drop_triggers(store)
    truncate_tail(store, 150)
    set_head(store, 149)
    assert verify(store).ok  # a chain cut short is still a chain...
    verdict = verify(store, checkpoint)  # ...but shorter than what was signed
    assert not verdict.ok and verdict.first_bad_seq == 150 and last == checkpoint[0]


def test_a_rewritten_tail_needs_a_checkpoint_to_be_seen(store: Store) -> None:
    append_many(store, 200)
    checkpoint = store.run_sync(audit.head, write=False)
    drop_triggers(store)
    rewrite_tail(store, 120)
    assert verify(store).ok
    verdict = verify(store, checkpoint)
    assert not verdict.ok and verdict.first_bad_seq == checkpoint[0]


# ---------------------------------------------------------------- the CLI


def cli(state: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, "audit", *args, "--state-dir", str(state)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def cli_env(kind: str, store: Store) -> dict[str, str]:
    if kind == "sqlite":
        return {"GATEWAY_STORE_DSN": ""}
    dsn = store.pool.conninfo  # type: ignore[attr-defined]
    return {"GATEWAY_STORE_DSN": dsn}


def test_cli_checkpoint_then_verify_detects_truncation_and_rewriting(
        kind: str, store: Store, tmp_path: Path) -> None:
    env = cli_env(kind, store)
    append_many(store, 200)
    out = tmp_path / "checkpoint.json"
    assert cli(tmp_path, env, "checkpoint", "--out", str(out)).returncode == 0
    signed = json.loads(out.read_text())
    assert signed["seq"] == 200 and signed["signature"]
    good = cli(tmp_path, env, "verify", "--checkpoint", str(out))
    assert good.returncode == 0 and "ok: 200 entries" in good.stdout

    drop_triggers(store)
    rewrite_tail(store, 190)  # verify() alone passes this: see the tests above
    rewritten = cli(tmp_path, env, "verify", "--checkpoint", str(out))
    assert rewritten.returncode == 1 and "BROKEN at entry 200" in rewritten.stderr

    truncate_tail(store, 181)
    set_head(store, 180)
    cut = cli(tmp_path, env, "verify", "--checkpoint", str(out))
    assert cut.returncode == 1 and "BROKEN at entry 181" in cut.stderr


@pytest.mark.parametrize("kind", ["sqlite"])  # the signature check does not touch the store
def test_cli_refuses_a_checkpoint_whose_signature_fails(kind: str, store: Store, tmp_path: Path) -> None:
    env = cli_env(kind, store)
    append_many(store, 10)
    out = tmp_path / "checkpoint.json"
    assert cli(tmp_path, env, "checkpoint", "--out", str(out)).returncode == 0
    signed = json.loads(out.read_text())
    out.write_text(json.dumps({**signed, "seq": 5}))  # claim a shorter log than was signed
    done = cli(tmp_path, env, "verify", "--checkpoint", str(out))
    assert done.returncode != 0 and "ok:" not in done.stdout
