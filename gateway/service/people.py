"""People: signing in (password, then TOTP where enabled), sessions, and the bureau's user accounts.

A user acts as a `Principal` built from its account (organisation and roles), so every page
goes through the same service functions, with the same access rules, as the API. A session is
checked against the store on every request: a sign-out, a suspension of the user or of its
organisation, an idle or an absolute timeout ends it on every replica at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gateway.auth.secrets import DUMMY_HASH, hash_secret, new_secret, verify_secret
from gateway.auth.tokens import Principal
from gateway.clock import utc_now, utc_text
from gateway.core import totp
from gateway.errors import Forbidden, InvalidRequest, NotFound, RateLimited, Unauthorized
from gateway.runtime.parts import Runtime
from gateway.store import audit, requesters
from gateway.store import users as store_users
from gateway.store.db import Tx
from gateway.store.identity import ROLES

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 12
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5  # then that username waits out the window, from any address
MAX_FAILURES_PER_ADDRESS = 30  # one address guessing across many usernames
USER_ADMINS = frozenset({"bureau"})  # who creates and suspends user accounts
TOUCH_EVERY = timedelta(seconds=30)  # last-seen is written at most this often per session


@dataclass(frozen=True)
class Visit:
    """A signed-in user on one request: who, as a Principal, and the session's CSRF token."""

    user: store_users.User
    session: store_users.Session
    who: Principal

    @property
    def csrf_token(self) -> str:
        return self.session.csrf_token

    @property
    def complete(self) -> bool:
        return self.session.stage == "full"


def principal_of(user: store_users.User, session_hash: str = "") -> Principal:
    """The user acts with exactly its account's organisation and roles; audited as `user:NAME`."""
    return Principal(f"user:{user.username}", user.org_id, frozenset(user.roles), session_hash[:16])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- signing in


@dataclass(frozen=True)
class SignedIn:
    token: str  # for the cookie; only its hash is stored
    needs_totp: bool


async def sign_in(runtime: Runtime, username: str, password: str, address: str) -> SignedIn:
    """Check the password (throttled per username and per address); open a session."""
    keys = (f"user:{username.lower()}", f"addr:{address}")
    now = utc_now()
    counts = await runtime.store.read(store_users.failures_since, keys, utc_text(now - THROTTLE_WINDOW))
    if counts[keys[0]] >= MAX_FAILURES_PER_USER or counts[keys[1]] >= MAX_FAILURES_PER_ADDRESS:
        await runtime.store.write(_audit_sign_in, username, address, "throttled")
        raise RateLimited("Too many failed sign-ins; wait and try again.",
                          headers={"Retry-After": str(int(THROTTLE_WINDOW.total_seconds()))})
    user = await runtime.store.read(store_users.get_user, username)
    # scrypt for unknown names too, so that timing does not tell which usernames exist.
    ok = await asyncio.to_thread(verify_secret, password, user.password_hash if user else DUMMY_HASH)
    if user is None or not ok or not user.active:
        await runtime.store.write(_failed, keys, utc_text(now), utc_text(now - THROTTLE_WINDOW), username, address)
        raise Unauthorized("The username or password is not right.")
    token = new_secret()
    stage = "password" if user.totp_secret else "full"
    s = runtime.settings
    session = store_users.Session(token_hash(token), user.username, new_secret(), stage, utc_text(now), utc_text(now),
                                  utc_text(now + timedelta(seconds=s.console_session_seconds)), None)
    await runtime.store.write(_opened, session, keys[0], address)
    return SignedIn(token, stage == "password")


def _failed(tx: Tx, keys: tuple[str, ...], now: str, window_start: str, username: str, address: str) -> None:
    store_users.record_failure(tx, keys, now, window_start)
    _audit_sign_in(tx, username, address, "refused")


def _audit_sign_in(tx: Tx, username: str, address: str, outcome: str) -> None:
    # The typed name is recorded only for a known shape; a password typed into it is not kept.
    name = username if USERNAME.match(username) else "?"
    audit.append(tx, "console.sign_in", f"user:{name}", name, {"outcome": outcome, "address": address})


def _opened(tx: Tx, session: store_users.Session, user_key: str, address: str) -> None:
    store_users.open_session(tx, session)
    store_users.clear_failures(tx, user_key)
    audit.append(tx, "console.sign_in", f"user:{session.username}", session.username,
                 {"outcome": "password" if session.stage == "password" else "ok", "address": address})


async def second_factor(runtime: Runtime, token: str, code: str) -> None:
    """A TOTP code for a session that passed its password; failures count like wrong passwords."""
    visit = await current(runtime, token, allow_partial=True)
    if visit is None:
        raise Unauthorized("Sign in again.")
    user = visit.user
    now = utc_now()
    keys = (f"user:{user.username}",)
    counts = await runtime.store.read(store_users.failures_since, keys, utc_text(now - THROTTLE_WINDOW))
    if counts[keys[0]] >= MAX_FAILURES_PER_USER:
        await runtime.store.write(store_users.end_session, visit.session.session_hash)
        raise RateLimited("Too many failed codes; sign in again later.",
                          headers={"Retry-After": str(int(THROTTLE_WINDOW.total_seconds()))})
    if not user.totp_secret or not totp.verify(user.totp_secret, code, now.timestamp()):
        await runtime.store.write(_failed, keys, utc_text(now), utc_text(now - THROTTLE_WINDOW), user.username, "totp")
        raise Unauthorized("The code is not right.")
    await runtime.store.write(_completed, visit.session.session_hash, user.username, utc_text(now))


def _completed(tx: Tx, session_hash: str, username: str, now: str) -> None:
    store_users.complete_session(tx, session_hash, now)
    store_users.clear_failures(tx, f"user:{username}")
    audit.append(tx, "console.sign_in", f"user:{username}", username, {"outcome": "ok", "factor": "totp"})


async def current(runtime: Runtime, token: str | None, *, allow_partial: bool = False) -> Visit | None:
    """The session behind a cookie token, if it is still good; ends it when it is not."""
    if not token or len(token) > 128:
        return None
    found = await runtime.store.read(_session_and_user, token_hash(token))
    if found is None:
        return None
    session, user = found
    now = utc_now()
    idle_cutoff = utc_text(now - timedelta(seconds=runtime.settings.console_idle_seconds))
    expired = session.expires_at <= utc_text(now) or session.last_seen_at <= idle_cutoff
    if session.ended_at is not None:
        return None
    if expired or not user.active:
        await runtime.store.write(store_users.end_session, session.session_hash)
        return None
    if session.stage != "full" and not allow_partial:
        return None
    touch_every = min(TOUCH_EVERY, timedelta(seconds=runtime.settings.console_idle_seconds / 4))
    if session.last_seen_at <= utc_text(now - touch_every):
        await runtime.store.write(store_users.touch_session, session.session_hash, utc_text(now))
    return Visit(user, session, principal_of(user, session.session_hash))


def _session_and_user(tx: Tx, session_hash: str) -> tuple[store_users.Session, store_users.User] | None:
    session = store_users.get_session(tx, session_hash)
    if session is None:
        return None
    user = store_users.get_user(tx, session.username)
    return (session, user) if user is not None else None


def csrf_ok(visit: Visit, offered: object) -> bool:
    return isinstance(offered, str) and hmac.compare_digest(offered.encode(), visit.csrf_token.encode())


async def sign_out(runtime: Runtime, visit: Visit, *, everywhere: bool = False) -> None:
    await runtime.store.write(_sign_out, visit.session.session_hash, visit.user.username, everywhere)


def _sign_out(tx: Tx, session_hash: str, username: str, everywhere: bool) -> None:
    if everywhere:
        store_users.end_sessions_of(tx, username)
    else:
        store_users.end_session(tx, session_hash)
    audit.append(tx, "console.sign_out", f"user:{username}", username, {"everywhere": everywhere})


# ---------------------------------------------------------------- the user's own settings


async def set_language(runtime: Runtime, visit: Visit, language: Any) -> None:
    if language not in (*store_users.LANGUAGES, ""):
        raise InvalidRequest("language must be zh-CN, en, or empty for the browser's choice")
    await runtime.store.write(store_users.set_language, visit.user.username, language or None)


def new_totp_secret() -> str:
    return totp.secret_from_bytes(os.urandom(20))


async def enable_totp(runtime: Runtime, visit: Visit, secret: Any, code: Any) -> None:
    """Turn the second factor on once the user shows a code from the new secret."""
    if not isinstance(secret, str) or not totp.valid_secret(secret):
        raise InvalidRequest("the secret is not valid")
    if not isinstance(code, str) or not totp.verify(secret, code, utc_now().timestamp()):
        raise InvalidRequest("the code does not match the secret")
    await runtime.store.write(store_users.set_totp, visit.user.username, secret, visit.who.client_id)


# ---------------------------------------------------------------- the bureau's user accounts


def check_new_user(username: Any, display_name: Any, roles: Any, password: Any) -> tuple[str, ...]:
    if not isinstance(username, str) or not USERNAME.match(username):
        raise InvalidRequest(f"username must match {USERNAME.pattern}")
    if not isinstance(display_name, str) or not 0 < len(display_name.strip()) <= 200:
        raise InvalidRequest("display_name must be text of 1 to 200 characters")
    if not isinstance(password, str) or len(password) < MIN_PASSWORD or len(password) > 256:
        raise InvalidRequest(f"the password must have {MIN_PASSWORD} to 256 characters")
    if not isinstance(roles, list | tuple) or not roles or any(r not in ROLES for r in roles):
        raise InvalidRequest(f"roles must be some of {', '.join(ROLES)}")
    return tuple(sorted(set(roles)))


def add_user_tx(tx: Tx, username: str, display_name: str, org_id: str, roles: tuple[str, ...], password_hash: str,
                language: str | None, actor: str) -> store_users.User:
    """A user of an existing organisation, with the roles of that organisation's kind only."""
    org = requesters.get_org(tx, org_id)
    if org is None:
        raise NotFound("no such organisation")
    if set(roles) != {org.kind}:
        raise InvalidRequest(f"a user of {org_id!r} (a {org.kind}) has the role {org.kind!r} only")
    user = store_users.User(username, display_name.strip(), org_id, roles, password_hash, None, "active", language,
                            "", "active")
    return store_users.create_user(tx, user, actor)


async def create_user(runtime: Runtime, who: Principal, username: Any, display_name: Any, org_id: Any,
                      roles: Any, password: Any) -> store_users.User:
    """The bureau creates a user; the password it chose is handed over out of band."""
    if not who.roles & USER_ADMINS:
        raise Forbidden("only the bureau creates user accounts")
    checked = check_new_user(username, display_name, roles, password)
    if not isinstance(org_id, str):
        raise InvalidRequest("org_id must be a string")
    digest = await asyncio.to_thread(hash_secret, password)
    return await runtime.store.write(add_user_tx, username, display_name, org_id, checked, digest, None, who.client_id)


async def list_users(runtime: Runtime, who: Principal) -> list[store_users.User]:
    """The bureau sees every user; anyone else the users of its own organisation."""
    return await runtime.store.read(store_users.list_users, None if who.roles & USER_ADMINS else who.org_id)


async def set_user_status(runtime: Runtime, who: Principal, username: str, status: str, reason: str) -> None:
    if not who.roles & USER_ADMINS:
        raise Forbidden("only the bureau suspends user accounts")
    if await runtime.store.read(store_users.get_user, username) is None:
        raise NotFound("no such user")
    await runtime.store.write(store_users.set_status, username, status, who.client_id, reason)


async def organisations(runtime: Runtime, who: Principal) -> list[requesters.Org]:
    """Every organisation a user may belong to (for the bureau's form)."""
    if not who.roles & USER_ADMINS:
        raise Forbidden("only the bureau manages user accounts")
    return await runtime.store.read(requesters.list_orgs, ROLES)
