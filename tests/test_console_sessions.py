"""Console sign-in and sessions over real HTTP (R-AU-12): headers, cookies, CSRF, throttling,
timeouts, sign-out everywhere, suspension, and the TOTP second factor."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.core import totp
from tests.console_support import Visitor, demo_users
from tests.support import Gateway, demo_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("console-sessions")
    # Short timeouts, so that expiry is seen for real: idle 3 s, absolute 8 s.
    g = demo_gateway(state, demo_data,
                     env={"GATEWAY_CONSOLE_IDLE_SECONDS": "3", "GATEWAY_CONSOLE_SESSION_SECONDS": "8"}).start()
    yield g
    g.stop()


def signed_in(gw: Gateway, username: str, **headers: str) -> Visitor:
    v = Visitor(gw.base, headers=dict(headers))
    reply = v.login(username, demo_users(gw.state_dir)[username]["password"])
    assert reply.status == 303, (reply.status, reply.body[:300])
    return v


def sent_to_sign_in(v: Visitor, path: str = "/console/") -> bool:
    reply = v.get(path)
    return reply.status == 303 and (reply.header("Location") or "").startswith("/console/login")


def audit_rows(gw: Gateway, kind: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(gw.state_dir / "gateway.db") as db:
        return db.execute("SELECT actor, subject, payload FROM audit_log WHERE kind = ? ORDER BY seq",
                          (kind,)).fetchall()


def test_pages_carry_a_strict_csp_and_no_framing(gw: Gateway) -> None:
    for reply in (Visitor(gw.base).get("/console/login"), signed_in(gw, "bank-analyst").get("/console/catalog")):
        assert reply.status == 200
        csp = reply.header("Content-Security-Policy") or ""
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert reply.header("X-Frame-Options") == "DENY"
        assert reply.header("X-Content-Type-Options") == "nosniff"
        assert reply.header("Cache-Control") == "no-store"
        assert b"<script>" not in reply.body and b" style=" not in reply.body and b"<style" not in reply.body


def test_anonymous_visitors_are_sent_to_the_sign_in_page(gw: Gateway) -> None:
    reply = Visitor(gw.base).get("/console/budget")
    assert reply.status == 303
    assert reply.header("Location") == "/console/login?next=/console/budget"


def test_the_session_cookie_is_httponly_strict_and_secure_behind_tls(gw: Gateway) -> None:
    v = Visitor(gw.base)
    reply = v.login("bank-analyst", demo_users(gw.state_dir)["bank-analyst"]["password"])
    cookie = next(c for c in (reply.header("Set-Cookie") or "").split("\n") if c.startswith("gw-session=")).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP: a Secure cookie would never come back
    # Behind a TLS proxy. (urllib's jar keeps Secure cookies to https, so the test carries it.)
    tls = Visitor(gw.base, headers={"X-Forwarded-Proto": "https"})
    form = tls.get("/console/login")
    login_cookie = (form.header("Set-Cookie") or "").split(";")[0]
    assert login_cookie.startswith("__Host-gw-login=") and "Secure" in (form.header("Set-Cookie") or "")
    token = form.body.decode().split('name="csrf_token" value="')[1].split('"')[0]
    reply = tls.request("POST", "/console/login", {"csrf_token": token, "username": "bank-analyst",
                                                   "password": demo_users(gw.state_dir)["bank-analyst"]["password"]},
                        headers={"Cookie": login_cookie})
    assert reply.status == 303
    cookie = next(c for c in (reply.header("Set-Cookie") or "").split("\n") if c.startswith("__Host-gw-session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "Domain" not in cookie
    assert reply.header("Strict-Transport-Security")


def test_a_wrong_password_is_refused_and_audited(gw: Gateway) -> None:
    reply = Visitor(gw.base).login("insurer-analyst", "not the password at all")
    assert reply.status == 401 and b"gw-session" not in (reply.header("Set-Cookie") or "").encode()
    assert any('"refused"' in payload for actor, _s, payload in audit_rows(gw, "console.sign_in")
               if actor == "user:insurer-analyst")


def test_state_changes_without_the_right_csrf_token_are_refused(gw: Gateway) -> None:
    v = signed_in(gw, "bank-analyst")
    for fields in ({}, {"csrf_token": "forged"}):
        reply = v.request("POST", "/console/logout", fields)
        assert reply.status == 403
    assert v.get("/console/catalog").status == 200  # still signed in: nothing happened
    # The sign-in form has its own token (double-submit), so a forged sign-in is refused too.
    reply = Visitor(gw.base).request("POST", "/console/login", {"username": "bank-analyst", "password": "x" * 12})
    assert reply.status == 403


def test_sign_out_ends_the_session_and_sign_out_everywhere_ends_them_all(gw: Gateway) -> None:
    first, second, third = (signed_in(gw, "merchant-dev") for _ in range(3))
    assert first.post("/console/logout").status == 303
    assert sent_to_sign_in(first)
    assert not sent_to_sign_in(second)
    assert second.post("/console/logout", {"everywhere": "1"}).status == 303
    assert sent_to_sign_in(second) and sent_to_sign_in(third)
    assert audit_rows(gw, "console.sign_out")[-1][0] == "user:merchant-dev"


def test_an_idle_session_ends(gw: Gateway) -> None:
    v = signed_in(gw, "ops-viewer")
    assert not sent_to_sign_in(v)
    time.sleep(4)  # past the 3 s idle timeout this gateway runs with
    assert sent_to_sign_in(v)


def test_a_session_in_use_still_ends_at_its_absolute_timeout(gw: Gateway) -> None:
    v = signed_in(gw, "psb-officer")
    started = time.monotonic()
    while time.monotonic() - started < 7:
        assert not sent_to_sign_in(v), "a session in use ended before its absolute timeout"
        time.sleep(1)
    time.sleep(2)
    assert sent_to_sign_in(v)


def test_suspending_the_organisation_ends_its_users_sessions(gw: Gateway) -> None:
    v = signed_in(gw, "insurer-analyst")
    assert gw.api("POST", "/v1/requesters/county-mutual-insurance/suspend", "demo-bureau",
                  {"reason": "test"}).status == 200
    try:
        assert sent_to_sign_in(v)
        refused = Visitor(gw.base).login("insurer-analyst", demo_users(gw.state_dir)["insurer-analyst"]["password"])
        assert refused.status == 401
    finally:
        assert gw.api("POST", "/v1/requesters/county-mutual-insurance/reinstate", "demo-bureau",
                      {"reason": "test"}).status == 200
    assert sent_to_sign_in(v), "a session ended by a suspension came back after the reinstatement"


def test_failed_sign_ins_are_throttled_per_username(gw: Gateway) -> None:
    for _ in range(5):
        assert Visitor(gw.base).login("bureau-admin", "wrong password, again").status == 401
    right = Visitor(gw.base).login("bureau-admin", demo_users(gw.state_dir)["bureau-admin"]["password"])
    assert right.status == 429 and right.header("Retry-After")
    assert any('"throttled"' in p for _a, _s, p in audit_rows(gw, "console.sign_in"))


def test_a_totp_second_factor_is_asked_once_enabled(gw: Gateway) -> None:
    password = demo_users(gw.state_dir)["bank-analyst"]["password"]
    v = signed_in(gw, "bank-analyst")
    page = v.get("/console/account").body.decode()
    secret = page.split('name="secret" value="')[1].split('"')[0]
    assert v.post("/console/account/totp", {"secret": secret, "code": "000000"}).status == 400
    assert v.post("/console/account/totp", {"secret": secret, "code": totp.code_at(secret, time.time())}).status == 303
    later = Visitor(gw.base)
    reply = later.login("bank-analyst", password)
    assert reply.status == 303 and (reply.header("Location") or "").startswith("/console/login/totp")
    assert sent_to_sign_in(later, "/console/catalog"), "a session without its second factor may not act"
    token = later.csrf("/console/login/totp")
    assert later.request("POST", "/console/login/totp", {"csrf_token": token, "code": "000000"}).status == 401
    done = later.request("POST", "/console/login/totp",
                         {"csrf_token": token, "code": totp.code_at(secret, time.time())})
    assert done.status == 303
    assert later.get("/console/catalog").status == 200


def test_gateway_user_add_makes_a_first_user_who_can_sign_in(tmp_path: Path, demo_data: Path) -> None:
    import subprocess

    from tests.support import BIN

    state = tmp_path / "county"
    state.mkdir()
    made = subprocess.run([str(BIN / "gateway"), "user", "add", "--state-dir", str(state), "--org", "county-bureau",
                           "--org-name", "县数据局", "--role", "bureau", "--name", "周局长", "chief"],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().splitlines()[-1]
    again = subprocess.run([str(BIN / "gateway"), "user", "add", "--state-dir", str(state), "--org", "county-bureau",
                            "--role", "requester", "--password-stdin", "clerk"], input="a long password 3\n",
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "role" in again.stderr  # a bureau's user is a bureau user
    g = demo_gateway(state, demo_data).start()
    try:
        v = Visitor(g.base)
        assert v.login("chief", password).status == 303
        assert v.get("/console/bureau").status == 200
        assert ("cli", "chief") in {(a, s) for a, s, _p in audit_rows(g, "user.created")}
    finally:
        g.stop()
