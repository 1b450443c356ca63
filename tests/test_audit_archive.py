"""Retention of the audit log (issue 16 point 5): `gateway audit archive` moves entries past
log_retention_days into signed, hash-chained files; `gateway audit verify` (and /v1/audit/verify)
walk the chain through every file into the live store, and name where a file was tampered with.

Entries older than six months are written as an old store holds them: the same hash rule, an
old `at`. The CLI runs as a subprocess on a real SQLite file or a real PostgreSQL schema.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.auth.checkpoints import sign_checkpoint
from gateway.auth.tokens import Keyring
from gateway.clock import utc_text
from gateway.core.canonical import canonical_json
from gateway.service import audit_archive as service
from gateway.settings import SettingsError, load_settings
from gateway.store import audit
from gateway.store import audit_archive as files
from gateway.store.db import Store, Tx
from tests.store_support import open_test_store
from tests.support import demo_gateway

GATEWAY = str(Path(sys.executable).parent / "gateway")
KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
NOW = datetime.now(UTC)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    Keyring(tmp_path / "keys").add()
    with open_test_store(kind, tmp_path, dsn) as opened:
        yield opened


def env_of(kind: str, store: Store) -> dict[str, str]:
    return {"GATEWAY_STORE_DSN": store.pool.conninfo if kind == "postgres" else ""}  # type: ignore[attr-defined]


def cli(state: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, "audit", *args, "--state-dir", str(state)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env})


def append_old(store: Store, days_ago: float, count: int) -> None:
    """`count` entries appended `days_ago` days ago (one second apart), as an old store holds them."""
    def write(tx: Tx) -> None:
        for n in range(count):
            seq, prev = audit.head(tx)
            seq += 1
            at = utc_text(NOW - timedelta(days=days_ago) + timedelta(seconds=n))
            text = canonical_json({"n": n, "note": "灵溪"})
            digest = audit.entry_hash(prev, seq, at, "test.old", "actor", f"subject-{seq}", text)
            tx.execute("INSERT INTO audit_log (seq, at, kind, actor, subject, payload, prev_hash, hash) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (seq, at, "test.old", "actor", f"subject-{seq}", text,
                                                          prev, digest))
            tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    store.run_sync(write)


def append_new(store: Store, count: int) -> None:
    def write(tx: Tx) -> None:
        for n in range(count):
            audit.append(tx, "test.new", "actor", f"new-{n}", {"n": n})
    store.run_sync(write)


def live_count(store: Store) -> int:
    row = store.run_sync(lambda tx: tx.one("SELECT COUNT(*) FROM audit_log"), write=False)
    assert row is not None
    return int(row[0])


def claims_of(path: Path) -> dict[str, object]:
    token = json.loads(path.read_text().splitlines()[-1])["manifest"]
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def day(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


# ---------------------------------------------------------------- archive, verify, chain of runs


def test_archive_then_verify_end_to_end_loses_nothing(kind: str, store: Store, tmp_path: Path) -> None:
    env = env_of(kind, store)
    append_old(store, 400, 300)
    append_old(store, 30, 40)  # inside the retention period: stays
    append_new(store, 20)
    head_before = store.run_sync(audit.head, write=False)[0]
    done = cli(tmp_path, env, "archive")  # default folder: STATE_DIR/audit-archive
    assert done.returncode == 0, done.stderr
    assert "archived 300 entries (up to entry 300" in done.stdout
    folder = tmp_path / "audit-archive"
    assert [p.name for p in folder.iterdir()] == ["audit-000001.jsonl"]
    lines = (folder / "audit-000001.jsonl").read_text().splitlines()
    assert len(lines) == 301 and [json.loads(x)["seq"] for x in lines[:300]] == list(range(1, 301))
    # nothing lost: archived + live = every entry, plus the one that records the move
    head_after = store.run_sync(audit.head, write=False)[0]
    assert head_after == head_before + 1 and 300 + live_count(store) == head_after
    assert store.run_sync(audit.floor, write=False)[:1] == (300,)
    verified = cli(tmp_path, env, "verify")
    assert verified.returncode == 0, verified.stderr
    assert f"ok: {head_after} entries (300 of them in archive files)" in verified.stdout
    again = cli(tmp_path, env, "archive")  # nothing older is left
    assert again.returncode == 0 and "nothing to archive" in again.stdout
    assert live_count(store) == head_after - 300


def test_a_second_run_chains_onto_the_first(kind: str, store: Store, tmp_path: Path) -> None:
    env = env_of(kind, store)
    append_old(store, 700, 100)
    append_old(store, 400, 150)
    checkpoint = tmp_path / "checkpoint.json"  # signed at entry 250, which moves to the second file
    assert cli(tmp_path, env, "checkpoint", "--out", str(checkpoint)).returncode == 0
    append_new(store, 5)
    folder = tmp_path / "arc"
    first = cli(tmp_path, env, "archive", "--before", day(500), "--out", str(folder))
    assert first.returncode == 0 and "archived 100 entries" in first.stdout, first.stderr
    second = cli(tmp_path, env, "archive", "--out", str(folder))
    assert second.returncode == 0 and "archived 150 entries" in second.stdout, second.stderr
    one, two = claims_of(folder / "audit-000001.jsonl"), claims_of(folder / "audit-000002.jsonl")
    assert (one["first_seq"], one["last_seq"], one["prev_file_sha256"]) == (1, 100, None)
    assert (two["index"], two["first_seq"], two["last_seq"]) == (2, 101, 250)  # the first run's record is young
    assert two["prev_hash"] == one["last_hash"]
    assert two["prev_file_sha256"] == one["sha256"]
    verified = cli(tmp_path, env, "verify", "--archive", str(folder), "--checkpoint", str(checkpoint))
    assert verified.returncode == 0 and f"({two['last_seq']} of them in archive files)" in verified.stdout
    other = sign_checkpoint(Keyring(tmp_path / "keys").current(), 250, "f" * 64)  # a head that never was
    checkpoint.write_text(json.dumps(other))
    wrong = cli(tmp_path, env, "verify", "--archive", str(folder), "--checkpoint", str(checkpoint))
    assert wrong.returncode == 1 and "BROKEN at entry 250" in wrong.stderr and "audit-000002.jsonl" in wrong.stderr


# ---------------------------------------------------------------- refusals


def test_refuses_to_archive_inside_the_retention_period(kind: str, store: Store, tmp_path: Path) -> None:
    env = env_of(kind, store)
    append_old(store, 400, 10)
    append_old(store, 10, 10)
    head = store.run_sync(audit.head, write=False)
    done = cli(tmp_path, env, "archive", "--before", day(100), "--out", str(tmp_path / "arc"))
    assert done.returncode == 1 and "inside the retention period" in done.stderr
    assert "183 days" in done.stderr and "ok" not in done.stdout
    assert store.run_sync(audit.head, write=False) == head and live_count(store) == 20
    assert not (tmp_path / "arc").exists()


def test_retention_below_the_legal_minimum_is_refused() -> None:
    with pytest.raises(SettingsError, match="log_retention_days"):
        load_settings(environ={"GATEWAY_LOG_RETENTION_DAYS": "90"})
    with pytest.raises(SettingsError, match="processing_retention_days"):
        load_settings(values={"processing_retention_days": 365})
    longer = load_settings(environ={"GATEWAY_LOG_RETENTION_DAYS": "400"})
    assert longer.log_retention_days == 400 and longer.processing_retention_days == 1095


def test_the_store_refuses_deletes_above_the_floor_and_a_shrinking_floor(store: Store) -> None:
    append_new(store, 5)
    with pytest.raises(Exception, match="append-only"):
        store.run_sync(lambda tx: tx.execute("DELETE FROM audit_log WHERE seq = 1"))
    with pytest.raises(Exception, match="only grows"):
        store.run_sync(lambda tx: tx.execute("UPDATE audit_floor SET seq = 9 WHERE id = 1"))  # past the head
    assert live_count(store) == 5


# ---------------------------------------------------------------- tampering, named where


def two_files(kind: str, store: Store, tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = env_of(kind, store)
    append_old(store, 700, 50)
    append_old(store, 400, 50)
    folder = tmp_path / "arc"
    assert cli(tmp_path, env, "archive", "--before", day(500), "--out", str(folder)).returncode == 0
    assert cli(tmp_path, env, "archive", "--out", str(folder)).returncode == 0
    assert cli(tmp_path, env, "verify", "--archive", str(folder)).returncode == 0
    return env, folder


def edit_line(path: Path, number: int, change: dict[str, object], rehash: bool = False) -> None:
    lines = path.read_text().splitlines()
    entry = {**json.loads(lines[number - 1]), **change}
    if rehash:  # a careful forger recomputes the chain from there on
        entries = [json.loads(x) for x in lines[:-1]]
        entries[number - 1] = entry
        for i in range(number - 1, len(entries)):
            e = entries[i]
            e["prev_hash"] = entries[i - 1]["hash"] if i else e["prev_hash"]
            e["hash"] = audit.entry_hash(e["prev_hash"], e["seq"], e["at"], e["kind"], e["actor"], e["subject"],
                                         e["payload"])
        lines = [canonical_json(e) for e in entries] + lines[-1:]
    else:
        lines[number - 1] = canonical_json(entry)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("kind", ["sqlite"])  # the files are the same whatever the store
def test_tampering_with_the_archive_is_named(kind: str, store: Store, tmp_path: Path) -> None:
    env, folder = two_files(kind, store, tmp_path)
    one, two = folder / "audit-000001.jsonl", folder / "audit-000002.jsonl"
    saved = {p: p.read_bytes() for p in (one, two)}

    def broken() -> str:
        done = cli(tmp_path, env, "verify", "--archive", str(folder))
        assert done.returncode == 1 and "ok:" not in done.stdout
        for p, data in saved.items():  # put things back for the next attack
            p.write_bytes(data)
        for p in folder.iterdir():
            if p not in saved:
                p.unlink()
        return done.stderr

    edit_line(one, 5, {"payload": '{"n":999}'})
    assert "BROKEN at entry 5: archive file audit-000001.jsonl: line 5: entry 5 does not match its hash" in broken()

    edit_line(two, 7, {"actor": "someone else"}, rehash=True)
    why = broken()
    assert "audit-000002.jsonl: it differs from its signed manifest" in why and "sha256" in why

    lines = one.read_text().splitlines()
    lines[9], lines[10] = lines[10], lines[9]  # reorder two entries
    one.write_text("\n".join(lines) + "\n")
    assert "audit-000001.jsonl: line 10: entry 10 is missing" in broken()

    one.unlink()  # drop the first file
    assert "archive file audit-000001.jsonl is missing (the next one is audit-000002.jsonl)" in broken()

    two.unlink()  # drop the last file
    why = broken()
    assert "BROKEN at entry 51" in why and "moved out of the store, but no archive file" in why

    one.rename(folder / "audit-000003.jsonl")  # reorder the files
    two.rename(one)
    (folder / "audit-000003.jsonl").rename(two)
    assert "audit-000001.jsonl: line 1: entry 1 is missing" in broken()

    Keyring(tmp_path / "other-keys").add()  # a manifest signed by a key not ours
    lines = two.read_text().splitlines()
    forged = service.sealer(tmp_path / "other-keys").sign(claims_of(two))
    two.write_text("\n".join([*lines[:-1], canonical_json({"manifest": forged})]) + "\n")
    assert "audit-000002.jsonl: its manifest does not verify" in broken()

    two.write_text("\n".join(two.read_text().splitlines()[:-1]) + "\n")  # cut short: no manifest
    assert "audit-000002.jsonl: it has no manifest" in broken()

    assert cli(tmp_path, env, "verify", "--archive", str(folder)).returncode == 0  # all put back


# ---------------------------------------------------------------- a run stopped half-way


def test_a_run_stopped_after_writing_its_file_leaves_doubles_that_the_next_run_finishes(
        kind: str, store: Store, tmp_path: Path) -> None:
    env = env_of(kind, store)
    append_old(store, 400, 60)
    append_new(store, 3)
    folder = tmp_path / "arc"
    folder.mkdir()
    seal = service.sealer(tmp_path / "keys")
    rows = store.run_sync(audit.rows_between, 1, 60, write=False)
    one = files.write_file(folder, 1, rows[:30], None, seal, utc_text(NOW))  # as a store restored from a
    files.write_file(folder, 2, rows[30:], str(one["sha256"]), seal, utc_text(NOW))  # backup older than both
    assert live_count(store) == 63  # ... and the process died before deleting anything
    doubled = cli(tmp_path, env, "verify", "--archive", str(folder))
    assert doubled.returncode == 0 and "ok: 63 entries (60 of them in archive files)" in doubled.stdout

    if kind == "sqlite":  # a double that differs from its archived copy is named
        store.run_sync(lambda tx: tx.execute("DROP TRIGGER audit_log_no_update"))
        store.run_sync(lambda tx: tx.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 10"))
        wrong = cli(tmp_path, env, "verify", "--archive", str(folder))
        assert wrong.returncode == 1
        assert "BROKEN at entry 10: entry 10 is both archived and in the store" in wrong.stderr

    done = cli(tmp_path, env, "archive", "--out", str(folder))
    assert done.returncode == 0 and "finished a stopped run: the entries of audit-000002.jsonl" in done.stdout
    assert "nothing to archive" in done.stdout and live_count(store) == 4  # 3 new + the move's record
    assert store.run_sync(audit.floor, write=False) == (60, str(rows[-1][7]), 2)
    assert cli(tmp_path, env, "verify", "--archive", str(folder)).returncode == 0


# ---------------------------------------------------------------- over HTTP, beside a running gateway


def test_http_verify_walks_the_archive_of_a_running_gateway(tmp_path: Path, demo_data: Path) -> None:
    state = tmp_path / "live"
    state.mkdir()
    with open_test_store("sqlite", state, None) as old:
        append_old(old, 400, 30)
    with demo_gateway(state, demo_data) as gw:
        before = gw.api("GET", "/v1/audit/verify", "demo-bureau").json
        assert before["ok"] and "archived" not in before
        done = cli(state, {"GATEWAY_STORE_DSN": ""}, "archive")
        assert done.returncode == 0 and "archived 30 entries" in done.stdout, done.stderr
        after = gw.api("GET", "/v1/audit/verify", "demo-bureau").json
        assert after["ok"] is True and after["archived"] == 30 and after["entries"] >= before["entries"] + 1
        edit_line(state / "audit-archive" / "audit-000001.jsonl", 3, {"subject": "x"})
        tampered = gw.api("GET", "/v1/audit/verify", "demo-bureau").json
        assert tampered["ok"] is False and tampered["first_bad_seq"] == 3
        assert "audit-000001.jsonl: line 3" in tampered["reason"]
