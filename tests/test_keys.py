"""Signing-key rotation: old tokens keep verifying until they expire, new ones carry the new kid.

`gateway keys rotate` runs beside a serving gateway, which follows the rotation; the gateway
is then restarted on the same state folder; finally the old key's retire time is moved into
the past in the store rather than waited for (R-AU-04, R-AD-06).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.clock import utc_now, utc_text
from gateway.store import identity
from gateway.store.db import Store
from gateway.store.schema import open_store
from tests.support import Gateway, call, jwt_parts, seed_demo_data

TTL = 60
LEEWAY = 30  # the default jwt_leeway_seconds
ENV = {"GATEWAY_TOKEN_TTL_SECONDS": str(TTL)}


def jwks_kids(gw: Gateway) -> set[str]:
    return {k["kid"] for k in call("GET", gw.base + "/.well-known/jwks.json").json["keys"]}


def bearer(gw: Gateway, token: str) -> int:
    return call("GET", gw.base + "/v1/datasets", headers={"Authorization": "Bearer " + token}).status


def fresh_token(gw: Gateway) -> str:
    gw.tokens.clear()
    return gw.token("demo-bank")


def kid(token: str) -> str:
    return str(jwt_parts(token)[0]["kid"])


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=utc_now().tzinfo)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[dict[str, object]]:
    """A serving gateway, a token of its first key, then `gateway keys rotate` beside it."""
    state = tmp_path_factory.mktemp("keys-state")
    seed_demo_data(state, demo_data)
    gw = Gateway(state, env=ENV).start()
    old_token = fresh_token(gw)
    before = jwks_kids(gw)
    rotated_at = utc_now()
    done = subprocess.run([str(Path(sys.executable).parent / "gateway"), "keys", "rotate",
                           "--state-dir", str(state)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV})
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 15
    while kid(fresh_token(gw)) == kid(old_token) and time.monotonic() < deadline:
        time.sleep(0.2)  # the gateway follows a rotation on its next store poll
    yield {"gw": gw, "old_token": old_token, "before": before, "rotated_at": rotated_at,
           "stdout": done.stdout}
    gw.stop()


@pytest.fixture
def store(rotated: dict[str, object]) -> Iterator[Store]:
    gw = rotated["gw"]
    assert isinstance(gw, Gateway)
    opened = open_store("", gw.state_dir, pool_size=1)
    yield opened
    opened.close()


def keys_table(store: Store) -> dict[str, str | None]:
    rows = store.run_sync(lambda tx: tx.all("SELECT kid, retire_at FROM signing_keys"), write=False)
    return {k: retire_at for k, retire_at in rows}


def test_rotation_adds_a_key_and_the_new_one_signs(rotated: dict[str, object]) -> None:
    gw, old_kid = rotated["gw"], kid(str(rotated["old_token"]))
    assert isinstance(gw, Gateway)
    assert rotated["before"] == {old_kid}
    header, claims, _ = jwt_parts(fresh_token(gw))
    assert header["kid"] != old_kid and header["kid"] in str(rotated["stdout"])
    assert claims["exp"] - claims["iat"] == TTL
    assert jwks_kids(gw) == {old_kid, header["kid"]}


def test_tokens_of_the_old_key_keep_verifying(rotated: dict[str, object]) -> None:
    gw = rotated["gw"]
    assert isinstance(gw, Gateway)
    assert bearer(gw, str(rotated["old_token"])) == 200
    assert bearer(gw, fresh_token(gw)) == 200


def test_after_a_restart_the_new_key_signs_and_the_old_one_verifies(rotated: dict[str, object]) -> None:
    gw, old_token = rotated["gw"], str(rotated["old_token"])
    assert isinstance(gw, Gateway)
    new_kid = kid(fresh_token(gw))
    gw.stop()
    gw.start()
    assert kid(fresh_token(gw)) == new_kid
    assert bearer(gw, old_token) == 200
    assert jwks_kids(gw) == {kid(old_token), new_kid}


def test_the_old_key_retires_when_its_last_token_has_expired(rotated: dict[str, object],
                                                             store: Store) -> None:
    old_kid = kid(str(rotated["old_token"]))
    table = keys_table(store)
    [new_kid] = [k for k in table if k != old_kid]
    assert table[new_kid] is None
    retire_at = parse_utc(str(table[old_kid]))
    expected = rotated["rotated_at"] + timedelta(seconds=TTL + LEEWAY)  # type: ignore[operator]
    assert abs((retire_at - expected).total_seconds()) < 10
    second = timedelta(seconds=1)
    before, after = utc_text(retire_at - second), utc_text(retire_at + second)
    assert set(store.run_sync(identity.public_keys, before, write=False)) == {old_kid, new_kid}
    assert set(store.run_sync(identity.public_keys, after, write=False)) == {new_kid}


def test_rotation_is_audited(rotated: dict[str, object], store: Store) -> None:
    rows = store.run_sync(lambda tx: tx.all(
        "SELECT actor, subject, payload FROM audit_log WHERE kind = 'key.rotated'"), write=False)
    old_kid = kid(str(rotated["old_token"]))
    assert len(rows) == 1 and rows[0][0] == "cli" and old_kid in rows[0][2]


def test_after_the_retire_time_the_old_key_is_gone(rotated: dict[str, object], store: Store) -> None:
    """Last: moves the retire time into the past, as if the 90 s had gone by."""
    gw = rotated["gw"]
    assert isinstance(gw, Gateway)
    old_kid = kid(str(rotated["old_token"]))
    assert old_kid in jwks_kids(gw)
    past = utc_text(utc_now() - timedelta(seconds=1))
    store.run_sync(lambda tx: tx.execute("UPDATE signing_keys SET retire_at = ? WHERE kid = ?",
                                         (past, old_kid)))
    assert jwks_kids(gw) == {kid(fresh_token(gw))}
