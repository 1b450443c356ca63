"""Online backups of a SQLite state folder, and their restore into an empty one.

A backup is one gzipped tar, written atomically with mode 0600 (it holds the signing keys):
  gateway.db         a consistent copy taken with SQLite's online backup API while the server runs
                     (one read transaction: every committed release is in it or none of its parts)
  keys/*.pem         the signing keys, so that restored tokens, receipts and checkpoints verify
  demo-credentials.json  the demo's client secrets, where the folder has them
  checkpoint.json    the copy's audit head, signed with the newest key
  manifest.json      format, time, and the SHA-256 of every other member
  data/...           the dataset files and snapshots (left out with `with_data=False`)
Restore checks every hash, the checkpoint's signature and the whole audit chain against it before
the folder is used; whatever fails leaves no folder behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = 1
DB_NAME = "gateway.db"
CREDENTIALS = "demo-credentials.json"


class BackupError(RuntimeError):
    """A backup or a restore that cannot be done; the message says why."""


@dataclass(frozen=True)
class Checkpointer:
    """How the archive's checkpoint is signed and checked (the keys live in auth, not the store)."""

    sign: Callable[[Path, int, str], dict[str, Any]]  # (keys folder, seq, head) -> checkpoint
    verify: Callable[[Path, dict[str, Any]], tuple[int, str]]  # (keys folder, checkpoint) -> (seq, head)
    verify_chain: Callable[[Path, tuple[int, str]], tuple[bool, int, str]]  # (db, expected) -> (ok, n, why)


def online_copy(db: Path, dest: Path) -> tuple[int, str]:
    """Copy a live SQLite database with the backup API; return the copy's audit head."""
    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)  # all pages in one step: one consistent read transaction
        row = target.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    finally:
        target.close()
        source.close()
    if row is None:
        raise BackupError(f"{db} holds no audit chain: not a gateway store")
    return int(row[0]), str(row[1])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path, under: str) -> Iterator[tuple[str, Path]]:
    folder = root / under
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.endswith((".tmp", ".part")):
                yield str(PurePosixPath(under, *path.relative_to(folder).parts)), path


def backup(state: Path, out: Path, checkpoints: Checkpointer, *, with_data: bool = True) -> dict[str, Any]:
    db = state / DB_NAME
    if not db.is_file():
        raise BackupError(f"{state} holds no SQLite store ({DB_NAME}); nothing backed up")
    if not any((state / "keys").glob("*.pem")):
        raise BackupError(f"{state}/keys holds no signing key; nothing backed up")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".backup-") as work:
        copy = Path(work) / DB_NAME
        seq, head = online_copy(db, copy)
        members = [(DB_NAME, copy), *_files(state, "keys")]
        if (state / CREDENTIALS).is_file():  # the demo's: its clients' secrets exist nowhere else
            members.append((CREDENTIALS, state / CREDENTIALS))
        if with_data:
            members += list(_files(state, "data"))
        checkpoint = checkpoints.sign(state / "keys", seq, head)
        hashes = {name: _sha256(path) for name, path in members}
        manifest = {"format": FORMAT, "audit": {"seq": seq, "head": head}, "files": hashes}
        partial = Path(work) / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in (("manifest.json", manifest), ("checkpoint.json", checkpoint)):
                blob = json.dumps(data, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(blob), 0o600
                tar.addfile(info, io.BytesIO(blob))
            for name, path in members:
                tar.add(path, arcname=name, recursive=False)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    return {"entries": seq, "head": head, "files": len(hashes)}


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts and (
        name in ("manifest.json", "checkpoint.json", DB_NAME, CREDENTIALS) or parts[0] in ("keys", "data"))


def restore(archive: Path, state: Path, checkpoints: Checkpointer) -> dict[str, Any]:
    if not archive.is_file():
        raise BackupError(f"no backup file at {archive}")
    if state.exists() and any(state.iterdir()):
        raise BackupError(f"{state} is not empty: a backup restores into an empty or new folder only")
    created = not state.exists()
    staging = Path(tempfile.mkdtemp(dir=state.parent if state.parent.exists() else None, prefix=".restore-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                bad = [m.name for m in members if not (m.isfile() and _safe_name(m.name))]
                if bad:
                    raise BackupError(f"the backup holds unexpected members: {bad[:3]}")
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupError(f"the backup cannot be read: {exc}") from None
        try:
            manifest = json.loads((staging / "manifest.json").read_text())
            checkpoint = json.loads((staging / "checkpoint.json").read_text())
        except (OSError, ValueError):
            raise BackupError("the backup has no readable manifest or checkpoint") from None
        if manifest.get("format") != FORMAT:
            raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
        listed = dict(manifest.get("files", {}))
        present = {name for name, _ in _files(staging, "keys")} | {name for name, _ in _files(staging, "data")}
        present |= {n for n in (DB_NAME, CREDENTIALS) if (staging / n).is_file()}
        if set(listed) != present:
            raise BackupError("the backup's files differ from its manifest")
        for name, digest in listed.items():
            if _sha256(staging / name) != digest:
                raise BackupError(f"{name} differs from the hash the manifest holds")
        try:
            expected = checkpoints.verify(staging / "keys", checkpoint)
        except ValueError as exc:
            raise BackupError(str(exc)) from None
        ok, entries, why = checkpoints.verify_chain(staging / DB_NAME, expected)
        if not ok:
            raise BackupError(f"the restored audit chain does not verify: {why}")
        (staging / "manifest.json").unlink()
        (staging / "checkpoint.json").rename(staging / "restored-checkpoint.json")
        if created:
            staging.rename(state)
        else:
            for item in staging.iterdir():
                item.rename(state / item.name)
            staging.rmdir()
        return {"entries": entries, "head": expected[1], "files": len(listed)}
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
