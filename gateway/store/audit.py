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
    entries: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, "entries": self.entries, "head": self.head}
        if not self.ok:
            body.update(first_bad_seq=self.first_bad_seq, reason=self.reason)
        return body


def _rows(tx: Tx, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
    last = 0
    while True:
        rows = tx.all("SELECT seq, at, kind, actor, subject, payload, prev_hash, hash FROM audit_log "
                      "WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch))
        if not rows:
            return
        yield from rows
        last = int(rows[-1][0])


def verify(tx: Tx, checkpoint: tuple[int, str] | None = None) -> Verdict:
    """Walk the whole chain; name the first entry whose sequence or hash does not hold."""
    expected_seq, prev, count = 1, GENESIS, 0
    for seq, at, kind, actor, subject, payload, prev_hash, digest in _rows(tx):
        seq = int(seq)
        if seq != expected_seq:
            return Verdict(False, count, prev, expected_seq, f"entry {expected_seq} is missing")
        if prev_hash != prev or entry_hash(prev, seq, at, kind, actor, subject, payload) != digest:
            return Verdict(False, count, prev, seq, f"entry {seq} does not match its hash")
        if checkpoint and seq == checkpoint[0] and digest != checkpoint[1]:
            return Verdict(False, count, prev, seq, f"entry {seq} differs from the signed checkpoint")
        prev, expected_seq, count = digest, seq + 1, count + 1
    head = tx.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    if head is None or int(head[0]) != count or head[1] != prev:
        return Verdict(False, count, prev, count + 1, "the chain head does not match the last entry")
    if checkpoint and checkpoint[0] > count:
        return Verdict(False, count, prev, count + 1, "the log is shorter than the signed checkpoint")
    return Verdict(True, count, prev)


def head(tx: Tx) -> tuple[int, str]:
    row = tx.one("SELECT seq, hash FROM audit_head WHERE id = 1")
    assert row is not None
    return int(row[0]), str(row[1])
