"""Fairness: one organisation's release latency while another floods the gateway (DESIGN §9,
issue 19 point 1, issue 11 point 5).

The demo county at full size on one release worker and one preview worker. The bank (the
victim) asks fresh questions one after another, alone and then while the insurer (the flood)
runs the costliest releases the cost model admits from four clients at once and floods previews
from two more. The bound stated in docs/security.md: per release worker, a victim's release
waits for the release running when it arrived and no other, so its p99 under the flood stays
within its p99 alone plus one maximal release (rounded up to the response quantum).

Writes bench/results/fairness.md and fairness.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from tests.support import Gateway, call  # noqa: E402

FAST = {"GATEWAY_RATE_LIMIT_PER_SECOND": "1000", "GATEWAY_RATE_LIMIT_BURST": "2000",
        "GATEWAY_PREVIEW_RATE_PER_SECOND": "1000", "GATEWAY_PREVIEW_BURST": "2000"}
INSURER_ORG = "county-mutual-insurance"
QUANTILES = ", ".join(f"QUANTILE(income, {q / 100:.2f})" for q in range(5, 65, 5))  # 12 quantiles
# At the cost model's edge: 12 quantiles x 40 groups x 201 candidates = 96,480 <= 100,000.
HEAVY = f"SELECT township, sex, {QUANTILES} FROM residents WHERE age >= {{n}} GROUP BY township, sex"
VICTIM = "SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents WHERE age >= {n} GROUP BY township"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(statistics.median(values), 3), "p99": round(percentile(values, 0.99), 3),
            "max": round(max(values), 3)}


def timed(gw: Gateway, headers: dict[str, str], path: str, body: dict[str, Any]) -> tuple[int, float]:
    started = time.perf_counter()
    reply = call("POST", gw.base + path, json.dumps(body).encode(), {**headers, "Content-Type": "application/json"})
    return reply.status, time.perf_counter() - started


def bearer(gw: Gateway, client_id: str, secret: str) -> dict[str, str]:
    reply = gw.form("/oauth/token", {"grant_type": "client_credentials", "client_id": client_id,
                                     "client_secret": secret})
    assert reply.status == 200, reply.body
    return {"Authorization": "Bearer " + reply.json["access_token"]}


def victim_run(gw: Gateway, headers: dict[str, str], start: int, count: int) -> list[float]:
    out = []
    for n in range(start, start + count):
        status, seconds = timed(gw, headers, "/v1/queries", {"dataset": "residents", "epsilon": 0.02,
                                                             "sql": VICTIM.format(n=n % 100)})
        assert status == 200, status
        out.append(seconds)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40, help="victim releases per phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fairness-") as tmp:
        gw = Gateway(Path(tmp), env=FAST).start(timeout=600)
        try:
            result = measure(gw, args.requests)
        finally:
            gw.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "fairness.md").write_text(render(result))
    print(render(result))
    return 0 if result["within_bound"] else 1


def measure(gw: Gateway, count: int) -> dict[str, Any]:
    bank = bearer(gw, "demo-bank", gw.credentials["demo-bank"]["client_secret"])
    flooders = []
    for i in range(6):
        made = gw.api("POST", f"/v1/requesters/{INSURER_ORG}/clients", "demo-bureau", {"client_id": f"flood-{i}"})
        assert made.status == 201, made.body
        flooders.append(bearer(gw, f"flood-{i}", made.json["client_secret"]))
    victim_run(gw, bank, 0, 3)  # warm-up
    # One maximal release, alone: the unit of the bound.
    heavy = [timed(gw, flooders[0], "/v1/queries", {"dataset": "residents", "epsilon": 0.01,
                                                    "sql": HEAVY.format(n=n)})[1] for n in range(3)]
    alone = victim_run(gw, bank, 100, count)

    stop = threading.Event()
    flood_counts = {"releases": 0, "previews": 0, "refused": 0}
    lock = threading.Lock()

    def flood(headers: dict[str, str], path: str, offset: int) -> None:
        n = offset
        while not stop.is_set():
            n += 1
            status, _ = timed(gw, headers, path, {"dataset": "residents", "epsilon": 0.01,
                                                  "sql": HEAVY.format(n=n % 100 + 1)})
            with lock:
                key = "refused" if status != 200 else "releases" if path == "/v1/queries" else "previews"
                flood_counts[key] += 1

    threads = [threading.Thread(target=flood, args=(h, "/v1/queries", 1000 * i)) for i, h in enumerate(flooders[:4])]
    threads += [threading.Thread(target=flood, args=(h, "/v1/queries/preview", 1000 * (i + 4)))
                for i, h in enumerate(flooders[4:])]
    for t in threads:
        t.start()
    time.sleep(2)
    try:
        flooded = victim_run(gw, bank, 200, count)
    finally:
        stop.set()
        for t in threads:
            t.join()
    quantum = 0.1
    alone_s, flooded_s = summary(alone), summary(flooded)
    bound = alone_s["p99"] + math.ceil(max(heavy) / quantum) * quantum + quantum
    return {"victim_alone": alone_s, "victim_flooded": flooded_s, "max_release_alone_seconds": round(max(heavy), 3),
            "bound_seconds": round(bound, 3), "within_bound": flooded_s["p99"] <= bound, "flood": flood_counts,
            "setup": {"release_workers": 1, "preview_workers": 1, "flood_clients": 6, "victim_requests": count}}


def render(r: dict[str, Any]) -> str:
    a, f = r["victim_alone"], r["victim_flooded"]
    return "\n".join([
        "# Fairness: the bank's releases while the insurer floods",
        "",
        "One release worker and one preview worker, the demo county at full size. The insurer runs the",
        "costliest release the cost model admits (12 quantiles over township x sex) from four clients at",
        "once and previews of it from two more; the bank asks fresh grouped counts and means one at a time.",
        "",
        "| phase | releases | p50 s | p99 s | max s |",
        "|---|---|---|---|---|",
        f"| bank alone | {a['n']} | {a['p50']} | {a['p99']} | {a['max']} |",
        f"| bank while the insurer floods | {f['n']} | {f['p50']} | {f['p99']} | {f['max']} |",
        "",
        f"One maximal release alone: {r['max_release_alone_seconds']} s. Stated bound on the bank's p99 under the",
        f"flood: its p99 alone + one maximal release (rounded up to the quantum) + one quantum = "
        f"{r['bound_seconds']} s: {'held' if r['within_bound'] else 'NOT held'}.",
        f"The flood in that time: {r['flood']['releases']} releases, {r['flood']['previews']} previews answered, "
        f"{r['flood']['refused']} refused.",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
