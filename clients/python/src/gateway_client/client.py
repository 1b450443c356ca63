"""The blocking client: `Client(base_url, client_id, client_secret)`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload

import httpx

from gateway_client import _protocol as p
from gateway_client._base import ClientBase, credentials_from_file
from gateway_client.answer import Answer


class Client(ClientBase):
    """A requester's connection to the gateway; use it as a context manager or `close()` it.

    Tokens are fetched and renewed as needed; a query or product call carries an
    Idempotency-Key, kept across retries, so a retry never spends budget twice.

    Options: `timeout` (seconds, or an `httpx.Timeout`; a release may take the gateway's whole
    query timeout), `retry` (a `RetryPolicy`), `sleep` (how to wait between tries), `transport`
    (an httpx transport, for proxies or TLS settings of your own).
    """

    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 timeout: float | httpx.Timeout = p.DEFAULT_TIMEOUT, retry: p.RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, client_id, client_secret, retry)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers=self.default_headers)
        self._sleep = sleep
        self._token_lock = threading.Lock()

    @classmethod
    def from_credentials_file(cls, path: str | Path, client_id: str, **options: Any) -> Client:
        """A client from a `demo-credentials.json`-shaped file: its `base_url` and the secret of `client_id`."""
        base_url, secret = credentials_from_file(path, client_id)
        return cls(options.pop("base_url", None) or base_url, client_id, secret, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the API ---------------------------------------------------------------------------

    def catalog(self) -> list[dict[str, Any]]:
        """Every dataset the caller may see: schema, public categories, bounds, status."""
        return self._collect(p.Call("GET", "/v1/datasets"), "datasets")

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json(p.Call("GET", f"/v1/datasets/{self.segment(dataset_id)}"))

    def preview(self, dataset: str, sql: str | None = None, plan: Mapping[str, Any] | None = None,
                epsilon: p.Number | None = None, delta: p.Number = 0) -> dict[str, Any]:
        """What a query would cost and how accurate it would be; spends and bills nothing."""
        return self._json(p.query_call("/v1/queries/preview", dataset, sql, plan, epsilon, delta, spends=False))

    def query(self, dataset: str, sql: str | None = None, plan: Mapping[str, Any] | None = None,
              epsilon: p.Number | None = None, delta: p.Number = 0, idempotency_key: str | None = None) -> Answer:
        """Run a DP query (SQL or a JSON plan): spends epsilon unless the answer is cached."""
        call = p.query_call("/v1/queries", dataset, sql, plan, epsilon, delta, idempotency_key, spends=True)
        return self.answer_of(self._send(call), call)

    def products(self) -> list[dict[str, Any]]:
        return self._collect(p.Call("GET", "/v1/products"), "products")

    def invoke(self, product_id: str, params: Mapping[str, Any] | None = None,
               idempotency_key: str | None = None) -> Answer:
        """Call a published data product with parameter values; answers like a query."""
        call = p.Call("POST", f"/v1/products/{self.segment(product_id)}/invoke", body={"params": dict(params or {})},
                      headers=p.key_header(idempotency_key))
        return self.answer_of(self._send(call), call)

    def budget(self) -> dict[str, Any]:
        """`{"period", "datasets": [{"dataset", "epsilon_limit", "epsilon_spent", "epsilon_remaining"}]}`."""
        return self._json(p.Call("GET", "/v1/budget"))

    def usage(self, period: str | None = None, *, page_size: int | None = None) -> list[dict[str, Any]]:
        """Every usage record of a month (this month by default), following every page."""
        return list(self.iter_usage(period, page_size=page_size))

    def iter_usage(self, period: str | None = None, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Usage records page by page, fetched as they are consumed."""
        return self._pages(p.Call("GET", "/v1/usage", params=p.list_params(period, page_size)), "items")

    @overload
    def invoice(self, period: str, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    def invoice(self, period: str, format: Literal["csv"]) -> str: ...

    def invoice(self, period: str, format: Literal["json", "csv"] = "json") -> dict[str, Any] | str:
        """The caller's invoice for `YYYY-MM`: a JSON object, or the gateway's CSV text."""
        call = p.Call("GET", f"/v1/invoices/{self.segment(period)}", headers={"Accept": p.invoice_accept(format)})
        response = self._send(call)
        return response.text if format == "csv" else self.json_object(response)

    def release(self, query_id: str) -> Answer:
        """A stored release of the caller's, read back (spends and bills nothing)."""
        return Answer.from_wire(self._json(p.Call("GET", f"/v1/queries/{self.segment(query_id)}")))

    def receipt(self, query_id: str) -> str:
        """The signed receipt of a release of the caller's: a compact JWS (see `verify_receipt`)."""
        return self._send(p.Call("GET", f"/v1/queries/{self.segment(query_id)}/receipt",
                                          headers={"Accept": "application/jose"})).text.strip()

    def jwks(self) -> dict[str, Any]:
        """The gateway's published signing keys (retired ones flagged), for verifying receipts."""
        return self._json(p.Call("GET", "/.well-known/jwks.json"))

    # -- transport ----------------------------------------------------------------------------

    def _json(self, call: p.Call) -> dict[str, Any]:
        return self.json_object(self._send(call))

    def _collect(self, call: p.Call, key: str) -> list[dict[str, Any]]:
        return list(self._pages(call, key))

    def _pages(self, call: p.Call, key: str) -> Iterator[dict[str, Any]]:
        url: httpx.URL | None = self.first_page(self._http, call)
        seen: set[str] = set()
        while url is not None:
            seen.add(str(url))
            response = self._send(call, url)
            body = self.json_body(response)
            yield from p.page_items(body, key)
            url = self.following(response, body, seen)

    def _send(self, call: p.Call, url: httpx.URL | None = None) -> httpx.Response:
        return self._exchange(lambda: self.request(self._http, call, self._token(), url), call)

    def _exchange(self, build: Callable[[], httpx.Request], call: p.Call | None) -> httpx.Response:
        """Send until an answer is final (see `Tries` for what is tried again)."""
        tries = self.tries(call)
        while True:
            request = build()
            try:
                response = self._http.send(request)
            except p.TRANSIENT as exc:
                self._sleep(tries.after_no_answer(self.connection_error(exc, call)))
                continue
            if response.is_success:
                return response
            wait = tries.after_error(response.status_code, self.error_of(response, call))
            if wait is None:
                self.tokens.forget()
            else:
                self._sleep(wait)

    def _token(self) -> str:
        with self._token_lock:
            token = self.tokens.fresh(time.monotonic())
            if token is not None:
                return token
            asked_at = time.monotonic()
            response = self._exchange(lambda: self.token_request(self._http), None)
            return self.tokens.store(self.json_object(response), asked_at)
