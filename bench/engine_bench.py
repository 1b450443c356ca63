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
Three more shapes are timed the same way against their own plain-polars floor over the same
IPC file (issue 18 point 1): an ungrouped sum, a private-key group-by (delta > 0, thresholded)
and a grouped median. The load average is recorded beside every figure (a shared 2-core machine).
Usage: python bench/engine_bench.py [--rows 1000000 10000000] [--runs 7] [--smartnoise-runs 3] [--quick]
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


# Plain polars runs each floor on both its engines, and the faster one is the floor: the sandbox
# workers run releases on the streaming engine (setting streaming_engine), and the comparison
# must not flatter them by holding plain polars to its slower engine.
ENGINES = ("in-memory", "streaming")


def floor_query(frame: pl.LazyFrame, engine: Any = "in-memory") -> pl.DataFrame:
    """The same aggregation in plain polars."""
    return (frame.filter(pl.col("age") >= 18).group_by("township")
            .agg(pl.len().alias("n"), pl.col("income").mean().alias("mean_income")).collect(engine=engine))


# Three more shapes (issue 18 point 1): SQL, delta, and the same question in plain polars.
SHAPES: dict[str, tuple[str, str, Callable[[pl.LazyFrame, Any], pl.DataFrame]]] = {
    "sum": ("SELECT SUM(income) AS total FROM residents WHERE age >= 18", "0",
            lambda f, e: f.filter(pl.col("age") >= 18).select(pl.col("income").sum()).collect(engine=e)),
    "private_keys": ("SELECT industry, COUNT(*) AS n FROM residents GROUP BY industry", "1e-8",
                     lambda f, e: f.group_by("industry").agg(pl.len().alias("n")).collect(engine=e)),
    "median": ("SELECT township, MEDIAN(income) AS median_income FROM residents GROUP BY township", "0",
               lambda f, e: f.group_by("township").agg(pl.col("income").median()).collect(engine=e)),
}


def fastest_engine(run: Callable[[str], Any]) -> tuple[float, dict[str, float]]:
    """One round of a floor on each engine: the faster time, and both."""
    each = {engine: timed(lambda engine=engine: run(engine)) for engine in ENGINES}
    return min(each.values()), each


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


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
    policy = replace(policy, max_rows=max(policy.max_rows, 2 * rows), private_keys_allowed=True,
                     private_keys_delta=max(policy.private_keys_delta, Decimal("1e-8")))
    checked = check_plan(parse_sql(QUERY, epsilon=Decimal(1)), policy)
    shapes = {name: check_plan(parse_sql(sql, epsilon=Decimal(1), delta=Decimal(delta)), policy)
              for name, (sql, delta, _) in SHAPES.items()}
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
            for engine in ENGINES:
                floor_query(pl.scan_ipc(prepared), engine)
            for name, shape in shapes.items():
                await sandbox.release(shape)
                for engine in ENGINES:
                    SHAPES[name][2](pl.scan_ipc(prepared), engine)
        times: dict[str, list[float]] = {k: [] for k in ("polars_ipc", "polars_parquet", "polars_memory", "release",
                                                         *(f"polars_ipc_{e}" for e in ENGINES))}
        shape_times: dict[str, dict[str, list[float]]] = {
            n: {"release": [], "polars_ipc": [], **{f"polars_ipc_{e}": [] for e in ENGINES}} for n in shapes}
        loads = [load_average()]
        for _ in range(runs):
            best, each = fastest_engine(lambda e: floor_query(pl.scan_ipc(prepared), e))
            times["polars_ipc"].append(best)
            for engine, seconds in each.items():
                times[f"polars_ipc_{engine}"].append(seconds)
            times["polars_parquet"].append(fastest_engine(lambda e: floor_query(pl.scan_parquet(parquet), e))[0])
            times["polars_memory"].append(fastest_engine(lambda e: floor_query(in_memory.lazy(), e))[0])
            started = time.perf_counter()
            await sandbox.release(checked)
            times["release"].append(time.perf_counter() - started)
            for name, shape in shapes.items():
                floor = SHAPES[name][2]
                best, each = fastest_engine(lambda e, floor=floor: floor(pl.scan_ipc(prepared), e))
                shape_times[name]["polars_ipc"].append(best)
                for engine, seconds in each.items():
                    shape_times[name][f"polars_ipc_{engine}"].append(seconds)
                started = time.perf_counter()
                await sandbox.release(shape)
                shape_times[name]["release"].append(time.perf_counter() - started)
            loads.append(load_average())
        await asyncio.sleep(0.5)  # the worker trims its heap after replying (dp/worker.py)
        memory = worker_memory(next(iter(sandbox._workers)).pid)
        arrow_mb = in_memory.estimated_size() / 2**20
    finally:
        await sandbox.close()
    medians = {k: statistics.median(v) for k, v in times.items()}
    shape_out = {}
    for name, tt in shape_times.items():
        rel, floor = statistics.median(tt["release"]), statistics.median(tt["polars_ipc"])
        shape_out[name] = {"sql": SHAPES[name][0], "delta": SHAPES[name][1], "release_s": rel,
                           "polars_ipc_s": floor, "ratio": rel / floor,
                           **{f"polars_ipc_{e}_s": statistics.median(tt[f"polars_ipc_{e}"]) for e in ENGINES},
                           "ratio_per_round": [r / f for r, f in zip(tt["release"], tt["polars_ipc"], strict=True)]}
    result: dict[str, Any] = {"rows": rows, "runs": runs, "medians_s": medians, "load_s": load_s,
                              "arrow_mb": arrow_mb, "worker_memory_mb": memory, "idle_worker_memory_mb": idle,
                              "shapes": shape_out, "load_average": loads}
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
        "Medians of interleaved runs; written by `bench/engine_bench.py`. Each plain-polars floor is the faster "
        "of polars' in-memory and streaming engines, run in the same round (the sandbox workers stream).", "",
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
    lines += ["", "Three more shapes, each against the same question in plain polars over the same IPC file "
              "(medians of interleaved rounds; target 1.5x):", "",
              "| rows | shape | SQL | plain polars (in-memory / streaming) | our release | ratio |",
              "|---:|---|---|---:|---:|---:|"]
    for r in results:
        for name, sh in r["shapes"].items():
            delta = f" (delta {sh['delta']})" if sh["delta"] != "0" else ""
            engines = " / ".join(f"{sh[f'polars_ipc_{e}_s'] * 1000:.1f}" for e in ENGINES)
            lines.append(f"| {r['rows']:,} | {name} | `{sh['sql']}`{delta} | {sh['polars_ipc_s'] * 1000:.1f} ms "
                         f"({engines}) "
                         f"| {sh['release_s'] * 1000:.1f} ms | {sh['ratio']:.2f}x |")
    lines += ["", "Load average (1, 5, 15 min) during the rounds: " + "; ".join(
        f"{r['rows']:,} rows: {r['load_average'][0][0]:.1f} at the start, max 1-min "
        f"{max(x[0] for x in r['load_average']):.1f}" for r in results) + " (2 cores, shared with other work)."]
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
    parser.add_argument("--quick", action="store_true", help="1M and 10M rows, 3 runs, no SmartNoise/OpenDP default")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.smartnoise_runs, args.opendp_default_runs = 3, 0, 0
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
    payload = {"query": QUERY, "results": results, "ratios": {str(r["rows"]): ratios(r) for r in results},
               "shapes": {str(r["rows"]): r["shapes"] for r in results},
               "load_average": [max(x[0] for x in r["load_average"]) for r in results]}
    (RESULTS / "engine.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / "engine.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
