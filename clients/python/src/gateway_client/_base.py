"""What `Client` and `AsyncClient` hold in common: settings, request building, answer reading."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

from gateway_client import _protocol as p
from gateway_client.answer import Answer
from gateway_client.errors import ConnectionFailed, GatewayError, error_from_answer

USER_AGENT = "county-gateway-client/0.1"


def credentials_from_file(path: str | Path, client_id: str) -> tuple[str, str]:
    """`(base_url, client_secret)` of `client_id` in a `demo-credentials.json`-shaped file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    for entry in data.get("clients", []):
        if entry.get("client_id") == client_id:
            return str(data["base_url"]), str(entry["client_secret"])
    raise KeyError(f"no client {client_id!r} in {path}")


class ClientBase:
    """Settings and the I/O-free steps of every call."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, retry: p.RetryPolicy | None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.base_url = httpx.URL(base_url.rstrip("/") + "/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.retry = retry or p.RetryPolicy()
        self.tokens = p.TokenCache()
        self.default_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}

    def __repr__(self) -> str:  # never the secret
        return f"{type(self).__name__}({str(self.base_url)!r}, client_id={self.client_id!r})"

    @staticmethod
    def segment(value: str) -> str:
        """A path segment, escaped: an id can never climb to another route."""
        return urllib.parse.quote(value, safe="")

    def tries(self, call: p.Call | None) -> p.Tries:
        return p.Tries(self.retry, spends=call is not None and call.idempotency_key is not None,
                       renewable=call is not None)

    def request(self, http: httpx.Client | httpx.AsyncClient, call: p.Call, token: str,
                url: httpx.URL | None = None) -> httpx.Request:
        headers = {**call.headers, "Authorization": f"Bearer {token}"}
        if url is not None:  # a next page: its own query string, as the gateway wrote it
            return http.build_request(call.method, url, headers=headers)
        return http.build_request(call.method, call.path.lstrip("/"), params=call.params, json=call.body,
                                  headers=headers)

    def token_request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        return http.build_request("POST", p.TOKEN_PATH.lstrip("/"),
                                  data=p.token_form(self.client_id, self.client_secret))

    def first_page(self, http: httpx.Client | httpx.AsyncClient, call: p.Call) -> httpx.URL:
        return http.build_request(call.method, call.path.lstrip("/"), params=call.params).url

    def error_of(self, response: httpx.Response, call: p.Call | None) -> GatewayError:
        error = error_from_answer(response.status_code, response.headers, response.content)
        error.idempotency_key = call.idempotency_key if call else None
        return error

    def connection_error(self, exc: httpx.HTTPError, call: p.Call | None) -> GatewayError:
        error = ConnectionFailed({"detail": f"{type(exc).__name__}: {exc}"})
        error.idempotency_key = call.idempotency_key if call else None
        return error

    @staticmethod
    def json_body(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GatewayError({"detail": "the gateway answered with something that is not JSON"},
                               status=response.status_code, headers=response.headers) from None

    def json_object(self, response: httpx.Response) -> dict[str, Any]:
        body = self.json_body(response)
        if not isinstance(body, dict):
            raise GatewayError({"detail": "the gateway answered with JSON that is not an object"},
                               status=response.status_code, headers=response.headers)
        return body

    def answer_of(self, response: httpx.Response, call: p.Call) -> Answer:
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return Answer.from_wire(self.json_object(response), replayed=replayed, idempotency_key=call.idempotency_key)

    def following(self, response: httpx.Response, body: Any, seen: set[str]) -> httpx.URL | None:
        """The next page's URL, or None on the last page (or on a server without pages)."""
        link = p.next_link(response.headers, body)
        if link is None:
            return None
        url = p.resolve_next(self.base_url, response.request.url, link)
        if str(url) in seen:
            raise GatewayError({"detail": f"the gateway's pages loop back to {url}"}, status=response.status_code)
        return url
