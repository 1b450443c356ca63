"""Engine benchmark: a grouped count + mean over 1M and 10M residents.

Measures, interleaved and as medians of several runs on one machine:
  - plain polars on the same aggregation (the floor): over the prepared Arrow IPC file the
    sandbox worker scans, over the source Parquet file, and over a DataFrame in memory;
  - our release through the sandbox (worker process, OpenDP measurement, result shaping);
  - OpenDP's default path (Context over a Parquet scan, `release()` with its scale search);
  - SmartNoise SQL 1.0.10 on the same query (its own venv, bench/.venv-smartnoise).
and the sandbox worker's memory against the Arrow size of the data it holds.

The residents are the demo county's (gateway.data.demo at scale 1), resampled with fresh ids
to the sizes asked. Writes bench/results/engine.md and engine.json.
Usage: python bench/engine_bench.py [--rows 1000000 10000000] [--runs 7] [--smartnoise-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SMARTNOISE_VENV = ROOT / "bench" / ".venv-smartnoise"
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from gateway.core.checks import check_plan  # noqa: E402
from gateway.core.sql import parse_sql  # noqa: E402
from gateway.data.demo import generate  # noqa: E402
from gateway.dp.sandbox import Sandbox  # noqa: E402
from gateway.policyfiles import load_policies, shipped_policies_dir  # noqa: E402

QUERY = ("SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM residents "
         "WHERE age >= 18 GROUP BY township")


def floor_query(frame: pl.LazyFrame) -> pl.DataFrame:
    """The same aggregation in plain polars."""
    return (frame.filter(pl.col("age") >= 18).group_by("township")
            .agg(pl.len().alias("n"), pl.col("income").mean().alias("mean_income")).collect())


def make_residents(rows: int, work: Path) -> Path:
    """The demo residents resampled (with fresh ids) to `rows` rows, as zstd Parquet."""
    target = work / f"residents-{rows}.parquet"
    if target.exists():
        return target
    base_dir = work / "demo"
    if not (base_dir / "residents.parquet").exists():
        generate(base_dir, scale=1.0)
    base = pl.read_parquet(base_dir / "residents.parquet")
    pick = np.random.default_rng(rows).integers(0, base.height, rows)
    frame = base[pick].with_columns(
        person_id=pl.format("P{}", pl.int_range(rows, dtype=pl.Int64)),
        household_id=pl.format("H{}", pl.int_range(rows, dtype=pl.Int64) // 3))
    frame.write_parquet(target, compression="zstd", row_group_size=262_144)
    return target


def timed(run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def opendp_default(parquet: Path, rows: int, runs: int) -> float:
    """OpenDP as documented: a Context over a Parquet scan, then `release()` (its scale search)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    towns = list(load_policies(shipped_policies_dir())["residents"].column("township").categories or ())
    keys = pl.DataFrame({"township": towns})

    def once() -> None:
        context = dp.Context.compositor(
            data=pl.scan_parquet(parquet).select("township", "age", "income"),
            privacy_unit=dp.unit_of(contributions=1), privacy_loss=dp.loss_of(epsilon=1.0),
            split_evenly_over=1, margins=[dp.polars.Margin(by=[], max_length=max(2_000_000, 2 * rows))])
        query = (context.query().filter(pl.col("age") >= 18).group_by("township")
                 .agg(dp.len(signed=True), pl.col("income").fill_nan(0.0).fill_null(0.0).dp.mean((0.0, 2e6)))
                 .with_keys(keys))
        query.release().collect()

    return statistics.median(timed(once) for _ in range(runs))


def smartnoise(parquet: Path, runs: int) -> dict[str, Any] | None:
    python = SMARTNOISE_VENV / "bin" / "python"
    if not python.exists():
        setup = [[sys.executable, "-m", "venv", str(SMARTNOISE_VENV)],
                 [str(SMARTNOISE_VENV / "bin" / "pip"), "install", "-q", "smartnoise-sql==1.0.10", "pyarrow"]]
        for command in setup:
            if subprocess.run(command, check=False).returncode:
                return None
    done = subprocess.run([str(python), str(ROOT / "bench" / "smartnoise_query.py"), str(parquet), str(runs)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def worker_memory(pid: int) -> dict[str, float]:
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
    return fields


async def measure(rows: int, work: Path, runs: int, smartnoise_runs: int, default_runs: int) -> dict[str, Any]:
    parquet = make_residents(rows, work)
    policy = load_policies(shipped_policies_dir())["residents"]
    # The demo policy bounds residents at 2M rows (a public fact OpenDP relies on); a 10M-row
    # county declares its own bound.
    policy = replace(policy, max_rows=max(policy.max_rows, 2 * rows))
    checked = check_plan(parse_sql(QUERY, epsilon=Decimal(1)), policy)
    shutil.rmtree(work / f"cache-{rows}", ignore_errors=True)  # time a real preparation
    sandbox = Sandbox(workers=1, timeout_seconds=300, memory_mb=16_384, cache_dir=work / f"cache-{rows}")
    await sandbox.start()
    try:
        idle = worker_memory(next(iter(sandbox._workers)).pid)
        started = time.perf_counter()
        await sandbox.load("residents", policy, parquet, f"bench-{rows}")
        load_s = time.perf_counter() - started
        prepared = next(sandbox.cache_dir.glob("residents-*.arrow"))
        in_memory = pl.read_ipc(prepared, memory_map=False)
        for _ in range(2):  # warm: compile cache, page cache
            await sandbox.release(checked)
            floor_query(pl.scan_ipc(prepared))
        times: dict[str, list[float]] = {k: [] for k in ("polars_ipc", "polars_parquet", "polars_memory", "release")}
        for _ in range(runs):
            times["polars_ipc"].append(timed(lambda: floor_query(pl.scan_ipc(prepared))))
            times["polars_parquet"].append(timed(lambda: floor_query(pl.scan_parquet(parquet))))
            times["polars_memory"].append(timed(lambda: floor_query(in_memory.lazy())))
            started = time.perf_counter()
            await sandbox.release(checked)
            times["release"].append(time.perf_counter() - started)
        memory = worker_memory(next(iter(sandbox._workers)).pid)
        arrow_mb = in_memory.estimated_size() / 2**20
    finally:
        await sandbox.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {"rows": rows, "runs": runs, "medians_s": medians, "load_s": load_s,
                              "arrow_mb": arrow_mb, "worker_memory_mb": memory, "idle_worker_memory_mb": idle}
    result["opendp_default_s"] = opendp_default(parquet, rows, default_runs) if default_runs else None
    result["smartnoise"] = smartnoise(parquet, smartnoise_runs) if smartnoise_runs else None
    return result


def ratios(r: dict[str, Any]) -> dict[str, float | None]:
    m = r["medians_s"]
    sn = r["smartnoise"] or {}
    out: dict[str, float | None] = {
        "release_over_polars_ipc": m["release"] / m["polars_ipc"],
        "release_over_polars_parquet": m["release"] / m["polars_parquet"],
        "release_over_polars_memory": m["release"] / m["polars_memory"],
        "worker_rss_over_arrow": r["worker_memory_mb"]["VmRSS"] / r["arrow_mb"],
        "worker_growth_over_arrow": (r["worker_memory_mb"]["VmRSS"] - r["idle_worker_memory_mb"]["VmRSS"])
        / r["arrow_mb"],
        "opendp_default_over_release": r["opendp_default_s"] / m["release"] if r["opendp_default_s"] else None,
        "smartnoise_query_over_release": sn["query_median_s"] / m["release"] if sn else None,
        "smartnoise_cold_over_release": sn["cold_median_s"] / m["release"] if sn else None,
    }
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "# Engine benchmark: grouped count + mean (DP release vs plain polars vs SmartNoise SQL)", "",
        f"`{QUERY}` with epsilon 1.0, public township keys. Machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, polars {pl.__version__}. "
        "Medians of interleaved runs; written by `bench/engine_bench.py`.", "",
        "| rows | plain polars, same IPC file | plain polars, Parquet | plain polars, in memory "
        "| **our release (sandbox)** | OpenDP default `release()` | SmartNoise SQL query | SmartNoise incl. reader |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m, sn = r["medians_s"], r["smartnoise"] or {}
        floors = ("polars_ipc", "polars_parquet", "polars_memory")
        cells = [f"{r['rows']:,}", *(f"{m[k] * 1000:.1f} ms" for k in floors),
                 f"**{m['release'] * 1000:.1f} ms**",
                 f"{r['opendp_default_s']:.2f} s" if r["opendp_default_s"] else "n/a",
                 f"{sn['query_median_s']:.2f} s" if sn else "n/a", f"{sn['cold_median_s']:.2f} s" if sn else "n/a"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| rows | release / polars (same IPC) | release / polars (Parquet) | release / polars (memory) "
              "| SmartNoise query / release | OpenDP default / release | worker RSS / Arrow size "
              "| worker RSS growth from idle / Arrow size |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        q = ratios(r)
        fmt = [f"{q[k]:.2f}x" if q[k] is not None else "n/a" for k in (
            "release_over_polars_ipc", "release_over_polars_parquet", "release_over_polars_memory",
            "smartnoise_query_over_release", "opendp_default_over_release", "worker_rss_over_arrow",
            "worker_growth_over_arrow")]
        lines.append(f"| {r['rows']:,} | " + " | ".join(fmt) + " |")
    lines += ["", "Arrow size of the held data, worker memory and snapshot preparation:", ""]
    for r in results:
        mem, idle = r["worker_memory_mb"], r["idle_worker_memory_mb"]
        lines.append(f"- {r['rows']:,} rows: Arrow {r['arrow_mb']:.0f} MB; worker RSS {mem['VmRSS']:.0f} MB "
                     f"(private {mem['RssAnon']:.0f} MB, mapped files {mem['RssFile']:.0f} MB, "
                     f"peak {mem['VmHWM']:.0f} MB; idle before the load {idle['VmRSS']:.0f} MB); "
                     f"validating and preparing the snapshot {r['load_s']:.1f} s (in its own process).")
    sn_costs = {tuple(r["smartnoise"]["privacy_cost"]) for r in results if r["smartnoise"]}
    lines += ["", "SmartNoise SQL 1.0.10 runs in bench/.venv-smartnoise (it needs opendp < 0.15), from the same "
              "Parquet file read into pandas; its epsilon is per mechanism, so it is set to 1/3 for this "
              f"query's three mechanisms (its reported cost: {sorted(sn_costs)}). 'query' times `execute` on a "
              "reader built once; 'incl. reader' adds `from_df` per query."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--smartnoise-runs", type=int, default=3)
    parser.add_argument("--opendp-default-runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="folder for generated data (default: temporary)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="engine-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        results = [asyncio.run(measure(rows, work, args.runs, args.smartnoise_runs if rows <= 1_000_000
                                       else min(args.smartnoise_runs, 1), args.opendp_default_runs))
                   for rows in args.rows]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"query": QUERY, "results": results, "ratios": {str(r["rows"]): ratios(r) for r in results}}
    (RESULTS / "engine.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "engine.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
