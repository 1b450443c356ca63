"""The audit log: gapless, hash-chained, appended in the transaction of the change it records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.clock import utc_now_text
from gateway.core.canonical import canonical_json
from gateway.core.pages import Page, PageRequest
from gateway.store.db import Row, Tx
from gateway.store.pages import read_page

GENESIS = "0" * 64


def _entry(row: Row) -> dict[str, Any]:
    seq, at, kind, actor, subject, payload, hash_ = row
    return {"seq": int(seq), "at": at, "kind": kind, "actor": actor, "subject": subject,
            "payload": json.loads(payload), "hash": hash_}


def entries_page(tx: Tx, page: PageRequest) -> Page[dict[str, Any]]:
    """Audit entries in chain order (an entry appended meanwhile lands after every page read)."""
    return read_page(tx, "seq, at, kind, actor, subject, payload, hash", "audit_log", "", (), ("seq",), page, _entry)


def entry_hash(prev_hash: str, seq: int, at: str, kind: str, actor: str, subject: str, payload: str) -> str:
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "actor": actor, "subject": subject,
                           "payload": payload, "prev": prev_hash})
    return hashlib.sha256(body.encode()).hexdigest()


def append(tx: Tx, kind: str, actor: str, subject: str, payload: Mapping[str, Any] | None = None) -> int:
    """Append one entry; the head row is locked first so replicas never fork the chain."""
    head = tx.one("SELECT seq, hash FROM audit_head WHERE id = 1" + _for_update(tx))
    assert head is not None, "audit_head missing: migrations not applied"
    seq, prev = int(head[0]) + 1, str(head[1])
    at = utc_now_text()
    text = canonical_json(dict(payload or {}))
    digest = entry_hash(prev, seq, at, kind, actor, subject, text)
    tx.execute("INSERT INTO audit_log (seq, at, kind, actor, subject, payload, prev_hash, hash) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (seq, at, kind, actor, subject, text, prev, digest))
    tx.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    return seq


def _for_update(tx: Tx) -> str:
    return " FOR UPDATE" if tx.dialect == "postgres" else ""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int  # the whole chain's length, archived entries included
    head: str
    first_bad_seq: int | None = None
    reason: str = ""
    archived: int = 0  # how many of them have moved to archive files (`gateway audit archive`)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "entries": self.entries, "head": self.head}
        if self.archived:
            body["archived"] = self.archived
        if not self.ok:
            body.update(first_bad_seq=self.first_bad_seq, reason=self.reason)
        return body


@dataclass
class Walk:
    """The chain walked in order, from the genesis or from an archive floor: each entry must
    follow the one accepted before it, and match a signed checkpoint where it names it."""

    seq: int = 0
    prev: str = GENESIS
    checkpoint: tuple[int, str] | None = None

    def step(self, seq: int, at: str, kind: str, actor: str, subject: str, payload: str, prev_hash: str,
             digest: str) -> str | None:
        """None when the entry continues the chain (and is accepted), else why it does not."""
        if seq != self.seq + 1:
            return f"entry {self.seq + 1} is missing"
        if prev_hash != self.prev or entry_hash(prev_hash, seq, at, kind, actor, subject, payload) != digest:
            return f"entry {seq} does not match its hash"
        if self.checkpoint and seq == self.checkpoint[0] and digest != self.checkpoint[1]:
            return f"entry {seq} differs from the signed checkpoint"
        self.seq, self.prev = seq, digest
        return None


def _rows(tx: Tx, batch: int = 5000, after: int = 0) -> Iterator[tuple[Any, ...]]:
    last = after
    while True:
        rows = tx.all("SELECT seq, at, kind, actor, subject, payload, prev_hash, hash FROM audit_log "
                      "WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch))
        if not rows:
            return
        yield from rows
        last = int(rows[-1][0])


def rows_between(tx: Tx, first: int, last: int) -> list[tuple[Any, ...]]:
    """The live entries first..last, in chain order, as stored (payload as its canonical text)."""
    return [(int(r[0]), *r[1:]) for r in tx.all(
        "SELECT seq, at, kind, actor, subject, payload, prev_hash, hash FROM audit_log "
        "WHERE seq >= ? AND seq <= ? ORDER BY seq", (first, last))]


def floor(tx: Tx) -> tuple[int, str, int]:
    """(seq, hash, files) of the last entry moved to an archive file: (0, GENESIS, 0) if none."""
    row = tx.one("SELECT seq, hash, files FROM audit_floor WHERE id = 1")
    assert row is not None, "audit_floor missing: migrations not applied"
    return int(row[0]), str(row[1]), int(row[2])


def verify(tx: Tx, checkpoint: tuple[int, str] | None = None, walk: Walk | None = None) -> Verdict:
    """Walk the live chain; name the first entry whose sequence or hash does not hold.

    Alone it starts at the archive floor, trusting the store's record of what was archived. Given
    the `walk` that went through the archive files, it continues that walk; live entries the files
    also hold (a run stopped between writing its file and deleting, or a store restored from an
    older backup) must run from the floor to exactly where the files end, ending in the same hash,
    so that each equals its archived copy."""
    at_floor, floor_hash, _files = floor(tx)
    if walk is None:
        walk = Walk(at_floor, floor_hash, checkpoint)
    start, start_hash = walk.seq, walk.prev
    doubles = Walk(at_floor, floor_hash)
    for seq, at, kind, actor, subject, payload, prev_hash, digest in _rows(tx):
        seq = int(seq)
        if seq <= start:
            why = doubles.step(seq, at, kind, actor, subject, payload, prev_hash, digest)
            if why is not None:
                return Verdict(False, walk.seq, walk.prev, seq, f"entry {seq} is both archived and in the store, "
                               f"where it breaks the chain: {why}", start)
            continue
        if not _doubles_end_at(doubles, at_floor, start, start_hash):
            return Verdict(False, walk.seq, walk.prev, doubles.seq,
                           f"entries {at_floor + 1}..{doubles.seq} are both archived and in the store, and differ",
                           start)
        why = walk.step(seq, at, kind, actor, subject, payload, prev_hash, digest)
        if why is not None:
            return Verdict(False, walk.seq, walk.prev, walk.seq + 1 if "missing" in why else seq, why, start)
    if not _doubles_end_at(doubles, at_floor, start, start_hash):
        return Verdict(False, walk.seq, walk.prev, doubles.seq,
                       f"entries {at_floor + 1}..{doubles.seq} are both archived and in the store, and differ", start)
    head = tx.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    if head is None or int(head[0]) != walk.seq or head[1] != walk.prev:
        return Verdict(False, walk.seq, walk.prev, walk.seq + 1, "the chain head does not match the last entry", start)
    if checkpoint and checkpoint[0] > walk.seq:
        return Verdict(False, walk.seq, walk.prev, walk.seq + 1, "the log is shorter than the signed checkpoint",
                       start)
    return Verdict(True, walk.seq, walk.prev, archived=start)


def _doubles_end_at(doubles: Walk, at_floor: int, start: int, start_hash: str) -> bool:
    """No live entry below where the files end, or a run of them ending exactly there, alike."""
    return doubles.seq == at_floor or (doubles.seq, doubles.prev) == (start, start_hash)


def head(tx: Tx) -> tuple[int, str]:
    row = tx.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    assert row is not None
    return int(row[0]), str(row[1])
