"""Raw HTTP/1.1 over a socket, for what urllib cannot send: bodies dribbled in pieces with pauses,
chunked transfer, malformed headers. Replies are read to the connection's close."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Mapping

from tests.support import Reply


def _head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked(pieces: Iterable[bytes]) -> list[bytes]:
    """Each piece as one chunk of chunked transfer coding, then the last chunk."""
    out = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces if p]
    return [*out, b"0\r\n\r\n"]


def send_raw(port: int, head: bytes, pieces: Iterable[bytes] = (), *, pause: float = 0.3,
             timeout: float = 60, half_close: bool = False) -> Reply:
    """Send `head`, then each piece after a pause (each its own TCP segment), and read the reply;
    `half_close` ends the sending side after the last piece. No reply at all is status 0."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head)
        for piece in pieces:
            time.sleep(pause)
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered early (a 413) and closed
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            try:
                got = sock.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            data += got
    return parse_reply(data)


def request(port: int, method: str, path: str, headers: Mapping[str, str], pieces: Iterable[bytes] = (),
            *, pause: float = 0.3, half_close: bool = False) -> Reply:
    return send_raw(port, _head(method, path, headers), pieces, pause=pause, half_close=half_close)


def parse_reply(data: bytes) -> Reply:
    if not data:
        return Reply(0, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = _unchunk(body)
    return Reply(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out
