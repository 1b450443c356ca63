"""Concurrency: fresh releases per second with 1, 2 and 4 sandbox workers (issue 18 point 5).

The demo county's residents (resampled to `--rows`, default 1M) prepared once; for each worker
count, a sandbox of that many workers and twice as many callers asking, for `--seconds`, grouped
counts and means that are all different (the age band moves), so every release compiles and
calibrates its own measurement and reads the data: no cache of ours or OpenDP's helps. Counted
at the sandbox (the engine's throughput; the ledger's cost per release is in ledger_bench.py).
The fairness half of point 5 (one organisation's p99 while others flood) is fairness_bench.py.
Writes bench/results/concurrency.json and concurrency.md.
Usage: python bench/concurrency_bench.py [--rows 1000000] [--seconds 20] [--workers 1 2 4] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine_bench import make_residents  # noqa: E402

from gateway.core.checks import check_plan  # noqa: E402
from gateway.core.sql import parse_sql  # noqa: E402
from gateway.dp.sandbox import Sandbox  # noqa: E402
from gateway.policyfiles import load_policies, shipped_policies_dir  # noqa: E402

FRESH = ("SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
         "WHERE age >= {low} AND age <= {high} GROUP BY township")


async def measure(workers: int, parquet: Path, rows: int, seconds: float, cache: Path) -> dict[str, Any]:
    policy = load_policies(shipped_policies_dir())["residents"]
    policy = replace(policy, max_rows=max(policy.max_rows, 2 * rows))
    sandbox = Sandbox(workers=workers, timeout_seconds=300, memory_mb=16_384, cache_dir=cache)
    await sandbox.start()
    counter = itertools.count(workers * 100_000)
    latencies: list[float] = []
    try:
        await sandbox.load("residents", policy, parquet, f"conc-{rows}")

        def fresh() -> Any:
            n = next(counter)
            sql = FRESH.format(low=n % 40, high=41 + (n // 40) % 69)
            return check_plan(parse_sql(sql, epsilon=Decimal("0.01") + Decimal(n) / 10**9), policy)

        for _ in range(workers):  # every worker maps the snapshot before the clock starts
            await asyncio.gather(*(sandbox.release(fresh(), org=f"warm-{i}") for i in range(workers)))
        deadline = time.perf_counter() + seconds

        async def caller(i: int) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await sandbox.release(fresh(), org=f"org-{i}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(2 * workers)))
        elapsed = time.perf_counter() - started
    finally:
        await sandbox.close()
    latencies.sort()
    return {"workers": workers, "callers": 2 * workers, "releases": len(latencies),
            "releases_per_s": len(latencies) / elapsed, "p50_s": statistics.median(latencies),
            "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "load_average": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--quick", action="store_true", help="8 s per worker count")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 8
    work = Path(tempfile.mkdtemp(prefix="concurrency-bench-"))
    try:
        parquet = make_residents(args.rows, work)
        runs = [asyncio.run(measure(n, parquet, args.rows, args.seconds, work / "cache")) for n in args.workers]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"rows": args.rows, "seconds": args.seconds, "cpus": os.cpu_count(),
           "workers": {str(r["workers"]): r for r in runs}, "load_average": max(r["load_average"] for r in runs)}
    lines = ["# Concurrency: fresh releases per second by sandbox workers", "",
             f"{args.rows:,} residents; every release a different grouped count + mean (compiled, calibrated "
             f"and run afresh); two callers per worker for {args.seconds:g} s; {os.cpu_count()} cores shared "
             "with other work. Written by `bench/concurrency_bench.py`.", "",
             "| workers | releases | releases/s | p50 s | p99 s | load avg (1 min) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['workers']} | {r['releases']} | {r['releases_per_s']:.1f} | {r['p50_s']:.3f} | "
                     f"{r['p99_s']:.3f} | {r['load_average']:.1f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "concurrency.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "concurrency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
