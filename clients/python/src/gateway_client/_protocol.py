"""What both clients share, without I/O: the calls, retry decisions, token lifetime, paging.

`Client` and `AsyncClient` differ only in how they send a request and how they wait; every
rule (what to retry, how long to wait, when a token is stale, which link is the next page)
lives here once.
"""

from __future__ import annotations

import logging
import random
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from gateway_client.errors import GatewayError, IdempotencyInProgress

log = logging.getLogger("gateway_client")

Number = int | float | Decimal | str
JSONObject = dict[str, Any]

# Statuses worth sending again: the gateway asks to wait (429) or is briefly unable (503).
RETRY_STATUSES = frozenset({429, 503})
TOKEN_PATH = "/oauth/token"
# A DP release may take the gateway's whole query timeout (30 s by default) before it answers.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try again after no answer, a 429 or a 503.

    `attempts` counts every try, the first included. Waits grow as `backoff * 2**n` with full
    jitter, but never fall short of the gateway's `Retry-After`; a wait longer than `max_wait`
    is not sat out: the error is raised instead, with the wait it asked for.
    """

    attempts: int = 4
    backoff: float = 0.5
    max_wait: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float | None:
        """Seconds to wait before try `attempt + 1` (`attempt` counted from 1), or None to give up."""
        if attempt >= self.attempts:
            return None
        wait = self.backoff * (2 ** (attempt - 1)) * rand()
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait if wait <= self.max_wait else None


# No answer came, but one may come to a second try; anything else (a bad URL) is final.
TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass
class Tries:
    """The tries of one call: after each failure, wait how long, renew the token, or give up.

    Retried: no answer, 429 and 503 (waiting at least their `Retry-After`). Not retried: any
    other error answer, except two that a retry itself causes: a 401 once (the token is
    renewed: the gateway may have rotated its keys), and a 409 `idempotency_in_progress` after
    a try of this same call got no answer (that try is still running on the gateway; the next
    one, with the same key, gets its answer).
    """

    policy: RetryPolicy
    spends: bool = False
    renewable: bool = True
    count: int = 1
    renewed: bool = False
    maybe_running: bool = False

    def after_no_answer(self, error: GatewayError) -> float:
        """Seconds to wait before trying again; raises `error` when no try is left."""
        self.maybe_running = self.spends
        return self._wait(None, error)

    def after_error(self, status: int, error: GatewayError) -> float | None:
        """None: renew the token and try again now; else seconds to wait. Raises `error` when final."""
        if status == 401 and self.renewable and not self.renewed:
            self.renewed = True
            return None
        if status in RETRY_STATUSES or (self.maybe_running and isinstance(error, IdempotencyInProgress)):
            return self._wait(getattr(error, "retry_after", None), error)
        raise error

    def _wait(self, retry_after: float | None, error: GatewayError) -> float:
        wait = self.policy.delay(self.count, retry_after)
        if wait is None:
            raise error
        log.info("gateway_client: %s; try %d in %.2f s", error, self.count + 1, wait)
        self.count += 1
        return wait


@dataclass(frozen=True)
class Call:
    """One API request as data, sent again unchanged on every retry."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: JSONObject | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("Idempotency-Key")


def query_call(path: str, dataset: str, sql: str | None, plan: Mapping[str, Any] | None, epsilon: Number | None,
               delta: Number, idempotency_key: str | None = None, *, spends: bool) -> Call:
    """A query or preview body; a spending call always carries an Idempotency-Key."""
    body: JSONObject = {"dataset": dataset}
    if sql is not None:
        body["sql"] = sql
    if plan is not None:
        body["plan"] = dict(plan)
    if epsilon is not None:
        body["epsilon"] = wire_number(epsilon)
    body["delta"] = wire_number(delta)
    return Call("POST", path, body=body, headers=key_header(idempotency_key) if spends else {})


def key_header(idempotency_key: str | None) -> dict[str, str]:
    """A fresh random key unless the caller brought one: the same key on every retry of a call."""
    return {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}


def wire_number(value: Number) -> int | float | str:
    """Decimals travel as strings so that no digit is lost; the gateway reads both."""
    if isinstance(value, bool):
        raise TypeError("a number is required, not a bool")
    return str(value) if isinstance(value, Decimal) else value


@dataclass
class TokenCache:
    """The current access token and when it must be replaced.

    A token is renewed once `refresh_fraction` of its lifetime has passed (and at least
    `min_margin` seconds before it expires), so a request never leaves with a token that the
    gateway will find expired on arrival.
    """

    refresh_fraction: float = 0.8
    min_margin: float = 10.0
    token: str | None = None
    renew_at: float = 0.0

    def fresh(self, now: float) -> str | None:
        return self.token if self.token is not None and now < self.renew_at else None

    def store(self, answer: Mapping[str, Any], now: float) -> str:
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("the token endpoint answered without an access_token")
        lifetime = float(answer.get("expires_in") or 60)
        self.token = token
        self.renew_at = now + max(0.0, min(lifetime * self.refresh_fraction, lifetime - self.min_margin))
        return token

    def forget(self) -> None:
        self.token, self.renew_at = None, 0.0


def token_form(client_id: str, client_secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}


_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]*)*)')


def next_link(headers: Mapping[str, str], body: Any) -> str | None:
    """The next page: the body's `next`, else a `Link: <…>; rel="next"` header, else none."""
    if isinstance(body, dict) and isinstance(body.get("next"), str) and body["next"]:
        return str(body["next"])
    for match in _LINK.finditer(headers.get("link", "")):
        rels = re.search(r'rel\s*=\s*"?([^";]*)"?', match.group(2))
        if rels and "next" in rels.group(1).split():
            return match.group(1)
    return None


def resolve_next(base_url: httpx.URL, current: httpx.URL, link: str) -> httpx.URL:
    """An absolute next-page URL on the gateway's own origin (a token never goes elsewhere)."""
    url = current.join(link)
    if (url.scheme, url.host, url.port) != (base_url.scheme, base_url.host, base_url.port):
        raise ValueError(f"the gateway's next page points to another origin: {url}")
    return url


def page_items(body: Any, key: str) -> list[JSONObject]:
    """The items of one page: `items` (the paginated shape) or the list's older key."""
    if not isinstance(body, dict):
        raise ValueError("a list answer must be a JSON object")
    items = body.get("items", body.get(key))
    if not isinstance(items, list):
        raise ValueError(f"a list answer must carry `items` (or `{key}`)")
    return items


def list_params(period: str | None = None, page_size: int | None = None) -> dict[str, str]:
    params: dict[str, str] = {}
    if period is not None:
        params["period"] = period
    if page_size is not None:
        params["limit"] = str(page_size)
    return params


def invoice_accept(fmt: str) -> str:
    if fmt not in ("json", "csv"):
        raise ValueError('format must be "json" or "csv"')
    return "text/csv" if fmt == "csv" else "application/json"
