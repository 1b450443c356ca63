"""What `gateway serve` checks before it starts, and the one line it prints once it serves."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from gateway.cli.args import CommandFailed
from gateway.settings import Settings
from gateway.statefolder import state_lock


@contextlib.contextmanager
def one_server_per_folder(settings: Settings) -> Iterator[None]:
    """The state folder's lock for the server's life when it holds the SQLite store; replicas on
    PostgreSQL may share a folder (they lock only to write shared files)."""
    if settings.store_dsn:
        yield
        return
    with state_lock(settings.state_path):
        yield


def require_free_ports(settings: Settings) -> None:
    """A port in use stops the start at once (not after the demo county is generated)."""
    _require_free(settings.host, settings.port, "--port")
    if settings.metrics_port:
        _require_free(settings.metrics_host, settings.metrics_port, "metrics_port")


def _require_free(host: str, port: int, setting: str) -> None:
    if port == 0:
        return
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CommandFailed(f"cannot listen on {host!r}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandFailed(f"cannot listen on {host}:{port}: {exc.strerror} (another gateway, or "
                                f"`make demo` already running?); choose another {setting}") from None


def start_line(settings: Settings, addresses: Sequence[Any], *, demo: bool) -> str:
    """`county gateway serving http://127.0.0.1:8080 · state folder /abs/state · ...`"""
    host, port = settings.host, settings.port
    if addresses and isinstance(addresses[0], tuple):
        port = int(addresses[0][1])  # the bound port, when port 0 asked for any
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    parts = [f"county gateway serving http://{shown}:{port}", f"state folder {settings.state_path.resolve()}"]
    if settings.store_dsn:
        parts[-1] += " (store: PostgreSQL)"
    if demo:
        parts.append(f"demo credentials {(settings.state_path / 'demo-credentials.json').resolve()}")
    return " · ".join(parts)
