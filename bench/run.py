"""`make bench`: every benchmark in one run; tables land in bench/results/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ("engine_bench.py", "ledger_bench.py", "fairness_bench.py")


def main() -> int:
    if not os.environ.get("GATEWAY_TEST_POSTGRES_DSN"):
        print("bench: GATEWAY_TEST_POSTGRES_DSN is unset; PostgreSQL charges are not measured", file=sys.stderr)
    failed = []
    for bench in BENCHES:
        print(f"== {bench}", flush=True)
        if subprocess.run([sys.executable, str(HERE / bench)], check=False).returncode:
            failed.append(bench)
    for table in sorted((HERE / "results").glob("*.md")):
        print(f"\n---- {table.relative_to(HERE.parent)}\n{table.read_text()}")
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
