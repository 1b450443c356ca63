"""Online backups of the SQLite store under load, restored into a gateway that verifies and serves."""

from __future__ import annotations

import concurrent.futures as cf
import io
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.store_support import postgres_schema
from tests.support import BIN, FAST_RATES, Gateway, demo_gateway


def gateway_cmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "gateway"), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # about 40 s: a backup while releases run; conformance faults.py checks the same (make test-slow)
def test_a_backup_taken_under_load_restores_verifies_and_serves(tmp_path: Path, demo_data: Path) -> None:
    archive = tmp_path / "backups" / "county.tar.gz"
    with demo_gateway(tmp_path / "live", demo_data, env=FAST_RATES) as gw:
        def ask(i: int) -> int:
            sql = f"SELECT industry, COUNT(*) AS n FROM enterprises WHERE employees >= {i} GROUP BY industry"
            return gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "enterprises", "sql": sql,
                                                                "epsilon": 0.05}).status
        with cf.ThreadPoolExecutor(6) as pool:
            answers = [pool.submit(ask, i) for i in range(30)]
            made = gateway_cmd("store", "backup", "--state-dir", str(gw.state_dir), "--to", str(archive))
            statuses = [f.result() for f in answers]
        assert made.returncode == 0, made.stderr
        assert statuses == [200] * 30
        live_entries = gw.api("GET", "/v1/audit/verify", "demo-bureau").json["entries"]
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the signing keys
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"gateway.db", "manifest.json", "checkpoint.json", "demo-credentials.json"} <= names
    assert any(n.startswith("keys/") for n in names) and any(n.startswith("data/") for n in names)

    restored = tmp_path / "restored"
    done = gateway_cmd("store", "restore", str(archive), "--state-dir", str(restored))
    assert done.returncode == 0 and "verifies against the signed checkpoint" in done.stdout, done.stderr
    with Gateway(restored, env=FAST_RATES) as again:
        verdict = again.api("GET", "/v1/audit/verify", "demo-bureau").json
        assert verdict["ok"] and 0 < verdict["entries"] <= live_entries + 1
        budget = again.api("GET", "/v1/budget", "demo-bank").json
        spent = next(d for d in budget["datasets"] if d["dataset"] == "enterprises")["epsilon_spent"]
        assert spent > 0  # the releases committed before the copy are in it, charged
        r = again.api("POST", "/v1/queries", "demo-bank", {"dataset": "enterprises", "epsilon": 0.05,
                                                           "sql": "SELECT COUNT(*) AS n FROM enterprises"})
        assert r.status == 200


def test_restore_refuses_a_tampered_backup_or_a_used_folder_and_leaves_nothing(tmp_path: Path,
                                                                              demo_data: Path) -> None:
    archive = tmp_path / "b.tar.gz"
    with demo_gateway(tmp_path / "live", demo_data) as gw:
        assert gateway_cmd("store", "backup", "--state-dir", str(gw.state_dir), "--to", str(archive),
                           "--no-data").returncode == 0
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    refused = gateway_cmd("store", "restore", str(archive), "--state-dir", str(used))
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert sorted(p.name for p in used.iterdir()) == ["something"]

    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member)
            if member.name == "demo-credentials.json" and data is not None:
                body = data.read().replace(b"demo-bank", b"demo-bonk")
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
            else:
                dst.addfile(member, data)
    target = tmp_path / "from-tampered"
    bad = gateway_cmd("store", "restore", str(tampered), "--state-dir", str(target))
    assert bad.returncode == 1 and "differs from the hash" in bad.stderr
    assert not target.exists() and not list(tmp_path.glob(".restore-*"))


def test_backup_and_restore_of_nothing_fail_and_create_nothing(tmp_path: Path) -> None:
    missing = gateway_cmd("store", "backup", "--state-dir", str(tmp_path / "nope"), "--to", str(tmp_path / "x"))
    assert missing.returncode == 1 and "nothing backed up" in missing.stderr
    assert not (tmp_path / "nope").exists() and not (tmp_path / "x").exists()
    absent = gateway_cmd("store", "restore", str(tmp_path / "none.tar.gz"), "--state-dir", str(tmp_path / "t"))
    assert absent.returncode == 1 and not (tmp_path / "t").exists()


def test_a_postgres_store_dumps_and_restores(tmp_path: Path, demo_data: Path, postgres_dsn: str) -> None:
    """docs/operations.md's dump path: pg_dump while a replica serves, pg_restore into a new
    database, and the audit chain verifies there."""
    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump and pg_restore are not installed")
    with postgres_schema(postgres_dsn) as dsn:
        schema = dsn.rsplit("%3D", 1)[1]
        with demo_gateway(tmp_path / "pg", demo_data, env={"GATEWAY_STORE_DSN": dsn}) as gw:
            r = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "enterprises", "epsilon": 0.05,
                                                            "sql": "SELECT COUNT(*) AS n FROM enterprises"})
            assert r.status == 200
            entries = gw.api("GET", "/v1/audit/verify", "demo-bureau").json["entries"]
            dump = tmp_path / "gateway.dump"
            done = subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--schema", schema,
                                   "--dbname", postgres_dsn, "--file", str(dump)], capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 0, done.stderr
        database = "gw_restore_" + uuid.uuid4().hex[:10]
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        try:
            target = postgres_dsn.rsplit("/", 1)[0] + "/" + database
            loaded = subprocess.run(["pg_restore", "--no-owner", "--dbname", target, str(dump)],
                                    capture_output=True, text=True, timeout=300)
            assert loaded.returncode == 0, loaded.stderr
            verify = subprocess.run([str(BIN / "gateway"), "audit", "verify", "--state-dir", str(tmp_path / "pg")],
                                    capture_output=True, text=True, timeout=300,
                                    env={**os.environ,
                                         "GATEWAY_STORE_DSN": f"{target}?options=-csearch_path%3D{schema}"})
            assert verify.returncode == 0 and f"ok: {entries} entries" in verify.stdout, verify.stderr
        finally:
            with psycopg.connect(postgres_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
