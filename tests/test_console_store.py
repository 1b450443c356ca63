"""The console's store contract on SQLite and PostgreSQL: users, sessions ended everywhere by a
suspension or a sign-out, throttling counts, and status notes with their audit entry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import utc_now, utc_text
from gateway.errors import Conflict
from gateway.store import audit, identity, users
from gateway.store import status_notes as notes
from gateway.store.db import Store, Tx
from tests.store_support import STORE_KINDS, param_store


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with param_store(request, tmp_path, lambda tx: identity.ensure_org(tx, "bank", "Bank", "requester")) as s:
        yield s


def _user(name: str) -> users.User:
    return users.User(name, name.title(), "bank", ("requester",), "hash", None, "active", None, "", "active")


def _session(token_hash: str, name: str, minutes: int = 60) -> users.Session:
    now = utc_now()
    return users.Session(token_hash, name, "csrf", "full", utc_text(now), utc_text(now),
                         utc_text(now + timedelta(minutes=minutes)), None)


def test_users_are_unique_and_read_back_with_their_organisation(store: Store) -> None:
    made = store.run_sync(users.create_user, _user("ann"), "bureau")
    assert made.roles == ("requester",) and made.org_status == "active" and made.active
    with pytest.raises(Conflict):
        store.run_sync(users.create_user, _user("ann"), "bureau")
    assert [u.username for u in store.run_sync(users.list_users, "bank", write=False)] == ["ann"]
    assert store.run_sync(users.list_users, "elsewhere", write=False) == []


def test_a_suspension_ends_every_session_of_the_user(store: Store) -> None:
    store.run_sync(users.create_user, _user("ben"), "bureau")
    for token in ("a", "b"):
        store.run_sync(users.open_session, _session(token, "ben"))
    assert store.run_sync(users.set_status, "ben", "suspended", "bureau", "left") is True
    assert store.run_sync(users.set_status, "ben", "suspended", "bureau", "again") is False  # no change, no entry
    for token in ("a", "b"):
        found = store.run_sync(users.get_session, token, write=False)
        assert found is not None and found.ended_at is not None
    assert not store.run_sync(users.get_user, "ben", write=False).active  # type: ignore[union-attr]


def test_sign_out_ends_one_session_or_all(store: Store) -> None:
    store.run_sync(users.create_user, _user("cat"), "bureau")
    for token in ("x", "y", "z"):
        store.run_sync(users.open_session, _session(token, "cat"))
    assert store.run_sync(users.end_session, "x") is True
    assert store.run_sync(users.end_session, "x") is False
    assert store.run_sync(users.end_sessions_of, "cat") == 2


def test_failures_count_inside_the_window_and_clear(store: Store) -> None:
    now = utc_now()
    keys = ("user:dan", "addr:127.0.0.1")
    for minutes in (30, 10, 5):  # the first one is older than the 15-minute window
        at = utc_text(now - timedelta(minutes=minutes))
        store.run_sync(users.record_failure, keys, at, utc_text(now - timedelta(hours=1)))
    counts = store.run_sync(users.failures_since, keys, utc_text(now - timedelta(minutes=15)), write=False)
    assert counts == {"user:dan": 2, "addr:127.0.0.1": 2}
    store.run_sync(users.clear_failures, "user:dan")
    assert store.run_sync(users.failures_since, keys, utc_text(now - timedelta(minutes=15)),
                          write=False)["user:dan"] == 0


def test_a_status_note_replaces_the_last_and_is_audited(store: Store) -> None:
    def note_twice(tx: Tx) -> None:
        notes.record(tx, "residents", "suspended", "checking", "user:psb")
        notes.record(tx, "residents", "active", "checked", "user:psb")

    store.run_sync(note_twice)
    found = store.run_sync(notes.get, "residents", write=False)
    assert found is not None and found["reason"] == "checked" and found["status"] == "active"
    assert store.run_sync(audit.verify, None, write=False).ok
