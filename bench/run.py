"""`make bench`: every benchmark in one run; tables land in bench/results/, and
bench/results/summary.json + summary.md put every figure beside its target (bench/summary.py).

Usage: python bench/run.py [--quick] [--only engine_bench.py ...]
`--quick` passes `--quick` to each bench (fewer rows, runs and seconds: a few minutes, not 25).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("engine_bench.py", "engine_profile.py", "ledger_bench.py", "concurrency_bench.py", "fairness_bench.py",
           "scale_bench.py", "startup_bench.py")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    args = parser.parse_args()
    if not os.environ.get("GATEWAY_TEST_POSTGRES_DSN"):
        print("bench: GATEWAY_TEST_POSTGRES_DSN is unset; PostgreSQL charges are not measured", file=sys.stderr)
    failed = []
    for bench in args.only:
        if not (HERE / bench).exists():
            continue
        print(f"== {bench}", flush=True)
        command = [sys.executable, str(HERE / bench), *(["--quick"] if args.quick else [])]
        if subprocess.run(command, check=False).returncode:
            failed.append(bench)
    subprocess.run([sys.executable, str(HERE / "summary.py")], check=False)
    if failed:
        print(f"bench: failed or missed a target: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
