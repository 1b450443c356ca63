"""Every alert can fire (issue 12, point 7; R-OP-09): real traffic drives the series of
GatewayStoreLatencyHigh (a store operation held up by a lock on the SQLite file) and of
GatewaySandboxTimeouts (releases that pass the sandbox's time limit), and a real Prometheus,
evaluating the shipped rules, fires them. Only each rule's `for:` is dropped: the wait is
policy, the expression is what is tested.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.sandboxprocs import frozen, workers_up
from tests.support import FAST_RATES, Gateway, call, demo_gateway, free_port
from tests.test_prometheus import PROMETHEUS, instant, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus binary is not installed")]
RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "gateway-rules.yml"
TIMEOUT_SECONDS = 3


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    env = {**FAST_RATES, "GATEWAY_METRICS_PORT": str(free_port()),
           "GATEWAY_QUERY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
    with demo_gateway(tmp_path_factory.mktemp("alerts-gw"), demo_data, env=env) as g:
        yield g


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, gw: Gateway) -> Iterator[str]:
    assert PROMETHEUS is not None
    home = tmp_path_factory.mktemp("alerts-prometheus")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule.pop("for", None)
    (home / "rules.yml").write_text(yaml.safe_dump(rules))
    (home / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(home / "rules.yml")],
        "scrape_configs": [{"job_name": "gateway", "static_configs": [
            {"targets": [f"127.0.0.1:{gw.env['GATEWAY_METRICS_PORT']}"]}]}],
    }))
    promtool = shutil.which("promtool")
    if promtool:
        subprocess.run([promtool, "check", "rules", str(home / "rules.yml")], check=True, capture_output=True)
    base = f"http://127.0.0.1:{free_port()}"
    with open(home / "prometheus.log", "wb") as log:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={home / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={home / 'data'}",
                                 f"--web.listen-address={base.removeprefix('http://')}"], stdout=log, stderr=log)
    try:
        wait_for(lambda: _answers(base), what="Prometheus to start", log=home / "prometheus.log")
        wait_for(lambda: bool(instant(base, 'up{job="gateway"} == 1')), what="the first scrape")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def _answers(base: str) -> bool:
    try:
        return call("GET", base + "/-/ready", timeout=2).status == 200
    except OSError:
        return False


def firing(base: str, alert: str, **labels: str) -> bool:
    matchers = "".join(f', {k}="{v}"' for k, v in labels.items())
    return bool(instant(base, f'ALERTS{{alertname="{alert}", alertstate="firing"{matchers}}}'))


def query(gw: Gateway, n: int) -> int:
    return gw.api("POST", "/v1/queries", "demo-bank", {
        "dataset": "residents", "epsilon": 0.05,
        "sql": f"SELECT COUNT(*) AS n FROM residents WHERE age >= {n}"}).status


def test_store_latency_high_fires_on_real_slow_store_operations(gw: Gateway, prometheus: str) -> None:
    gw.token("demo-bank")  # its audit write happens now, not behind the lock
    assert not firing(prometheus, "GatewayStoreLatencyHigh")
    db = sqlite3.connect(gw.state_dir / "gateway.db", timeout=30, isolation_level=None)
    try:
        for round_ in range(2):  # two scrapes apart, so the rate has an increase to see
            db.execute("BEGIN IMMEDIATE")  # the writer waits behind it (busy_timeout), as behind a slow disk
            with cf.ThreadPoolExecutor(4) as pool:
                pending = [pool.submit(query, gw, 20 + 4 * round_ + i) for i in range(4)]
                wait_for(lambda: _store_writers_waiting(gw), what="queries waiting on the store")
                time.sleep(1.0)
                db.execute("ROLLBACK")
                assert [p.result() for p in pending] == [200] * 4
            time.sleep(2.5)
    finally:
        db.close()
    wait_for(lambda: firing(prometheus, "GatewayStoreLatencyHigh", operation="lookup_release"),
             what="GatewayStoreLatencyHigh to fire", timeout=60)


def _store_writers_waiting(gw: Gateway) -> bool:
    text = call("GET", f"http://127.0.0.1:{gw.env['GATEWAY_METRICS_PORT']}/metrics").body.decode()
    return any(line.startswith("gateway_inflight_requests ") and float(line.split()[1]) >= 4
               for line in text.splitlines())


def test_sandbox_timeouts_fire_on_real_releases_past_the_time_limit(gw: Gateway, prometheus: str) -> None:
    assert not firing(prometheus, "GatewaySandboxTimeouts")
    for n in range(3):
        assert query(gw, 60 + 2 * n) == 200  # the (new) release worker holds the data
        workers = workers_up(gw.proc.pid, 1 + 1)  # type: ignore[union-attr]  # a release and a preview worker
        with frozen(workers):
            reply = gw.api("POST", "/v1/queries", "demo-bank", {
                "dataset": "residents", "epsilon": 0.05,
                "sql": f"SELECT COUNT(*) AS n FROM residents WHERE age >= {61 + 2 * n}"})
        assert reply.status == 500 and reply.json["code"] == "release_failed", reply.body
    wait_for(lambda: [float(s["value"][1]) for s in instant(prometheus, "gateway_sandbox_timeouts_total")] == [3.0],
             what="the three timeouts to be scraped")
    wait_for(lambda: firing(prometheus, "GatewaySandboxTimeouts"), what="GatewaySandboxTimeouts to fire", timeout=60)
