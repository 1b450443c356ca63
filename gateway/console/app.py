"""`setup_console(app)`: templates, pages, static files and the security headers of /console/."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.console import i18n
from gateway.console import web as console_web
from gateway.console.web import PREFIX, TEMPLATES, Page, guarded

STATIC = Path(__file__).resolve().parent / "static"

# No inline script or style anywhere: the pages load /console/static/ only (R-AU-12).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; connect-src 'self'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def all_pages() -> tuple[Page, ...]:
    from gateway.console import (
        agreements_pages,
        applications_pages,
        bureau_pages,
        people_pages,
        policy_pages,
        prices_page,
        products_pages,
        requester_pages,
        source_pages,
        status_pages,
    )

    return (people_pages.PAGES + requester_pages.PAGES + applications_pages.PAGES + agreements_pages.PAGES
            + products_pages.PAGES + bureau_pages.PAGES + policy_pages.PAGES + source_pages.PAGES + status_pages.PAGES
            + prices_page.PAGES)


def create_environment(app: web.Application) -> jinja2.Environment:
    env = aiohttp_jinja2.setup(
        app, app_key=TEMPLATES, loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=jinja2.select_autoescape(["html", "svg"]),
        extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True)
    # The language is per request (a context variable), so the callables look it up each time.
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if not request.path.startswith(PREFIX):
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if console_web.is_secure(request):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith(PREFIX + "/static/"):
        response.headers["Cache-Control"] = "no-store"


async def _to_console(request: web.Request) -> web.Response:
    return web.Response(status=308, headers={"Location": PREFIX + "/"})


def setup_console(app: web.Application) -> None:
    """Wire the console into the gateway's app (call once, from create_app)."""
    create_environment(app)
    pages = all_pages()
    console_web.MENU[:] = [p for p in pages if p.nav]
    for spec in pages:
        app.router.add_route(spec.method, spec.path, guarded(spec))
    app.router.add_get(PREFIX, _to_console)
    app.router.add_static(PREFIX + "/static/", STATIC, name="console.static", append_version=False)
    app.on_response_prepare.append(_security_headers)
