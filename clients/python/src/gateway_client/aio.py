"""The asyncio client: `AsyncClient`, the same methods as `Client`, awaitable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, overload

import httpx

from gateway_client import _protocol as p
from gateway_client._base import ClientBase, credentials_from_file
from gateway_client.answer import Answer


class AsyncClient(ClientBase):
    """`Client` for asyncio: `async with AsyncClient(...) as gw: answer = await gw.query(...)`."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *,
                 timeout: float | httpx.Timeout = p.DEFAULT_TIMEOUT, retry: p.RetryPolicy | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, client_id, client_secret, retry)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport,
                                       headers=self.default_headers)
        self._sleep = sleep
        self._token_lock = asyncio.Lock()

    @classmethod
    def from_credentials_file(cls, path: str | Path, client_id: str, **options: Any) -> AsyncClient:
        """A client from a `demo-credentials.json`-shaped file: its `base_url` and the secret of `client_id`."""
        base_url, secret = credentials_from_file(path, client_id)
        return cls(options.pop("base_url", None) or base_url, client_id, secret, **options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the API (see Client for each method's meaning) -----------------------------------------

    async def catalog(self) -> list[dict[str, Any]]:
        return await self._collect(p.Call("GET", "/v1/datasets"), "datasets")

    async def dataset(self, dataset_id: str) -> dict[str, Any]:
        return await self._json(p.Call("GET", f"/v1/datasets/{self.segment(dataset_id)}"))

    async def preview(self, dataset: str, sql: str | None = None, plan: Mapping[str, Any] | None = None,
                      epsilon: p.Number | None = None, delta: p.Number = 0) -> dict[str, Any]:
        return await self._json(p.query_call("/v1/queries/preview", dataset, sql, plan, epsilon, delta, spends=False))

    async def query(self, dataset: str, sql: str | None = None, plan: Mapping[str, Any] | None = None,
                    epsilon: p.Number | None = None, delta: p.Number = 0,
                    idempotency_key: str | None = None) -> Answer:
        call = p.query_call("/v1/queries", dataset, sql, plan, epsilon, delta, idempotency_key, spends=True)
        return self.answer_of(await self._send(call), call)

    async def products(self) -> list[dict[str, Any]]:
        return await self._collect(p.Call("GET", "/v1/products"), "products")

    async def invoke(self, product_id: str, params: Mapping[str, Any] | None = None,
                     idempotency_key: str | None = None) -> Answer:
        call = p.Call("POST", f"/v1/products/{self.segment(product_id)}/invoke", body={"params": dict(params or {})},
                      headers=p.key_header(idempotency_key))
        return self.answer_of(await self._send(call), call)

    async def budget(self) -> dict[str, Any]:
        return await self._json(p.Call("GET", "/v1/budget"))

    async def usage(self, period: str | None = None, *, page_size: int | None = None) -> list[dict[str, Any]]:
        return [item async for item in self.iter_usage(period, page_size=page_size)]

    def iter_usage(self, period: str | None = None, *, page_size: int | None = None) -> AsyncIterator[dict[str, Any]]:
        return self._pages(p.Call("GET", "/v1/usage", params=p.list_params(period, page_size)), "items")

    @overload
    async def invoice(self, period: str, format: Literal["json"] = "json") -> dict[str, Any]: ...
    @overload
    async def invoice(self, period: str, format: Literal["csv"]) -> str: ...

    async def invoice(self, period: str, format: Literal["json", "csv"] = "json") -> dict[str, Any] | str:
        call = p.Call("GET", f"/v1/invoices/{self.segment(period)}", headers={"Accept": p.invoice_accept(format)})
        response = await self._send(call)
        return response.text if format == "csv" else self.json_object(response)

    async def release(self, query_id: str) -> Answer:
        return Answer.from_wire(await self._json(p.Call("GET", f"/v1/queries/{self.segment(query_id)}")))

    async def receipt(self, query_id: str) -> str:
        return (await self._send(p.Call("GET", f"/v1/queries/{self.segment(query_id)}/receipt",
                                          headers={"Accept": "application/jose"}))).text.strip()

    async def jwks(self) -> dict[str, Any]:
        return await self._json(p.Call("GET", "/.well-known/jwks.json"))

    # -- transport ----------------------------------------------------------------------------

    async def _json(self, call: p.Call) -> dict[str, Any]:
        return self.json_object(await self._send(call))

    async def _collect(self, call: p.Call, key: str) -> list[dict[str, Any]]:
        return [item async for item in self._pages(call, key)]

    async def _pages(self, call: p.Call, key: str) -> AsyncIterator[dict[str, Any]]:
        url: httpx.URL | None = self.first_page(self._http, call)
        seen: set[str] = set()
        while url is not None:
            seen.add(str(url))
            response = await self._send(call, url)
            body = self.json_body(response)
            for item in p.page_items(body, key):
                yield item
            url = self.following(response, body, seen)

    async def _send(self, call: p.Call, url: httpx.URL | None = None) -> httpx.Response:
        async def build() -> httpx.Request:
            return self.request(self._http, call, await self._token(), url)
        return await self._exchange(build, call)

    async def _exchange(self, build: Callable[[], Awaitable[httpx.Request]], call: p.Call | None) -> httpx.Response:
        """Send until an answer is final (see `Tries` for what is tried again)."""
        tries = self.tries(call)
        while True:
            request = await build()
            try:
                response = await self._http.send(request)
            except p.TRANSIENT as exc:
                await self._sleep(tries.after_no_answer(self.connection_error(exc, call)))
                continue
            if response.is_success:
                return response
            wait = tries.after_error(response.status_code, self.error_of(response, call))
            if wait is None:
                self.tokens.forget()
            else:
                await self._sleep(wait)

    async def _token(self) -> str:
        async with self._token_lock:
            token = self.tokens.fresh(time.monotonic())
            if token is not None:
                return token
            asked_at = time.monotonic()

            async def build() -> httpx.Request:
                return self.token_request(self._http)
            response = await self._exchange(build, None)
            return self.tokens.store(self.json_object(response), asked_at)
