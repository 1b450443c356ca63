"""An upstream HTTP endpoint of a source department, returning Parquet or CSV.

Pulled on a schedule with `If-None-Match` / `If-Modified-Since`, so an unchanged table costs a
304 and nothing else. Connecting and every read wait at most `timeout_seconds`; the whole
download at most ten times that. Connection errors, time-outs, 429 and 5xx are retried with
exponential backoff; other statuses are not. The body is streamed to disk and cut off past
`max_bytes` (counted after any Content-Encoding is undone, so a compressed bomb stops too).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from gateway.data.connectors import SourceUnavailable
from gateway.data.snapshots import Format
from gateway.data.streams import stream_to_file

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_MEDIA_FORMATS: dict[str, Format] = {
    "text/csv": "csv", "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet", "application/x-parquet": "parquet",
    "application/parquet": "parquet",
}


@dataclass(frozen=True)
class Validators:
    """What the endpoint said about the last body we took: sent back to get a 304."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True)
class Downloaded:
    path: Path
    format: Format
    validators: Validators


@dataclass(frozen=True)
class Pull:
    """How to pull one endpoint; `format` None means: from the response's Content-Type."""

    url: str
    format: Format | None
    timeout_seconds: float
    max_bytes: int
    attempts: int = 3
    backoff_seconds: float = 1.0


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may not."""


async def download(pull: Pull, dest: Path, previous: Validators) -> Downloaded | None:
    """The new body in `dest`, or None when the endpoint says nothing changed (304)."""
    last: BaseException | None = None
    for attempt in range(pull.attempts):
        if attempt:
            await asyncio.sleep(pull.backoff_seconds * 2 ** (attempt - 1))
        try:
            return await _attempt(pull, dest, previous)
        except _Retryable as exc:
            last = exc
    raise SourceUnavailable(f"http: {last} after {pull.attempts} attempt(s)") from last


async def _attempt(pull: Pull, dest: Path, previous: Validators) -> Downloaded | None:
    timeout = aiohttp.ClientTimeout(total=pull.timeout_seconds * 10, sock_connect=pull.timeout_seconds,
                                    sock_read=pull.timeout_seconds)
    headers = {"User-Agent": "county-gateway", **previous.headers()}
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(pull.url, headers=headers, allow_redirects=False) as resp:
            if resp.status == 304:
                return None
            if resp.status in RETRY_STATUSES:
                raise _Retryable(f"status {resp.status}")
            if resp.status != 200:
                raise SourceUnavailable(f"http: status {resp.status}")
            fmt = pull.format or _format_of(resp.content_type)
            await _save(resp, dest, pull.max_bytes)
            return Downloaded(dest, fmt, Validators(resp.headers.get("ETag"),
                                                    resp.headers.get("Last-Modified")))
    except (aiohttp.ClientError, TimeoutError) as exc:
        dest.unlink(missing_ok=True)
        raise _Retryable(type(exc).__name__) from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _format_of(content_type: str) -> Format:
    fmt = _MEDIA_FORMATS.get(content_type.lower())
    if fmt is None:
        raise SourceUnavailable(f"http: unexpected Content-Type {content_type!r}; "
                                "declare source.format in the policy")
    return fmt


async def _save(resp: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> None:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise SourceUnavailable(f"http: body of {resp.content_length} bytes is over max_bytes")
    await stream_to_file(resp.content, dest, max_bytes, lambda: SourceUnavailable("http: body is over max_bytes"))
