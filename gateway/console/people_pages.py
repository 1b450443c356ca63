"""Signing in and out, the second factor, the user's own settings, and the home page per role."""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.auth.secrets import new_secret
from gateway.console import i18n
from gateway.console.web import (
    PREFIX,
    CsrfRefused,
    Page,
    drop_cookie,
    form,
    page,
    render,
    runtime_of,
    see_other,
    session_token,
    set_cookie,
    visit,
)
from gateway.console.web import (
    cookie_name as _cookie_name,
)
from gateway.console.web import (
    safe_next as _safe_next,
)
from gateway.core import totp
from gateway.errors import RateLimited, Unauthorized
from gateway.service import people

LOGIN_COOKIE = "login"  # double-submit token of the sign-in form, before there is a session


@page("GET", "/login", public=True)
async def login_form(request: web.Request) -> web.Response:
    token = new_secret()
    response = render(request, "login.html", login_token=token, next=_safe_next(request.query.get("next")),
                      problem="")
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


def _login_token_ok(request: web.Request, offered: object) -> bool:
    expected = request.cookies.get(_cookie_name(request, LOGIN_COOKIE), "")
    return bool(expected) and isinstance(offered, str) and hmac.compare_digest(offered.encode(), expected.encode())


@page("POST", "/login", public=True)
async def login(request: web.Request) -> web.Response:
    fields = form(request)
    if not _login_token_ok(request, fields.get("csrf_token")):
        raise CsrfRefused("The sign-in form's token is missing or wrong.")
    username, password = str(fields.get("username", "")).strip(), str(fields.get("password", ""))
    next_page = _safe_next(fields.get("next"))
    try:
        signed = await people.sign_in(runtime_of(request), username[:200], password[:256], request.remote or "")
    except (Unauthorized, RateLimited) as exc:
        token = new_secret()
        message = (i18n.gettext("Too many failed attempts: wait 15 minutes and try again.")
                   if isinstance(exc, RateLimited) else i18n.gettext("The username or password is not right."))
        response = render(request, "login.html", status=exc.status, login_token=token, next=next_page,
                          problem=message)
        set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
        response.headers.update({k: v for k, v in exc.headers.items() if k == "Retry-After"})
        return response
    target = f"{PREFIX}/login/totp?next={next_page}" if signed.needs_totp else next_page
    response = see_other(target)
    set_cookie(response, request, "session", signed.token)
    drop_cookie(response, request, LOGIN_COOKIE)
    return response


async def _partial(request: web.Request) -> people.Visit:
    found = await people.current(runtime_of(request), session_token(request), allow_partial=True)
    if found is None:
        raise Unauthorized("Sign in again.")
    return found


@page("GET", "/login/totp", public=True)
async def totp_form(request: web.Request) -> web.Response:
    found = await people.current(runtime_of(request), session_token(request), allow_partial=True)
    if found is None:
        return see_other(f"{PREFIX}/login")
    return render(request, "totp.html", csrf=found.csrf_token, next=_safe_next(request.query.get("next")),
                  problem="")


@page("POST", "/login/totp", public=True)
async def totp_check(request: web.Request) -> web.Response:
    found = await _partial(request)
    fields = form(request)
    if not people.csrf_ok(found, fields.get("csrf_token")):
        raise CsrfRefused("The form's CSRF token is missing or wrong.")
    next_page = _safe_next(fields.get("next"))
    try:
        await people.second_factor(runtime_of(request), session_token(request) or "", str(fields.get("code", "")))
    except Unauthorized:
        return render(request, "totp.html", status=401, csrf=found.csrf_token, next=next_page,
                      problem=i18n.gettext("The code is not right."))
    return see_other(next_page)


@page("POST", "/logout")
async def logout(request: web.Request) -> web.Response:
    everywhere = form(request).get("everywhere") == "1"
    await people.sign_out(runtime_of(request), visit(request), everywhere=everywhere)
    response = see_other(f"{PREFIX}/login")
    drop_cookie(response, request, "session")
    return response


@page("POST", "/language")
async def language(request: web.Request) -> web.Response:
    await people.set_language(runtime_of(request), visit(request), form(request).get("language", ""))
    return see_other(_safe_next(form(request).get("next")))


@page("GET", "/account")
async def account(request: web.Request) -> web.Response:
    found = visit(request)
    secret = "" if found.user.totp_secret else people.new_totp_secret()
    uri = totp.provisioning_uri(secret, found.user.username, "county-gateway") if secret else ""
    return render(request, "account.html", totp_secret=secret, totp_uri=uri)


@page("POST", "/account/totp")
async def enable_totp(request: web.Request) -> web.Response:
    fields = form(request)
    await people.enable_totp(runtime_of(request), visit(request), fields.get("secret"), fields.get("code"))
    return see_other(f"{PREFIX}/account?done=totp")


@page("GET", "/")
async def home(request: web.Request) -> web.StreamResponse:
    """Each role starts on its daily page; a user with several roles on the first of them."""
    from gateway.console import bureau_pages, products_pages, requester_pages, source_pages, status_pages

    roles = visit(request).who.roles
    for role, start in (("requester", requester_pages.catalog), ("bureau", bureau_pages.dashboard),
                        ("source", source_pages.datasets), ("merchant", products_pages.my_products),
                        ("ops", status_pages.status)):
        if role in roles:
            return await start.handler(request)
    return render(request, "account.html", totp_secret="", totp_uri="")


PAGES: tuple[Page, ...] = (login_form, login, totp_form, totp_check, logout, language, home, account, enable_totp)
