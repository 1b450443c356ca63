"""SIGTERM under load (R-OP-04): not ready while starting or draining, in-flight requests finish, exit 0.

Eight threads fire DP queries and catalog reads at a demo gateway; SIGTERM goes to its whole
process group (as systemd and a terminal send it). Every response that started must be
complete; every 200 answer's query must be in the usage records after a restart.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, free_port, seed_demo_data

GRACE_SECONDS = 10
LOAD_BOUND_SECONDS = 60  # every loop below stops by itself


@dataclass(frozen=True)
class Outcome:
    """`answered` (a whole response), `refused` (no connection), `unanswered` (connection dropped
    before a status line: the request was never taken up) or `cut` (a response broken off)."""

    kind: str
    status: int
    body: bytes
    started: float
    ended: float
    query: bool


def attempt(port: int, method: str, path: str, token: str | None = None, body: Any = None,
            *, query: bool = False) -> Outcome:
    started = time.monotonic()
    headers = {"Authorization": "Bearer " + token} if token else {}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers["Content-Type"] = "application/json"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def done(kind: str, status: int = 0, raw: bytes = b"") -> Outcome:
        return Outcome(kind, status, raw, started, time.monotonic(), query)

    try:
        try:
            conn.request(method, path, data, headers)
            response = conn.getresponse()
        except ConnectionRefusedError:
            return done("refused")
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            return done("unanswered")
        try:
            raw = response.read()
            json.loads(raw)
        except (http.client.IncompleteRead, ConnectionError, ValueError):
            return done("cut", response.status)
        return done("answered", response.status, raw)
    finally:
        conn.close()


class Load:
    """Query and catalog threads that run until the gateway refuses connections."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port, self.tokens = port, tokens
        self.deadline = time.monotonic() + LOAD_BOUND_SECONDS
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()

    def _keep(self, outcome: Outcome) -> bool:
        with self.lock:
            self.outcomes.append(outcome)
        return outcome.kind != "refused" and time.monotonic() < self.deadline

    def queries(self, worker: int) -> None:
        client, dataset = (("demo-bank", "residents"), ("demo-insurer", "vehicles"))[worker % 2]
        age = "age" if dataset == "residents" else "vehicle_age"
        n = 0
        while True:
            n += 1  # a new filter each time: a fresh release, not the cached one
            sql = f"SELECT COUNT(*) AS n FROM {dataset} WHERE {age} >= {(worker * 37 + n) % 30}"
            body = {"dataset": dataset, "sql": sql, "epsilon": 0.01}
            if not self._keep(attempt(self.port, "POST", "/v1/queries", self.tokens[client], body, query=True)):
                return

    def catalog(self) -> None:
        while self._keep(attempt(self.port, "GET", "/v1/datasets", self.tokens["demo-bureau"])):
            time.sleep(0.2)  # stay inside the client's rate limit

    def answered_queries(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "answered" and o.query and o.status == 200]


class ReadinessWatch(threading.Thread):
    """Polls /readyz on the ops listener, which is up before the app is ready and outlives the
    main listener during the drain; stops once the port refuses after having answered."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.seen: list[tuple[float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + LOAD_BOUND_SECONDS * 3
        while not self.stop.is_set() and time.monotonic() < deadline:
            outcome = attempt(self.port, "GET", "/readyz")
            if outcome.kind == "answered":
                self.seen.append((outcome.started, str(outcome.status)))
            elif self.seen:
                return
            time.sleep(0.02)

    def states(self, after: float = 0.0, before: float = float("inf")) -> list[str]:
        return [state for at, state in self.seen if after < at < before]


def usage_query_ids(gw: Gateway) -> set[str]:
    ids = set()
    for client in ("demo-bank", "demo-insurer"):
        reply = gw.api("GET", "/v1/usage", client)
        assert reply.status == 200, reply.body
        ids |= {item["query_id"] for item in reply.json["items"]}
    return ids


@pytest.mark.slow
def test_sigterm_under_load_finishes_every_started_answer_and_exits_0(tmp_path: Path, demo_data: Path) -> None:
    seed_demo_data(tmp_path, demo_data)
    ops_port = free_port()
    env = {"GATEWAY_METRICS_PORT": str(ops_port), "GATEWAY_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    watch = ReadinessWatch(ops_port)
    watch.start()
    gw = Gateway(tmp_path, env=env).start()
    load = Load(gw.port, {c: gw.token(c) for c in ("demo-bank", "demo-insurer", "demo-bureau")})
    assert gw.proc is not None
    with ThreadPoolExecutor(8) as pool:
        threads = [pool.submit(load.queries, w) for w in range(6)] + [pool.submit(load.catalog) for _ in range(2)]
        while len(load.answered_queries()) < 12 and time.monotonic() < load.deadline:
            time.sleep(0.05)
        sigterm_at = time.monotonic()
        os.killpg(gw.proc.pid, signal.SIGTERM)
        code = gw.proc.wait(GRACE_SECONDS + 30)
        exited_at = time.monotonic()
        for thread in threads:
            thread.result()
    watch.stop.set()
    watch.join()

    assert code == 0, gw.log_tail()
    assert exited_at - sigterm_at < GRACE_SECONDS, "the drain overran the grace period"
    assert not [o for o in load.outcomes if o.kind == "cut"], "a response was cut off mid-body"
    answered = [o for o in load.outcomes if o.kind == "answered"]
    assert all(o.status < 500 for o in answered), sorted({o.status for o in answered})
    assert all(o.ended >= sigterm_at for o in load.outcomes if o.kind in ("refused", "unanswered"))
    assert any(o.ended > sigterm_at for o in load.answered_queries()), "nothing in flight was finished"

    starting, running, draining = watch.states(), watch.states(before=sigterm_at), watch.states(after=sigterm_at)
    assert starting[0] == "503" and "200" in running, "not ready while starting, then ready"
    assert running[running.index("200"):] == ["200"] * (len(running) - running.index("200"))
    assert draining and set(draining) == {"503"}, "not ready while draining"

    again = Gateway(tmp_path, env=env).start()
    try:
        recorded = usage_query_ids(again)
    finally:
        again.stop()
    answers = load.answered_queries()
    missing = [o for o in answers if json.loads(o.body)["query_id"] not in recorded]
    assert not missing, f"{len(missing)} of {len(answers)} answered queries are not in usage"
