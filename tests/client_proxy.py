"""A real HTTP hop in front of a real gateway that misbehaves on cue, as a load balancer can.

The client's retries and paging are about what happens between it and the gateway: an answer
lost on the way back, a connection cut while the gateway still works, a 503 from a proxy during
a deploy, a list served in pages. `FrontProxy` forwards every request to the gateway unchanged
(Host included, so links the gateway writes stay valid) and can, for the next matching
request, do one of:

- `lose`: forward it, let the gateway answer in full, then close the connection without a reply;
- `cut`: close the client's connection without a reply and hold the request; when the client
  tries again, forward the held request first and the new one a moment later, so that the
  gateway is still working on a slow first one when the second arrives (what a retry after a
  timeout meets);
- `unavailable`: answer 503 problem+json with `Retry-After` itself, forwarding nothing.

`paginate(path, size)` serves that list in pages of `size` items with `next` links (in the
body, or only in a `Link` header), the shape API.md fixes for lists that grow: a stand-in for
the gateway's own paging where the gateway does not page yet.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Seconds between the held request and the retry: long enough for the first to claim its key,
# short enough that a slow release (a few hundred ms) is still running when the retry arrives.
HOLD_GAP = 0.1
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None  # what the gateway answered, when it was asked and answered in time


@dataclass
class Fault:
    method: str
    path: str
    kind: str
    retry_after: int = 1


@dataclass
class Pages:
    size: int
    link_only: bool = False
    absolute: bool = False


@dataclass
class FrontProxy:
    upstream: str
    seen: list[Seen] = field(default_factory=list)
    held: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    pages: dict[str, Pages] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None
    background: list[threading.Thread] = field(default_factory=list)

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FrontProxy:
        proxy = self

        class Handler(Hop):
            owner = proxy

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        for t in self.background:
            t.join(60)

    def __enter__(self) -> FrontProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fault(self, method: str, path: str, kind: str, retry_after: int = 1) -> None:
        self.faults.append(Fault(method, path, kind, retry_after))

    def paginate(self, path: str, size: int, *, link_only: bool = False, absolute: bool = False) -> None:
        self.pages[path] = Pages(size, link_only, absolute)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and s.path.split("?")[0] == path]

    def take_fault(self, method: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.method == method and f.path == path:
                self.faults.remove(f)
                return f
        return None

    def forward(self, method: str, path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        target = urllib.parse.urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            r = conn.getresponse()
            return r.status, [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP], r.read()
        finally:
            conn.close()


class Hop(BaseHTTPRequestHandler):
    owner: FrontProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle_one(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        path_only = self.path.split("?")[0]
        seen = Seen(self.command, self.path, dict(headers))
        self.owner.seen.append(seen)
        fault = self.owner.take_fault(self.command, path_only)
        if fault and fault.kind == "unavailable":
            problem = {"type": "about:blank", "title": "Service unavailable", "status": 503,
                       "detail": "the gateway is restarting", "code": "unavailable"}
            return self.reply(503, [("Content-Type", "application/problem+json"),
                                    ("Retry-After", str(fault.retry_after))], json.dumps(problem).encode())
        if fault and fault.kind == "cut":
            self.owner.held.append((self.command, self.path, headers, body))
            return self.hang_up()
        if self.owner.held:
            t = threading.Thread(target=self.owner.forward, args=self.owner.held.pop())
            t.start()
            self.owner.background.append(t)
            time.sleep(HOLD_GAP)
        if self.command == "GET" and path_only in self.owner.pages:
            return self.page(path_only, headers)
        status, out_headers, out_body = self.owner.forward(self.command, self.path, headers, body)
        seen.status = status
        if fault and fault.kind == "lose":
            return self.hang_up()
        self.reply(status, out_headers, out_body)

    do_GET = do_POST = do_PUT = do_DELETE = handle_one

    def page(self, path: str, headers: dict[str, str]) -> None:
        """One page of the full list the gateway answers, with a link to the next."""
        spec = self.owner.pages[path]
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        offset = int(query.pop("cursor", ["0"])[0])
        upstream_path = path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        status, out_headers, raw = self.owner.forward("GET", upstream_path, headers, b"")
        if status != 200:
            return self.reply(status, out_headers, raw)
        whole = json.loads(raw)
        items = whole["items"]
        chunk = items[offset:offset + spec.size]
        link = None
        if offset + spec.size < len(items):
            link = path + "?" + urllib.parse.urlencode({**query, "cursor": offset + spec.size}, doseq=True)
            if spec.absolute:
                link = f"http://{self.headers['Host']}{link}"
        body: dict[str, Any] = {**whole, "items": chunk}
        extra: list[tuple[str, str]] = []
        if not spec.link_only:
            body["next"] = link
        if link is not None:
            extra.append(("Link", f'<{link}>; rel="next"'))
        self.reply(200, [("Content-Type", "application/json"), *extra], json.dumps(body).encode())

    def reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response_only(status)
        for k, v in headers:
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def hang_up(self) -> None:
        """Close the connection with no reply at all: the client sees the server disconnect."""
        self.close_connection = True
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
