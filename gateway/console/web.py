"""Console pages: each declares the roles it admits; one wrapper does the rest, in this order:
language, session (else the sign-in page), role (else 403), rate limit, CSRF token on every
POST (else 403), the handler, an HTML page for any error, and an audit entry for every POST.

Roles of a page that stands for an API operation are that route's roles (`api_roles`), so
the console grants nothing the API would refuse; the service functions it calls hold the
object-level rules (whose application, whose dataset) for both.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from gateway.console import i18n
from gateway.errors import GatewayError
from gateway.http.keys import RUNTIME
from gateway.http.ratelimit import enforce_rate_limit
from gateway.http.routing import PRINCIPAL, Route
from gateway.runtime.parts import Runtime
from gateway.service import people
from gateway.store import audit
from gateway.store.db import Tx

log = logging.getLogger("gateway.console")
PREFIX = "/console"
TEMPLATES = web.AppKey("console_templates", jinja2.Environment)
VISIT = web.RequestKey("console_visit", people.Visit)
FORM = web.RequestKey("console_form", MultiDictProxy[Any])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Page:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str] | None  # None: any signed-in user
    public: bool = False
    nav: str = ""  # a menu label (marked with N_) for pages listed in the menu
    multipart: bool = False  # the handler reads the body and checks the CSRF token itself
    name: str = ""


def page(method: str, path: str, roles: frozenset[str] | None = None, *, public: bool = False, nav: str = "",
         multipart: bool = False) -> Callable[[Handler], Page]:
    def wrap(handler: Handler) -> Page:
        return Page(method, PREFIX + path, handler, roles, public, nav, multipart, handler.__name__)
    return wrap


def api_roles(*routes: Route) -> frozenset[str]:
    """The roles the API admits to these operations: the console never admits more."""
    return frozenset().union(*(r.roles for r in routes))


# ---------------------------------------------------------------- cookies


def is_secure(request: web.Request) -> bool:
    """TLS here, TLS at the proxy in front, or the setting that says there always is."""
    return (request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
            or request.app[RUNTIME].settings.console_secure_cookies)


def cookie_name(request: web.Request, base: str) -> str:
    """`__Host-` (Secure, Path=/, no Domain) behind TLS; browsers refuse the prefix without TLS."""
    return f"__Host-gw-{base}" if is_secure(request) else f"gw-{base}"


def set_cookie(response: web.StreamResponse, request: web.Request, base: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(cookie_name(request, base), value, path="/", httponly=True, samesite="Strict",
                        secure=is_secure(request), max_age=max_age)


def drop_cookie(response: web.StreamResponse, request: web.Request, base: str) -> None:
    set_cookie(response, request, base, "", max_age=0)


def session_token(request: web.Request) -> str | None:
    return request.cookies.get(cookie_name(request, "session"))


# ---------------------------------------------------------------- rendering


def runtime_of(request: web.Request) -> Runtime:
    return request.app[RUNTIME]


def visit(request: web.Request) -> people.Visit:
    return request[VISIT]


def form(request: web.Request) -> MultiDictProxy[Any]:
    return request[FORM]


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    zone = runtime_of(request).settings.zone
    found = request.get(VISIT)
    base = {
        "visit": found, "user": found.user if found else None, "csrf_token": found.csrf_token if found else "",
        "lang": i18n.current(), "menu": menu_for(request, found), "path": request.path,
        "money": i18n.money, "number": i18n.number, "when": functools.partial(i18n.when, zone=zone),
        "query": request.query, "languages": i18n.LANGUAGE_NAMES,
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, app_key=TEMPLATES,
                                              status=status)
    return response


def see_other(location: str) -> web.Response:
    """After a POST: the browser GETs the next page (no resubmission on reload)."""
    return web.Response(status=303, headers={"Location": location})


MENU: list[Page] = []  # filled by setup_console from the page tables, in their order


def menu_for(request: web.Request, found: people.Visit | None) -> list[dict[str, Any]]:
    if found is None:
        return []
    return [{"path": p.path, "label": i18n.gettext(p.nav), "current": request.path == p.path}
            for p in MENU if p.nav and (p.roles is None or found.who.roles & p.roles)]


ERROR_TITLES = {
    400: i18n.N_("The request was not understood"),
    401: i18n.N_("Please sign in"),
    403: i18n.N_("You may not do this"),
    404: i18n.N_("Not found"),
    409: i18n.N_("Not possible right now"),
    410: i18n.N_("No longer available"),
    413: i18n.N_("Too large"),
    422: i18n.N_("Not allowed by the policy"),
    429: i18n.N_("Too many requests"),
    500: i18n.N_("Something went wrong"),
    503: i18n.N_("Temporarily unavailable"),
}


def error_page(request: web.Request, error: GatewayError) -> web.Response:
    title = ERROR_TITLES.get(error.status, ERROR_TITLES[500])
    response = render(request, "error.html", status=error.status, title=i18n.gettext(title), error=error,
                      explanation=explain(error))
    for name in ("Retry-After",):
        if name in error.headers:
            response.headers[name] = error.headers[name]
    return response


EXPLANATIONS = {
    "dataset_suspended": i18n.N_("The dataset is suspended by its source department or the bureau: "
                                 "no query or product on it is answered until it is resumed."),
    "dataset_withdrawn": i18n.N_("The dataset has been withdrawn for good: its grants have ended."),
    "agreement_ended": i18n.N_("The authorisation agreement this stood on has ended: its grants and products "
                               "have stopped."),
    "budget_exhausted": i18n.N_("This query would spend more privacy budget than is left this month."),
    "policy_violation": i18n.N_("The dataset's policy does not allow this query."),
    "invalid_query": i18n.N_("The SQL could not be read, or uses something the query language lacks."),
    "forbidden": i18n.N_("Your role or your grants do not allow this."),
    "not_found": i18n.N_("There is nothing here, or it is not yours to see."),
    "rate_limited": i18n.N_("Too many requests in a short time: wait a moment and try again."),
    "csrf": i18n.N_("The form had expired or did not come from this console. Reload the page and try again."),
}


def explain(error: GatewayError) -> str:
    text = EXPLANATIONS.get(error.code)
    return i18n.gettext(text) if text else ""


# ---------------------------------------------------------------- the wrapper


class CsrfRefused(GatewayError):
    status, code, title = 403, "csrf", "Forbidden"


def guarded(spec: Page) -> Handler:
    @functools.wraps(spec.handler)
    async def handler(request: web.Request) -> web.StreamResponse:
        chosen = request.query.get("lang")
        i18n.use(chosen if chosen in i18n.LOCALES else i18n.negotiate(request.headers.get("Accept-Language")))
        found: people.Visit | None = None
        try:
            if not spec.public:
                found = await people.current(runtime_of(request), session_token(request))
                if found is None:
                    return _to_sign_in(request)
                await _admit(request, spec, found)
            if request.method == "POST" and not spec.multipart:
                request[FORM] = await request.post()
                if found is not None and not people.csrf_ok(found, request[FORM].get("csrf_token")):
                    raise CsrfRefused("The form's CSRF token is missing or wrong.")
            response = await spec.handler(request)
            outcome = "ok"
        except GatewayError as exc:
            response, outcome = error_page(request, exc), exc.code
        except Exception:  # a bug: logged with its trace, shown as a plain page without one
            log.exception("console page failed", extra={"path": request.path})
            response, outcome = error_page(request, GatewayError("The page could not be shown.")), "internal_error"
        if found is not None and request.method == "POST":
            await runtime_of(request).store.write(_audit_action, found.who.client_id, spec.name, request.path,
                                                  outcome)
        return response

    return handler


async def _admit(request: web.Request, spec: Page, found: people.Visit) -> None:
    request[VISIT] = found
    request[PRINCIPAL] = found.who  # the access log names the user
    if found.user.language:
        i18n.use(found.user.language)
    if spec.roles is not None and not found.who.roles & spec.roles:
        raise _forbidden()
    await enforce_rate_limit(request, found.who)


def _forbidden() -> GatewayError:
    from gateway.errors import Forbidden

    return Forbidden("Your role does not open this page.")


def _to_sign_in(request: web.Request) -> web.Response:
    target = request.path_qs if request.method == "GET" else PREFIX + "/"
    return see_other(f"{PREFIX}/login?next={quote(target, safe='/')}")


def _audit_action(tx: Tx, actor: str, action: str, path: str, outcome: str) -> None:
    audit.append(tx, "console.action", actor, path[:200], {"action": action, "outcome": outcome})


def safe_next(value: str | None) -> str:
    """Only a console path of this site: never another host (an open redirect)."""
    if not value or not value.startswith(PREFIX + "/") or "//" in value or "\\" in value:
        return PREFIX + "/"
    return value
