"""A mixed load for fault tests: fresh and cached queries, product calls and previews, sent by a
few client threads to one or more gateways until stopped, every answer kept for the checks.

Billed calls carry an Idempotency-Key, so a call that met a fault (503) can be asked again with
the same key afterwards (`settle`) until it has its final answer: a 200 the store holds, or
a refusal. That is what a well-behaved client does, and it lets the checks compare what was
billed with what clients were answered, one for one.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.support import Gateway, Reply, agreement_body, call

PRODUCT = "faults-firms-by-size"
CACHED_SQL = tuple(f"SELECT sex, COUNT(*) AS n FROM residents WHERE age >= {age} GROUP BY sex" for age in (20, 30, 40))
KINDS = ("fresh", "cached", "product", "preview")
RETRIED = (0, 409, 429, 503)  # answers a careful client asks again (same key) after Retry-After


@dataclass
class Outcome:
    kind: str
    path: str
    body: dict[str, Any]
    key: str | None
    replica: int
    status: int  # 0: no HTTP answer (the connection failed)
    code: str | None = None
    retry_after: str | None = None
    answer: dict[str, Any] | None = None
    replayed: bool = False
    at: float = field(default_factory=time.monotonic)  # sent
    ended: float = 0.0  # answered (or failed)

    @property
    def billed(self) -> bool:
        return self.status == 200 and self.kind != "preview"


def publish_product(gw: Gateway) -> None:
    """A product on enterprises (cheap: epsilon 0.01) that the load invokes with fresh and
    repeated parameters."""
    draft = {"id": PRODUCT, "dataset": "enterprises", "title": "Firms by industry above a size",
             "sql": "SELECT industry, COUNT(*) AS n FROM enterprises WHERE employees >= :min GROUP BY industry",
             "parameters": [{"name": "min", "type": "integer", "minimum": 0, "maximum": 5000}],
             "epsilon": "0.01", "price_minor": 10}
    for method, path, client, body in (
            ("POST", "/v1/products", "demo-merchant", draft),
            ("POST", "/v1/agreements", "demo-bureau", agreement_body(["enterprises"], [PRODUCT])),
            ("POST", f"/v1/products/{PRODUCT}/versions/1/submit", "demo-merchant", None),
            ("POST", f"/v1/products/{PRODUCT}/versions/1/publish", "demo-bureau", None)):
        reply = gw.api(method, path, client, body)
        assert reply.status in (200, 201), (path, reply.status, reply.body)


class MixedLoad:
    """`threads` clients of demo-bank, each sending the next call of the mix to the next gateway."""

    def __init__(self, gateways: list[Gateway], *, threads: int = 4, timeout: float = 90) -> None:
        self.gateways = gateways
        self.token = gateways[0].token("demo-bank")
        self.threads, self.timeout = threads, timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = itertools.count()
        self._workers: list[threading.Thread] = []

    # ------------------------------------------------------------ sending

    def request(self, n: int) -> tuple[str, str, dict[str, Any], str | None]:
        """(kind, path, body, idempotency key) of the n-th call of the mix."""
        kind = KINDS[n % len(KINDS)]
        key = None if kind == "preview" else uuid.uuid4().hex
        if kind == "fresh":  # a question nobody asked before: a release with noise and a charge
            sql = f"SELECT sex, COUNT(*) AS n FROM residents WHERE age >= {n % 90} AND income >= {n * 7} GROUP BY sex"
            return kind, "/v1/queries", {"dataset": "residents", "epsilon": 0.01, "sql": sql}, key
        if kind == "cached":  # answered before the load began: billed at the cached price, no epsilon
            return kind, "/v1/queries", {"dataset": "residents", "epsilon": 0.01,
                                         "sql": CACHED_SQL[n % len(CACHED_SQL)]}, key
        if kind == "product":  # every other one repeats a parameter (cached), the rest are new
            param = n % 7 if (n // 4) % 2 else 100 + n % 4800
            return kind, f"/v1/products/{PRODUCT}/invoke", {"params": {"min": param}}, key
        sql = f"SELECT sex, COUNT(*) AS n FROM residents WHERE age >= {n % 90} GROUP BY sex"
        return kind, "/v1/queries/preview", {"dataset": "residents", "epsilon": 0.5, "sql": sql}, key

    def send(self, replica: int, kind: str, path: str, body: dict[str, Any], key: str | None) -> Outcome:
        headers = {"Authorization": "Bearer " + self.token, "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        outcome = Outcome(kind, path, body, key, replica, 0)
        try:
            reply = call("POST", self.gateways[replica].base + path, json.dumps(body).encode(), headers,
                         timeout=self.timeout)
        except OSError as exc:
            outcome.code = type(exc).__name__
            return outcome
        finally:
            outcome.ended = time.monotonic()
        return _read(outcome, reply)

    def prime(self) -> None:
        """Ask the cached questions once, so the load's `cached` calls find them stored."""
        for sql in CACHED_SQL:
            o = self.send(0, "cached", "/v1/queries", {"dataset": "residents", "epsilon": 0.01, "sql": sql},
                          uuid.uuid4().hex)
            assert o.status == 200, (o.status, o.answer)
            self._keep(o)

    def start(self) -> MixedLoad:
        self._stop.clear()
        self._workers = [threading.Thread(target=self._client, daemon=True, name=f"load-{i}")
                         for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout + 10)

    def _client(self) -> None:
        """Each call carried to its final answer as a careful client would: after a 503, a 429
        (or a 409 while its first attempt is being settled) it waits Retry-After and asks again
        with the same key, on the next replica. A call still open when the load stops is `settle`d."""
        while not self._stop.is_set():
            n = next(self._counter)
            kind, path, body, key = self.request(n)
            replica = n % len(self.gateways)
            while True:
                outcome = self.send(replica, kind, path, body, key)
                self._keep(outcome)
                if not key or outcome.status not in RETRIED or self._stop.is_set():
                    break
                self._stop.wait(float(outcome.retry_after or 1) if (outcome.retry_after or "").isdigit() else 1.0)
                replica = (replica + 1) % len(self.gateways)

    def _keep(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)

    # ------------------------------------------------------------ after the faults

    def settle(self, attempts: int = 120, pause: float = 1.0) -> list[Outcome]:
        """Ask again, with its key, every billed call whose last answer was not final, until it
        has one; returns those final answers (kept with the others)."""
        last: dict[str, Outcome] = {}
        for o in self.outcomes:
            if o.key:
                last[o.key] = o
        finals: list[Outcome] = []
        for o in (o for o in last.values() if o.status in RETRIED):
            again = o
            for _ in range(attempts):
                again = self.send(o.replica, o.kind, o.path, o.body, o.key)
                if again.status not in RETRIED:
                    break
                time.sleep(pause)
            finals.append(again)
            self._keep(again)
        return finals

    def by_status(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return dict(sorted(counts.items()))


def _read(outcome: Outcome, reply: Reply) -> Outcome:
    outcome.status = reply.status
    outcome.retry_after = reply.header("Retry-After")
    outcome.replayed = reply.header("Idempotent-Replayed") == "true"
    try:
        outcome.answer = reply.json
    except ValueError:
        outcome.answer = None
    if reply.status != 200 and isinstance(outcome.answer, dict):
        outcome.code = outcome.answer.get("code")
    return outcome
