"""`make bench`'s last step: every measured figure beside its target (issue 18 point 6).

Reads what the benches wrote in bench/results/*.json and writes bench/results/summary.json (one
object: each figure's value at the top level, with `figures` saying per figure its target, whether
it is met, where it comes from and, when it could not be taken, why) and summary.md (a table).
A figure that no bench measured is null with its reason: never a number made up here.
Usage: python bench/summary.py
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Figure:
    key: str
    what: str
    source: str  # results file (without .json)
    get: Callable[[dict[str, Any]], Any]
    target: str = "report"
    met: Callable[[float], bool] | None = None
    unit: str = ""


def _engine(rows: int, shape: str = "benchmark") -> Callable[[dict[str, Any]], Any]:
    def get(doc: dict[str, Any]) -> Any:
        if shape == "benchmark":
            return doc["ratios"][str(rows)]["release_over_polars_ipc"]
        return doc["shapes"][str(rows)][shape]["ratio"]
    return get


def _engine_field(rows: int, key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda doc: doc["ratios"][str(rows)][key]


def _charges(kind: str, key: str) -> Callable[[dict[str, Any]], Any]:
    """The median over the throughput rounds (the cap fits every charge) of one store."""
    def get(doc: dict[str, Any]) -> Any:
        found = [c[key] for c in doc["charges"] if c["store"] == kind and c.get("phase", "").startswith("throughput")]
        if not found:
            raise KeyError(f"no {kind} throughput run (for PostgreSQL: GATEWAY_TEST_POSTGRES_DSN unset?)")
        return statistics.median(found)
    return get


def _overspend(doc: dict[str, Any]) -> int:
    return sum(c["over_spend_nano"] + max(0, c["succeeded"] - c["fit"]) for c in doc["charges"])


FIGURES = [
    Figure("engine_ratio_1m", "DP release / plain polars (same IPC), grouped count+mean, 1M rows", "engine",
           _engine(1_000_000), "≤ 1.5", lambda v: v <= 1.5, "x"),
    Figure("engine_ratio_10m", "DP release / plain polars (same IPC), grouped count+mean, 10M rows", "engine",
           _engine(10_000_000), "≤ 1.5", lambda v: v <= 1.5, "x"),
    *(Figure(f"engine_ratio_{shape}_{tag}", f"DP release / plain polars, {what}, {tag.upper()} rows", "engine",
             _engine(rows, shape), "≤ 1.5", lambda v: v <= 1.5, "x")
      for rows, tag in ((1_000_000, "1m"), (10_000_000, "10m"))
      for shape, what in (("sum", "ungrouped sum"), ("private_keys", "private-key group-by"),
                          ("median", "grouped median"))),
    Figure("smartnoise_over_release_1m", "SmartNoise SQL query time / our release, 1M rows", "engine",
           _engine_field(1_000_000, "smartnoise_query_over_release"), "report (> 1: we are faster)", None, "x"),
    Figure("worker_rss_over_arrow_10m", "one worker's RSS growth / Arrow size, 10M rows", "engine",
           _engine_field(10_000_000, "worker_growth_over_arrow"), "≤ 1.5", lambda v: v <= 1.5, "x"),
    Figure("cached_ratio", "cached metered call / bare aiohttp handler (requests/s)", "ledger",
           lambda d: d["http"]["ratio"], "≥ 40%", lambda v: v >= 0.40, ""),
    Figure("cached_p50_ms", "cached metered call p50", "ledger", lambda d: d["http"]["cached"]["p50_ms"],
           "report", None, "ms"),
    Figure("cached_p99_ms", "cached metered call p99", "ledger", lambda d: d["http"]["cached"]["p99_ms"],
           "report", None, "ms"),
    Figure("bare_p50_ms", "bare aiohttp handler p50", "ledger", lambda d: d["http"]["bare"]["p50_ms"],
           "report", None, "ms"),
    Figure("bare_p99_ms", "bare aiohttp handler p99", "ledger", lambda d: d["http"]["bare"]["p99_ms"],
           "report", None, "ms"),
    Figure("stack_ratio", "the gateway's HTTP stack alone (GET /healthz) / bare aiohttp handler (requests/s): "
           "the ceiling of any call through it", "ledger", lambda d: d["http"].get("stack_ratio"), "report", None,
           ""),
    Figure("pg_charges_per_s", "budget charges/s, 3 replicas on PostgreSQL", "ledger",
           _charges("postgres", "charges_per_second"), "≥ 1000", lambda v: v >= 1000, "/s"),
    Figure("sqlite_charges_per_s", "budget charges/s, one process on SQLite", "ledger",
           _charges("sqlite", "charges_per_second"), "report", None, "/s"),
    Figure("overspend", "over-spend (nano-epsilon past the cap, plus charges past the fit), all stores",
           "ledger", _overspend, "= 0", lambda v: v == 0, ""),
    Figure("releases_per_s_1_worker", "fresh releases/s, 1 worker", "concurrency",
           lambda d: d["workers"]["1"]["releases_per_s"], "report", None, "/s"),
    Figure("releases_per_s_2_workers", "fresh releases/s, 2 workers", "concurrency",
           lambda d: d["workers"]["2"]["releases_per_s"], "report", None, "/s"),
    Figure("releases_per_s_4_workers", "fresh releases/s, 4 workers", "concurrency",
           lambda d: d["workers"]["4"]["releases_per_s"], "report", None, "/s"),
    Figure("fairness_victim_p99_s", "victim org's release p99 while two others flood", "fairness",
           lambda d: d["victim_flooded"]["p99"], "≤ fairness bound", None, "s"),
    Figure("fairness_bound_s", "the fairness bound (victim p99 beside previews + one maximal release)",
           "fairness", lambda d: d["bound_seconds"], "report", None, "s"),
    Figure("fairness_within_bound", "victim p99 within the bound", "fairness",
           lambda d: d["within_bound"], "true", lambda v: bool(v), ""),
    Figure("scale_max_rows_measured", "largest table measured on this machine", "scale",
           lambda d: max(r["rows"] for r in d["runs"]), "report", None, "rows"),
    Figure("scale_workers_rss_over_arrow", "2 workers' memory between releases (sum) / Arrow size, largest table",
           "scale", lambda d: max(d["runs"], key=lambda r: r["rows"])["workers_growth_over_arrow"],
           "≤ 1.5", lambda v: v <= 1.5, "x"),
    Figure("scale_workers_peak_over_arrow", "2 workers' peak during releases (private memory sampled, summed, "
           "plus the mapped snapshot once) / Arrow size, largest table",
           "scale", lambda d: max(d["runs"], key=lambda r: r["rows"])["workers_peak_over_arrow"],
           "≤ 1.5", lambda v: v <= 1.5, "x"),
    Figure("scale_workers_hwm_sum_over_arrow", "sum of the 2 workers' high-water marks (shared mapped pages "
           "counted per worker) / Arrow size, largest table", "scale",
           lambda d: max(d["runs"], key=lambda r: r["rows"]).get("workers_hwm_sum_over_arrow"), "report", None, "x"),
    Figure("scale_release_p50_s_largest", "release p50 at the largest table (2 workers busy)", "scale",
           lambda d: max(d["runs"], key=lambda r: r["rows"])["release_p50_s"], "report", None, "s"),
    Figure("scale_release_p99_s_largest", "release p99 at the largest table (2 workers busy)", "scale",
           lambda d: max(d["runs"], key=lambda r: r["rows"])["release_p99_s"], "report", None, "s"),
    Figure("scale_prepare_s_largest", "snapshot preparation at the largest table", "scale",
           lambda d: max(d["runs"], key=lambda r: r["rows"])["prepare_s"], "report", None, "s"),
    Figure("startup_demo_scale_largest", "largest demo county started with all four datasets (demo --scale)",
           "startup", lambda d: _whole(_largest_start(d)["scale"]), "report", None, ""),
    Figure("startup_ready_largest", "`gateway serve --demo` ready with every dataset at that scale, default "
           "settings", "startup", lambda d: _largest_start(d)["first_start"]["ready"], "true", lambda v: bool(v), ""),
    Figure("startup_first_s_largest", "first start at that scale: every snapshot built, prepared and loaded",
           "startup", lambda d: _largest_start(d)["first_start"]["seconds"], "report", None, "s"),
    Figure("startup_second_s_largest", "second start at that scale (snapshots kept)", "startup",
           lambda d: (_largest_start(d)["second_start"] or {}).get("seconds"), "report", None, "s"),
]


def _whole(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _largest_start(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(max(doc["runs"], key=lambda r: r["scale"]))


def load(name: str) -> tuple[dict[str, Any] | None, str]:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None, f"bench/results/{name}.json is missing (its bench did not run)"
    try:
        return json.loads(path.read_text()), ""
    except json.JSONDecodeError as exc:
        return None, f"bench/results/{name}.json is unreadable: {exc}"


def collect() -> dict[str, Any]:
    docs = {name: load(name) for name in sorted({f.source for f in FIGURES})}
    out: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    for f in FIGURES:
        doc, reason = docs[f.source]
        value: Any = None
        if doc is not None:
            try:
                value = f.get(doc)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                reason = f"not measured: {exc!s} missing from bench/results/{f.source}.json"
            if value is None and not reason:
                reason = f"not measured (null in bench/results/{f.source}.json)"
        if isinstance(value, float):
            value = round(value, 4)
        out[f.key] = value
        entry: dict[str, Any] = {"what": f.what, "value": value, "unit": f.unit, "target": f.target,
                                 "source": f"bench/results/{f.source}.json"}
        entry["met"] = f.met(value) if f.met is not None and value is not None else None
        if value is None:
            entry["reason"] = reason
        measured_at = (doc.get("load_average") or doc.get("load_average_1m")
                       or doc.get("http", {}).get("load_average")) if doc else None
        if measured_at is not None:
            entry["load_average"] = measured_at
        figures[f.key] = entry
    out["figures"] = figures
    out["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "load_average_now": Path("/proc/loadavg").read_text().split()[:3]
                      if Path("/proc/loadavg").exists() else None,
                      "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return out


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:.0%}" if unit == "" and value < 1.5 else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        return text + ("" if unit in ("", "rows") else f" {unit}" if unit != "x" else "x")
    return f"{value:,}" + (f" {unit}" if unit and unit != "x" else "")


def markdown(summary: dict[str, Any]) -> str:
    lines = ["# Benchmark summary (issue 18)", "",
             "Written by `bench/summary.py` from bench/results/*.json (`make bench` runs it last). "
             "The machine has 2 cores shared with other work; the load average beside each figure is "
             "the one its bench recorded.", "",
             "| figure | value | target | met | load avg | note |", "|---|---:|---|---|---|---|"]
    for key, f in summary["figures"].items():
        met = "—" if f["met"] is None else ("yes" if f["met"] else "**no**")
        load_avg = f.get("load_average")
        loads = load_avg if isinstance(load_avg, list) else [load_avg] if load_avg is not None else []
        load_text = " / ".join(f"{x:.1f}" for x in loads)
        lines.append(f"| {f['what']} (`{key}`) | {_fmt(f['value'], f['unit'])} | {f['target']} | {met} | "
                     f"{load_text} | {f.get('reason', '')} |")
    now = " ".join(summary["machine"]["load_average_now"] or [])
    lines += ["", f"Load average when the summary was written: {now}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    summary = collect()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
