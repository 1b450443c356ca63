"""Who is on the other end: the source address and the public origin of a request, believing
X-Forwarded-For and X-Forwarded-Proto only from the proxies named in `trusted_proxies`."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web

Networks = tuple[IPv4Network | IPv6Network, ...]


def _trusted(address: str | None, proxies: Networks) -> bool:
    if not address or not proxies:
        return False
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def source_address(request: web.Request, proxies: Networks) -> str:
    """The peer, or behind trusted proxies the nearest address in X-Forwarded-For they did not add."""
    peer = request.remote or "unknown"
    if not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):  # right to left: each entry was appended by the hop before
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def public_origin(request: web.Request, proxies: Networks) -> str:
    """scheme://host as the client addressed us (for URLs in documents we serve)."""
    scheme = request.scheme
    if _trusted(request.remote, proxies):
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            scheme = forwarded
    return f"{scheme}://{request.host}"
