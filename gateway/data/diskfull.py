"""A full disk told apart from bad data: the upload or load is not refused, the gateway is
unavailable (503 with Retry-After) until an operator frees space, and nothing is changed."""

from __future__ import annotations

import errno

from gateway.errors import Unavailable

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
DISK_FULL_RETRY_SECONDS = 60  # space comes back when an operator frees it: not in a second


def no_space(exc: BaseException) -> bool:
    """A write failed because the disk (or the quota) is full, not because of the data. Polars
    reports the operating system's error as text ("No space left on device (os error 28)"), in
    an OSError without an errno or in one of its own exceptions."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno in NO_SPACE
    return any(f"(os error {code})" in str(exc) for code in NO_SPACE)


def disk_full() -> Unavailable:
    return Unavailable("The gateway's disk is full; nothing was changed.", retry_after=DISK_FULL_RETRY_SECONDS)
