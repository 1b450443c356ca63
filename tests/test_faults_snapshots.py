"""kill -9 in the middle of a snapshot swap (issue 17, point 5).

A gateway is killed (its whole process group, sandbox and preparation processes included) at
each step of an upload: while the body streams in, while it is checked and written as the
canonical file, while the sandbox prepares it, and just after the store's pointer moved. After
each restart the dataset's current snapshot is either the old one or the new one, whole (its
file hashes to its id, and answers are drawn from that content), never a mix, and no file of
the interrupted load is left: no body, no temporary, no canonical or prepared file that no
kept snapshot names.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from gateway.data.snapshots import KEEP_FILES
from tests.support import Gateway, demo_gateway

pytestmark = pytest.mark.slow
STEPS = ("streaming", "checking", "preparing", "swapped")


def _body(demo_data: Path, copies: int) -> bytes:
    """Residents `copies` times over (fresh ids), so each step lasts long enough to be caught."""
    residents = pl.read_parquet(demo_data / "residents.parquet")
    frames = [residents.with_columns(pl.col("person_id") + f"-{n}", pl.col("household_id") + f"-{n}")
              for n in range(copies)]
    out = io.BytesIO()
    pl.concat(frames).write_parquet(out)
    return out.getvalue()


class Upload(threading.Thread):
    """PUT the body in slices; `hold` pauses after half of it until released (to kill mid-stream)."""

    def __init__(self, gw: Gateway, body: bytes, *, hold: bool) -> None:
        super().__init__(daemon=True)
        self.gw, self.body, self.hold = gw, body, hold
        self.half_sent, self.release = threading.Event(), threading.Event()
        self.sent_all, self.status = threading.Event(), 0

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=300)
        try:
            conn.putrequest("PUT", "/v1/datasets/residents/snapshots")
            conn.putheader("Authorization", "Bearer " + self.gw.token("demo-bureau"))
            conn.putheader("Content-Type", "application/vnd.apache.parquet")
            conn.putheader("Content-Length", str(len(self.body)))
            conn.endheaders()
            half = len(self.body) // 2
            for start in range(0, len(self.body), 1 << 16):
                conn.send(self.body[start:start + (1 << 16)])
                if self.hold and start + (1 << 16) >= half and not self.half_sent.is_set():
                    self.half_sent.set()
                    self.release.wait(60)
            self.sent_all.set()
            self.status = conn.getresponse().status
        except OSError:
            self.status = -1  # the gateway died under it
        finally:
            self.sent_all.set()
            conn.close()


def _pointer(db: Path) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT snapshot_id FROM dataset_snapshots WHERE dataset = 'residents'").fetchone()
    return row[0] if row else None


def _kept(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT snapshot_id FROM snapshots WHERE dataset = 'residents' "
                            "ORDER BY loaded_at DESC, snapshot_id LIMIT ?", (KEEP_FILES,)).fetchall()
    return {r[0] for r in rows} | {_pointer(db) or ""}


def _wait_for(seen: Callable[[], bool], upload: Upload, timeout: float = 120) -> bool:
    """Poll every few milliseconds until `seen()`; False when the upload ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if seen():
            return True
        if upload.status:
            return seen()
        time.sleep(0.002)
    return False


def _kill_during(gw: Gateway, step: str, body: bytes) -> dict[str, object]:
    """Start an upload, kill -9 the gateway at `step`; what was seen at the moment of the kill."""
    state, db = gw.state_dir, gw.state_dir / "gateway.db"
    snapshots = state / "data" / "_snapshots"
    before = _pointer(db)
    upload = Upload(gw, body, hold=step == "streaming")
    upload.start()
    markers: dict[str, Callable[[], bool]] = {
        "streaming": lambda: upload.half_sent.is_set() and any(
            f.stat().st_size > 0 for f in (snapshots / ".incoming").glob("*")),
        "checking": lambda: upload.sent_all.is_set() and any((snapshots / ".incoming").glob("*")),
        "preparing": lambda: any((state / "sandbox-cache").glob(".prepare-*")),
        "swapped": lambda: _pointer(db) != before,
    }
    caught = _wait_for(markers[step], upload)
    gw.kill()
    upload.release.set()
    upload.join(60)
    left = [p.name for p in (*(snapshots / ".incoming").glob("*"), *snapshots.glob("*/.*.tmp"),
                             *(state / "sandbox-cache").glob(".prepare-*"))]
    return {"step": step, "caught": caught, "upload_status": upload.status, "left_by_the_kill": len(left)}


def _check_after_restart(gw: Gateway, old: str, rows: dict[str, int]) -> str:
    """Old or new, whole; nothing of the interrupted load left; the content served is the one named."""
    state, db = gw.state_dir, gw.state_dir / "gateway.db"
    current = _pointer(db)
    assert current is not None
    file = state / "data" / "_snapshots" / "residents" / f"{current}.parquet"
    assert hashlib.sha256(file.read_bytes()).hexdigest() == current, "the current snapshot's file is not whole"
    assert current == old or pl.read_parquet(file).height == rows["new"], "a snapshot that is neither"
    kept = _kept(db)
    leftovers = [str(p.relative_to(state)) for p in (state / "data" / "_snapshots").rglob("*")
                 if p.is_file() and (p.parent.name == ".incoming" or p.name.endswith(".tmp")
                                     or (p.parent.name == "residents" and p.stem not in kept))]
    leftovers += [p.name for p in (state / "sandbox-cache").glob("*") if p.name.startswith(".prepare-")
                  or (p.name.startswith("residents-") and not any(p.name.startswith(f"residents-{k}-") for k in kept))]
    assert leftovers == [], leftovers
    answer = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "epsilon": 1.0,
                                                          "sql": "SELECT COUNT(*) AS n FROM residents"})
    assert answer.status == 200 and answer.json["snapshot_id"] == current, answer.body
    expected = rows["old"] if current == old else rows["new"]
    assert abs(answer.json["rows"][0][0] - expected) < 200, (answer.json["rows"], expected)  # noise: ±a few
    return "old" if current == old else "new"


def test_kill_9_at_each_step_of_a_snapshot_swap(tmp_path: Path, demo_data: Path) -> None:
    copies = 4
    body = _body(demo_data, copies)
    rows = {"old": pl.read_parquet(demo_data / "residents.parquet").height}
    rows["new"] = rows["old"] * copies
    gw = demo_gateway(tmp_path / "state", demo_data).start()
    outcomes = []
    try:
        old = _pointer(gw.state_dir / "gateway.db")
        assert old is not None
        for step in STEPS:
            seen = _kill_during(gw, step, body)
            gw = Gateway(gw.state_dir, port=gw.port).start()
            seen["current"] = _check_after_restart(gw, old, rows)
            outcomes.append(seen)
            if seen["current"] == "new":  # back to the old content for the next step
                old = _pointer(gw.state_dir / "gateway.db") or old
                rows["old"], rows["new"] = rows["new"], rows["old"]
                body = _body(demo_data, 1 if copies == 4 else 4)
                copies = 1 if copies == 4 else 4
    finally:
        gw.stop()
    print(outcomes)
    assert [o["step"] for o in outcomes if o["caught"]] != [], outcomes
    assert any(o["left_by_the_kill"] for o in outcomes), "no kill left a file behind: nothing was tested"
    # Before the pointer moved the old snapshot serves; once it moved, the new one.
    assert all(o["current"] == "old" for o in outcomes if o["step"] in ("streaming", "checking") and o["caught"])
    assert all(o["current"] == "new" for o in outcomes if o["step"] == "swapped" and o["caught"])
