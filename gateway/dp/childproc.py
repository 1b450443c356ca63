"""What the sandbox's child processes share with their parent: the message protocol and a memory ceiling."""

from __future__ import annotations

import resource

# Messages (parent -> worker), each answered by exactly one reply:
#   ("load", policy, source_path, snapshot_id)  -> ("ok", None) | ("invalid", reason)
#   ("release", checked, alpha, scope)           -> ("ok", Release) | ("failed", None)
#   ("preview", checked, alpha, scope)           -> ("ok", dict) | ("failed", None)
# `scope` is the caller's organisation: compiled plans are reused within it only.
#   ("stop",)                                    -> no reply; the process exits
READY, OK, INVALID, FAILED = "ready", "ok", "invalid", "failed"
NO_SPACE = "no_space"  # preparing a snapshot: the disk is full (the operator's problem, not the data's)


def limit_memory(memory_mb: int) -> None:
    """A hard ceiling on private memory; the parent's watchdog enforces the per-call limit.

    RLIMIT_DATA counts anonymous memory but not the memory-mapped snapshot files.
    """
    ceiling = memory_mb * 1024 * 1024 * 2
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard == resource.RLIM_INFINITY or ceiling < hard:
        resource.setrlimit(resource.RLIMIT_DATA, (ceiling, ceiling if hard != resource.RLIM_INFINITY else hard))
