"""Start-up with all datasets: `gateway serve --demo` on the demo county at several scales (issue 18
point 4).

For each scale, the demo generator writes the four datasets (residents, enterprises, vehicles,
social insurance), and a real `gateway serve --demo` process starts on them with default settings:
its first snapshot of every dataset is built (validated, written canonically), prepared for the
sandbox and loaded. Measured: seconds until /readyz answers 200 (every dataset loaded), a second
start on the same state folder (snapshots kept), the rows and Arrow size of each dataset, and the
highest resident memory of the gateway and its children seen while starting. A start that does
not become ready within the time allowed is recorded with what /readyz and the log said.

Writes bench/results/startup.json and startup.md.
Usage: python bench/startup_bench.py [--scales 1 10 100] [--timeout 3600] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import polars as pl  # noqa: E402
from engine_bench import worker_memory  # noqa: E402

from gateway.data.demo import DATASETS, generate  # noqa: E402
from tests.support import Gateway, call  # noqa: E402


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants (mapped files counted per process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            total += worker_memory(pid)["VmRSS"]
        except (OSError, KeyError):  # gone, or a zombie without memory
            continue
    return total


def county_policies(folder: Path, rows: dict[str, int]) -> dict[str, str]:
    """The shipped policies with room for this county: `max_rows` at least twice the rows, and
    every delta scaled down with it (the lint holds each delta to a tenth of 1/max_rows). A county
    this size declares its own bounds; everything else is the shipped policy."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "policies").iterdir():
        if path.suffix != ".yaml":
            shutil.copy(path, folder / path.name)
            continue
        doc = yaml.safe_load(path.read_text())
        wanted = 2 * rows.get(doc["dataset"], 0)
        if wanted > doc["max_rows"]:
            shrink = Decimal(doc["max_rows"]) / Decimal(wanted)
            doc["max_rows"] = wanted
            if "delta" in doc.get("private_keys", {}):
                doc["private_keys"]["delta"] = _scaled(doc["private_keys"]["delta"], shrink)
            for key, value in doc.get("budget", {}).get("delta", {}).items():
                doc["budget"]["delta"][key] = _scaled(value, shrink)
        (folder / path.name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return {"GATEWAY_POLICIES_DIR": str(folder)}


def _scaled(value: str, factor: Decimal) -> str:
    """value x factor, rounded down to three significant digits (never above the lint's bound)."""
    exact = Decimal(value) * factor
    return str(exact.quantize(Decimal(1).scaleb(exact.adjusted() - 2), rounding=ROUND_DOWN))


def start(state: Path, timeout: float, env: dict[str, str]) -> dict[str, Any]:
    gw = Gateway(state, env=env)
    peak = [0.0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if gw.proc is not None:
                peak[0] = max(peak[0], tree_rss_mb(gw.proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.perf_counter()
    watcher.start()
    try:
        gw.start(timeout=timeout)
        outcome: dict[str, Any] = {"ready": True, "seconds": time.perf_counter() - started}
    except RuntimeError as exc:
        ready = call("GET", gw.base + "/readyz", timeout=5) if gw.proc and gw.proc.poll() is None else None
        outcome = {"ready": False, "seconds": time.perf_counter() - started, "error": str(exc)[-600:],
                   "readyz": ready.json if ready is not None else None}
    finally:
        done.set()
        watcher.join()
        gw.stop()
    outcome["peak_rss_mb"] = peak[0]
    return outcome


def measure(scale: float, work: Path, timeout: float) -> dict[str, Any]:
    state = work / f"state-{scale:g}"
    data = state / "data"
    t0 = time.perf_counter()
    paths = generate(data, scale=scale)
    made_s = time.perf_counter() - t0
    rows = {name: pl.scan_parquet(path).select(pl.len()).collect().item() for name, path in paths.items()}
    env = county_policies(work / f"policies-{scale:g}", rows)
    first = start(state, timeout, env)
    again = start(state, timeout, env) if first["ready"] else None
    arrow_mb = {p.name.split("-")[0]: p.stat().st_size / 2**20 for p in (state / "sandbox-cache").glob("*.arrow")}
    return {"scale": scale, "made_s": made_s, "rows": rows, "arrow_mb": arrow_mb, "first_start": first,
            "second_start": again, "load_average": os.getloadavg()[0]}


def markdown(doc: dict[str, Any]) -> str:
    lines = ["# Start-up with all datasets: `gateway serve --demo` on the demo county", "",
             "Default settings (one release worker, one preview worker, `worker_memory_mb` 8,192), the shipped "
             "policies with `max_rows` raised to twice each table where it is bigger (and their deltas "
             "lowered in proportion, as the lint asks); "
             f"{doc['cpus']} cores. Written by `bench/startup_bench.py`.", "",
             "| scale | rows (residents / enterprises / vehicles / social insurance) | Arrow MB (all) "
             "| first start: ready after | peak memory | second start | load avg |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for r in doc["runs"]:
        first, again = r["first_start"], r["second_start"]
        rows = " / ".join(f"{r['rows'][d]:,}" for d in DATASETS)
        ready = f"{first['seconds']:.1f} s" if first["ready"] else f"**not ready** after {first['seconds']:.0f} s"
        second = f"{again['seconds']:.1f} s" if again else "n/a"
        lines.append(f"| {r['scale']:g} | {rows} | {sum(r['arrow_mb'].values()):,.0f} | {ready} "
                     f"| {first['peak_rss_mb']:,.0f} MB | {second} | {r['load_average']:.1f} |")
    for r in doc["runs"]:
        if not r["first_start"]["ready"]:
            lines += ["", f"Scale {r['scale']:g}: /readyz said {json.dumps(r['first_start'].get('readyz'))}; "
                      f"the start ended with: {r['first_start']['error']}"]
    lines += ["", "'Peak memory' is the resident memory of the gateway and all its children (snapshot builds, "
              "preparations, workers) summed, sampled every 0.2 s; mapped snapshot files count once per "
              "process that maps them. The first start builds and prepares every snapshot; the second reuses "
              "them."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 10, 100])
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="scales 1 and 10 only")
    args = parser.parse_args()
    if args.quick:
        args.scales = [s for s in args.scales if s <= 10]
    work = args.work or Path(tempfile.mkdtemp(prefix="startup-bench-"))
    try:
        runs = [measure(scale, work, args.timeout) for scale in args.scales]
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    doc = {"cpus": os.cpu_count(), "runs": runs,
           "load_average": max((r["load_average"] for r in runs), default=None)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "startup.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0 if all(r["first_start"]["ready"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
