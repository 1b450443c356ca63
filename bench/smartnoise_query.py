"""SmartNoise SQL on the engine benchmark's query; run inside bench/.venv-smartnoise.

SmartNoise SQL 1.0 needs opendp < 0.15, so it cannot share the gateway's environment.
Usage: python smartnoise_query.py RESIDENTS.parquet RUNS  -> one JSON object on stdout.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import pandas as pd
import snsql
from snsql import Privacy

QUERY = ("SELECT township, COUNT(*) AS n, AVG(income) AS mean_income FROM county.residents "
         "WHERE age >= 18 GROUP BY township")
METADATA = {
    "county": {"county": {"residents": {
        "row_privacy": True, "max_ids": 1, "censor_dims": False,  # public keys, as in the gateway
        "township": {"type": "string"},
        "age": {"type": "int", "lower": 0, "upper": 110},
        "income": {"type": "float", "lower": 0.0, "upper": 2_000_000.0},
    }}},
}


def main() -> None:
    path, runs = sys.argv[1], int(sys.argv[2])
    frame = pd.read_parquet(path, columns=["township", "age", "income"])
    # SmartNoise charges epsilon per mechanism: this query has three (a count, and a mean's sum
    # and count), so 1/3 each spends 1.0 in all, as the gateway's release does.
    privacy = Privacy(epsilon=1.0 / 3, delta=1e-6)
    cold, warm = [], []
    reader = None
    for _ in range(runs):
        started = time.perf_counter()
        reader = snsql.from_df(frame, privacy=privacy, metadata=METADATA)
        created = time.perf_counter()
        reader.execute(QUERY)
        done = time.perf_counter()
        cold.append(done - started)
        warm.append(done - created)
    assert reader is not None
    cost = reader.get_privacy_cost(QUERY)
    print(json.dumps({"cold_median_s": statistics.median(cold), "query_median_s": statistics.median(warm),
                      "runs": runs, "privacy_cost": list(cost), "version": snsql.__version__
                      if hasattr(snsql, "__version__") else "1.0.x"}))


if __name__ == "__main__":
    main()
