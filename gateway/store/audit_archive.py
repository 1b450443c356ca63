"""Archive files of the audit chain (retention, issue 16): the oldest entries, moved out of the
live store by `gateway audit archive`, kept as signed, hash-chained files.

One file per run step, `audit-NNNNNN.jsonl` (NNNNNN counting from 000001), written once:
  one line per entry, in chain order, the columns as stored (the payload as its canonical text,
  so every entry's hash can be recomputed), canonical JSON;
  a last line {"manifest": JWS}: the signed claims name the file and its index, the first and
  last sequence numbers, the entry count, the SHA-256 of the entry lines, the hash the first
  entry continues from (the last entry of the file before, or the genesis) and the previous
  file's SHA-256, so the files chain to each other and on into the live chain.
Signing and checking the manifest are the caller's (`Sealer`: the keys live in auth).

A file is written to a temporary name, fsynced and linked into place (never over another); only
then are its entries deleted from the store, in one transaction that also raises the floor
(`audit_floor`: the last entry moved out). A crash between the two leaves entries both in the
last file and in the store: never a gap. The next run finishes the deletion; verification
accepts such doubles when they equal their archived copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.canonical import canonical_json
from gateway.store import audit
from gateway.store.db import Tx

FORMAT = "gateway-audit-archive/1"
NAME = re.compile(r"^audit-(\d{6})\.jsonl$")
_COLUMNS = ("seq", "at", "kind", "actor", "subject", "payload", "prev_hash", "hash")


class ArchiveConflict(RuntimeError):
    """The store or the archive folder is not as this run found it (another run, or a wrong folder)."""


@dataclass(frozen=True)
class Sealer:
    """How a manifest is signed and opened; `open` raises ValueError when its signature fails."""

    sign: Callable[[dict[str, Any]], str]
    open: Callable[[str], dict[str, Any]]


def file_name(index: int) -> str:
    return f"audit-{index:06d}.jsonl"


def archive_files(folder: Path) -> list[tuple[int, Path]]:
    """(index, path) of the archive files in a folder, by index."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := NAME.match(p.name)) and p.is_file()]
    return sorted(found)


def write_file(folder: Path, index: int, rows: Sequence[tuple[Any, ...]], prev_file_sha256: str | None,
               sealer: Sealer, before: str) -> dict[str, Any]:
    """Write one archive file of `rows` (a run of the chain) durably; return its signed claims."""
    name = file_name(index)
    lines = [(canonical_json(dict(zip(_COLUMNS, row, strict=True))) + "\n").encode() for row in rows]
    digest = hashlib.sha256(b"".join(lines)).hexdigest()
    claims = {"format": FORMAT, "file": name, "index": index, "first_seq": int(rows[0][0]),
              "last_seq": int(rows[-1][0]), "entries": len(rows), "sha256": digest, "prev_hash": rows[0][6],
              "last_hash": rows[-1][7], "prev_file_sha256": prev_file_sha256, "before": before,
              "archived_at": utc_now_text()}
    manifest = (canonical_json({"manifest": sealer.sign(claims)}) + "\n").encode()
    partial = folder / f".{name}.part"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.writelines(lines)
            fh.write(manifest)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(partial, folder / name)  # never replaces a file another run wrote
        except FileExistsError:
            raise ArchiveConflict(f"{folder / name} appeared meanwhile: is another archive run going on?") from None
    finally:
        partial.unlink(missing_ok=True)
    _fsync_folder(folder)
    return claims


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class FolderCheck:
    """What walking the archive files found: where they end, and the first thing wrong."""

    files: int = 0
    last_sha256: str | None = None
    reason: str = ""
    bad_seq: int | None = None
    ends: dict[int, str] = field(default_factory=dict)  # last seq -> last hash, of every file

    @property
    def ok(self) -> bool:
        return not self.reason


def check_folder(folder: Path, sealer: Sealer, walk: audit.Walk) -> FolderCheck:
    """Walk every archive file in index order, advancing `walk` through their entries; stop at
    the first file that is missing, out of place, altered, or not signed by us."""
    found = FolderCheck()
    for position, (index, path) in enumerate(archive_files(folder), start=1):
        if index != position:
            found.reason = f"archive file {file_name(position)} is missing (the next one is {path.name})"
            found.bad_seq = walk.seq + 1
            return found
        before = walk.seq
        why = _check_file(path, index, sealer, walk, found)
        if why:
            found.reason, found.bad_seq = f"archive file {path.name}: {why}", found.bad_seq or before + 1
            return found
        found.files = index
    return found


def _check_file(path: Path, index: int, sealer: Sealer, walk: audit.Walk, found: FolderCheck) -> str:
    digest = hashlib.sha256()
    start_seq, start_hash = walk.seq, walk.prev
    manifest: str | None = None
    entries = 0
    for number, line in _lines(path):
        if manifest is not None:
            return f"line {number} follows the manifest"
        try:
            data = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON"
        if isinstance(data, dict) and set(data) == {"manifest"}:
            manifest = str(data["manifest"])
            continue
        if not isinstance(data, dict) or set(data) != set(_COLUMNS):
            return f"line {number} is not an audit entry"
        try:
            why = walk.step(int(data["seq"]), *(str(data[c]) for c in _COLUMNS[1:]))
        except (TypeError, ValueError):
            why = f"line {number} is not an audit entry"
        if why:
            found.bad_seq = walk.seq + 1 if "missing" in why else int(data["seq"])
            return f"line {number}: {why}"
        digest.update(line)
        entries += 1
    if manifest is None:
        return "it has no manifest (cut short?)"
    try:
        claims = sealer.open(manifest)
    except ValueError as exc:
        return f"its manifest does not verify ({exc})"
    expected = {"format": FORMAT, "file": path.name, "index": index, "first_seq": start_seq + 1,
                "last_seq": walk.seq, "entries": entries, "sha256": digest.hexdigest(), "prev_hash": start_hash,
                "last_hash": walk.prev, "prev_file_sha256": found.last_sha256}
    wrong = sorted(k for k, v in expected.items() if claims.get(k) != v)
    if wrong:
        return f"it differs from its signed manifest ({', '.join(wrong)})"
    found.last_sha256 = digest.hexdigest()
    found.ends[walk.seq] = walk.prev
    return ""


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def cut(tx: Tx, before: str) -> int:
    """The last entry of the longest prefix of the chain appended before `before` (UTC text)."""
    young = tx.one("SELECT MIN(seq) FROM audit_log WHERE at >= ?", (before,))
    if young is not None and young[0] is not None:
        return int(young[0]) - 1
    return audit.head(tx)[0]


def forget(tx: Tx, floor_seq: int, last_seq: int, last_hash: str, files: int, actor: str,
           claims: dict[str, Any]) -> int:
    """Delete the live entries an archive file now holds and raise the floor to its last one,
    in one transaction, auditing the move; refuse if the store is not as the run found it."""
    lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
    row = tx.one("SELECT seq FROM audit_floor WHERE id = 1" + lock)
    if row is None or int(row[0]) != floor_seq:
        raise ArchiveConflict("the archive floor moved meanwhile: is another archive run going on?")
    live = tx.one("SELECT hash FROM audit_log WHERE seq = ?", (last_seq,))
    if live is None or live[0] != last_hash:
        raise ArchiveConflict(f"entry {last_seq} in the store differs from the archive file written")
    tx.execute("UPDATE audit_floor SET seq = ?, hash = ?, files = ?, updated_at = ? WHERE id = 1",
               (last_seq, last_hash, files, utc_now_text()))
    tx.execute("DELETE FROM audit_log WHERE seq <= ?", (last_seq,))
    summary = {k: claims[k] for k in ("index", "first_seq", "last_seq", "entries", "sha256", "before")}
    return audit.append(tx, "audit.archived", actor, str(claims["file"]), summary)
