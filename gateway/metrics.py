"""Prometheus metrics on an app-owned registry, with bounded labels only (R-OP-01, R-OP-02)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Hashable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

PREFIX = "gateway"

# Label values that stand for "not one of ours": the leading underscore cannot start a
# dataset id (policy schema), a route template or a role, so they never collide.
UNKNOWN_DATASET = "_unknown"
UNMATCHED_ROUTE = "_unmatched"
OTHER = "_other"

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
STATUS_CLASSES = ("2xx", "4xx", "5xx")
RELEASE_OUTCOMES = ("released", "cached", "replayed", "failed")
REFUSAL_REASONS = (
    "invalid_request", "invalid_query", "policy_violation", "budget_exhausted", "forbidden",
    "dataset_suspended", "dataset_withdrawn", "rate_limited", "unauthorized", "agreement_ended",
)
ROLES = ("requester", "merchant", "bureau", "source", "ops")
# Store operations are named where they are called (`store.write(fn, ..., op=...)`), not after
# the Python function that runs them: the names are the metric's contract.
STORE_OPERATIONS = (
    "lookup_release",      # the idempotency claim and a stored answer, one transaction
    "reserve", "mark_executing", "commit_release", "return_reservation", "fail_release",
    "read_client",         # the token endpoint's client lookup
    "read_status",         # the poll of statuses, policies, keys and budget gauges
    "append_audit", "purge_idempotency", "recover", "migrate",
)

# Request latency: DP answers are padded to a quantum above a floor (300 ms by default).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
                   30.0)
SANDBOX_BUCKETS = (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def status_class(status: int) -> str:
    """`404` -> `"4xx"`: the only form of a status a label may hold."""
    return f"{status // 100}xx"


def _require(value: str, allowed: Iterable[str], what: str) -> str:
    # Outcomes, reasons and operations come from our code, so an unknown one is a bug.
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}")
    return value


def _currency(code: str) -> str:
    if not _CURRENCY.match(code):
        raise ValueError(f"not an ISO 4217 code: {code!r}")
    return code


class Metrics:
    """Every gateway metric; one instance per app, each on its own registry."""

    def __init__(self, datasets: Iterable[str], routes: Iterable[tuple[str, str]], *,
                 currency: str = "CNY", store_operations: Iterable[str] = STORE_OPERATIONS,
                 timing_quantum_seconds: float = 0.1) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._datasets: set[str] = set()
        self._routes: set[str] = set()
        self._store_operations = tuple(store_operations)
        # (family, *labels) -> child: prometheus' labels() validates and locks on every call;
        # the labels reaching here are already bounded, so the map is too.
        self._children: dict[tuple[Hashable, ...], Any] = {}
        self._quantum = timing_quantum_seconds
        self._declare()
        self._init_fixed_labels(currency)
        for method, template in routes:
            self.add_route(method, template)
        for dataset in datasets:
            self.add_dataset(dataset, currency)
        for reason in REFUSAL_REASONS:  # a request may name a dataset we do not serve
            self._refusals.labels(UNKNOWN_DATASET, reason)

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, labels: tuple[str, ...],
                   buckets: tuple[float, ...]) -> Histogram:
        return Histogram(f"{PREFIX}_{name}", doc, labels, buckets=buckets, registry=self.registry)

    def _declare(self) -> None:
        c, g, h = self._counter, self._gauge, self._histogram
        self._requests = c("requests_total", "HTTP requests answered.",
                           ("route", "method", "status_class"))
        self._request_seconds = h("request_duration_seconds", "Time to answer an HTTP request.",
                                  ("route",), REQUEST_BUCKETS)
        self._releases = c("releases_total", "DP answers by outcome.", ("dataset", "outcome"))
        self._refusals = c("refusals_total", "Requests refused, by reason.", ("dataset", "reason"))
        self._epsilon = c("epsilon_charged_total", "Privacy loss (epsilon) charged.", ("dataset",))
        self._previews = c("previews_total", "Previews answered (free, but metered).", ("dataset",))
        self._cache_hits = c("cache_hits_total", "Answers served from the release cache.",
                             ("dataset",))
        self._sandbox_seconds = h("sandbox_seconds", "Sandbox time of a release, rounded up to "
                                  "the response quantum.", ("dataset",), SANDBOX_BUCKETS)
        self._sandbox_timeouts = c("sandbox_timeouts_total", "Releases stopped by the time limit.")
        self._worker_restarts = c("worker_restarts_total", "Sandbox worker processes restarted.")
        self._store_seconds = h("store_seconds", "Time of one store operation.", ("operation",),
                                STORE_BUCKETS)
        self._billed = c("billed_minor_total", "Money billed, in minor units of the currency.",
                         ("dataset", "currency"))
        self._rate_limited_requests = c("rate_limited_total", "Requests answered 429.")
        self._tokens = c("tokens_issued_total", "Access tokens issued, by role.", ("role",))
        self._audit_appends = c("audit_appends_total", "Entries appended to the audit chain.")
        self._global_budget = g("dataset_global_budget_used_ratio", "Share of the dataset's "
                                "global epsilon cap spent this period.", ("dataset",))
        self._available = g("dataset_available", "1 while the dataset's current snapshot is "
                            "loaded and servable (suspension aside), else 0.", ("dataset",))
        self._source_failures = c("source_failures_total", "Failed loads from a dataset's "
                                  "source.", ("dataset",))
        self._inflight = g("inflight_requests", "HTTP requests being answered.")
        self._ready = g("ready", "1 while /readyz answers 200, else 0.")

    def _init_fixed_labels(self, currency: str) -> None:
        self._currency = _currency(currency)
        for role in (*ROLES, OTHER):
            self._tokens.labels(role)
        for operation in self._store_operations:
            self._store_seconds.labels(operation)
        for method in ("GET", "POST"):
            self._requests.labels(UNMATCHED_ROUTE, method, "4xx")
        self._request_seconds.labels(UNMATCHED_ROUTE)

    def add_route(self, method: str, template: str) -> None:
        """Start the series of one route template at zero."""
        self._routes.add(template)
        for cls in STATUS_CLASSES:
            self._requests.labels(template, self._method(method), cls)
        self._request_seconds.labels(template)

    def add_dataset(self, dataset: str, currency: str | None = None) -> None:
        """Start the series of a dataset (from a policy) at zero."""
        self._datasets.add(dataset)
        for outcome in RELEASE_OUTCOMES:
            self._releases.labels(dataset, outcome)
        for reason in REFUSAL_REASONS:
            self._refusals.labels(dataset, reason)
        for family in (self._epsilon, self._previews, self._cache_hits, self._sandbox_seconds, self._global_budget,
                       self._available, self._source_failures):
            family.labels(dataset)
        self._billed.labels(dataset, currency or self._currency)

    def _child(self, family: Counter | Histogram, *labels: str) -> Any:
        key = (family, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    def _dataset(self, dataset: str | None) -> str:
        # A dataset id may come from a request body: only the ones we serve become labels.
        return dataset if dataset in self._datasets else UNKNOWN_DATASET

    def _method(self, method: str) -> str:
        return method if method in METHODS else OTHER

    def _route(self, route: str | None) -> str:
        return route if route in self._routes else UNMATCHED_ROUTE

    def observe_request(self, route: str | None, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request; `route` is the template, never the path."""
        route = self._route(route)
        self._child(self._requests, route, self._method(method), status_class(status)).inc()
        self._child(self._request_seconds, route).observe(seconds)

    def in_flight(self) -> AbstractContextManager[Any]:
        """Counts the requests being served while the block runs (prometheus' own tracker)."""
        return self._inflight.track_inprogress()

    def release(self, dataset: str, outcome: str) -> None:
        """A DP answer left (or failed after data was touched); `cached` also counts a cache hit."""
        dataset = self._dataset(dataset)
        self._child(self._releases, dataset, _require(outcome, RELEASE_OUTCOMES, "release outcome")).inc()
        if outcome == "cached":
            self._child(self._cache_hits, dataset).inc()

    def refusal(self, dataset: str | None, reason: str) -> None:
        reason = _require(reason, REFUSAL_REASONS, "refusal reason")
        self._refusals.labels(self._dataset(dataset), reason).inc()

    def preview(self, dataset: str) -> None:
        self._child(self._previews, self._dataset(dataset)).inc()

    def charged(self, dataset: str, epsilon: float) -> None:
        if epsilon < 0:
            raise ValueError("a charge cannot be negative")
        self._epsilon.labels(self._dataset(dataset)).inc(epsilon)

    def sandbox_run(self, dataset: str, seconds: float) -> None:
        """Rounded up to the response quantum: no finer timing than a requester sees (R-DP-10)."""
        if self._quantum > 0:
            seconds = math.ceil(seconds / self._quantum) * self._quantum
        self._sandbox_seconds.labels(self._dataset(dataset)).observe(seconds)

    def sandbox_timeout(self) -> None:
        self._sandbox_timeouts.inc()

    def worker_restarted(self) -> None:
        self._worker_restarts.inc()

    def observe_store(self, operation: str, seconds: float) -> None:
        operation = _require(operation, self._store_operations, "store operation")
        self._child(self._store_seconds, operation).observe(seconds)

    @contextmanager
    def time_store(self, operation: str) -> Iterator[None]:
        """Times the block as one store operation, whether it succeeds or raises."""
        _require(operation, self._store_operations, "store operation")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_store(operation, time.perf_counter() - start)

    def billed(self, dataset: str, amount_minor: int, currency: str) -> None:
        if not isinstance(amount_minor, int) or amount_minor < 0:
            raise ValueError("an amount billed is a non-negative integer of minor units")
        self._child(self._billed, self._dataset(dataset), _currency(currency)).inc(amount_minor)

    def rate_limited(self) -> None:
        self._rate_limited_requests.inc()

    def token_issued(self, roles: Iterable[str]) -> None:
        for role in roles:
            self._tokens.labels(role if role in ROLES else OTHER).inc()

    def audit_appended(self, entries: int = 1) -> None:
        self._audit_appends.inc(entries)

    def set_global_budget_used(self, dataset: str, ratio: float) -> None:
        """Spent over cap for the period: a function of charges, never of data."""
        if dataset in self._datasets:  # a state gauge of a dataset we do not serve means nothing
            self._global_budget.labels(dataset).set(ratio)

    def set_dataset_available(self, dataset: str, available: bool) -> None:
        if dataset in self._datasets:
            self._available.labels(dataset).set(1 if available else 0)

    def source_failure(self, dataset: str) -> None:
        self._source_failures.labels(self._dataset(dataset)).inc()

    def set_ready(self, ready: bool) -> None:
        self._ready.set(1 if ready else 0)

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus 2.x scrapes, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4

    def metric_names(self) -> frozenset[str]:
        """Every series name the registry exposes (with `_bucket`, `_sum`, ... suffixes)."""
        return frozenset(s.name for family in self.registry.collect() for s in family.samples)


def metrics_handler(metrics: Metrics) -> Handler:
    """An aiohttp handler serving `metrics`; auth, if any, is the caller's to add."""

    async def serve_metrics(request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    return serve_metrics


def create_metrics_app(metrics: Metrics) -> web.Application:
    """The separate, unauthenticated listener: `/metrics` only, for a private address."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(metrics))
    return app
