"""Canonical snapshot files: checked, written by us as Parquet, named by their content hash.

Whatever the source (an upload, a file, PostgreSQL, an upstream endpoint, a view), a load ends
here: the incoming table is checked against the policy (gateway.data.validate) and, only if it
passes, its policy columns are written in policy order and types to
`<data root>/_snapshots/<dataset>/<sha256>.parquet`. The same content always gives the same
bytes and so the same id, so a reload of unchanged data changes nothing downstream. The
snapshots live under the data root because that is the folder replicas share.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from gateway.core.policy import DatasetPolicy
from gateway.data.diskfull import disk_full, no_space
from gateway.data.validate import Problem, SnapshotRefused, inspect

SNAPSHOT_DIR = "_snapshots"
INCOMING_DIR = ".incoming"
KEEP_FILES = 3  # the current file, the one it replaced (workers may still finish on it), one more
Format = Literal["parquet", "csv"]


@dataclass(frozen=True)
class Built:
    """A snapshot file that passed the check and is on disk."""

    dataset: str
    snapshot_id: str
    path: Path
    rows: int
    size: int
    warnings: tuple[Problem, ...] = ()
    created: bool = False  # this build wrote the file (it was not there from an earlier load)


def snapshots_root(data_root: Path) -> Path:
    return data_root / SNAPSHOT_DIR


def snapshot_path(root: Path, dataset: str, snapshot_id: str) -> Path:
    return root / dataset / f"{snapshot_id}.parquet"


def incoming_dir(root: Path) -> Path:
    """Where bodies and downloads wait to be checked; never read by the sandbox."""
    folder = root / INCOMING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def incoming_file(root: Path, suffix: str) -> Path:
    """A new, empty file only our user can read: it holds rows until they are checked."""
    path = incoming_dir(root) / f"{uuid.uuid4().hex}.{suffix}"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def scan(location: str | Path, fmt: Format,
         storage_options: Mapping[str, Any] | None = None) -> pl.LazyFrame:
    """A lazy reader; CSV arrives as text so that every parse failure is reported, not guessed."""
    options = dict(storage_options) if storage_options else None
    if fmt == "csv":
        return pl.scan_csv(location, infer_schema=False, storage_options=options)
    return pl.scan_parquet(location, storage_options=options)


def build(frame: pl.LazyFrame, policy: DatasetPolicy, root: Path, *, text: bool) -> Built:
    """Check `frame` and write its canonical file; SnapshotRefused lists every problem."""
    verdict = inspect(frame, policy, text=text)
    if verdict.problems or verdict.canonical is None:
        raise SnapshotRefused(policy.dataset, verdict.problems)
    folder = root / policy.dataset
    tmp = folder / f".{uuid.uuid4().hex}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # rows: ours alone
        try:
            verdict.canonical.sink_parquet(tmp, compression="zstd", compression_level=3,
                                           statistics=True)
        except (pl.exceptions.PolarsError, OSError) as exc:
            if no_space(exc):
                raise
            # The check passed, so this is a read failing half-way (a truncated file).
            raise SnapshotRefused(policy.dataset, [Problem("unreadable", "the data could not be "
                                  f"read to the end: {type(exc).__name__}")]) from None
        digest = file_sha256(tmp)
        final = snapshot_path(root, policy.dataset, digest)
        size = tmp.stat().st_size
        created = not final.exists()
        if created:
            os.replace(tmp, final)
    except (pl.exceptions.PolarsError, OSError) as exc:
        if no_space(exc):  # the disk's fault, not the data's: 503, and nothing is refused or audited
            raise disk_full() from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return Built(policy.dataset, digest, final, verdict.rows, size, verdict.warnings, created)


def recheck(path: Path, policy: DatasetPolicy) -> tuple[Problem, ...]:
    """Problems of a kept snapshot under a (possibly newer) policy; () when it still fits."""
    return inspect(pl.scan_parquet(path), policy, text=False).problems


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prune(root: Path, dataset: str, keep: Iterable[str]) -> list[str]:
    """Delete this dataset's snapshot files other than `keep`; return the ids removed."""
    wanted = set(keep)
    removed = []
    for file in sorted((root / dataset).glob("*.parquet")):
        if file.stem not in wanted:
            file.unlink(missing_ok=True)
            removed.append(file.stem)
    return removed
