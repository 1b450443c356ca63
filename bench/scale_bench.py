"""Scale: how preparation, releases, worker memory and start-up grow with rows (issue 18 point 4).

For each size, a residents table of that many rows (the demo county's columns resampled, or the
demo generator itself at `--demo-scale`), then on a sandbox of `--workers` release workers:
  - snapshot preparation (validate, type, write the Arrow IPC file), in its own process, cold;
  - start-up with the dataset: a new sandbox started and the prepared snapshot loaded again (warm);
  - the benchmark release (grouped count + mean), p50 and p99 over `--runs`, two at a time so
    that every worker maps the snapshot;
  - each worker's memory: private (anonymous) growth from idle and mapped-file pages; the total
    counts the mapped snapshot once (the page cache holds one copy however many workers map it),
    against the Arrow size of the prepared file.
Writes bench/results/scale.json, scale.md and scale.svg (log-log). Sizes that do not fit the
free disk or memory are skipped with the reason.
Usage: python bench/scale_bench.py [--rows 1000000 10000000 100000000] [--demo-scale 10 100] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from engine_bench import QUERY, worker_memory  # noqa: E402

from gateway.core.checks import check_plan  # noqa: E402
from gateway.core.sql import parse_sql  # noqa: E402
from gateway.data.demo import generate  # noqa: E402
from gateway.dp.sandbox import Sandbox  # noqa: E402
from gateway.policyfiles import load_policies, shipped_policies_dir  # noqa: E402

STORED = ["township", "age", "sex", "education", "industry", "employment_status", "income"]
BYTES_PER_ROW = 40  # a generous bound of one stored row in Parquet + Arrow + the resampling


def synthetic(rows: int, work: Path) -> Path:
    """The demo residents' stored columns resampled to `rows`, written in 10M-row pieces."""
    target = work / f"synthetic-{rows}.parquet"
    base_dir = work / "demo-1"
    if not (base_dir / "residents.parquet").exists():
        generate(base_dir, scale=1.0)
    base = pl.read_parquet(base_dir / "residents.parquet", columns=STORED)
    rng = np.random.default_rng(rows)
    piece = 10_000_000
    import pyarrow.parquet as pq

    writer = None
    try:
        for start in range(0, rows, piece):
            chunk = base[rng.integers(0, base.height, min(piece, rows - start))].to_arrow()
            writer = writer or pq.ParquetWriter(target, chunk.schema, compression="zstd")
            writer.write_table(chunk, row_group_size=1_000_000)
    finally:
        if writer is not None:
            writer.close()
    return target


async def measure(rows: int, parquet: Path, workers: int, runs: int, cache: Path, made_s: float,
                  source: str) -> dict[str, Any]:
    policy = load_policies(shipped_policies_dir())["residents"]
    policy = replace(policy, max_rows=max(policy.max_rows, 2 * rows))
    checked = check_plan(parse_sql(QUERY, epsilon=Decimal(1)), policy)
    shutil.rmtree(cache, ignore_errors=True)
    sandbox = Sandbox(workers=workers, timeout_seconds=900, memory_mb=20_000, cache_dir=cache)
    await sandbox.start()
    try:
        pids = [w.pid for w in sandbox._workers]
        idle = {pid: worker_memory(pid) for pid in pids}
        started = time.perf_counter()
        await sandbox.load("residents", policy, parquet, f"scale-{rows}")
        prepare_s = time.perf_counter() - started
        for _ in range(2):  # every worker swaps to the snapshot and maps it
            await asyncio.gather(*(sandbox.release(checked, org=f"o{i}") for i in range(workers)))
        latencies: list[float] = []

        async def timed(i: int) -> None:
            t0 = time.perf_counter()
            await sandbox.release(checked, org=f"o{i}")
            latencies.append(time.perf_counter() - t0)

        with PeakSampler(pids) as sampled:
            for _ in range(max(1, runs // workers)):
                await asyncio.gather(*(timed(i) for i in range(workers)))
        await asyncio.sleep(0.5)  # the worker trims its heap after replying (dp/worker.py)
        memory = {pid: worker_memory(pid) for pid in pids}
    finally:
        await sandbox.close()
    arrow_mb = sum(p.stat().st_size for p in cache.glob("residents-*.arrow")) / 2**20
    started = time.perf_counter()  # start-up with the dataset, its snapshot already prepared
    again = Sandbox(workers=workers, timeout_seconds=900, memory_mb=20_000, cache_dir=cache)
    await again.start()
    await again.load("residents", policy, parquet, f"scale-{rows}")
    await asyncio.gather(*(again.release(checked, org=f"o{i}") for i in range(workers)))
    restart_s = time.perf_counter() - started
    await again.close()
    shutil.rmtree(cache, ignore_errors=True)
    latencies.sort()
    growth = [memory[p]["RssAnon"] - idle[p]["RssAnon"] for p in pids]
    mapped = max(memory[p]["RssFile"] - idle[p]["RssFile"] for p in pids)
    # The peak during releases: each worker's private memory sampled every few ms (the kernel
    # keeps no high-water mark of private memory alone), plus the mapped snapshot's pages once
    # (the page cache holds one copy however many workers map it).
    peak_private = [sampled.peak[p]["RssAnon"] - idle[p]["RssAnon"] for p in pids]
    peak_mapped = max(sampled.peak[p]["RssFile"] - idle[p]["RssFile"] for p in pids)
    # Each worker's own high-water mark, mapped pages included, summed: what the last figures
    # used, which counts the shared snapshot once per worker.
    peak = [memory[p]["VmHWM"] - idle[p]["VmRSS"] for p in pids]
    return {"rows": rows, "source": source, "made_s": made_s, "workers": workers, "prepare_s": prepare_s,
            "restart_with_dataset_s": restart_s, "release_p50_s": statistics.median(latencies),
            "release_p99_s": latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)],
            "releases": len(latencies), "arrow_mb": arrow_mb, "parquet_mb": parquet.stat().st_size / 2**20,
            "worker_private_growth_mb": growth, "worker_mapped_growth_mb_max": mapped,
            "workers_growth_over_arrow": (sum(growth) + mapped) / arrow_mb,
            "worker_peak_private_mb": peak_private, "worker_peak_mapped_mb_max": peak_mapped,
            "workers_peak_over_arrow": (sum(peak_private) + peak_mapped) / arrow_mb,
            "worker_peak_growth_mb": peak, "workers_hwm_sum_over_arrow": sum(peak) / arrow_mb,
            "worker_memory_mb": {str(p): memory[p] for p in pids}, "load_average": os.getloadavg()[0]}


class PeakSampler:
    """The highest private (RssAnon) and mapped (RssFile) memory of each worker while in use."""

    def __init__(self, pids: list[int], every_s: float = 0.005) -> None:
        self.pids, self.every_s = pids, every_s
        self.peak = {p: {"RssAnon": 0.0, "RssFile": 0.0} for p in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                now = worker_memory(pid)
                for key in ("RssAnon", "RssFile"):
                    self.peak[pid][key] = max(self.peak[pid][key], now[key])
            time.sleep(self.every_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fits(rows: int, work: Path) -> str:
    free = shutil.disk_usage(work).free
    need = rows * BYTES_PER_ROW * 2
    if free < need:
        return f"needs ~{need / 2**30:.0f} GiB of disk, {free / 2**30:.0f} GiB free"
    avail = int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) * 1024
    if avail < rows * BYTES_PER_ROW:
        return f"needs ~{rows * BYTES_PER_ROW / 2**30:.0f} GiB of memory, {avail / 2**30:.0f} GiB available"
    return ""


def svg(runs: list[dict[str, Any]]) -> str:
    """A log-log plot of seconds against rows (no plotting library: a few lines of SVG)."""
    series = {"preparation (s)": "prepare_s", "start-up with the dataset (s)": "restart_with_dataset_s",
              "release p50 (s)": "release_p50_s", "release p99 (s)": "release_p99_s"}
    colours = ["#1b6ca8", "#d1495b", "#2e933c", "#edae49"]
    points = [(r["rows"], r[k]) for r in runs for k in series.values() if r[k] > 0]
    if not points:
        return ""
    x0, x1 = math.floor(math.log10(min(p[0] for p in points))), math.ceil(math.log10(max(p[0] for p in points)))
    y0, y1 = math.floor(math.log10(min(p[1] for p in points))), math.ceil(math.log10(max(p[1] for p in points)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    w, h, m = 640, 400, 60

    def px(v: float) -> float:
        return m + (math.log10(v) - x0) / (x1 - x0) * (w - 2 * m)

    def py(v: float) -> float:
        return h - m - (math.log10(v) - y0) / (y1 - y0) * (h - 2 * m)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           'font-size="11">', f'<rect width="{w}" height="{h}" fill="white"/>']
    for e in range(x0, x1 + 1):
        out.append(f'<line x1="{px(10**e):.1f}" y1="{m}" x2="{px(10**e):.1f}" y2="{h - m}" stroke="#ddd"/>'
                   f'<text x="{px(10**e):.1f}" y="{h - m + 15}" text-anchor="middle">1e{e}</text>')
    for e in range(y0, y1 + 1):
        out.append(f'<line x1="{m}" y1="{py(10**e):.1f}" x2="{w - m}" y2="{py(10**e):.1f}" stroke="#ddd"/>'
                   f'<text x="{m - 5}" y="{py(10**e) + 4:.1f}" text-anchor="end">1e{e}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">rows (log)</text>')
    out.append(f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" text-anchor="middle">'
               'seconds (log)</text>')
    for i, (label, key) in enumerate(series.items()):
        pts = [(px(r["rows"]), py(r[key])) for r in runs if r[key] > 0]
        out.append(f'<polyline fill="none" stroke="{colours[i]}" stroke-width="2" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colours[i]}"/>' for x, y in pts]
        out.append(f'<text x="{m + 10}" y="{m + 15 * i + 5}" fill="{colours[i]}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def slope(runs: list[dict[str, Any]], key: str) -> float | None:
    """Growth exponent between the smallest and the largest size (1.0: linear in rows)."""
    if len(runs) < 2 or runs[0][key] <= 0 or runs[-1][key] <= 0:
        return None
    a, b = runs[0], runs[-1]
    return math.log(b[key] / a[key]) / math.log(b["rows"] / a["rows"])


def markdown(doc: dict[str, Any]) -> str:
    runs = doc["runs"]
    lines = ["# Scale: preparation, releases, memory and start-up against rows", "",
             f"Residents' stored columns; {doc['workers']} release workers sharing one mapped snapshot; "
             f"the benchmark query (`{QUERY}`); {doc['cpus']} cores shared with other work. "
             "Written by `bench/scale_bench.py`; plot: `scale.svg` (log-log).", "",
             "| rows | source | Parquet MB | Arrow MB | preparation s | start-up with the dataset s "
             "| release p50 s | release p99 s | workers' memory between releases / Arrow "
             "| workers' peak during releases / Arrow | sum of each worker's high-water mark / Arrow | load avg |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['rows']:,} | {r['source']} | {r['parquet_mb']:.0f} | {r['arrow_mb']:.0f} | "
                     f"{r['prepare_s']:.1f} | {r['restart_with_dataset_s']:.1f} | {r['release_p50_s']:.3f} | "
                     f"{r['release_p99_s']:.3f} | {r['workers_growth_over_arrow']:.2f}x | "
                     f"{r['workers_peak_over_arrow']:.2f}x | {r['workers_hwm_sum_over_arrow']:.2f}x | "
                     f"{r['load_average']:.1f} |")
    lines += ["", "Growth exponents from the smallest to the largest size (1.0 is linear in rows): " + ", ".join(
        f"{k} {v:.2f}" for k, v in doc["exponents"].items() if v is not None) + "."]
    lines += ["", "Memory per worker (MB): " + "; ".join(
        f"{r['rows']:,} rows: private growth {', '.join(f'{g:.0f}' for g in r['worker_private_growth_mb'])}, "
        f"mapped {r['worker_mapped_growth_mb_max']:.0f}; during releases private "
        f"{', '.join(f'{g:.0f}' for g in r['worker_peak_private_mb'])}, mapped {r['worker_peak_mapped_mb_max']:.0f}, "
        f"high-water mark {', '.join(f'{g:.0f}' for g in r['worker_peak_growth_mb'])}" for r in runs)
        + ". 'Between releases' is private growth from idle after the worker trimmed its heap, plus mapped pages "
        "counted once. 'Peak during releases' is each worker's highest private memory above idle, sampled every "
        "5 ms while releases ran (two at a time), summed, plus the mapped snapshot's pages once. The "
        "high-water-mark column is the kernel's VmHWM per worker, which counts the shared mapped pages once per "
        "worker (the figure the last run reported)."]
    for s in doc["skipped"]:
        lines.append(f"\nNot measured: {s['rows']:,} rows ({s['reason']}).")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000, 100_000_000])
    parser.add_argument("--demo-scale", type=float, nargs="*", default=[10, 100],
                        help="also the demo generator's own residents at these scales (10: 5M residents, "
                        "100: 50M); none with --quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="1M and 10M rows, 6 runs")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs, args.demo_scale = [1_000_000, 10_000_000], 6, []
    work = args.work or Path(tempfile.mkdtemp(prefix="scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runs, skipped = [], []
    try:
        sources: list[tuple[int, str, float | None]] = [(n, "resampled", None) for n in args.rows]
        sources += [(int(500_000 * s), f"demo generator --scale {s:g}", s) for s in args.demo_scale]
        for rows, source, scale in sorted(sources):
            reason = fits(rows, work)
            if reason:
                skipped.append({"rows": rows, "source": source, "reason": reason})
                continue
            started = time.perf_counter()
            if scale is None:
                parquet = synthetic(rows, work)
            else:
                parquet = generate(work / f"demo-{scale:g}", scale=scale)["residents"]
            made_s = time.perf_counter() - started
            print(f"scale: {rows:,} rows ({source}) made in {made_s:.0f} s", flush=True)
            runs.append(asyncio.run(measure(rows, parquet, args.workers, args.runs, work / "cache", made_s, source)))
            if scale is None:
                parquet.unlink()
            else:
                shutil.rmtree(work / f"demo-{scale:g}", ignore_errors=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    runs.sort(key=lambda r: r["rows"])
    doc = {"workers": args.workers, "cpus": os.cpu_count(), "runs": runs, "skipped": skipped,
           "exponents": {k: slope(runs, k) for k in ("prepare_s", "restart_with_dataset_s", "release_p50_s",
                                                      "arrow_mb")},
           "load_average": max((r["load_average"] for r in runs), default=None)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "scale.md").write_text(markdown(doc))
    (RESULTS / "scale.svg").write_text(svg(runs))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
