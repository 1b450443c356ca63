"""Ledger benchmarks: cached metered calls over HTTP against a bare aiohttp handler, and budget
charges per second on SQLite and PostgreSQL (3 processes x 64 clients), with an over-spend check.

Writes bench/results/ledger.md and ledger.json. Run by `make bench` (bench/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from tests.support import Gateway, free_port, seed_demo_data  # noqa: E402

BARE_SERVER = """
import sys
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"ok": True, "rows": [[1, 2.5]]})
app = web.Application()
app.router.add_post("/v1/queries", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


async def _load(url: str, body: bytes, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.request("POST" if body else "GET", url, data=body or None, headers=headers) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "statuses": statuses,
            "p50_ms": 1000 * latencies[len(latencies) // 2], "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}


WRK_SCRIPT = """
local body = os.getenv("BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
else
  wrk.method = "GET"
end
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then wrk.headers["Authorization"] = auth end
done = function(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %f %f %d %d\\n", summary.requests, summary.duration,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.errors.status, summary.errors.timeout))
end
"""


def _wrk(url: str, body: bytes, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, Any]:
    """wrk (Debian's package) in its own process, one thread: the load generator apart from both servers."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_AUTH": headers.get("Authorization", "")}
    try:
        done = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", str(script), url],
                              capture_output=True, text=True, env=env, check=True)
    finally:
        script.unlink()
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    requests, duration_us, errors, p50_us, p99_us, bad_status, _ = (float(x) for x in line.split()[1:])
    return {"requests": int(requests), "rps": requests / (duration_us / 1e6), "errors": int(errors),
            "statuses": {200: int(requests - bad_status)} if not bad_status else {"non-2xx": int(bad_status)},
            "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000}


def _wait_port(port: int) -> None:
    import socket

    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def _unthrottled(state: Path) -> dict[str, str]:
    """The demo policies without their per-client rate limits: we measure the metered path,
    not the limiter (whose 429s would be cheaper than answers)."""
    import yaml

    folder = state / "bench-policies"
    folder.mkdir()
    for path in (ROOT / "policies").iterdir():
        if path.suffix == ".yaml":
            text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("rate_limit:"))
            yaml.safe_load(text)
            (folder / path.name).write_text(text + "\n")
        else:
            shutil.copy(path, folder / path.name)
    return {"GATEWAY_POLICIES_DIR": str(folder), "GATEWAY_RATE_LIMIT_PER_SECOND": "1000000",
            "GATEWAY_RATE_LIMIT_BURST": "1000000", "GATEWAY_MAX_IN_FLIGHT_PER_CLIENT": "1000"}


def bench_http(seconds: float, concurrency: int, data_dir: Path, rounds: int) -> dict[str, Any]:
    """Bare handler and gateway both up; loads interleaved round by round; medians reported."""
    port = free_port()
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    state = Path(tempfile.mkdtemp(prefix="bench-gw-"))
    seed_demo_data(state, data_dir)
    gw = Gateway(state, env=_unthrottled(state)).start()
    try:
        _wait_port(port)
        sql = "SELECT township, COUNT(*) AS n FROM residents GROUP BY township"
        body = json.dumps({"dataset": "residents", "sql": sql, "epsilon": 0.1}).encode()
        first = gw.api("POST", "/v1/queries", "demo-bank", {"dataset": "residents", "sql": sql, "epsilon": 0.1})
        assert first.status == 200, first.body
        targets = {
            "bare": (f"http://127.0.0.1:{port}/v1/queries", {"Content-Type": "application/json"}),
            "cached": (gw.base + "/v1/queries", {"Content-Type": "application/json",
                                                 "Authorization": "Bearer " + gw.token("demo-bank")}),
            # The gateway's own HTTP stack with nothing behind it (its middlewares: request id,
            # access log, metrics, problems; no token, no store): the ceiling any metered call
            # sits under, against the bare handler.
            "stack": (gw.base + "/healthz", {}),
        }
        load = _wrk if shutil.which("wrk") else (
            lambda *a: asyncio.run(_load(*a)))  # wrk absent: the Python generator (same process count)
        bodies = {"bare": body, "cached": body, "stack": b""}  # no body: a GET
        for name, (url, headers) in targets.items():  # warm all
            load(url, bodies[name], headers, 1, 8)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        for _ in range(rounds):
            for name, (url, headers) in targets.items():
                runs[name].append(load(url, bodies[name], headers, seconds, concurrency))
        usage = gw.api("GET", "/v1/usage", "demo-bank").json["items"]
    finally:
        bare.terminate()
        bare.wait()
        gw.stop()
        shutil.rmtree(state, ignore_errors=True)
    for run in runs["cached"] + runs["stack"]:
        assert set(run["statuses"]) == {200}, run["statuses"]
    generator = "wrk -t1 (own process)" if shutil.which("wrk") else "one Python aiohttp process"
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
           for name, rs in runs.items()}
    ratios = [c["rps"] / b["rps"] for b, c in zip(runs["bare"], runs["cached"], strict=True)]
    stack = [s["rps"] / b["rps"] for b, s in zip(runs["bare"], runs["stack"], strict=True)]
    return {"bare": med["bare"], "cached": med["cached"], "ratio": statistics.median(ratios),
            "stack": med["stack"], "stack_ratio": statistics.median(stack),
            "ratios": ratios, "usage_records": len(usage), "concurrency": concurrency, "seconds": seconds,
            "rounds": rounds, "generator": generator, "load_average": os.getloadavg()[0]}


def _reserve_many(tx: Any, calls: list[tuple[Any, ...]]) -> list[None]:
    from gateway.store import ledger_many

    ledger_many.reserve_many(tx, [r for (r,) in calls])
    return [None] * len(calls)


def _charge_worker(dsn: str, state: str, clients: int, charges: int, cap: int, out: Any) -> None:
    from gateway.errors import BudgetExhausted
    from gateway.store import ledger, ledger_many
    from gateway.store.schema import open_store

    store = open_store(dsn, Path(state), pool_size=min(clients, 16))
    ok = refused = 0
    lock = threading.Lock()

    def one_client() -> None:
        nonlocal ok, refused
        for _ in range(charges):
            r = ledger.Reservation(uuid.uuid4().hex, "bench", "bench", "residents", None, "2026-11", 1000,
                                   (ledger.Account("grant:bench:residents", cap),
                                    ledger.Account("pool:bench", 10**12)))
            try:
                # as the gateway charges (service/queries.py): concurrent charges of one key together
                store.run_sync(ledger.reserve, r, group=(ledger_many.charge_key(r), _reserve_many))
                with lock:
                    ok += 1
            except BudgetExhausted:
                with lock:
                    refused += 1

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((ok, refused, time.perf_counter() - started))
    store.close()


def bench_charges(kind: str, dsn: str, processes: int, clients: int, charges: int, fit: int = 1000) -> dict[str, Any]:
    """Reservations of 1e-6 epsilon against a cap that fits exactly `fit` of them: with `fit` at
    least the attempts, every charge succeeds (throughput); below, the cap's edge (over-spend)."""
    from gateway.store import datasets, identity, ledger
    from gateway.store.schema import open_store
    from tests.store_support import postgres_schema

    state = tempfile.mkdtemp(prefix="bench-charges-")

    def run(target_dsn: str) -> dict[str, Any]:
        store = open_store(target_dsn, Path(state))
        store.run_sync(identity.ensure_org, "bench", "Bench", "requester")
        store.run_sync(datasets.seed_policy, "residents", "psb", "v1", {"dataset": "residents"}, "bench")
        store.close()
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=_charge_worker, args=(target_dsn, state, clients, charges, fit * 1000, out))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        results = [out.get() for _ in procs]
        for p in procs:
            p.join()
        store = open_store(target_dsn, Path(state))
        account = store.run_sync(ledger.account_usage, ["grant:bench:residents"], "2026-11", write=False)
        store.close()
        ok = sum(r[0] for r in results)
        cap, spent, reserved = account["grant:bench:residents"]
        return {"store": kind, "processes": processes, "clients_per_process": clients,
                "attempts": processes * clients * charges, "succeeded": ok, "refused": sum(r[1] for r in results),
                "charges_per_second": (processes * clients * charges) / max(r[2] for r in results),
                "succeeded_per_second": ok / max(r[2] for r in results), "load_average": os.getloadavg()[0],
                "phase": "throughput (the cap fits every charge)" if fit >= processes * clients * charges
                else "at the cap (more attempts than fit)",
                "fit": cap // 1000, "reserved_nano": reserved, "over_spend_nano": max(0, spent + reserved - cap)}

    try:
        if kind == "postgres":
            with postgres_schema(dsn) as schema_dsn:
                return run(schema_dsn)
        return run("")
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default=str(ROOT / "bench" / "data" / "scale-0.1"))
    parser.add_argument("--quick", action="store_true", help="3 rounds of 4 s, one PostgreSQL round")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 4, 3
    data = Path(args.data)
    if not (data / "residents.parquet").exists():
        from gateway.data.demo import generate

        generate(data, scale=0.1)
    http = bench_http(args.seconds, args.concurrency, data, args.rounds)
    charges = [bench_charges("sqlite", "", 1, 64, 25, fit=1600), bench_charges("sqlite", "", 1, 64, 25)]
    dsn = os.environ.get("GATEWAY_TEST_POSTGRES_DSN", "")
    if dsn:
        per_client = 5 if args.quick else 20
        for _ in range(1 if args.quick else 3):  # rounds: the median is reported
            charges.append(bench_charges("postgres", dsn, 3, 64, per_client, fit=3 * 64 * per_client))
        charges.append(bench_charges("postgres", dsn, 3, 64, 10))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ledger.json").write_text(json.dumps({"http": http, "charges": charges,
                                                     "load_average": os.getloadavg()[0]}, indent=2))
    lines = ["# Ledger benchmark", "",
             f"Cached metered calls over HTTP ({http['concurrency']} connections, {http['rounds']} interleaved "
             f"rounds of {http['seconds']} s, medians; JWT + grant read + cache lookup + usage record "
             f"committed per call; load generator: {http['generator']}, on the same 2 cores; "
             f"load average {http['load_average']:.1f}):", "",
             "| target | requests/s | p50 ms | p99 ms |", "|---|---|---|---|",
             f"| bare aiohttp JSON handler | {http['bare']['rps']:.0f} | {http['bare']['p50_ms']:.1f} | "
             f"{http['bare']['p99_ms']:.1f} |",
             f"| gateway, cached metered call | {http['cached']['rps']:.0f} | {http['cached']['p50_ms']:.1f} | "
             f"{http['cached']['p99_ms']:.1f} |",
             f"| gateway's HTTP stack alone (`GET /healthz`: middlewares, no token, no store) | "
             f"{http['stack']['rps']:.0f} | {http['stack']['p50_ms']:.1f} | {http['stack']['p99_ms']:.1f} |", "",
             f"The stack alone reaches {http['stack_ratio']:.0%} of the bare handler: the ceiling of any call "
             "through this gateway in one process.", "",
             f"Ratio: **{http['ratio']:.0%}** of the bare handler (median of per-round ratios "
             f"{', '.join(f'{r:.0%}' for r in http['ratios'])}; target at least 40%).", "",
             "Budget charges (concurrent charges of one account share a transaction on PostgreSQL, "
             "store/pg_group.py; the cap fits exactly `fit` charges; charges/s counts every attempt, "
             "refusals included):", "",
             "| store | phase | processes x clients | attempts | succeeded | fit | charges/s | over-spend | load avg |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in charges:
        lines.append(f"| {c['store']} | {c['phase']} | {c['processes']} x {c['clients_per_process']} | "
                     f"{c['attempts']} | {c['succeeded']} | {c['fit']} | {c['charges_per_second']:.0f} | "
                     f"{c['over_spend_nano']} | {c['load_average']:.1f} |")
    (RESULTS / "ledger.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(c["over_spend_nano"] == 0 and c["succeeded"] <= c["fit"] for c in charges) else 1


if __name__ == "__main__":
    sys.exit(main())
