"""Where a release's time goes beyond plain polars (issue 18 point 1), in-process and interleaved.

Steps of one release, each timed alone over the same prepared Arrow IPC file:
  - `pickle`: the checked plan there and back (what crosses the worker's pipe);
  - `compile (cached)`: the compiled measurement looked up (calibration is once per plan);
  - `measurement call`: our plan handed to OpenDP, checked against the domain, made a OnceFrame;
  - `OpenDP collect`: OpenDP evaluates its plan (the noise plugins included);
  - `same plan, Python polars`: the very plan OpenDP collects, collected by the Python polars
    instead (read out with OpenDP's `honest-but-curious` feature, enabled in this profiling
    process only and never in the gateway, R-DP-01);
  - `dp.sum expansion`: the plan as it was with OpenDP's `dp.sum` (which adds null/NaN fills);
  - `shape`: OpenDP's frame made a Release;
  - `worker hop`: a sandbox release on a 1,000-row table (pipe both ways, memory watch, the
    worker's loop), minus the same steps in-process.
Writes bench/results/engine_profile.json and .md. Usage: python bench/engine_profile.py [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import polars as pl  # noqa: E402
from engine_bench import QUERY, floor_query, make_residents  # noqa: E402

from gateway.core.checks import check_plan  # noqa: E402
from gateway.core.sql import parse_sql  # noqa: E402
from gateway.dp import compile as compiler  # noqa: E402
from gateway.dp import release as rel  # noqa: E402
from gateway.dp.sandbox import Sandbox  # noqa: E402
from gateway.dp.snapshot import prepare  # noqa: E402
from gateway.policyfiles import load_policies, shipped_policies_dir  # noqa: E402


def _with_dp_sum(checked: Any) -> Any:
    """The measurement compiled as before issue 18: OpenDP's `dp.sum` sugar."""
    original = compiler._expression

    def old(part: Any, policy: Any, scale: float) -> Any:
        if part.func != "sum":
            return original(part, policy, scale)
        column = policy.column(part.column)
        return pl.col(part.column).dp.sum(compiler.frames.bounds(column), scale=scale).alias(part.label)

    compiler._expression = old
    compiler._compiled.clear()
    try:
        return compiler.compile_plan(checked)
    finally:
        compiler._expression = original
        compiler._compiled.clear()


async def hop(checked: Any, policy: Any, work: Path, runs: int) -> tuple[float, float]:
    """A sandbox release and the same steps in-process, on 1,000 rows: the difference is the hop
    (the pipe both ways, the pickles, the memory watch, the worker's loop and its compile lookup)."""
    small = make_residents(1_000, work)
    sandbox = Sandbox(workers=1, timeout_seconds=60, memory_mb=8_000, cache_dir=work / "hop-cache")
    await sandbox.start()
    try:
        await sandbox.load("residents", policy, small, "hop")
        path = next((work / "hop-cache").glob("residents-*.arrow"))
        compiled = compiler.compile_plan(checked)
        times: dict[str, list[float]] = {"sandbox": [], "inproc": []}
        for _ in range(3):
            await sandbox.release(checked)
        for _ in range(runs):
            t0 = time.perf_counter()
            await sandbox.release(checked)
            times["sandbox"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            # On the worker's engine, so that only the hop differs.
            on_streaming(lambda: rel.run(checked, compiled, pl.scan_ipc(path, memory_map=True), "hop", 0.05))
            times["inproc"].append(time.perf_counter() - t0)
    finally:
        await sandbox.close()
    return statistics.median(times["sandbox"]), statistics.median(times["inproc"])


def on_streaming(run: Callable[[], Any]) -> Any:
    """OpenDP's collect on polars' streaming engine, as a sandbox worker runs it (dp/worker.py)."""
    from gateway.dp.worker import use_engine

    use_engine(True)
    try:
        return run()
    finally:
        use_engine(False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.runs = 5
    work = Path(tempfile.mkdtemp(prefix="engine-profile-"))
    policy = load_policies(shipped_policies_dir())["residents"]
    policy = replace(policy, max_rows=max(policy.max_rows, 2 * args.rows))
    path = prepare(policy, make_residents(args.rows, work), "profile", work / "cache")
    checked = check_plan(parse_sql(QUERY, epsilon=Decimal(1)), policy)
    compiled = compiler.compile_plan(checked)
    before = _with_dp_sum(checked)
    raw = compiled.measurement(pl.scan_ipc(path)).collect()
    import opendp.prelude as dp

    dp.enable_features("honest-but-curious")  # this profiling process only: to read OpenDP's plan out
    steps: dict[str, Callable[[], Any]] = {
        "plain polars (the floor)": lambda: floor_query(pl.scan_ipc(path)),
        "plain polars, streaming engine": lambda: floor_query(pl.scan_ipc(path), "streaming"),
        "OpenDP collect, streaming engine (the workers' default)":
            lambda: on_streaming(lambda: compiled.measurement(pl.scan_ipc(path)).collect()),
        "pickle the checked plan": lambda: pickle.loads(pickle.dumps(checked)),
        "compile (cached)": lambda: compiler.compile_plan(checked),
        "measurement call": lambda: compiled.measurement(pl.scan_ipc(path)),
        "OpenDP collect (incl. measurement call)": lambda: compiled.measurement(pl.scan_ipc(path)).collect(),
        "same plan, Python polars collect": lambda: compiled.measurement(pl.scan_ipc(path)).lazy().collect(),
        "OpenDP collect, dp.sum expansion (before)": lambda: before.measurement(pl.scan_ipc(path)).collect(),
        "shape the release": lambda: rel.shape(checked, compiled, raw, "x", 0.05),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    loads = [os.getloadavg()[0]]
    for _ in range(args.runs):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    sandbox_ms, inproc_ms = (x * 1000 for x in asyncio.run(hop(checked, policy, work, args.runs)))
    medians["worker hop (sandbox minus in-process, 1,000 rows)"] = sandbox_ms - inproc_ms
    doc = {"rows": args.rows, "runs": args.runs, "medians_ms": medians, "load_average": max(loads),
           "hop": {"sandbox_ms": sandbox_ms, "in_process_ms": inproc_ms}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engine_profile.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [f"# Engine profile: one release of the benchmark query, {args.rows:,} rows", "",
             f"Medians of {args.runs} interleaved rounds, in one process; load average (1 min) up to "
             f"{max(loads):.1f} on 2 shared cores. Written by `bench/engine_profile.py`.", "",
             "| step | ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in medians.items()]
    (RESULTS / "engine_profile.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
