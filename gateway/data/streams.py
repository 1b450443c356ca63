"""A body streamed to a file under a byte limit: uploads and pulled sources alike.

The file is written in a thread, so a large upload never blocks the event loop on the disk, and
removed whatever stops the copy (the limit, a dropped connection, a full disk).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import aiohttp

from gateway.data.diskfull import disk_full, no_space

CHUNK = 1 << 16
async def stream_to_file(content: aiohttp.StreamReader, dest: Path, limit: int,
                         too_large: Callable[[], Exception]) -> int:
    """Copy `content` into `dest`; `too_large()` is raised past `limit` bytes. Returns the size."""
    written = 0
    fh = await asyncio.to_thread(open, dest, "wb")
    try:
        async for chunk in content.iter_chunked(CHUNK):
            written += len(chunk)
            if written > limit:
                raise too_large()
            await asyncio.to_thread(fh.write, chunk)
        await asyncio.to_thread(fh.close)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # closing flushes, which fails again on a full disk
            fh.close()
        dest.unlink(missing_ok=True)
        if no_space(exc):
            raise disk_full() from exc
        raise
    return written
