"""Retention of the audit log (issue 16 point 5): move entries past their retention period into
signed archive files, and verify the chain end to end through the files into the live store.

What is kept how long (docs/operations.md, "Retention"):
  audit entries   logs: `log_retention_days` (at least 183, six months) in the store, then moved
                  to archive files by `gateway audit archive`, which the county keeps;
  usage records   logs too, but the disclosure reports and invoices of closed periods read them:
                  they stay in the store (retention is a minimum) and are not archived;
  queries, releases, receipts   processing records: `processing_retention_days` (at least 1095);
                  nothing removes them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.auth.receipts import ReceiptInvalid, sign_receipt, verify_receipt
from gateway.auth.tokens import Keyring, SigningKey
from gateway.clock import utc_now, utc_text
from gateway.runtime.parts import Runtime
from gateway.store import audit
from gateway.store import audit_archive as files
from gateway.store.db import Store, Tx

MANIFEST_TYPE = "audit-archive+jws"
CHUNK = 50_000  # entries per archive file (each file is read, not held, while verifying)


class ArchiveRefused(Exception):
    """An archive run that must not happen (too young, broken chain, wrong folder); nothing moved."""


def sealer(keys_folder: Path) -> files.Sealer:
    """Manifests signed as JWS by the gateway's newest signing key, the receipts' signer; checked
    against every key the keyring holds (retired ones included)."""
    ring = Keyring(keys_folder)
    loaded: list[SigningKey] = []

    def keys() -> list[SigningKey]:
        if not loaded:
            loaded.extend(ring.signing_keys())
        return loaded

    def sign(claims: dict[str, Any]) -> str:
        if not keys():
            raise ArchiveRefused(f"{keys_folder} holds no signing key: archive files cannot be signed")
        return sign_receipt(claims, keys()[-1], typ=MANIFEST_TYPE)

    def open_(token: str) -> dict[str, Any]:
        try:
            return verify_receipt(token, {"keys": [k.jwk for k in keys()]}, typ=MANIFEST_TYPE)
        except ReceiptInvalid as exc:
            raise ValueError(str(exc).replace("receipt", "manifest")) from None

    return files.Sealer(sign, open_)


def retention_start(retention_days: int, now: datetime | None = None) -> datetime:
    """The oldest moment still inside the retention period: entries before it may move."""
    return (now or utc_now()) - timedelta(days=retention_days)


def cutoff(before: date | None, retention_days: int, zone: ZoneInfo, now: datetime | None = None) -> str:
    """The UTC text before which entries move: the start of `before` in the county's time zone,
    refused when that is inside the retention period; the retention start when not given."""
    floor = retention_start(retention_days, now)
    if before is None:
        return utc_text(floor)
    moment = datetime.combine(before, time(), tzinfo=zone)
    if moment > floor:
        latest = floor.astimezone(zone).date()
        raise ArchiveRefused(
            f"--before {before.isoformat()} is inside the retention period: audit entries stay in the store "
            f"{retention_days} days (log_retention_days), so --before may be {latest.isoformat()} at the latest")
    return utc_text(moment)


@dataclass(frozen=True)
class ArchiveReport:
    files: list[str]
    entries: int
    floor: int
    finished: str | None  # a file a stopped run had written whose entries were only now deleted


def archive(store: Store, folder: Path, before: str, seal: files.Sealer, *, actor: str = "cli",
            chunk: int = CHUNK) -> ArchiveReport:
    """Move the entries appended before `before` (and after the floor) into new archive files."""
    walk = audit.Walk()
    check = files.check_folder(folder, seal, walk)
    if not check.ok:
        raise ArchiveRefused(f"the archive in {folder} does not verify ({check.reason}); nothing moved")
    floor_seq, floor_hash, _count = store.run_sync(audit.floor, write=False)
    if floor_seq > walk.seq:
        raise ArchiveRefused(f"the store has moved entries 1..{floor_seq} out, but {folder} holds only "
                             f"{walk.seq}: is it the archive folder of this store?")
    finished = None
    if walk.seq > floor_seq:  # a run stopped after writing its file: delete what the file holds
        if check.ends.get(floor_seq, audit.GENESIS if floor_seq == 0 else None) != floor_hash:
            raise ArchiveRefused(f"the store's archive floor (entry {floor_seq}) is no file boundary in {folder}")
        claims = {"file": files.file_name(check.files), "index": check.files, "first_seq": floor_seq + 1,
                  "last_seq": walk.seq, "entries": walk.seq - floor_seq, "sha256": check.last_sha256,
                  "before": "(finishing a stopped run)"}
        _forget(store, floor_seq, walk.seq, walk.prev, check.files, actor, claims)
        finished, floor_seq, floor_hash = str(claims["file"]), walk.seq, walk.prev
    written: list[str] = []
    moved, index, prev_sha = 0, check.files, check.last_sha256
    while True:
        last = min(store.run_sync(files.cut, before, write=False), floor_seq + chunk)
        if last <= floor_seq:
            break
        rows = store.run_sync(audit.rows_between, floor_seq + 1, last, write=False)
        _refuse_broken(rows, floor_seq, floor_hash)
        index += 1
        folder.mkdir(parents=True, exist_ok=True, mode=0o750)  # not before: a mistyped --out stays uncreated
        claims = files.write_file(folder, index, rows, prev_sha, seal, before)
        _forget(store, floor_seq, last, str(rows[-1][7]), index, actor, claims)
        written.append(str(claims["file"]))
        moved += len(rows)
        floor_seq, floor_hash, prev_sha = last, str(rows[-1][7]), str(claims["sha256"])
    return ArchiveReport(written, moved, floor_seq, finished)


def _forget(store: Store, floor_seq: int, last: int, last_hash: str, index: int, actor: str,
            claims: dict[str, Any]) -> None:
    try:
        store.run_sync(files.forget, floor_seq, last, last_hash, index, actor, claims)
    except files.ArchiveConflict as exc:
        raise ArchiveRefused(str(exc)) from None


def _refuse_broken(rows: list[tuple[Any, ...]], floor_seq: int, floor_hash: str) -> None:
    walk = audit.Walk(floor_seq, floor_hash)
    for row in rows:
        why = walk.step(*row)
        if why:
            raise ArchiveRefused(f"the live chain is broken ({why}): run `gateway audit verify`; nothing moved")


def verify(store: Store, folder: Path, seal: files.Sealer,
           checkpoint: tuple[int, str] | None = None) -> audit.Verdict:
    """The whole chain: every archive file (signature, hash, order), then the live store from
    where the files end. Run again once when an archive run moved entries meanwhile."""
    verdict = _verify_once(store, folder, seal, checkpoint)
    if not verdict.ok and _MOVED in verdict.reason:
        verdict = _verify_once(store, folder, seal, checkpoint)
    return verdict


_MOVED = "were moved out of the store"


def _verify_once(store: Store, folder: Path, seal: files.Sealer,
                 checkpoint: tuple[int, str] | None) -> audit.Verdict:
    walk = audit.Walk(checkpoint=checkpoint)
    check = files.check_folder(folder, seal, walk)
    if not check.ok:
        return audit.Verdict(False, walk.seq, walk.prev, check.bad_seq, check.reason, walk.seq)
    return store.run_sync(_verify_live, walk, check, checkpoint, str(folder), write=False)


def _verify_live(tx: Tx, walk: audit.Walk, check: files.FolderCheck, checkpoint: tuple[int, str] | None,
                 folder: str) -> audit.Verdict:
    floor_seq, floor_hash, _count = audit.floor(tx)
    if floor_seq > walk.seq:
        return audit.Verdict(False, walk.seq, walk.prev, walk.seq + 1,
                             f"entries {walk.seq + 1}..{floor_seq} {_MOVED}, but no archive "
                             f"file in {folder} holds them", walk.seq)
    if check.ends.get(floor_seq, audit.GENESIS if floor_seq == 0 else None) != floor_hash:
        return audit.Verdict(False, walk.seq, walk.prev, floor_seq,
                             f"the store's archive floor (entry {floor_seq}) differs from the archive files", walk.seq)
    return audit.verify(tx, checkpoint, walk)


async def verify_runtime(runtime: Runtime) -> audit.Verdict:
    """`GET /v1/audit/verify`: the same end-to-end walk, off the event loop."""
    settings = runtime.settings
    seal = sealer(runtime.keyring.folder if runtime.keyring else settings.state_path / "keys")
    return await asyncio.to_thread(verify, runtime.store, settings.audit_archive_path, seal)
