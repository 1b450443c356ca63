"""A console visitor for tests: a cookie jar, no automatic redirects, forms filled like a browser."""

from __future__ import annotations

import html.parser
import http.cookiejar
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import Reply


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Forms(html.parser.HTMLParser):
    """Every form of a page: its action and the values of its named fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "fields": {}})
        elif tag in ("input", "textarea", "select") and a.get("name") and self.forms:
            self.forms[-1]["fields"].setdefault(a["name"], a.get("value") or "")


def demo_users(state_dir: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((state_dir / "demo-credentials.json").read_text())
    return {u["username"]: u for u in data["users"]}


@dataclass
class Visitor:
    base: str
    headers: dict[str, str] = field(default_factory=dict)
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    last: Reply | None = None

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, path: str, fields: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        h = {**self.headers, **(headers or {})}
        if data is not None:
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with self.opener.open(req, timeout=120) as r:
                reply = Reply(r.status, _headers(r.headers), r.read())
        except urllib.error.HTTPError as e:
            reply = Reply(e.code, _headers(e.headers), e.read())
        self.last = reply
        return reply

    def request_raw(self, method: str, path: str, body: bytes, content_type: str) -> Reply:
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers={**self.headers, "Content-Type": content_type})
        try:
            with self.opener.open(req, timeout=120) as r:
                reply = Reply(r.status, _headers(r.headers), r.read())
        except urllib.error.HTTPError as e:
            reply = Reply(e.code, _headers(e.headers), e.read())
        self.last = reply
        return reply

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def csrf(self, path: str = "/console/account") -> str:
        page = self.get(path).body.decode()
        found = re.search(r'name="csrf_token" value="([^"]*)"', page)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def post(self, path: str, fields: dict[str, str] | None = None, *, csrf_from: str = "/console/account") -> Reply:
        return self.request("POST", path, {"csrf_token": self.csrf(csrf_from), **(fields or {})})

    def login(self, username: str, password: str) -> Reply:
        page = self.get("/console/login").body.decode()
        token = re.search(r'name="csrf_token" value="([^"]*)"', page)
        assert token, "no token on the sign-in form"
        return self.request("POST", "/console/login",
                            {"csrf_token": token.group(1), "username": username, "password": password})

    def text(self) -> str:
        assert self.last is not None
        return self.last.body.decode()


def _headers(msg: Any) -> dict[str, str]:
    h = dict(msg)
    h["Set-Cookie"] = "\n".join(msg.get_all("Set-Cookie") or [])
    return h
