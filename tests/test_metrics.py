"""Metrics: own registry, zero-initialised label sets, bounded labels, a clean exposition."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from gateway.metrics import (
    METHODS,
    OTHER,
    REFUSAL_REASONS,
    RELEASE_OUTCOMES,
    ROLES,
    STORE_OPERATIONS,
    UNKNOWN_DATASET,
    UNMATCHED_ROUTE,
    Metrics,
    create_metrics_app,
    metrics_handler,
    status_class,
)

DATASETS = ("residents", "enterprises", "vehicles", "social_insurance")
ROUTES = (("GET", "/v1/datasets"), ("GET", "/v1/datasets/{id}"), ("POST", "/v1/queries"),
          ("POST", "/oauth/token"))
TEMPLATES = {template for _, template in ROUTES}


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(DATASETS, ROUTES, currency="CNY")


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def bounded_domain(label: str, val: str) -> bool:
    """Every value a label may ever hold: fixed enums, policy dataset ids, route templates."""
    domains: dict[str, set[str]] = {
        "route": TEMPLATES | {UNMATCHED_ROUTE},
        "method": {*METHODS, OTHER},
        "dataset": {*DATASETS, UNKNOWN_DATASET},
        "outcome": set(RELEASE_OUTCOMES),
        "reason": set(REFUSAL_REASONS),
        "role": {*ROLES, OTHER},
        "operation": set(STORE_OPERATIONS),
    }
    if label == "status_class":
        return re.fullmatch(r"[1-5]xx", val) is not None
    if label == "currency":
        return re.fullmatch(r"[A-Z]{3}", val) is not None
    if label == "le":
        return re.fullmatch(r"[0-9.e+-]+|\+Inf", val) is not None
    return val in domains.get(label, set())


def all_labels(m: Metrics) -> list[tuple[str, str, str]]:
    return [(s.name, k, v) for fam in m.registry.collect() for s in fam.samples
            for k, v in s.labels.items()]


def test_names_have_one_prefix_and_counters_end_in_total(metrics: Metrics) -> None:
    families = list(metrics.registry.collect())
    assert families
    for fam in families:
        assert fam.name.startswith("gateway_"), fam.name
        if fam.type == "counter":
            assert any(s.name == fam.name + "_total" for s in fam.samples), fam.name


def test_known_label_sets_start_at_zero(metrics: Metrics) -> None:
    """R-OP-01: a dashboard sees every series before the first event."""
    for dataset in DATASETS:
        for outcome in RELEASE_OUTCOMES:
            assert value(metrics, "gateway_releases_total", dataset=dataset, outcome=outcome) == 0
        for reason in REFUSAL_REASONS:
            assert value(metrics, "gateway_refusals_total", dataset=dataset, reason=reason) == 0
        assert value(metrics, "gateway_epsilon_charged_total", dataset=dataset) == 0
        assert value(metrics, "gateway_billed_minor_total", dataset=dataset, currency="CNY") == 0
        assert value(metrics, "gateway_sandbox_seconds_count", dataset=dataset) == 0
        assert value(metrics, "gateway_dataset_available", dataset=dataset) == 0
    for method, template in ROUTES:
        for cls in ("2xx", "4xx", "5xx"):
            labels = {"route": template, "method": method, "status_class": cls}
            assert value(metrics, "gateway_requests_total", **labels) == 0
    for role in ROLES:
        assert value(metrics, "gateway_tokens_issued_total", role=role) == 0
    for operation in STORE_OPERATIONS:
        assert value(metrics, "gateway_store_seconds_count", operation=operation) == 0
    assert value(metrics, "gateway_ready") == 0


def test_registry_is_the_apps_own(metrics: Metrics) -> None:
    other = Metrics(DATASETS, ROUTES)
    metrics.release("residents", "released")
    assert value(other, "gateway_releases_total", dataset="residents", outcome="released") == 0
    assert REGISTRY.get_sample_value("gateway_ready") is None


def test_request_is_counted_by_template_method_and_status_class(metrics: Metrics) -> None:
    metrics.observe_request("/v1/datasets/{id}", "GET", 404, 0.004)
    metrics.observe_request("/v1/queries", "POST", 200, 0.3)
    assert value(metrics, "gateway_requests_total", route="/v1/datasets/{id}", method="GET",
                 status_class="4xx") == 1
    assert value(metrics, "gateway_request_duration_seconds_bucket", route="/v1/queries",
                 le="0.3") == 1
    assert value(metrics, "gateway_request_duration_seconds_bucket", route="/v1/queries",
                 le="0.2") == 0


def test_paths_methods_and_datasets_from_requests_never_become_labels(metrics: Metrics) -> None:
    """R-OP-01, R-DP-10: what a caller sends is folded into a sentinel, not echoed."""
    metrics.observe_request("/v1/datasets/demo-bank-secret", "BREW", 418, 0.01)
    metrics.observe_request(None, "GET", 404, 0.01)
    metrics.refusal("SELECT income FROM residents", "invalid_query")
    metrics.refusal(None, "unauthorized")
    metrics.token_issued(["requester", "demo-bank"])
    assert value(metrics, "gateway_requests_total", route=UNMATCHED_ROUTE, method=OTHER,
                 status_class="4xx") == 1
    assert value(metrics, "gateway_refusals_total", dataset=UNKNOWN_DATASET,
                 reason="invalid_query") == 1
    assert value(metrics, "gateway_tokens_issued_total", role=OTHER) == 1
    assert all(bounded_domain(k, v) for _, k, v in all_labels(metrics)), all_labels(metrics)


@settings(max_examples=60, deadline=None)
@given(route=st.text(max_size=40), method=st.text(max_size=10),
       status=st.integers(100, 599), dataset=st.text(max_size=40), role=st.text(max_size=20))
def test_any_input_keeps_every_label_bounded(route: str, method: str, status: int,
                                             dataset: str, role: str) -> None:
    m = Metrics(DATASETS, ROUTES)
    m.observe_request(route, method, status, 0.1)
    m.release(dataset, "released")
    m.refusal(dataset, "forbidden")
    m.charged(dataset, 0.25)
    m.billed(dataset, 100, "CNY")
    m.sandbox_run(dataset, 0.05)
    m.source_failure(dataset)
    m.token_issued([role])
    assert all(bounded_domain(k, v) for _, k, v in all_labels(m))


def test_cached_release_is_also_a_cache_hit(metrics: Metrics) -> None:
    metrics.release("vehicles", "cached")
    metrics.release("vehicles", "released")
    assert value(metrics, "gateway_releases_total", dataset="vehicles", outcome="cached") == 1
    assert value(metrics, "gateway_cache_hits_total", dataset="vehicles") == 1


@pytest.mark.parametrize("call", [
    lambda m: m.release("residents", "leaked"),
    lambda m: m.refusal("residents", "because"),
    lambda m: m.observe_store("drop_table", 0.1),
    lambda m: m.charged("residents", -0.1),
    lambda m: m.billed("residents", 1.5, "CNY"),
    lambda m: m.billed("residents", 100, "yuan"),
])
def test_values_from_our_own_code_outside_their_enum_are_bugs(metrics: Metrics, call) -> None:
    with pytest.raises(ValueError):
        call(metrics)


def test_epsilon_and_money_accumulate(metrics: Metrics) -> None:
    metrics.charged("residents", 0.5)
    metrics.charged("residents", 0.25)
    metrics.billed("residents", 500, "CNY")
    metrics.billed("residents", 120, "CNY")
    assert value(metrics, "gateway_epsilon_charged_total", dataset="residents") == 0.75
    assert value(metrics, "gateway_billed_minor_total", dataset="residents", currency="CNY") == 620


def test_sandbox_time_is_rounded_up_to_the_quantum() -> None:
    """R-DP-10/R-DP-12: ops see sandbox time no finer than the padded response reveals."""
    m = Metrics(DATASETS, ROUTES, timing_quantum_seconds=0.1)
    m.sandbox_run("residents", 0.123)
    m.sandbox_run("residents", 0.031)
    assert value(m, "gateway_sandbox_seconds_sum", dataset="residents") == pytest.approx(0.3)
    assert value(m, "gateway_sandbox_seconds_bucket", dataset="residents", le="0.1") == 1


def test_gauges_follow_state(metrics: Metrics) -> None:
    metrics.set_ready(True)
    metrics.set_dataset_available("enterprises", True)
    metrics.set_global_budget_used("enterprises", 0.93)
    with metrics.in_flight():
        assert value(metrics, "gateway_inflight_requests") == 1
    assert value(metrics, "gateway_inflight_requests") == 0
    assert value(metrics, "gateway_ready") == 1
    assert value(metrics, "gateway_dataset_available", dataset="enterprises") == 1
    assert value(metrics, "gateway_dataset_global_budget_used_ratio",
                 dataset="enterprises") == 0.93


def test_store_time_is_observed_when_the_block_raises(metrics: Metrics) -> None:
    with pytest.raises(KeyError), metrics.time_store("reserve"):
        raise KeyError("conflict")
    assert value(metrics, "gateway_store_seconds_count", operation="reserve") == 1


def test_a_dataset_added_later_starts_at_zero(metrics: Metrics) -> None:
    metrics.add_dataset("land_parcels")
    metrics.release("land_parcels", "released")
    assert value(metrics, "gateway_releases_total", dataset="land_parcels", outcome="failed") == 0
    assert value(metrics, "gateway_releases_total", dataset="land_parcels",
                 outcome="released") == 1


def test_counters_and_sentinels_cover_the_rest(metrics: Metrics) -> None:
    metrics.sandbox_timeout()
    metrics.worker_restarted()
    metrics.rate_limited()
    metrics.audit_appended(3)
    assert value(metrics, "gateway_sandbox_timeouts_total") == 1
    assert value(metrics, "gateway_worker_restarts_total") == 1
    assert value(metrics, "gateway_rate_limited_total") == 1
    assert value(metrics, "gateway_audit_appends_total") == 3
    assert status_class(503) == "5xx"


def test_exposition_passes_promtool(metrics: Metrics) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    metrics.observe_request("/v1/queries", "POST", 200, 0.31)
    metrics.release("residents", "released")
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                            timeout=30, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


async def test_handler_serves_the_exposition(metrics: Metrics) -> None:
    app = web.Application()
    app.router.add_get("/ops/metrics", metrics_handler(metrics))
    metrics.set_ready(True)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/ops/metrics")
        text = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "gateway_ready 1.0" in text


async def test_separate_listener_serves_only_metrics(metrics: Metrics) -> None:
    async with TestClient(TestServer(create_metrics_app(metrics))) as client:
        assert (await client.get("/metrics")).status == 200
        assert (await client.get("/v1/datasets")).status == 404


def test_state_gauges_exist_only_for_datasets_served(metrics: Metrics) -> None:
    """A gauge of "no dataset" was always 0 and looked like an unavailable dataset (issue 12.7)."""
    metrics.set_dataset_available("not-served", True)
    metrics.set_global_budget_used("not-served", 0.5)
    text = metrics.exposition()[0].decode()
    assert f'dataset="{UNKNOWN_DATASET}"' not in "".join(
        line for line in text.splitlines() if line.startswith(("gateway_dataset_available", "gateway_dataset_global")))
    assert f'gateway_refusals_total{{dataset="{UNKNOWN_DATASET}"' in text  # a request may name one
