"""A real Prometheus scrapes a running gateway's ops listener; the values come back through its API.

CI installs Debian's `prometheus` package (.ci/run); elsewhere these tests skip and say why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Gateway, call, free_port, seed_demo_data

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus binary is not installed "
                                "(CI installs Debian's package: apt-get install prometheus)")
SCRAPE_SECONDS = 1


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("prometheus-gw")
    seed_demo_data(state, demo_data)
    g = Gateway(state, env={"GATEWAY_METRICS_PORT": str(free_port())}).start()
    yield g
    g.stop()


def ops_port(gw: Gateway) -> int:
    return int(gw.env["GATEWAY_METRICS_PORT"])


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, gw: Gateway) -> Iterator[str]:
    """Prometheus on a loopback port, scraping the gateway's ops listener every second."""
    assert PROMETHEUS is not None
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [{"job_name": "gateway",
                            "static_configs": [{"targets": [f"127.0.0.1:{ops_port(gw)}"]}]}],
    }))
    base = f"http://127.0.0.1:{free_port()}"
    with open(home / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}",
                                 f"--web.listen-address={base.removeprefix('http://')}"],
                                stdout=log, stderr=log)
    try:
        wait_for(lambda: _ready(base), what="Prometheus to start", log=home / "prometheus.log")
        wait_for(lambda: scalar(base, 'up{job="gateway"}') == 1, what="the first scrape")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def _ready(base: str) -> bool:
    try:
        return call("GET", base + "/-/ready", timeout=2).status == 200
    except OSError:
        return False


def wait_for(check: Callable[[], bool], *, what: str, timeout: float = 30, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    tail = log.read_text(errors="replace")[-1500:] if log else ""
    raise AssertionError(f"timed out waiting for {what} {tail}")


def instant(base: str, promql: str) -> list[dict[str, Any]]:
    reply = call("GET", base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout=10)
    assert reply.status == 200, reply.body
    body = reply.json
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scalar(base: str, promql: str) -> float | None:
    result = instant(base, promql)
    return float(result[0]["value"][1]) if len(result) == 1 else None


def query(gw: Gateway, client: str, dataset: str, sql: str, eps: float) -> Any:
    return gw.api("POST", "/v1/queries", client, {"dataset": dataset, "sql": sql, "epsilon": eps})


def test_releases_charges_refusals_and_billing_arrive_in_prometheus(gw: Gateway, prometheus: str) -> None:
    answers = [query(gw, "demo-bank", "residents", f"SELECT COUNT(*) AS n FROM residents WHERE age >= {a}", eps)
               for a, eps in ((18, 0.1), (30, 0.2), (65, 0.3), (18, 0.1))]
    answers.append(query(gw, "demo-insurer", "vehicles", "SELECT COUNT(*) AS n FROM vehicles", 0.25))
    assert [a.status for a in answers] == [200] * 5, [a.body[:200] for a in answers]
    cached = [a.json["cached"] for a in answers]
    assert cached == [False, False, False, True, False]
    refused = query(gw, "demo-bank", "residents", "SELECT AVG(income) AS m FROM residents", 1.5)
    assert refused.status == 422 and refused.json["code"] == "policy_violation"
    billed = sum(a.json["usage"]["price_minor"] for a in answers[:4])

    expected = {
        'gateway_releases_total{dataset="residents",outcome="released"}': 3,
        'gateway_releases_total{dataset="residents",outcome="cached"}': 1,
        'gateway_releases_total{dataset="vehicles",outcome="released"}': 1,
        'gateway_cache_hits_total{dataset="residents"}': 1,
        'gateway_epsilon_charged_total{dataset="residents"}': 0.6,
        'gateway_epsilon_charged_total{dataset="vehicles"}': 0.25,
        'gateway_refusals_total{dataset="residents",reason="policy_violation"}': 1,
        'gateway_billed_minor_total{dataset="residents",currency="CNY"}': billed,
        'sum(gateway_requests_total{route="/v1/queries",status_class="2xx"})': 5,
        'sum(gateway_requests_total{route="/v1/queries",status_class="4xx"})': 1,
        'gateway_request_duration_seconds_count{route="/v1/queries"}': 6,
        "gateway_ready": 1,
    }

    def arrived() -> bool:
        return all(_close(scalar(prometheus, promql), value) for promql, value in expected.items())

    try:
        wait_for(arrived, what="the scraped values")
    except AssertionError:
        seen = {promql: scalar(prometheus, promql) for promql in expected}
        raise AssertionError(f"Prometheus has {seen}, expected {expected}") from None


def _close(seen: float | None, want: float) -> bool:
    return seen is not None and abs(seen - want) <= 1e-6 * max(1.0, abs(want))  # float sums


def test_the_scrape_is_clean_and_series_carry_only_bounded_labels(gw: Gateway, prometheus: str) -> None:
    targets = call("GET", prometheus + "/api/v1/targets", timeout=10).json["data"]["activeTargets"]
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]
    labels = set()
    for series in instant(prometheus, '{__name__=~"gateway_.+"}'):
        labels |= set(series["metric"]) - {"__name__", "instance", "job"}
    assert labels <= {"route", "method", "status_class", "dataset", "outcome", "reason", "role",
                      "operation", "currency", "le"}, labels
    # Sandbox time is exported on its own, rounded to the response quantum.
    assert scalar(prometheus, 'gateway_sandbox_seconds_count{dataset="residents"}') is not None


def test_metrics_need_the_ops_role_on_the_main_port_and_nothing_on_the_ops_port(gw: Gateway) -> None:
    assert gw.api("GET", "/metrics").status == 401
    assert gw.api("GET", "/metrics", "demo-bank").status == 403
    main = gw.api("GET", "/metrics", "demo-ops")
    assert main.status == 200 and b"gateway_requests_total" in main.body
    ops = call("GET", f"http://127.0.0.1:{ops_port(gw)}/metrics")
    assert ops.status == 200 and (ops.header("Content-Type") or "").startswith("text/plain")
    assert call("GET", f"http://127.0.0.1:{ops_port(gw)}/v1/datasets").status == 404
