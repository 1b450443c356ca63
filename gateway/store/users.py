"""People of the console: user accounts, server-side sessions and failed sign-ins, in the store.

Sessions live here, not in a replica's memory, so every replica sees a sign-out or a
suspension at the next request. A session is found by the SHA-256 of its cookie token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.clock import utc_now_text
from gateway.errors import Conflict
from gateway.store import audit
from gateway.store.db import Tx

LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    org_id: str
    roles: tuple[str, ...]
    password_hash: str
    totp_secret: str | None
    status: str
    language: str | None
    created_at: str
    org_status: str

    @property
    def active(self) -> bool:
        return self.status == "active" and self.org_status == "active"


@dataclass(frozen=True)
class Session:
    session_hash: str
    username: str
    csrf_token: str
    stage: str
    created_at: str
    last_seen_at: str
    expires_at: str
    ended_at: str | None


_USER_COLUMNS = ("u.username, u.display_name, u.org_id, u.roles, u.password_hash, u.totp_secret, u.status, "
                 "u.language, u.created_at, o.status")


def _user(row: tuple[object, ...]) -> User:
    return User(str(row[0]), str(row[1]), str(row[2]), tuple(json.loads(str(row[3]))), str(row[4]),
                row[5] if row[5] is None else str(row[5]), str(row[6]),
                row[7] if row[7] is None else str(row[7]), str(row[8]), str(row[9]))


def create_user(tx: Tx, user: User, actor: str) -> User:
    if tx.one("SELECT 1 FROM users WHERE username = ?", (user.username,)) is not None:
        raise Conflict(f"user {user.username!r} already exists")
    now = utc_now_text()
    tx.execute("INSERT INTO users (username, display_name, org_id, roles, password_hash, totp_secret, status, "
               "language, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
               (user.username, user.display_name, user.org_id, json.dumps(list(user.roles)), user.password_hash,
                user.totp_secret, user.language, now, now))
    audit.append(tx, "user.created", actor, user.username,
                 {"org": user.org_id, "roles": list(user.roles), "totp": user.totp_secret is not None})
    found = get_user(tx, user.username)
    assert found is not None
    return found


def get_user(tx: Tx, username: str) -> User | None:
    row = tx.one(f"SELECT {_USER_COLUMNS} FROM users u JOIN organisations o ON o.org_id = u.org_id "
                 "WHERE u.username = ?", (username,))
    return _user(row) if row else None


def list_users(tx: Tx, org_id: str | None = None) -> list[User]:
    sql = f"SELECT {_USER_COLUMNS} FROM users u JOIN organisations o ON o.org_id = u.org_id"
    params: tuple[str, ...] = ()
    if org_id is not None:
        sql += " WHERE u.org_id = ?"
        params = (org_id,)
    return [_user(r) for r in tx.all(sql + " ORDER BY u.org_id, u.username", params)]


def set_status(tx: Tx, username: str, status: str, actor: str, reason: str) -> bool:
    """Suspend or reinstate; a suspension ends every session of the user, on every replica."""
    changed = tx.execute("UPDATE users SET status = ?, updated_at = ? WHERE username = ? AND status <> ?",
                         (status, utc_now_text(), username, status)) == 1
    if changed:
        if status == "suspended":
            end_sessions_of(tx, username)
        audit.append(tx, "user.suspended" if status == "suspended" else "user.reinstated", actor, username,
                     {"reason": reason})
    return changed


def set_language(tx: Tx, username: str, language: str | None) -> None:
    tx.execute("UPDATE users SET language = ?, updated_at = ? WHERE username = ?",
               (language, utc_now_text(), username))


def set_totp(tx: Tx, username: str, secret: str | None, actor: str) -> None:
    tx.execute("UPDATE users SET totp_secret = ?, updated_at = ? WHERE username = ?",
               (secret, utc_now_text(), username))
    audit.append(tx, "user.totp_enabled" if secret else "user.totp_disabled", actor, username)


def set_password(tx: Tx, username: str, password_hash: str, actor: str) -> None:
    """A new password ends the user's other sessions (the caller opens a fresh one if needed)."""
    tx.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ?",
               (password_hash, utc_now_text(), username))
    end_sessions_of(tx, username)
    audit.append(tx, "user.password_changed", actor, username)


# ---------------------------------------------------------------- sessions


def open_session(tx: Tx, s: Session) -> None:
    tx.execute("INSERT INTO console_sessions (session_hash, username, csrf_token, stage, created_at, last_seen_at, "
               "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (s.session_hash, s.username, s.csrf_token, s.stage, s.created_at, s.last_seen_at, s.expires_at))


def get_session(tx: Tx, session_hash: str) -> Session | None:
    row = tx.one("SELECT session_hash, username, csrf_token, stage, created_at, last_seen_at, expires_at, ended_at "
                 "FROM console_sessions WHERE session_hash = ?", (session_hash,))
    return Session(*(None if v is None else str(v) for v in row)) if row else None  # type: ignore[arg-type]


def touch_session(tx: Tx, session_hash: str, now: str) -> None:
    tx.execute("UPDATE console_sessions SET last_seen_at = ? WHERE session_hash = ? AND ended_at IS NULL",
               (now, session_hash))


def complete_session(tx: Tx, session_hash: str, now: str) -> None:
    """The second factor passed: the session may now act."""
    tx.execute("UPDATE console_sessions SET stage = 'full', last_seen_at = ? WHERE session_hash = ? "
               "AND ended_at IS NULL", (now, session_hash))


def end_session(tx: Tx, session_hash: str) -> bool:
    return tx.execute("UPDATE console_sessions SET ended_at = ? WHERE session_hash = ? AND ended_at IS NULL",
                      (utc_now_text(), session_hash)) == 1


def end_sessions_of(tx: Tx, username: str) -> int:
    return tx.execute("UPDATE console_sessions SET ended_at = ? WHERE username = ? AND ended_at IS NULL",
                      (utc_now_text(), username))


def purge_sessions(tx: Tx, before: str) -> int:
    """Sessions that ended or expired before `before` are of no further use."""
    return tx.execute("DELETE FROM console_sessions WHERE expires_at < ? OR ended_at < ?", (before, before))


# ---------------------------------------------------------------- sign-in throttling


def record_failure(tx: Tx, keys: tuple[str, ...], now: str, window_start: str) -> None:
    for key in keys:
        tx.execute("DELETE FROM login_failures WHERE failure_key = ? AND at < ?", (key, window_start))
        tx.execute("INSERT INTO login_failures (failure_key, at) VALUES (?, ?)", (key, now))


def failures_since(tx: Tx, keys: tuple[str, ...], since: str) -> dict[str, int]:
    return {key: int((tx.one("SELECT COUNT(*) FROM login_failures WHERE failure_key = ? AND at >= ?",
                             (key, since)) or (0,))[0]) for key in keys}


def clear_failures(tx: Tx, key: str) -> None:
    tx.execute("DELETE FROM login_failures WHERE failure_key = ?", (key,))
